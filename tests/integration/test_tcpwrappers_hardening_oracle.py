"""What issue 11 changed in the evaluator, judged by the real `tcpdmatch` (Debian's libwrap).

The wildcard matcher no longer backtracks, pattern files are expanded once, and lines with a NUL byte are
read as libwrap's fgets/strlen reads them: the verdicts must stay libwrap's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers.reader import TcpWrappersReader
from tests.integration.harness import NetNs, require_root_and
from tests.integration.tcpdmatch import tcpdmatch_verdicts

ADDRESSES = ["192.0.2.1", "192.0.2.11", "198.51.100.7", "2001:db8::1", "2001:db8:1::5", "::ffff:192.0.2.1"]
WILDCARDS = [
    "*", "**", "*?", "?*?", "*1", "1*", "*.1", "192.0.2.?", "192.*.1", "*.*.*.*", "*2*1*", "1*2*3",
    "*:*", "2001:db8::*", "2001:db8:*:5", "*::1", "*:?", "?????????", "*??????????*", "**1", "****X",
    "19?.*.1?", "*0*0*", "*db8*", "*.0.2.*", "*a*", "???*",
]  # fmt: skip


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetNs]:
    require_root_and("tcpdmatch", "ip")
    with NetNs(tmp_path_factory.mktemp("tcpdmatch-ns")) as namespace:
        yield namespace


def _write(directory: Path, name: str, text: str) -> None:
    """A file at DIRECTORY/NAME, where tcpdmatch reads it, and the same under the rootfs DIRECTORY/root
    where we read it: hosts.allow and hosts.deny as /etc/hosts.*, a pattern file at its absolute path."""
    (directory / name).write_text(text)
    host_path = f"/etc/{name}" if name.startswith("hosts.") else str(directory / name)
    local = directory / "root" / host_path.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)


def _ours(directory: Path, addresses: list[str]) -> list[str]:
    """Our `if_unresolved` for each address (what tcpdmatch prints when no lookup answers)."""
    snapshot = TcpWrappersReader(HostPaths(rootfs=directory / "root"), binaries=()).read()
    return [evaluate(snapshot.rules, client=ClientInfo(a)).if_unresolved for a in addresses]


def test_wildcards_agree_with_tcpdmatch(netns: NetNs, tmp_path: Path) -> None:
    for pattern in WILDCARDS:
        _write(tmp_path, "hosts.allow", "")
        _write(tmp_path, "hosts.deny", f"sshd: {pattern}\n")
        expected = tcpdmatch_verdicts(netns, tmp_path, ADDRESSES)
        assert _ours(tmp_path, ADDRESSES) == expected, pattern


def test_pattern_file_chain_agrees_with_tcpdmatch(netns: NetNs, tmp_path: Path) -> None:
    """libwrap follows `/path` patterns to any depth: 12 files deep still matches."""
    for index in range(12):
        _write(tmp_path, f"p{index}", f"{tmp_path}/p{index + 1} 198.51.100.{index}\n")
    _write(tmp_path, "p12", "192.0.2.0/24 [2001:db8:1::]/48\n")
    _write(tmp_path, "hosts.allow", "")
    _write(tmp_path, "hosts.deny", f"sshd: {tmp_path}/p0\n")
    addresses = [*ADDRESSES, "198.51.100.0", "198.51.100.11", "198.51.100.12"]
    expected = tcpdmatch_verdicts(netns, tmp_path, addresses)
    assert expected == ["deny", "deny", "deny", "allow", "deny", "deny", "deny", "deny", "allow"]
    assert _ours(tmp_path, addresses) == expected


NUL_FILES = [
    "sshd: 192.0.2.1\0junk\n 198.51.100.1\n",
    "#x\0\nsshd: ALL\n",
    "\0sshd: ALL\nsshd: 192.0.2.1\n",
    "sshd: 192.0.2.1\0\0\\\n198.51.100.1\n",
    "sshd\0: ALL\n: 192.0.2.11\n",
    "sshd: 192.0.2.11\nsshd: 203.0.113.9\0",
]


def test_nul_bytes_agree_with_tcpdmatch(netns: NetNs, tmp_path: Path) -> None:
    """libwrap's fgets/strlen: a line ends at its NUL and the next line is joined on."""
    addresses = ["192.0.2.1", "192.0.2.11", "198.51.100.1", "2001:db8::1"]
    for deny in NUL_FILES:
        _write(tmp_path, "hosts.allow", "")
        _write(tmp_path, "hosts.deny", deny)
        assert _ours(tmp_path, addresses) == tcpdmatch_verdicts(netns, tmp_path, addresses), repr(deny)
