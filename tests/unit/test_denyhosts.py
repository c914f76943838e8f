"""DenyHosts from fixture files of its formats: hosts.deny pairs and its work directory."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from exporter.collectors.denyhosts import make_collector, snapshot_families
from exporter.sources.denyhosts import DenyhostsReader, parse_hosts_deny
from exporter.sources.host.paths import HostPaths
from tests.exposition import promtool_check, render, samples, value

FIXTURE = Path(__file__).parents[1] / "fixtures" / "denyhosts"


@pytest.fixture
def host(tmp_path: Path) -> HostPaths:
    shutil.copytree(FIXTURE, tmp_path / "root")
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "comm").write_text("init\n")
    return HostPaths(tmp_path / "root", tmp_path / "proc")


def test_intact_pairs_count_per_daemon_list() -> None:
    entries = parse_hosts_deny((FIXTURE / "etc/hosts.deny").read_text())
    # 203.0.113.5's pair was edited by hand, 203.0.113.7's rule line is missing: not DenyHosts' bans
    assert entries.banned == {"sshd": 3, "ALL": 1}
    assert entries.newest == time.mktime(time.strptime("Tue Nov 24 03:00:00 2026"))


def test_collector_on_the_fixture_tree(host: HostPaths) -> None:
    text = render(snapshot_families(DenyhostsReader(host).read()))
    assert promtool_check(text) is None
    found = samples(text)
    assert value(found, "ssh_access_ban_source_up", source="denyhosts") == 1
    assert value(found, "ssh_access_banned_addresses", source="denyhosts", jail="sshd") == 3
    assert value(found, "ssh_access_banned_addresses", source="denyhosts", jail="ALL") == 1
    assert value(found, "ssh_access_denyhosts_daemon_running") == 0
    assert value(found, "ssh_access_denyhosts_tracked_addresses", kind="invalid") == 3
    assert value(found, "ssh_access_denyhosts_tracked_addresses", kind="root") == 1
    assert value(found, "ssh_access_denyhosts_tracked_addresses", kind="valid") == 0
    assert value(found, "ssh_access_denyhosts_tracked_addresses", kind="restricted") == 0


def test_running_daemon_is_seen(host: HostPaths) -> None:
    (host.procfs / "4242").mkdir()
    (host.procfs / "4242" / "comm").write_text("denyhosts\n")
    assert DenyhostsReader(host).read().running


def test_unreadable_hosts_deny_is_down_and_says_why(
    host: HostPaths, caplog: pytest.LogCaptureFixture
) -> None:
    deny = host.root("/etc/hosts.deny")
    deny.unlink()
    deny.mkdir()  # reading it fails, as a permission problem would
    collector = make_collector(DenyhostsReader(host))
    found = samples(render(collector.collect()))
    assert value(found, "ssh_access_ban_source_up", source="denyhosts") == 0
    reason = "/etc/hosts.deny: not a regular file"
    assert [(r.levelname, getattr(r, "err", "")) for r in caplog.records] == [("WARNING", reason)]
    assert collector.state is not None and (collector.state.status, collector.state.reason) == (
        "down",
        reason,
    )


def test_not_installed_emits_nothing_and_says_absent_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts.deny").write_text("sshd: 192.0.2.1\n")
    (tmp_path / "proc").mkdir()
    reader = DenyhostsReader(HostPaths(tmp_path, tmp_path / "proc"))
    assert not reader.read().installed
    collector = make_collector(reader)
    caplog.set_level(logging.INFO)
    assert list(collector.collect()) == list(collector.collect()) == []
    assert [(r.levelname, r.msg) for r in caplog.records] == [("INFO", "ban source absent")]


def test_hosts_deny_is_parsed_again_only_when_it_changes(
    host: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host under attack holds tens of thousands of DenyHosts lines: parsed once, not every scrape."""
    import exporter.sources.denyhosts as module  # noqa: PLC0415

    parsed: list[int] = []

    def counting(text: str) -> object:
        parsed.append(len(text))
        return parse_hosts_deny(text)

    monkeypatch.setattr(module, "parse_hosts_deny", counting)
    reader = DenyhostsReader(host)
    first = reader.read()
    assert reader.read().banned == first.banned == {"sshd": 3, "ALL": 1}
    assert len(parsed) == 1
    deny = host.rootfs / "etc/hosts.deny"
    with deny.open("a") as file:  # DenyHosts appends a pair
        file.write("# DenyHosts: Wed Nov 25 03:00:00 2026 | sshd: 198.51.100.99\nsshd: 198.51.100.99\n")
    assert reader.read().banned == {"sshd": 4, "ALL": 1}
    assert len(parsed) == 2
    deny.unlink()  # gone: libwrap reads it as empty, and so does the reader, cache or not
    assert reader.read().banned == {}


def test_entries_written_in_one_run_have_their_time_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """DenyHosts stamps the bans it writes together with one time: 50,000 strptime calls took 0.7 s."""
    stamps = ["Tue Nov 24 03:00:00 2026"] * 3 + ["Tue Nov 24 04:00:00 2026"] * 2 + ["bad"]
    text = "".join(f"# DenyHosts: {s} | sshd: 192.0.2.{n}\nsshd: 192.0.2.{n}\n" for n, s in enumerate(stamps))
    calls: list[str] = []
    strptime = time.strptime

    def counted(text: str, *rest: str) -> time.struct_time:
        calls.append(text)
        return strptime(text, *rest)

    monkeypatch.setattr(time, "strptime", counted)
    entries = parse_hosts_deny(text)
    assert entries.banned == {"sshd": 6}
    assert entries.newest == time.mktime(strptime("Tue Nov 24 04:00:00 2026"))
    assert calls == ["Tue Nov 24 03:00:00 2026", "Tue Nov 24 04:00:00 2026", "bad"]
