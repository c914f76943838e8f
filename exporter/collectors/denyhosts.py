"""The denyhosts collector: DenyHosts' marked entries in hosts.deny and its work directory.

# HELP ssh_access_banned_addresses Addresses the tool bans now, per jail, set or scenario.
# TYPE ssh_access_banned_addresses gauge
ssh_access_banned_addresses{jail="sshd",source="denyhosts"} 2.0
# HELP ssh_access_denyhosts_tracked_addresses Addresses DenyHosts has recorded failures for, by kind.
# TYPE ssh_access_denyhosts_tracked_addresses gauge
ssh_access_denyhosts_tracked_addresses{kind="invalid"} 5.0

`jail` is the entry's daemon list (`sshd`, `ALL`). Nothing is emitted on hosts without DenyHosts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.collectors.families.bans import BanCollector, ban_source
from exporter.registry import Context, register_collector
from exporter.sources.denyhosts import TRACKED, DenyhostsReader, DenyhostsSnapshot

SOURCE = "denyhosts"


def snapshot_families(snapshot: DenyhostsSnapshot) -> Iterator[Metric]:
    yield from ban_source(SOURCE, snapshot.up, snapshot.banned)
    yield GaugeMetricFamily(
        "ssh_access_denyhosts_daemon_running",
        "1 when the DenyHosts daemon runs (0 is normal when it runs from cron).",
        value=1.0 if snapshot.running else 0.0,
    )
    if snapshot.newest is not None:
        yield GaugeMetricFamily(
            "ssh_access_denyhosts_last_ban_timestamp_seconds",
            "When DenyHosts wrote its newest hosts.deny entry (read as host local time).",
            value=snapshot.newest,
        )
    if snapshot.tracked:
        tracked = GaugeMetricFamily(
            "ssh_access_denyhosts_tracked_addresses",
            "Addresses DenyHosts has recorded failures for, by kind (its work directory).",
            labels=["kind"],
        )
        for kind in TRACKED.values():
            if kind in snapshot.tracked:
                tracked.add_metric([kind], snapshot.tracked[kind])
        yield tracked


def make_collector(reader: DenyhostsReader) -> BanCollector[DenyhostsSnapshot]:
    """Renders one DenyhostsReader snapshot per scrape."""
    return BanCollector(SOURCE, reader, snapshot_families)


def _factory(context: Context) -> BanCollector[DenyhostsSnapshot]:
    return make_collector(context.denyhosts())


register_collector("denyhosts", _factory, enabled=True, help="DenyHosts' hosts.deny entries")
