"""sshguard's backends from fixture text: nft JSON, ipset save output, the hosts.allow block."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from exporter.collectors.sshguard import make_collector, snapshot_families
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshguard import (
    SshguardReader,
    SshguardSnapshot,
    count_ipset_save,
    count_nft_set,
    parse_hosts_block,
    tool_reason,
)
from tests.exposition import promtool_check, render, samples, value

META = {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}


def nft_set(elements: list[object] | None) -> str:
    body: dict[str, object] = {
        "family": "ip",
        "name": "attackers",
        "table": "sshguard",
        "flags": ["interval"],
    }
    if elements is not None:
        body["elem"] = elements
    return json.dumps({"nftables": [META, {"set": body}]})


def test_nft_set_elements_of_every_shape_count_once() -> None:
    elements: list[object] = [
        "192.0.2.7",
        {"prefix": {"addr": "198.51.100.0", "len": 24}},
        {"range": ["203.0.113.1", "203.0.113.9"]},
        {"elem": {"val": "192.0.2.8", "timeout": 300, "expires": 299}},
    ]
    assert count_nft_set(nft_set(elements)) == 4
    assert count_nft_set(nft_set(None)) == 0  # an empty set has no "elem" at all
    with pytest.raises(ValueError):
        count_nft_set(json.dumps({"nftables": [META]}))


@pytest.mark.parametrize(
    "text",
    [
        '{"nftables": [' + "[" * 100_000 + "]" * 100_000 + "]}",  # RecursionError
        '{"nftables": [{"set": {"elem": 5}}]}',  # TypeError
        '{"nftables": 5}',  # TypeError
        "[]",  # AttributeError
    ],
)
def test_nft_set_output_of_another_shape_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        count_nft_set(text)


def test_ipset_save_members() -> None:
    text = (
        "create sshguard4 hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\n"
        "add sshguard4 198.51.100.9\nadd sshguard4 192.0.2.0/24\nadd sshguard40 192.0.2.1\n"
    )
    assert count_ipset_save(text, "sshguard4") == 2


HOSTS_ALLOW = """\
# /etc/hosts.allow
sshd: 10.0.0.0/8
###sshguard###
ALL : 192.0.2.7 : DENY
ALL : [2001:db8::5] : DENY
###sshguard###
ALL: LOCAL
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOSTS_ALLOW, 2),
        ("sshd: ALL\n", None),
        ("###sshguard###\n###sshguard###\n", 0),
        ("###sshguard###\nALL : 192.0.2.7 : DENY\n", 1),  # unterminated: what it lists is still read
    ],
)
def test_hosts_allow_block(text: str, expected: int | None) -> None:
    assert parse_hosts_block(text) == expected


