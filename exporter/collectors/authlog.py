"""The registered auth-log collector: `LiveAuthlogCollector` follows the host's files or journal in a
thread and renders its counters with authlog_families (exporter.collectors.families.authlog).

Each source (a configured file, a distribution's candidate file, the journal when used) reports whether
it is read now. While one that matters is not, the collector fails and still exposes its families
(the counters are totals of what was read; `ssh_access_authlog_source_up` says which source is down):

    # HELP ssh_access_authlog_source_up 1 when the log source is read now; 0 when it cannot be ...
    # TYPE ssh_access_authlog_source_up gauge
    ssh_access_authlog_source_up{source="/var/log/auth.log"} 0.0
    ssh_access_authlog_source_up{source="/var/log/secure"} 0.0
    # HELP ssh_access_collector_success 1 if the collector's last scrape worked.
    # TYPE ssh_access_collector_success gauge
    ssh_access_collector_success{collector="authlog"} 0.0

with, when no source can carry sshd's lines, one reason that says so (logged once per change):

    no auth log source: /var/log/auth.log and /var/log/secure absent, journal not running (no
    /run/systemd/journal/socket) — sshd's log lines reach nothing this exporter reads
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

from prometheus_client.metrics_core import Metric

from exporter.collectors.families.authlog import AuthlogCollector, authlog_families
from exporter.config import ConfigError
from exporter.options import AuthlogOptions
from exporter.registry import Context, PartialFailureError, register_collector
from exporter.sources.authlog.follow import Batch, LogFollower, Source, state_file_for
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.journal import journal_reader_for
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats
from exporter.sources.authlog.tail import (
    AUTH_LOG_CANDIDATES,
    FileTailer,
    candidate_log_files,
    configured_log_files,
    default_log_files,
)
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.procscan import running

__all__ = ["AuthlogCollector", "LiveAuthlogCollector", "authlog_families", "live_collector"]

log = logging.getLogger(__name__)

# Processes that write syslog files (rsyslog, syslog-ng, sysklogd and busybox, metalog, socklog).
SYSLOG_DAEMONS = frozenset({"rsyslogd", "syslog-ng", "syslogd", "metalog", "socklog"})
# How often the /proc pass for them runs at most (a scrape may come every second).
WRITER_CHECK_S = 60.0
REACH_NOTHING = "sshd's log lines reach nothing this exporter reads"

Health = Mapping[str, object]


class SourceUnavailableError(PartialFailureError, RuntimeError):
    """A log source that matters cannot be read now (missing, vanished, permission denied); it carries
    every family, `ssh_access_authlog_source_up` saying which source is down."""


def _is_up(health: Health) -> bool:
    """Read now: open, and the path holds what can be read (an older file may be drained while not)."""
    return bool(health.get("open", False)) and bool(health.get("path_readable", True))


def _absent_candidate(health: Health) -> bool:
    """A distribution's candidate file that is not there: no problem while another source is read."""
    return bool(health.get("optional", False)) and bool(health.get("missing", False))


def _reason(name: str, health: Health) -> str:
    if not health.get("open", False):
        return str(health.get("last_error") or f"{name}: not open")
    return str(health.get("last_error") or f"{name}: cannot be read")


def _absent(names: Sequence[str]) -> str:
    """`A absent`, `A and B absent`, `A, B and C absent`."""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} absent"


