"""The auth-log families, built from a Stats snapshot (exporter.sources.authlog.stats).

Every closed-set series is exported from 0. Sample exposition:

    # HELP ssh_access_sshd_events_total sshd log events by kind.
    # TYPE ssh_access_sshd_events_total counter
    ssh_access_sshd_events_total{event="auth_failed"} 42.0
    # HELP ssh_access_sshd_auth_failures_total Failed authentications (auth_failed events) by method.
    # TYPE ssh_access_sshd_auth_failures_total counter
    ssh_access_sshd_auth_failures_total{method="password"} 40.0
    # HELP ssh_access_sshd_maxstartups_dropped_connections_total Connections sshd refused for ...
    # TYPE ssh_access_sshd_maxstartups_dropped_connections_total counter
    ssh_access_sshd_maxstartups_dropped_connections_total 80.0
    # HELP ssh_access_sshd_maxstartups_throttling 1 while a MaxStartups throttling episode is open.
    # TYPE ssh_access_sshd_maxstartups_throttling gauge
    ssh_access_sshd_maxstartups_throttling 0.0
    # HELP ssh_access_sshd_penalties_total PerSourcePenalties put in force, by reason.
    # TYPE ssh_access_sshd_penalties_total counter
    ssh_access_sshd_penalties_total{reason="authfail"} 3.0
    # HELP ssh_access_sshd_penalty_dropped_connections_total Connections sshd refused under a ...
    # TYPE ssh_access_sshd_penalty_dropped_connections_total counter
    ssh_access_sshd_penalty_dropped_connections_total 7.0
    # HELP ssh_access_sshd_top_offender_failures Failure events in the last hour of the top-N addresses.
    # TYPE ssh_access_sshd_top_offender_failures gauge
    ssh_access_sshd_top_offender_failures{address="192.0.2.7"} 12.0
    # HELP ssh_access_authlog_lines_read_total Lines read from the source.
    # TYPE ssh_access_authlog_lines_read_total counter
    ssh_access_authlog_lines_read_total{source="/var/log/auth.log"} 1234.0
    # HELP ssh_access_authlog_lines_unmatched_total sshd lines that matched no known wording.
    # TYPE ssh_access_authlog_lines_unmatched_total counter
    ssh_access_authlog_lines_unmatched_total{source="/var/log/auth.log"} 0.0
    # HELP ssh_access_authlog_rotations_total Rotations of the source seen by the tailer.
    # TYPE ssh_access_authlog_rotations_total counter
    ssh_access_authlog_rotations_total{source="/var/log/auth.log"} 1.0
    # HELP ssh_access_authlog_last_event_timestamp_seconds Log time of the source's last sshd event.
    # TYPE ssh_access_authlog_last_event_timestamp_seconds gauge
    ssh_access_authlog_last_event_timestamp_seconds{source="/var/log/auth.log"} 1.7954e+09

`LiveAuthlogCollector` is the registered collector: it follows the host's files or journal.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.collectors.registry import Context, register_collector
from exporter.config import ConfigError
from exporter.paths import HostPaths
from exporter.sources.authlog.follow import Batch, LogFollower, Source, state_file_for
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.journal import journal_reader_for
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats, StatsSnapshot
from exporter.sources.authlog.tail import FileTailer, default_log_files


def _labelled_counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], float(value))
    return family


def authlog_families(snapshot: StatsSnapshot) -> list[Metric]:
    """The contract families (ssh_access_sshd_*) and the pipeline-health ones (ssh_access_authlog_*)."""
    families: list[Metric] = [
        _labelled_counter(
            "ssh_access_sshd_events", "sshd log events by kind.", "event", dict(snapshot.events)
        ),
        _labelled_counter(
            "ssh_access_sshd_auth_failures",
            "Failed authentications (auth_failed events) by method.",
            "method",
            dict(snapshot.auth_failures),
        ),
        CounterMetricFamily(
            "ssh_access_sshd_maxstartups_dropped_connections",
            "Connections sshd refused for MaxStartups or PerSourceMaxStartups, including drops logged "
            "only in episode and rate-limit summaries.",
            value=float(snapshot.maxstartups_dropped),
        ),
        GaugeMetricFamily(
            "ssh_access_sshd_maxstartups_throttling",
            "1 while a MaxStartups throttling episode is open (10.0+: a drop in the last minute).",
            value=1.0 if snapshot.maxstartups_throttling else 0.0,
        ),
        _labelled_counter(
            "ssh_access_sshd_penalties",
            "PerSourcePenalties put in force, by reason.",
            "reason",
            dict(snapshot.penalties),
        ),
        CounterMetricFamily(
            "ssh_access_sshd_penalty_dropped_connections",
            "Connections sshd refused under a PerSourcePenalties penalty, including rate-limited ones.",
            value=float(snapshot.penalty_dropped),
        ),
    ]
    top = GaugeMetricFamily(
        "ssh_access_sshd_top_offender_failures",
        "Failure events in the last hour of the top-N failing addresses (streaming estimate).",
        labels=["address"],
    )
    for addr, count in snapshot.top_offenders:
        top.add_metric([addr], float(count))
    families.append(top)
    families.extend(_health_families(snapshot))
    return families


def _health_families(snapshot: StatsSnapshot) -> list[Metric]:
    sources = sorted(snapshot.sources.items())
    read = CounterMetricFamily(
        "ssh_access_authlog_lines_read", "Lines read from the source.", labels=["source"]
    )
    unmatched = CounterMetricFamily(
        "ssh_access_authlog_lines_unmatched",
        "sshd lines that matched no known wording (a new OpenSSH wording, or not sshd's).",
        labels=["source"],
    )
    rotations = CounterMetricFamily(
        "ssh_access_authlog_rotations", "Rotations of the source seen by the tailer.", labels=["source"]
    )
    last = GaugeMetricFamily(
        "ssh_access_authlog_last_event_timestamp_seconds",
        "Log time of the source's last sshd event.",
        labels=["source"],
    )
    for name, health in sources:
        read.add_metric([name], float(health.lines_read))
        unmatched.add_metric([name], float(health.lines_unmatched))
        rotations.add_metric([name], float(health.rotations))
        if health.last_event_time is not None:
            last.add_metric([name], health.last_event_time)
    return [read, unmatched, rotations, last]


class AuthlogCollector:
    """Yields the families of whatever snapshot source it is given (live Stats, or a replay's end)."""

    def __init__(self, snapshot: Callable[[], StatsSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # nothing runs at registration

    def collect(self) -> Iterator[Metric]:
        yield from authlog_families(self._snapshot())


class SourceUnavailableError(RuntimeError):
    """A configured log source cannot be read now (missing, vanished, permission denied)."""


class LiveAuthlogCollector:
    """Follows the host's auth log (files, or the journal) in a thread; a scrape renders the counters.

    Counters come from the follower, never from the scrape, so no line is lost or counted twice
    between scrapes. A source that cannot be read now fails the scrape of this collector
    (`ssh_access_collector_success{collector="authlog"} 0`, with the reason logged) while the follower
    keeps trying, so the counters carry on when the file comes back.
    """

    def __init__(self, sources: Sequence[Source], stats: Stats, interval_s: float = 0.25) -> None:
        self.stats = stats
        self._framer = Framer()
        for source in sources:
            stats.source(source.name)
        self.follower = LogFollower(sources, self._sink, interval_s=interval_s)
        self.follower.start()

    def _sink(self, name: str, batch: Batch) -> None:
        if batch and isinstance(batch[0], str):  # a tailer's raw lines (a batch is one source's: one kind)
            self.stats.feed_batch(self._framer.parse_many(batch), name)
        else:  # the journal's records, already framed
            self.stats.feed_batch(cast(list[SyslogRecord], batch), name)

    def collect(self) -> Iterator[Metric]:
        problems = []
        for name, health in self.follower.source_health().items():
            rotations = int(str(health.get("rotations", 0))) + int(str(health.get("truncations", 0)))
            self.stats.set_rotations(name, rotations)
            if not health.get("open", False):
                problems.append(str(health.get("last_error") or f"{name}: not open"))
        if problems:
            raise SourceUnavailableError("; ".join(problems))
        yield from authlog_families(self.stats.snapshot())

    def close(self) -> None:
        self.follower.stop()


def _add_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--collector.authlog.files",
        default="",
        help="comma-separated auth log files (default: /var/log/auth.log and /var/log/secure if present)",
    )
    group.add_argument(
        "--collector.authlog.journal",
        choices=("auto", "on", "off"),
        default="auto",
        help="read sshd from the systemd journal: auto = when no auth log file exists (default auto)",
    )
    group.add_argument(
        "--collector.authlog.from-start",
        action="store_true",
        help="read existing files from their start instead of their end (default: the end, like tail -F)",
    )
    group.add_argument(
        "--collector.authlog.state-dir",
        default="",
        help="directory for read positions, so a restart resumes where it stopped (default: none)",
    )
    group.add_argument(
        "--collector.authlog.top-offenders",
        type=int,
        default=10,
        help="how many top failing addresses to export (0 disables; default 10)",
    )


def build_sources(paths: HostPaths, args: dict[str, Any]) -> list[Source]:
    """Files as configured or found, and the journal when asked for or when there is no file."""
    state_dir = Path(args["collector.authlog.state_dir"]) if args["collector.authlog.state_dir"] else None
    from_start = bool(args["collector.authlog.from_start"])
    configured = [f.strip() for f in str(args["collector.authlog.files"]).split(",") if f.strip()]
    files = [paths.root(f) for f in configured] if configured else default_log_files(paths)
    sources: list[Source] = []
    for local in files:
        name = paths.unroot(local)
        state = state_file_for(state_dir, f"file:{name}") if state_dir else None
        sources.append(FileTailer(local, from_start=from_start, state_file=state, name=name))
    journal = args["collector.authlog.journal"]
    if journal == "on" or (journal == "auto" and not files):
        state = state_file_for(state_dir, "journal") if state_dir else None
        sources.append(journal_reader_for(paths, from_start=from_start, state_file=state, name="journal"))
    return sources


def _factory(context: Context) -> LiveAuthlogCollector:
    args = vars(context.args)
    top = int(args["collector.authlog.top_offenders"])
    if top < 0:
        raise ConfigError("collector.authlog.top-offenders: must be 0 or more")
    state_dir = args["collector.authlog.state_dir"]
    if state_dir and not Path(state_dir).is_dir():
        raise ConfigError(f"collector.authlog.state-dir: {state_dir} is not a directory")
    sources = build_sources(context.paths, args)
    if not sources:
        raise ConfigError("collector.authlog: no auth log file found and --collector.authlog.journal=off")
    return LiveAuthlogCollector(sources, Stats(top_n=top))


register_collector(
    "authlog", _factory, enabled=True, add_flags=_add_flags, help="sshd events from the auth log or journal"
)
