from __future__ import annotations

import os
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