class LiveAuthlogCollector:
    """Follows the host's auth log (files, or the journal) in a thread; a scrape renders the counters.

    Counters come from the follower, never from the scrape, so no line is lost or counted twice
    between scrapes. A source that cannot be read now fails the scrape of this collector
    (`ssh_access_collector_success{collector="authlog"} 0`, with the reason logged, and
    `ssh_access_authlog_source_up` 0 for it; the counters stay exposed, as totals of what was read)
    while the follower keeps trying, so the counters carry on when the file comes back. A candidate
    file (`/var/log/secure` on Debian) that is absent is no problem, and not shown, while another source
    is read. When no source is read, the reason names every source and says sshd's lines reach none of
    them: a missing file, a journal that is off, absent or not running.

    `journal_mode` (--collector.authlog.journal) and `paths` word that reason when the journal or the
    files are not among the sources; `procfs`, when given, is where to look for a syslog daemon while
    files are read (see _check_writer).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        stats: Stats,
        interval_s: float = 0.25,
        *,
        journal_mode: str = "off",
        paths: HostPaths | None = None,
        procfs: Path | None = None,
    ) -> None:
        self.stats = stats
        self._framer = Framer()
        self._files = {s.name for s in sources if isinstance(s, FileTailer)}
        self._journal_mode = journal_mode
        self._paths = paths
        self._procfs = procfs
        self._writer_seen: bool | None = None  # a syslog daemon ran at the last check (None: not checked)
        self._writer_checked = -WRITER_CHECK_S
        self._declared: set[str] = set()
        for source in sources:
            if not _is_optional(source):  # a candidate's series exist once it has been read
                self._declare(source.name)
        self.follower = LogFollower(sources, self._sink, interval_s=interval_s)
        self.follower.poll_once()  # each source's state (missing, open) is known before a scrape asks
        self.follower.start()

    def _declare(self, name: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.stats.source(name)

    def _sink(self, name: str, batch: Batch) -> None:
        if batch and isinstance(batch[0], str):  # a tailer's raw lines (a batch is one source's: one kind)
            # Lines come without their newlines (none holds one): joined back, the chunk takes the fast
            # path (fastscan), which counts exactly as feed_batch(parse_many(lines)) would.
            self.stats.feed_text("\n".join(batch) + "\n", name, self._framer)
        else:  # the journal's records, already framed
            self.stats.feed_batch(cast(list[SyslogRecord], batch), name)

    def collect(self) -> Iterator[Metric]:
        healths = self.follower.source_health()
        up = {name: _is_up(health) for name, health in healths.items()}
        for name, health in healths.items():
            if up[name] or not health.get("optional", False):
                self._declare(name)
            if name in self._declared:
                rotations = int(str(health.get("rotations", 0))) + int(str(health.get("truncations", 0)))
                self.stats.set_rotations(name, rotations)
        if not any(up.values()):
            raise SourceUnavailableError(self._nothing_read(healths), self._families(up))
        if any(up[name] for name in self._files):
            self._check_writer()
        shown = {name: ok for name, ok in up.items() if ok or not _absent_candidate(healths[name])}
        problems = [_reason(name, healths[name]) for name, ok in shown.items() if not ok]
        if problems:
            raise SourceUnavailableError("; ".join(problems), self._families(shown))
        yield from self._families(shown)

    def _families(self, up: Mapping[str, bool]) -> list[Metric]:
        return authlog_families(self.stats.snapshot(), up)

    def _nothing_read(self, healths: Mapping[str, Health]) -> str:
        """Why sshd's lines reach no source: each file's reason, then the journal's. Worded from states,
        not counters, so it stays the same while nothing changes (the scrape logs it once per change)."""
        files = [(name, health) for name, health in healths.items() if name in self._files]
        missing = [name for name, health in files if health.get("missing", False)]
        parts = [_absent(missing)] if missing else []
        parts += [_reason(name, health) for name, health in files if not health.get("missing", False)]
        if not files:
            parts.append(self._unread_candidates())
        journal = [_reason(name, health) for name, health in healths.items() if name not in self._files]
        parts += journal or [self._journal_not_used()]
        return f"no auth log source: {', '.join(parts)} — {REACH_NOTHING}"

    def _unread_candidates(self) -> str:
        """The files part of the reason when only the journal is read (no file existed at start)."""
        if self._paths is None:
            return "no auth log file"
        present = [c for c in AUTH_LOG_CANDIDATES if self._paths.exists(c)]
        absent = [c for c in AUTH_LOG_CANDIDATES if c not in present]
        parts = [_absent(absent)] if absent else []
        parts += [
            f"{c} present but not read (created after start: restart the exporter to read it)"
            for c in present
        ]
        return ", ".join(parts)

    def _journal_not_used(self) -> str:
        if self._journal_mode == "off":
            return "journal off (--collector.authlog.journal=off)"
        return "journal not read (auth log files configured or found at start)"

    def _check_writer(self) -> None:
        """A file is read, but does anything write to it? With no syslog daemon running (Debian 12 without
        rsyslog keeps an old auth.log), sshd's new lines go to the journal only. Logged as a warning once
        per change, not a failure: the writer may run where --path.procfs does not show it (another pid
        namespace, a remote host writing over NFS) or under a name not known here, so its absence from
        /proc is no proof; and a quiet file proves nothing either."""
        now = time.monotonic()
        if self._procfs is None or now - self._writer_checked < WRITER_CHECK_S:
            return
        self._writer_checked = now
        try:
            seen = running(self._procfs, SYSLOG_DAEMONS)
        except OSError:
            return  # no procfs to look in: nothing known
        if seen == self._writer_seen:
            return
        if not seen:
            log.warning(
                "auth log files are read (%s) but no syslog daemon runs (none of %s in %s): sshd's new "
                "lines may not reach them",
                ", ".join(sorted(self._files)),
                ", ".join(sorted(SYSLOG_DAEMONS)),
                self._procfs,
            )
        elif self._writer_seen is False:
            log.info("a syslog daemon runs again: sshd's lines reach the auth log files")
        self._writer_seen = seen

    def close(self) -> None:
        self.follower.stop()


def _is_optional(source: Source) -> bool:
    return isinstance(source, FileTailer) and source.health.optional


def build_sources(paths: HostPaths, options: AuthlogOptions) -> list[Source]:
    """Configured files; or the distributions' candidate files, each optional, followed even while
    absent so one created later is read without a restart; and the journal when asked for, or when no
    candidate existed at start (then the candidates are not followed: a syslog daemon installed later
    would put the journal's lines in them too, and each line would count twice)."""
    state_dir, from_start = options.state_dir, options.from_start
    journal = options.journal
    optional = not options.files and journal != "on"
    if options.files:
        files = configured_log_files(paths, options.files)
    elif journal == "on":
        files = default_log_files(paths)  # as found at start: with the journal read, a later one would double
    else:
        files = candidate_log_files(paths) if journal == "off" or default_log_files(paths) else []
    sources: list[Source] = []
    for local in files:
        name = paths.unroot(local)
        state = state_file_for(state_dir, f"file:{name}") if state_dir else None
        sources.append(
            FileTailer(
                local, from_start=from_start, state_file=state, name=name, paths=paths, optional=optional
            )
        )
    if journal == "on" or (journal == "auto" and not files):
        state = state_file_for(state_dir, "journal") if state_dir else None
        sources.append(journal_reader_for(paths, from_start=from_start, state_file=state, name="journal"))
    return sources


def live_collector(
    paths: HostPaths, options: AuthlogOptions, stats: Stats, interval_s: float = 0.25
) -> LiveAuthlogCollector:
    """The collector as the exporter runs it: build_sources' sources, the reasons worded for `options`."""
    return LiveAuthlogCollector(
        build_sources(paths, options),
        stats,
        interval_s,
        journal_mode=options.journal,
        paths=paths,
        procfs=paths.procfs,
    )


def _factory(context: Context) -> LiveAuthlogCollector:
    options = context.options.authlog
    if options.top_offenders < 0:
        raise ConfigError("collector.authlog.top-offenders: must be 0 or more")
    if options.state_dir is not None and not options.state_dir.is_dir():
        raise ConfigError(f"collector.authlog.state-dir: {options.state_dir} is not a directory")
    return live_collector(context.paths, options, Stats(top_n=options.top_offenders))


register_collector("authlog", _factory, enabled=True, help="sshd events from the auth log or journal")