def fixture_host(tmp_path: Path, hosts_allow: str | None, running: bool) -> HostPaths:
    (tmp_path / "etc").mkdir()
    if hosts_allow is not None:
        (tmp_path / "etc/hosts.allow").write_text(hosts_allow)
    proc = tmp_path / "proc"
    for pid, comm in ((1, "init"), (321, "sshg-blocker" if running else "sleep")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
    return HostPaths(tmp_path, proc)


def test_reader_on_a_fixture_tree(tmp_path: Path) -> None:
    snapshot = SshguardReader(fixture_host(tmp_path, HOSTS_ALLOW, running=True)).read()
    backends = (NFT_NOT_RUN, IPSET_NOT_RUN, "/etc/hosts.allow: ###sshguard### block")
    assert snapshot == SshguardSnapshot(True, True, {"hosts.allow": 2}, (), backends)
    assert snapshot.error == ""
    text = render(snapshot_families(snapshot))
    assert promtool_check(text) is None
    found = samples(text)
    assert value(found, "ssh_access_ban_source_up", source="sshguard") == 1
    assert value(found, "ssh_access_banned_addresses", source="sshguard", jail="hosts.allow") == 2


NFT_NOT_RUN = "nft: not run (rootfs is not this machine's root)"
IPSET_NOT_RUN = "ipset: not run (rootfs is not this machine's root)"


def test_installed_but_not_running_is_down_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collector = make_collector(SshguardReader(fixture_host(tmp_path, HOSTS_ALLOW, running=False)))
    found = samples(render(collector.collect()))
    assert value(found, "ssh_access_ban_source_up", source="sshguard") == 0
    assert value(found, "ssh_access_banned_addresses", source="sshguard", jail="hosts.allow") == 2
    reason = (
        f"sshg-blocker is not running (backends: {NFT_NOT_RUN}; {IPSET_NOT_RUN}; "
        "/etc/hosts.allow: ###sshguard### block)"
    )
    # before: nothing was logged at all (no error, only a blocker that was not running)
    assert [getattr(r, "err", "") for r in caplog.records if r.msg == "ban source unreachable"] == [reason]
    assert collector.state is not None and (collector.state.status, collector.state.reason) == (
        "down",
        reason,
    )


def test_a_backend_that_cannot_be_read_is_named_with_the_blocker_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = fixture_host(tmp_path, None, running=True)
    (tmp_path / "etc/hosts.allow").mkdir()
    collector = make_collector(SshguardReader(paths))
    found = samples(render(collector.collect()))
    assert value(found, "ssh_access_ban_source_up", source="sshguard") == 0
    assert collector.state is not None and collector.state.reason.startswith("/etc/hosts.allow: ")
    assert collector.state.reason.endswith(
        f"(backends: {NFT_NOT_RUN}; {IPSET_NOT_RUN}; /etc/hosts.allow: could not be read)"
    )


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [  # what nft and ipset 7.17 print on Debian 12
        (
            "Error: No such file or directory\nlist set ip sshguard attackers\n            ^^^^^^^^\n",
            "Error: No such file or directory",
        ),
        (  # unprivileged: the cause is on the second line
            "Operation not permitted (you must be root)\n"
            "netlink: Error: cache initialization failed: Operation not permitted\n",
            "Operation not permitted (you must be root); "
            "netlink: Error: cache initialization failed: Operation not permitted",
        ),
        ("ipset v7.17: Kernel error received: Operation not permitted\n", None),
        ("", "exited with status 1"),
    ],
)
def test_a_tools_complaint_is_kept_whole_on_one_line(stderr: str, reason: str | None) -> None:
    assert tool_reason(stderr, 1) == (reason or stderr.strip())


def test_not_installed_emits_nothing_and_says_absent_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = SshguardReader(fixture_host(tmp_path, "sshd: ALL\n", running=False))
    assert not reader.read().installed
    collector = make_collector(reader)
    caplog.set_level(logging.INFO)
    assert list(collector.collect()) == list(collector.collect()) == []
    assert [(r.levelname, r.msg) for r in caplog.records] == [("INFO", "ban source absent")]


def test_one_proc_pass_serves_the_asks_of_one_scrape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sshguard, DenyHosts and the watchlist each ask whether a daemon runs: on a host with 1,000 sshd
    children each pass costs 50-80 ms, so asks within MAX_AGE share one; a later ask sees a change."""
    from exporter.sources.host import procscan, singleflight  # noqa: PLC0415

    procfs = tmp_path / "proc"
    (procfs / "42").mkdir(parents=True)
    (procfs / "42" / "comm").write_text("sshg-blocker\n")
    passes: list[Path] = []
    scan = procscan._scan

    def counted(path: Path) -> frozenset[str]:
        passes.append(path)
        return scan(path)

    monkeypatch.setattr(procscan, "_scan", counted)
    monkeypatch.setattr(singleflight, "_scrape_started", float("-inf"))  # no scrape began on this clock
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    assert all(procscan.running(procfs, frozenset({"sshg-blocker"})) for _ in range(3))
    assert len(passes) == 1
    (procfs / "42" / "comm").write_text("bash\n")
    clock[0] += procscan.MAX_AGE
    assert not procscan.running(procfs, frozenset({"sshg-blocker"}))
    assert len(passes) == 2
