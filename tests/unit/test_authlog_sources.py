"""`ssh_access_authlog_source_up`: which log sources the authlog collector reads now, on fixture rootfs
trees; the collector fails (its families still exposed) while one cannot be read, and says so when
sshd's lines reach none of them."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.collectors.authlog import (
    LiveAuthlogCollector,
    SourceUnavailableError,
    build_sources,
    live_collector,
)
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


def _live(rootfs: Path, files: str, journal: str = "off", procfs: Path | None = None) -> LiveAuthlogCollector:
    paths = HostPaths(rootfs=rootfs, procfs=procfs or rootfs / "proc")
    return live_collector(paths, _args(files, journal), Stats(), 0.02)


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
    # the counters stay: totals of what was read, with source_up and collector_success saying why so few
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 0
    (failure,) = (r for r in caplog.records if r.getMessage() == "collector failed")
    assert str(getattr(failure, "err", "")) == (
        "SourceUnavailableError: no auth log source: /var/log/auth.log absent, journal off "
        "(--collector.authlog.journal=off) — sshd's log lines reach nothing this exporter reads"
    )

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
    assert "reach nothing" not in str(failed.value)  # the other file is read
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
    _journald_socket(tmp_path)  # journald runs, but keeps its journal where the exporter cannot see it
    sources = build_sources(HostPaths(rootfs=tmp_path), _args("", journal="auto"))
    assert [s.name for s in sources] == ["journal"]
    collector = LiveAuthlogCollector(sources, Stats(), 0.02)
    closing.append(collector)
    found = _scrape(collector)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="journal") == 0
    with pytest.raises(SourceUnavailableError, match=r"reach nothing.*") as failed:
        list(collector.collect())
    assert "journal: no journal file readable in " in str(failed.value)
    assert str(tmp_path / "run/log/journal") in str(failed.value)


def _journald_socket(rootfs: Path) -> None:
    """What a running journald (or systemd, holding it for socket activation) leaves: its socket."""
    (rootfs / "run/systemd/journal").mkdir(parents=True)
    os.mknod(rootfs / "run/systemd/journal/socket", stat.S_IFSOCK | 0o666)


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


NOTHING = "sshd's log lines reach nothing this exporter reads"


def test_no_log_file_and_journal_off_fails_with_why_until_a_file_appears(
    rootfs: Path, closing: list[LiveAuthlogCollector], caplog: pytest.LogCaptureFixture
) -> None:
    """Debian 12 without rsyslog, the journal off: both candidate files are watched, down, and named;
    the collector fails (it used to refuse to start) and comes back when one is created."""
    collector = _live(rootfs, "")
    closing.append(collector)
    with caplog.at_level(logging.WARNING):
        found = _eventually(collector, lambda s: _success(s) is not None)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 0
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/secure") == 0
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 0
    (failure,) = (r for r in caplog.records if r.getMessage() == "collector failed")
    assert str(getattr(failure, "err", "")) == (
        "SourceUnavailableError: no auth log source: /var/log/auth.log and /var/log/secure absent, "
        f"journal off (--collector.authlog.journal=off) — {NOTHING}"
    )
    assert not [r for r in caplog.records if "does not exist" in r.getMessage()]  # candidates: no noise

    (rootfs / "var/log/secure").write_text(LINE)  # read from its start: it is new
    found = _eventually(
        collector, lambda s: value(s, "ssh_access_sshd_events_total", event="auth_failed") == 1
    )
    assert _success(found) == 1
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/secure") == 1
    # the other candidate is no problem while one is read, and has no series
    assert not [key for key in found if ("source", "/var/log/auth.log") in key[1]]


def test_no_log_file_and_no_journald_names_both(rootfs: Path, closing: list[LiveAuthlogCollector]) -> None:
    """The issue's host: no auth log file, journal=auto, journald not running (no socket). Journal files
    left from when it ran do not make it a source of sshd's lines now."""
    (rootfs / "var/log/journal/0123456789abcdef").mkdir(parents=True)
    (rootfs / "var/log/journal/0123456789abcdef/system.journal").write_bytes(b"LPKSHHRH")
    (rootfs / "run/systemd").mkdir(parents=True)  # a systemd host's /run, without journald's socket
    collector = _live(rootfs, "", journal="auto")
    closing.append(collector)
    assert [s.name for s in collector.follower.sources] == ["journal"]
    found = _scrape(collector)
    assert _success(found) == 0
    assert value(found, "ssh_access_authlog_source_up", source="journal") == 0
    with pytest.raises(SourceUnavailableError) as failed:
        list(collector.collect())
    assert str(failed.value) == (
        "no auth log source: /var/log/auth.log and /var/log/secure absent, "
        f"journal not running (no /run/systemd/journal/socket) — {NOTHING}"
    )
    (rootfs / "var/log/auth.log").write_text(LINE)  # the journal was chosen at start: this is not read
    with pytest.raises(SourceUnavailableError) as failed:
        list(collector.collect())
    assert str(failed.value) == (
        "no auth log source: /var/log/secure absent, /var/log/auth.log present but not read (created "
        "after start: restart the exporter to read it), journal not running (no /run/systemd/journal/"
        f"socket) — {NOTHING}"
    )


def test_a_missing_candidate_is_no_problem_while_the_other_is_read(
    rootfs: Path, closing: list[LiveAuthlogCollector]
) -> None:
    (rootfs / "var/log/auth.log").write_text(LINE)
    collector = _live(rootfs, "", journal="auto")
    closing.append(collector)
    assert [s.name for s in collector.follower.sources] == ["/var/log/auth.log", "/var/log/secure"]
    found = _eventually(collector, lambda s: _success(s) == 1)
    assert value(found, "ssh_access_authlog_source_up", source="/var/log/auth.log") == 1
    assert not [key for key in found if ("source", "/var/log/secure") in key[1]]


def _procfs(tmp_path: Path, *comms: str) -> Path:
    procfs = tmp_path / "procfs"
    for pid, comm in enumerate(comms, start=100):
        (procfs / str(pid)).mkdir(parents=True)
        (procfs / str(pid) / "comm").write_text(comm + "\n")
    procfs.mkdir(exist_ok=True)
    return procfs


@pytest.mark.parametrize(("comms", "warned"), [(("sshd", "cron"), True), (("sshd", "rsyslogd"), False)])
def test_a_file_nothing_writes_to_is_a_warning_not_a_failure(
    rootfs: Path,
    tmp_path: Path,
    closing: list[LiveAuthlogCollector],
    caplog: pytest.LogCaptureFixture,
    comms: tuple[str, ...],
    warned: bool,
) -> None:
    """An auth.log left from before rsyslog was removed: it is read, but sshd's new lines go elsewhere.
    No syslog daemon in /proc is no proof (another pid namespace, NFS), so the scrape still succeeds."""
    (rootfs / "var/log/auth.log").write_text(LINE)
    collector = _live(rootfs, "/var/log/auth.log", procfs=_procfs(tmp_path, *comms))
    closing.append(collector)
    with caplog.at_level(logging.WARNING):
        found = _eventually(collector, lambda s: _success(s) == 1)
        _scrape(collector)  # checked at most once a minute, logged once per change
    assert _success(found) == 1
    warnings = [r.getMessage() for r in caplog.records if "no syslog daemon runs" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0), warnings
    if warned:
        assert "/var/log/auth.log" in warnings[0] and "rsyslogd" in warnings[0]
