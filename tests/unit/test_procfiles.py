from __future__ import annotations

from pathlib import Path

from exporter.sources.procfiles import read_proc_file


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
