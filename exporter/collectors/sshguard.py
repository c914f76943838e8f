"""The sshguard collector: addresses in sshguard's nft sets, ipsets and hosts.allow block.

# HELP ssh_access_ban_source_up 1 when the ban tool was reached, 0 when installed but unreachable.
# TYPE ssh_access_ban_source_up gauge
ssh_access_ban_source_up{source="sshguard"} 1.0
# HELP ssh_access_banned_addresses Addresses the tool bans now, per jail, set or scenario.
# TYPE ssh_access_banned_addresses gauge
ssh_access_banned_addresses{jail="ip sshguard attackers",source="sshguard"} 2.0

`jail` is where the bans live: `ip sshguard attackers` / `ip6 sshguard attackers` (nft), `sshguard4` /
`sshguard6` (ipset) or `hosts.allow`; a set that does not exist has no series. `up` is 1 when sshguard's
blocker runs and every backend present could be read. Nothing is emitted on hosts without sshguard.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from exporter.collectors.families.bans import BanCollector, ban_source
from exporter.registry import Context, register_collector
from exporter.sources.sshguard import SshguardReader, SshguardSnapshot

SOURCE = "sshguard"


def snapshot_families(snapshot: SshguardSnapshot) -> Iterator[Metric]:
    yield from ban_source(SOURCE, snapshot.up, snapshot.sets)


def make_collector(reader: SshguardReader) -> BanCollector[SshguardSnapshot]:
    """Renders one SshguardReader snapshot per scrape."""
    return BanCollector(SOURCE, reader, snapshot_families)


def _factory(context: Context) -> BanCollector[SshguardSnapshot]:
    return make_collector(SshguardReader(context.paths))


register_collector(
    "sshguard", _factory, enabled=True, help="sshguard's nft sets, ipsets and hosts.allow block"
)
