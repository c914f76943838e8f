from __future__ import annotations

from pathlib import Path

from exporter.sources.host.procfiles import read_proc_file


def test_reads_seq_files_to_the_end() -> None:
    """seq_file files answer about a page per read: a short read is not the end of the file."""
    for name in ("/proc/self/maps", "/proc/self/smaps"):
        with open(name, "rb") as handle:  # smaps is many pages long
            expected_lines = handle.read().count(b"\n")
        assert abs(read_proc_file(name).count(b"\n") - expected_lines) < 50  # maps may move a little


def test_reads_large_regular_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000  # 256,000 bytes: several chunks
    (tmp_path / "f").write_bytes(data)
    assert read_proc_file(str(tmp_path / "f")) == data


def test_single_read_files_equal_a_full_read() -> None:
    for name in ("/proc/self/cmdline", "/proc/self/stat"):
        assert (
            read_proc_file(name, short_read_is_eof=True).split(b" ")[:2]
            == read_proc_file(name).split(b" ")[:2]
        )


def test_single_read_still_loops_over_a_full_chunk(tmp_path: Path) -> None:
    data = b"x" * (1 << 17)
    (tmp_path / "f").write_bytes(data)
    assert read_proc_file(str(tmp_path / "f"), short_read_is_eof=True) == data
