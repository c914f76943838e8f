"""The sshd collector: MaxStartups and the rest of sshd's capacity, its config health and live load.

# HELP ssh_access_sshd_startups Unauthenticated connections sshd holds now, summed over listeners.
# TYPE ssh_access_sshd_startups gauge
ssh_access_sshd_startups 4.0
# HELP ssh_access_sshd_maxstartups_start Effective MaxStartups start: random early drop begins here.
# TYPE ssh_access_sshd_maxstartups_start gauge
ssh_access_sshd_maxstartups_start 3.0
# HELP ssh_access_sshd_config_reload_pending 1 when the listener's config files changed after it started.
# TYPE ssh_access_sshd_config_reload_pending gauge
ssh_access_sshd_config_reload_pending{listener="/etc/ssh/sshd_config"} 0.0
# HELP ssh_access_sshd_socket_activated 1 when systemd (pid 1) holds a listening TCP socket on a port ...
# TYPE ssh_access_sshd_socket_activated gauge
ssh_access_sshd_socket_activated 0.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric

from exporter.registry import Context, register_collector
from exporter.sources.sshd.config import EffectiveConfig
from exporter.sources.sshd.processes import STAGES
from exporter.sources.sshd.reader import ListenerState, SshdReader, SshdSnapshot
from exporter.sources.sshd.sockets import CONNECTION_STATES

CONFIG_SOURCES = ("sshd_t", "file")


def _gauge(
    name: str, doc: str, value: float | None = None, labels: list[str] | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"ssh_access_sshd_{name}", doc, value=value, labels=labels)


def config_families(config: EffectiveConfig) -> Iterator[Metric]:
    """The effective settings that decide who gets a connection slot."""
    yield _gauge(
        "maxstartups_start",
        "Effective MaxStartups start: random early drop begins here.",
        config.max_startups.start,
    )
    yield _gauge(
        "maxstartups_rate",
        "Effective MaxStartups rate: drop probability at start, as a ratio.",
        config.max_startups.rate,
    )
    yield _gauge(
        "maxstartups_full",
        "Effective MaxStartups full: every new connection is dropped here.",
        config.max_startups.full,
    )
    per_source = config.per_source_max_startups
    yield _gauge(
        "persource_maxstartups",
        "Effective PerSourceMaxStartups (+Inf when none).",
        math.inf if per_source is None else per_source,
    )
    netblock = _gauge(
        "persource_netblock_prefix_length",
        "Effective PerSourceNetBlockSize prefix length.",
        labels=["family"],
    )
    netblock.add_metric(["ipv4"], config.per_source_netblock_v4)
    netblock.add_metric(["ipv6"], config.per_source_netblock_v6)
    yield netblock
    yield _gauge(
        "login_grace_time_seconds", "Effective LoginGraceTime (0: no limit).", config.login_grace_time
    )
    yield _gauge("max_auth_tries", "Effective MaxAuthTries.", config.max_auth_tries)
    yield _gauge(
        "persource_penalties_enabled",
        "1 when PerSourcePenalties is on (OpenSSH 9.8+).",
        1.0 if config.per_source_penalties else 0.0,
    )


def _listener_labels(states: tuple[ListenerState, ...]) -> list[str]:
    """The listener label: its config path; when several listeners share one, `PATH #2`, `PATH #3` in
    the order they started (not their pids: a label value per restart would grow without bound)."""
    labels = [s.listener.config for s in states]
    for config in set(labels):
        sharing = sorted(
            (s.listener.create_time, i) for i, s in enumerate(states) if s.listener.config == config
        )
        for ordinal, (_, index) in enumerate(sharing[1:], start=2):
            labels[index] = f"{config} #{ordinal}"
    return labels


def listener_families(states: tuple[ListenerState, ...]) -> Iterator[Metric]:
    """Per-instance load and health; the contract's `startups` is also summed over listeners."""
    labels = _listener_labels(states)
    yield _gauge("listeners", "sshd listener processes running (0: sshd is not running).", len(states))
    yield _gauge(
        "startups",
        "Unauthenticated connections sshd holds now, summed over listeners.",
        sum(s.listener.startups for s in states),
    )
    per_listener = {
        "startups": _gauge(
            "listener_startups", "Unauthenticated connections this listener holds.", labels=["listener"]
        ),
        "from_title": _gauge(
            "listener_startups_from_title",
            "1 when the count is the listener's own (title, OpenSSH 8.2+); "
            "0 when counted from its pre-auth children.",
            labels=["listener"],
        ),
        "start": _gauge(
            "listener_maxstartups_start",
            "MaxStartups start the running listener reports.",
            labels=["listener"],
        ),
        "full": _gauge(
            "listener_maxstartups_full", "MaxStartups full the running listener reports.", labels=["listener"]
        ),
        "started": _gauge(
            "listener_start_time_seconds", "When the listener last started or reloaded.", labels=["listener"]
        ),
        "pending": _gauge(
            "config_reload_pending",
            "1 when the listener's config files changed after it started (reload needed).",
            labels=["listener"],
        ),
    }
    stages = _gauge(
        "unauthenticated_connections",
        "Connections the listener holds that are not authenticated yet, by stage.",
        labels=["listener", "stage"],
    )
    sessions = _gauge(
        "sessions", "Authenticated connections (past authentication) of the listener.", labels=["listener"]
    )
    tcp = _gauge(
        "tcp_connections",
        "TCP connections on the listener's ports, by state (its own network namespace).",
        labels=["listener", "state"],
    )
    for label, state in zip(labels, states, strict=True):
        listener = state.listener
        per_listener["startups"].add_metric([label], listener.startups)
        per_listener["from_title"].add_metric([label], 1.0 if listener.title else 0.0)
        if listener.title:
            per_listener["start"].add_metric([label], listener.title.start)
            per_listener["full"].add_metric([label], listener.title.full)
        per_listener["started"].add_metric([label], state.started)
        if state.reload_pending is not None:
            per_listener["pending"].add_metric([label], 1.0 if state.reload_pending else 0.0)
        for stage in STAGES:
            stages.add_metric([label, stage], listener.stages.get(stage, 0))
        sessions.add_metric([label], listener.sessions)
        for tcp_state in CONNECTION_STATES:
            tcp.add_metric([label, tcp_state], state.tcp_states.get(tcp_state, 0))
    yield from per_listener.values()
    yield stages
    yield sessions
    yield tcp


