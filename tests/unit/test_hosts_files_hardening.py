"""DenyHosts' and sshguard's reading of hosts.deny / hosts.allow: bounded memory and size (issue 11).

The same files as libwrap's (tests/unit/test_tcpwrappers_hardening.py): a file of millions of short
lines was split into a list of millions of strings, and anything up to 64 MiB was read.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.sources.denyhosts import DenyhostsReader, parse_hosts_deny
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshguard import SshguardReader, parse_hosts_block

MARK = "# DenyHosts: Tue Nov 14 22:13:20 2023 | sshd: 192.0.2.1\nsshd: 192.0.2.1\n"


def _peak(parse: Callable[[str], object], text: str) -> int:
    tracemalloc.start()
    try:
        parse(text)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("parse", [parse_hosts_deny, parse_hosts_block])
def test_lines_are_read_one_at_a_time(parse: Callable[[str], object]) -> None:
    text = "sshd: 198.51.100.1 x\n" * 200_000  # 4.2 MB
    assert _peak(parse, text) < 2 << 20  # 16 MB (a list of 200,000 strings) before


def test_denyhosts_pairs_as_before() -> None:
    entries = parse_hosts_deny("x\n" + MARK + MARK.replace("192.0.2.1\n", "192.0.2.9\n") + MARK[:-1])
    assert entries.banned == {"sshd": 3}
    assert parse_hosts_deny(MARK.rstrip("\n").replace("\n", "\r\n") + "\r\n").banned == {"sshd": 1}


def test_oversized_hosts_files_are_errors(tmp_path: Path) -> None:
    """libwrap reads lines of at most 2 KiB; 17 MiB is no hosts file (64 MiB were read before)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts.deny").write_text(MARK * (17 * 1024 * 1024 // len(MARK)))
    (tmp_path / "etc/hosts.allow").write_text("###sshguard###\n" + "ALL : 192.0.2.7 : DENY\n" * 800_000)
    denyhosts = DenyhostsReader(HostPaths(rootfs=tmp_path)).read()
    assert not denyhosts.up and "larger than" in denyhosts.error
    sshguard = SshguardReader(HostPaths(rootfs=tmp_path)).read()
    assert "hosts.allow" not in sshguard.sets and "larger than" in sshguard.error
