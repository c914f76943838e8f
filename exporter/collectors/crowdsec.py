"""The crowdsec collector: CrowdSec's active decisions, banned addresses per scenario, SSH decisions.

# HELP ssh_access_banned_addresses Addresses the tool bans now, per jail, set or scenario.
# TYPE ssh_access_banned_addresses gauge
ssh_access_banned_addresses{jail="crowdsecurity/ssh-bf",source="crowdsec"} 2.0
# HELP ssh_access_crowdsec_ssh_decisions Active decisions of SSH-related scenarios.
# TYPE ssh_access_crowdsec_ssh_decisions gauge
ssh_access_crowdsec_ssh_decisions{action="ban",origin="crowdsec",scenario="crowdsecurity/ssh-bf"} 2.0

`jail` is the scenario (every ban decision; community blocklists block sshd too); the decisions family
keeps to scenarios whose name mentions ssh. Nothing is emitted on hosts without CrowdSec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.collectors.families.bans import BanCollector, ban_source
from exporter.registry import Context, register_collector
from exporter.sources.crowdsec import CrowdsecReader, CrowdsecSnapshot

SOURCE = "crowdsec"


def snapshot_families(snapshot: CrowdsecSnapshot) -> Iterator[Metric]:
    yield from ban_source(SOURCE, snapshot.up, snapshot.banned)
    if not snapshot.up:
        return
    counts = Counter((d.scenario, d.origin, d.action) for d in snapshot.decisions if d.ssh_related)
    family = GaugeMetricFamily(
        "ssh_access_crowdsec_ssh_decisions",
        "Active decisions of SSH-related scenarios, by scenario, origin and action.",
        labels=["scenario", "origin", "action"],
    )
    for labels, count in sorted(counts.items()):
        family.add_metric(list(labels), count)
    yield family


def make_collector(reader: CrowdsecReader) -> BanCollector[CrowdsecSnapshot]:
    """Renders one CrowdsecReader snapshot per scrape."""
    return BanCollector(SOURCE, reader, snapshot_families)


def _factory(context: Context) -> BanCollector[CrowdsecSnapshot]:
    options = context.options.crowdsec
    return make_collector(CrowdsecReader(context.paths, options.bouncer_config, options.cscli))


register_collector("crowdsec", _factory, enabled=True, help="CrowdSec decisions (local API or cscli)")