def snapshot_families(snapshot: SshdSnapshot) -> Iterator[Metric]:
    if snapshot.version:
        yield InfoMetricFamily(
            "ssh_access_sshd_version",
            "Version of the sshd binary.",
            value={"version": snapshot.version.version, "release": snapshot.version.release},
        )
    config = snapshot.config
    source = _gauge(
        "config_source",
        "Where the effective config came from: sshd -T, or the file parser.",
        labels=["source"],
    )
    for name in CONFIG_SOURCES:
        used = config.effective is not None and config.effective.source == name
        source.add_metric([name], 1.0 if used else 0.0)
    yield source
    if config.valid is not None:
        yield _gauge(
            "config_valid",
            "1 when `sshd -t` accepts the config, 0 when it reports an error.",
            1.0 if config.valid else 0.0,
        )
    yield _gauge(
        "config_parse_errors",
        "Problems the config file parser met (lines sshd refuses, unreadable Includes).",
        len(config.parse_errors),
    )
    yield _gauge(
        "config_errors",
        "Lines of the config files sshd would refuse to start on (unknown keyword, missing or bad value), "
        "as the file parser reads them; 0 when `sshd -t` accepts the config.",
        len(config.refusals),
    )
    if config.effective:
        yield from config_families(config.effective)
    yield from listener_families(snapshot.listeners)
    yield _gauge(
        "socket_activated",
        "1 when systemd (pid 1) holds a listening TCP socket on a port of sshd's config (a socket unit "
        "such as ssh.socket): sshd starts on the first connection, no listener process is no outage.",
        1.0 if snapshot.socket_activated else 0.0,
    )


class SshdCollector:
    """Renders one SshdReader snapshot per scrape (the reader is the context's: it closes it)."""

    def __init__(self, reader: SshdReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_families(self.reader.read())


def _factory(context: Context) -> SshdCollector:
    return SshdCollector(context.sshd())


register_collector("sshd", _factory, enabled=True, help="sshd capacity, config and load")
