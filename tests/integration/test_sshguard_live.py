"""The sshguard collector against a real sshguard in a network namespace, nft-sets and ipset backends.

sshguard reads a temp log fed with failed-password lines from documentation addresses (it never
blocks 127.x; nothing is sent to those addresses). The exporter runs inside the same namespace, where
sshguard's sets live.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exposition import Samples, promtool_check, value
from tests.integration.harness import Exporter, NetNs, Sshguard, require_root_and


@pytest.fixture(autouse=True)
def _needs_sshguard() -> None:
    require_root_and("sshguard", "nft", "ipset", "ip", "promtool")


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[NetNs]:
    with NetNs(tmp_path / "netns") as namespace:
        yield namespace


def _banned(found: Samples, jail: str) -> float | None:
    return value(found, "ssh_access_banned_addresses", source="sshguard", jail=jail)


def _exporter(netns: NetNs) -> Exporter:
    return Exporter("--no-collector.sshd", "--no-collector.fail2ban", netns=netns)


@pytest.mark.parametrize(
    ("backend", "v4", "v6"),
    [("nft-sets", "ip sshguard attackers", "ip6 sshguard attackers"), ("ipset", "sshguard4", "sshguard6")],
)
def test_real_sshguard_bans(netns: NetNs, tmp_path: Path, backend: str, v4: str, v6: str) -> None:
    sshguard = Sshguard(tmp_path / "sshguard", netns, backend)
    with sshguard, _exporter(netns) as exporter:
        found = exporter.wait_until(lambda f: _banned(f, v4) == 0)
        assert value(found, "ssh_access_ban_source_up", source="sshguard") == 1
        assert (_banned(found, v4), _banned(found, v6)) == (0, 0)
        for address in ("192.0.2.7", "198.51.100.9", "2001:db8::5"):
            sshguard.attack(address)
        found = exporter.wait_until(lambda f: _banned(f, v4) == 2 and _banned(f, v6) == 1)
        assert (_banned(found, v4), _banned(found, v6)) == (2, 1)
        assert promtool_check(exporter.text()) is None
        sshguard.stop()
        # sshguard's firewall helper deletes its nft tables on exit, a moment after sshguard is gone
        # (ipsets stay): wait for both.
        gone = backend != "nft-sets"
        found = exporter.wait_until(
            lambda f: (
                value(f, "ssh_access_ban_source_up", source="sshguard") == 0
                and (gone or _banned(f, v4) is None)
            )
        )
        assert value(found, "ssh_access_ban_source_up", source="sshguard") == 0
        assert value(found, "ssh_access_collector_success", collector="sshguard") == 1
        if backend == "nft-sets":
            assert _banned(found, v4) is None
        # the log line says why, and what each backend showed (ipsets outlive sshguard; nft sets do not)
        logged = [
            line
            for line in exporter.log().splitlines()
            if 'msg="ban source unreachable"' in line and "source=sshguard" in line
        ]
        assert logged, exporter.log()  # before: no line at all, the blocker's absence being no "error"
        ipsets = {"nft-sets": "no sshguard4 or sshguard6 set", "ipset": "sshguard4, sshguard6"}[backend]
        shown = f"nft: no sshguard set; ipset: {ipsets}"
        assert f'err="sshg-blocker is not running (backends: {shown}; /etc/hosts.allow: ' in logged[-1]


def test_sshguard_scrape_is_quick(netns: NetNs, tmp_path: Path) -> None:
    with Sshguard(tmp_path / "sshguard", netns), _exporter(netns) as exporter:
        found = exporter.wait_until(lambda f: _banned(f, "ip sshguard attackers") == 0)
        duration = value(found, "ssh_access_collector_duration_seconds", collector="sshguard")
        assert duration is not None and duration < 0.5
        started = time.monotonic()
        exporter.text()
        assert time.monotonic() - started < 5
