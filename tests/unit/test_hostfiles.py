from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from exporter.sources.denyhosts import DenyhostsReader
from exporter.sources.host.files import read_regular_file
from exporter.sources.host.paths import HostPaths


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "hosts.deny"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file(fifo)


def test_size_cap_and_missing(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert read_regular_file(tmp_path / "big", max_bytes=100) == b"x" * 100
    with pytest.raises(OSError, match="larger than"):
        read_regular_file(tmp_path / "big", max_bytes=99)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "none")


def test_denyhosts_with_a_fifo_as_hosts_deny_reports_an_error(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc/hosts.deny")
    snapshot = DenyhostsReader(HostPaths(rootfs=tmp_path, procfs=tmp_path)).read()
    assert any("not a regular file" in error for error in snapshot.errors)


def test_a_small_file_is_read_without_allocating_the_size_cap(tmp_path: Path) -> None:
    """hosts.allow of a few lines read under a 16 MiB cap allocated 16 MiB each time (3 ms, and the peak
    memory of every parse); a file whose size stat does not tell (procfs) is still read whole."""
    (tmp_path / "hosts.allow").write_bytes(b"sshd: 192.0.2.1\n" * 64)
    tracemalloc.start()
    try:
        data = read_regular_file(tmp_path / "hosts.allow", max_bytes=16 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == b"sshd: 192.0.2.1\n" * 64
    assert peak < 64 << 10
    status = read_regular_file(Path("/proc/self/status"))  # st_size 0
    assert status.startswith(b"Name:") and b"VmRSS:" in status
