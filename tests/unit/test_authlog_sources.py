"""`ssh_access_authlog_source_up`: which log sources the authlog collector reads now, on fixture rootfs
trees; the collector fails (with only that family) while one cannot be read."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.collectors.authlog import LiveAuthlogCollector, SourceUnavailableError, build_sources
from exporter.collectors.families.authlog import authlog_families
from exporter.options import AuthlogOptions
from exporter.scrape import ScrapeCollector
from exporter.sources.authlog.journal import JournalReader
from exporter.sources.authlog.stats import Stats
from exporter.sources.host.paths import HostPaths
from tests.exposition import Samples, render, samples, value

LINE = "Dec  6 03:00:00 host sshd[4242]: Failed password for root from 192.0.2.7 port 50000 ssh2\n"


def _args(files: str, journal: str = "off") -> AuthlogOptions:
    return AuthlogOptions(files=tuple(f for f in files.split(",") if f), journal=journal, from_start=True)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "var/log").mkdir(parents=True)
    return tmp_path


def _live(rootfs: Path, files: str) -> LiveAuthlogCollector:
    return LiveAuthlogCollector(build_sources(HostPaths(rootfs=rootfs), _args(files)), Stats(), 0.02)


def _scrape(collector: LiveAuthlogCollector) -> Samples:
    scraper = ScrapeCollector({"authlog": collector})
    try:
        return samples(render(scraper.collect()))
    finally:
        scraper.close()


def _eventually(collector: LiveAuthlogCollector, check: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + 10
    while True:
        found = _scrape(collector)
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.fixture
def closing() -> Iterator[list[LiveAuthlogCollector]]:
    collectors: list[LiveAuthlogCollector] = []
    yield collectors
    for collector in collectors:
        collector.close()


def _success(found: Samples) -> float | None:
    return value(found, "ssh_access_collector_success", collector="authlog")


def test_missing_file_is_down_and_fails_the_collector_until_it_appears(
    rootfs: Path, closing: list[LiveAuthlogCollector], caplog: pytest.LogCaptureFixture
) -> None:
    collector = _live(rootfs, "/var/log/auth.log")
    closing.append(collector)
    deadline = time.monotonic() + 10  # the follower's first poll finds it missing
    while not collector.follower.source_health()["/var/log/auth.log"]["last_error"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with caplog.at_level(logging.WARNING):
        found = _scrape(collector)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 0
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") is None  # no half-truths
    (failure,) = (r for r in caplog.records if r.getMessage() == "collector failed")
    reason = str(getattr(failure, "err", ""))
    assert "sshd's lines reach none" in reason and "/var/log/auth.log: does not exist" in reason, reason
    with pytest.raises(SourceUnavailableError, match=r"reach none.*/var/log/auth\.log: does not exist"):
        list(collector.collect())

    (rootfs / "var/log/auth.log").write_text(LINE)
    found = _eventually(collector, lambda s: _success(s) == 1)
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 1
    found = _eventually(
        collector, lambda s: value(s, "ssh_access_sshd_events_total", event="auth_failed") == 1
    )
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 1


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_what_is_no_regular_file_is_down(
    rootfs: Path, closing: list[LiveAuthlogCollector], kind: str
) -> None:
    log = rootfs / "var/log/auth.log"
    if kind == "directory":
        log.mkdir()
    else:
        os.mkfifo(log)
    collector = _live(rootfs, "/var/log/auth.log")
    closing.append(collector)
    found = _eventually(collector, lambda s: _success(s) is not None)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 0


def test_one_source_down_of_two(rootfs: Path, closing: list[LiveAuthlogCollector]) -> None:
    (rootfs / "var/log/auth.log").write_text(LINE)
    collector = _live(rootfs, "/var/log/auth.log,/var/log/secure")
    closing.append(collector)
    found = _eventually(
        collector, lambda s: value(s, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 1
    )
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/secure") == 0
    with pytest.raises(SourceUnavailableError) as failed:
        list(collector.collect())
    assert "reach none" not in str(failed.value)  # the other file is read
    assert "/var/log/secure: does not exist" in str(failed.value)


def test_every_source_read(rootfs: Path, closing: list[LiveAuthlogCollector]) -> None:
    for name in ("auth.log", "secure"):
        (rootfs / "var/log" / name).write_text(LINE)
    collector = _live(rootfs, "/var/log/auth.log,/var/log/secure")
    closing.append(collector)
    found = _eventually(collector, lambda s: _success(s) == 1)
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 1
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/secure") == 1


def test_journal_without_journal_files_is_down(tmp_path: Path, closing: list[LiveAuthlogCollector]) -> None:
    """journal=auto with no auth log file under a rootfs that has no journal either (Debian 12 without
    rsyslog, in a container without /var/log/journal): sshd's lines reach nothing the exporter reads."""
    (tmp_path / "run/log/journal/0123456789abcdef").mkdir(parents=True)  # journald never wrote here
    sources = build_sources(HostPaths(rootfs=tmp_path), _args("", journal="auto"))
    assert [s.name for s in sources] == ["journal"]
    collector = LiveAuthlogCollector(sources, Stats(), 0.02)
    closing.append(collector)
    found = _scrape(collector)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="journal") == 0
    with pytest.raises(SourceUnavailableError, match=r"reach none.*no journal file readable in .*/run/log/"):
        list(collector.collect())


def test_journal_problem_follows_the_journal_files(tmp_path: Path) -> None:
    empty = tmp_path / "journal"
    (empty / "0123456789abcdef").mkdir(parents=True)
    reader = JournalReader(backend="journalctl", directory=empty, journalctl="/nonexistent/journalctl")
    try:
        assert reader.journal_problem() == f"journal: no journal file readable in {empty}"
        assert reader.health_dict()["path_readable"] is False
        (empty / "0123456789abcdef/system.journal").write_bytes(b"LPKSHHRH")
        assert reader.journal_problem() is None
    finally:
        reader.close()
    missing = JournalReader(
        backend="journalctl", files=[tmp_path / "gone.journal"], journalctl="/nonexistent/j"
    )
    try:
        assert missing.journal_problem() == f"journal files cannot be read: {tmp_path / 'gone.journal'}"
    finally:
        missing.close()


def test_replayed_sources_are_up() -> None:
    stats = Stats()
    stats.source("/var/log/auth.log")
    (family,) = (f for f in authlog_families(stats.snapshot()) if f.name == "ssh_access_authlog_source_up")
    assert [(s.labels, s.value) for s in family.samples] == [({"source": "/var/log/auth.log"}, 1.0)]
