"""The fail2ban collector: who is banned per jail, fail2ban's health, and whether it guards sshd.

# HELP ssh_access_ban_source_up 1 when the ban tool was reached, 0 when installed but unreachable.
# TYPE ssh_access_ban_source_up gauge
ssh_access_ban_source_up{source="fail2ban"} 1.0
# HELP ssh_access_banned_addresses Addresses the tool bans now, per jail, set or scenario.
# TYPE ssh_access_banned_addresses gauge
ssh_access_banned_addresses{jail="sshd",source="fail2ban"} 3.0
# HELP ssh_access_fail2ban_jail_guards_sshd 1 when the jail's filter or journal match selects sshd.
# TYPE ssh_access_fail2ban_jail_guards_sshd gauge
ssh_access_fail2ban_jail_guards_sshd{jail="sshd"} 1.0

fail2ban down is a report, not a failure: `ban_source_up 0` with the scrape and collector_success 1
(the BanSourceDown alert keys on it), its reason logged and kept in the BanCollector's `state`. Nothing is
emitted on hosts without fail2ban (no socket, database, /etc/fail2ban or fail2ban-server under rootfs):
it is absent, said once at info, so hosts that never had it do not alert.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from exporter.collectors.families.bans import BanCollector, banned_addresses, source_up
from exporter.registry import Context, register_collector
from exporter.sources.fail2ban.reader import Fail2banReader, Fail2banSnapshot, Jail

log = logging.getLogger(__name__)
SOURCE = "fail2ban"
DATA_SOURCES = ("socket", "database")


def _bool(value: bool) -> float:
    return 1.0 if value else 0.0


def _per_jail(name: str, doc: str, jails: tuple[Jail, ...], attribute: str) -> GaugeMetricFamily | None:
    """A per-jail gauge of one Jail attribute, leaving out jails where the source cannot tell."""
    family = GaugeMetricFamily(f"ssh_access_fail2ban_{name}", doc, labels=["jail"])
    for jail in jails:
        value = getattr(jail, attribute)
        if value is not None:
            family.add_metric([jail.name], float(value))
    return family if family.samples else None


def _per_jail_counter(name: str, doc: str, jails: tuple[Jail, ...], attribute: str) -> CounterMetricFamily:
    family = CounterMetricFamily(f"ssh_access_fail2ban_{name}", doc, labels=["jail"])
    for jail in jails:
        value = getattr(jail, attribute)
        if value is not None:
            family.add_metric([jail.name], float(value))
    return family


def jail_families(jails: tuple[Jail, ...]) -> Iterator[Metric]:
    gauges = (
        ("permanent_bans", "Permanent bans per jail (database only).", "permanent_bans"),
        ("jail_failing_addresses", "Addresses with failures within findtime, not yet banned.", "failing"),
        ("jail_bantime_seconds", "How long a ban lasts (+Inf: permanent).", "bantime"),
        ("jail_findtime_seconds", "The window in which maxretry failures ban an address.", "findtime"),
        ("jail_maxretry", "Failures within findtime that ban an address.", "maxretry"),
        ("jail_guards_sshd", "1 when the jail's filter or journal match selects sshd.", "guards_sshd"),
        (
            "jail_covers_sshd_port",
            "1 when the jail's ban actions block every port sshd listens on (jails guarding sshd).",
            "covers_sshd_port",
        ),
    )
    for name, doc, attribute in gauges:
        family = _per_jail(name, doc, jails, attribute)
        if family is not None:
            yield family
    socket_jails = tuple(jail for jail in jails if jail.bans_total is not None)
    if socket_jails:
        yield _per_jail_counter(
            "jail_bans",
            "Bans since fail2ban-server started (resets when it restarts).",
            socket_jails,
            "bans_total",
        )
        yield _per_jail_counter(
            "jail_failures",
            "Failures the filter matched since fail2ban-server started (resets when it restarts).",
            socket_jails,
            "failures_total",
        )
    missing = GaugeMetricFamily(
        "ssh_access_fail2ban_jail_log_files_missing",
        "Log files the jail is told to read that do not exist (it sees nothing from them).",
        labels=["jail"],
    )
    info = InfoMetricFamily(
        "ssh_access_fail2ban_jail",
        "What the jail reads: backend, log files, journal matches.",
        labels=["jail", "backend", "logpath", "journalmatch"],
    )
    for jail in jails:
        if jail.backend is None:
            continue
        missing.add_metric([jail.name], len(jail.missing_log_paths))
        info.add_metric(
            [jail.name, jail.backend, ",".join(jail.log_paths), " ".join(jail.journal_matches)], {}
        )
    if info.samples:
        yield missing
        yield info


def snapshot_families(snapshot: Fail2banSnapshot) -> Iterator[Metric]:
    yield source_up(SOURCE, snapshot.up)
    data_source = GaugeMetricFamily(
        "ssh_access_fail2ban_data_source",
        "Where the jails came from: the server's socket, or its database when the socket is unreachable.",
        labels=["source"],
    )
    for name in DATA_SOURCES:
        data_source.add_metric([name], _bool(snapshot.source == name))
    yield data_source
    if snapshot.version:
        yield InfoMetricFamily(
            "ssh_access_fail2ban_version", "Version of fail2ban-server.", value={"version": snapshot.version}
        )
    if snapshot.server_started is not None:
        yield GaugeMetricFamily(
            "ssh_access_fail2ban_server_start_time_seconds",
            "When fail2ban-server started: its per-jail totals count from here.",
            value=snapshot.server_started,
        )
    guarded = snapshot.sshd_guarded
    if guarded is not None:
        yield GaugeMetricFamily(
            "ssh_access_fail2ban_sshd_guarded",
            "1 when at least one enabled jail guards sshd.",
            value=_bool(guarded),
        )
    if snapshot.source is not None:
        yield banned_addresses(SOURCE, {jail.name: jail.banned for jail in snapshot.jails})
        yield from jail_families(snapshot.jails)
    config = snapshot.config
    if config is not None:
        yield GaugeMetricFamily(
            "ssh_access_fail2ban_config_valid",
            "While the server is unreachable: 1 when fail2ban-client -d parses its config.",
            value=_bool(not config.error),
        )
        without_logs = GaugeMetricFamily(
            "ssh_access_fail2ban_config_jail_log_missing",
            "While the server is unreachable: 1 for an enabled jail that finds no log file "
            "(fail2ban-server refuses to start then).",
            labels=["jail"],
        )
        for jail in config.jails:
            without_logs.add_metric([jail], _bool(jail in config.without_logs))
        yield without_logs


def make_collector(reader: Fail2banReader) -> BanCollector[Fail2banSnapshot]:
    """Renders one Fail2banReader snapshot per scrape."""
    return BanCollector(SOURCE, reader, snapshot_families)


def _factory(context: Context) -> BanCollector[Fail2banSnapshot]:
    options = context.options.fail2ban
    reader = Fail2banReader(
        context.paths,
        options.socket,
        options.db,
        owner_uid=options.socket_owner,
        timeout=options.timeout,
        sshd_ports=context.sshd_ports,
        sshd_ports_ttl=0.0,  # the context's ports are cached already (SSHD_PORTS_TTL)
        config_dir=options.config_dir,
    )
    return make_collector(reader)


register_collector("fail2ban", _factory, enabled=True, help="fail2ban jails, bans and sshd coverage")
