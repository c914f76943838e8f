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
    # HELP ssh_access_authlog_source_up 1 when the log source is read now; 0 when it cannot be ...
    # TYPE ssh_access_authlog_source_up gauge
    ssh_access_authlog_source_up{source="/var/log/auth.log"} 1.0
    ssh_access_authlog_source_up{source="journal"} 0.0

They live apart from the registered collector (authlog.py) so that `replay` renders them without
importing the tailers, the journal reader and the collector registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources.authlog.stats import StatsSnapshot


def _labelled_counter(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], float(value))
    return family


def source_up_family(up: Mapping[str, bool]) -> GaugeMetricFamily:
    """`ssh_access_authlog_source_up{source}`: which sources are read now (a file's host path, or
    `journal`)."""
    family = GaugeMetricFamily(
        "ssh_access_authlog_source_up",
        "1 when the log source is read now; 0 when it cannot be (missing, permission denied, not a "
        "regular file, no journal): sshd's lines written there are not counted.",
        labels=["source"],
    )
    for name, readable in sorted(up.items()):
        family.add_metric([name], 1.0 if readable else 0.0)
    return family


def authlog_families(snapshot: StatsSnapshot, up: Mapping[str, bool] | None = None) -> list[Metric]:
    """The contract families (ssh_access_sshd_*) and the pipeline-health ones (ssh_access_authlog_*).
    `up`: whether each source is read now (None: every source of the snapshot was, as in a replay)."""
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
    families.append(source_up_family(dict.fromkeys(snapshot.sources, True) if up is None else up))
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
