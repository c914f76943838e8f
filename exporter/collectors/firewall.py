"""The firewall collector: what the packet filter does to sshd's traffic, and whether bans are enforced.

# HELP ssh_access_firewall_set_entries Entries (addresses, prefixes, ranges) in an address set.
# TYPE ssh_access_firewall_set_entries gauge
ssh_access_firewall_set_entries{backend="nft",family="ipv4",owner="fail2ban",set="addr-set-sshd",\
table="inet f2b-table"} 3.0
# HELP ssh_access_unenforced_bans Addresses a ban tool bans now that no firewall rule or set entry blocks.
# TYPE ssh_access_unenforced_bans gauge
ssh_access_unenforced_bans{jail="sshd",source="fail2ban"} 0.0

Labels are chain, set and table names, never addresses or rule text. Reads only the network namespace
the exporter runs in; a backend that cannot be read fails the collector (collector_success 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.registry import Context, register_collector
from exporter.sources.crowdsec import CrowdsecReader
from exporter.sources.fail2ban.reader import DEFAULT_DB
from exporter.sources.firewall.addresses import SetIndexes
from exporter.sources.firewall.bans import (
    Bans,
    UnenforcedCounts,
    crowdsec_bans,
    fail2ban_bans,
    sshguard_bans,
)
from exporter.sources.firewall.enforcement import INPUT_HOOKS, Blocker, Enforcement, blockers
from exporter.sources.firewall.model import Chain, Ruleset
from exporter.sources.firewall.reader import FirewallReader

CHAIN_LABELS = ["backend", "family", "table", "chain"]
POLICIES = ("accept", "drop")
OWNERS = (("f2b-", "fail2ban"), ("addr-set-", "fail2ban"), ("addr6-set-", "fail2ban"),
          ("sshguard", "sshguard"), ("crowdsec", "crowdsec"))  # fmt: skip


def owner(table: str, name: str) -> str:
    """The tool that made a chain or set, by the names they use; "" for anything else."""
    for text in (name, table.rpartition(" ")[2]):
        for prefix, tool in OWNERS:
            if text.startswith(prefix):
                return tool
    return ""


def _chain_labels(chain: Chain) -> list[str]:
    return [chain.backend, chain.family, chain.table, chain.name]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"ssh_access_firewall_{name}", doc, labels=labels)


def set_families(ruleset: Ruleset, referenced: set[str]) -> Iterator[Metric]:
    labels = ["backend", "family", "table", "set", "owner"]
    entries = _gauge("set_entries", "Entries (addresses, prefixes, ranges) in an address set.", labels)
    blocking = _gauge(
        "set_blocking",
        "1 when a drop/reject rule on sshd's input path matches sources against the set.",
        labels[:4],
    )
    for found in ruleset.sets:
        base = [found.backend, found.family, found.table, found.name]
        entries.add_metric([*base, owner(found.table, found.name)], len(found.elements))
        blocking.add_metric(base, 1.0 if found.key in referenced else 0.0)
    yield entries
    yield blocking


def chain_families(chains: Iterable[Chain]) -> Iterator[Metric]:
    rules = _gauge("chain_rules", "Rules in a chain.", [*CHAIN_LABELS, "owner"])
    addresses = _gauge(
        "chain_blocked_addresses",
        "Source addresses and prefixes that the chain's drop/reject rules name one by one.",
        CHAIN_LABELS,
    )
    policy = _gauge(
        "input_policy",
        "1 for the policy of a base chain on the input path (input, prerouting, ingress hooks).",
        [*CHAIN_LABELS, "policy"],
    )
    for chain in chains:
        labels = _chain_labels(chain)
        rules.add_metric([*labels, owner(chain.table, chain.name)], len(chain.rules))
        named = sum(len(r.sources or ()) for r in chain.rules if r.blocking and not r.negated)
        addresses.add_metric(labels, named)
        if chain.hook in INPUT_HOOKS and chain.policy in POLICIES:
            for name in POLICIES:
                policy.add_metric([*labels, name], 1.0 if chain.policy == name else 0.0)
    yield rules
    yield addresses
    yield policy


def sshd_rule_families(found: Iterable[Blocker]) -> Iterator[Metric]:
    """Drop/reject rules traffic to sshd's ports can reach, per chain, with their counters summed."""
    per_chain: dict[tuple[str, ...], list[int]] = {}
    for blocker in found:
        totals = per_chain.setdefault(tuple(_chain_labels(blocker.chain)), [0, 0, 0])
        totals[0] += 1
        totals[1] += blocker.rule.packets
        totals[2] += blocker.rule.bytes
    count = _gauge(
        "sshd_blocking_rules", "Drop/reject rules that traffic to sshd's ports can reach.", CHAIN_LABELS
    )
    packets = CounterMetricFamily(
        "ssh_access_firewall_sshd_blocked_packets",
        "Packets those rules dropped or rejected (their counters, summed per chain).",
        labels=CHAIN_LABELS,
    )
    octets = CounterMetricFamily(
        "ssh_access_firewall_sshd_blocked_bytes",
        "Bytes those rules dropped or rejected (their counters, summed per chain).",
        labels=CHAIN_LABELS,
    )
    for labels, (rules, packet_count, byte_count) in sorted(per_chain.items()):
        count.add_metric(list(labels), rules)
        packets.add_metric(list(labels), packet_count)
        octets.add_metric(list(labels), byte_count)
    yield count
    yield packets
    yield octets


def unenforced_family(counts: dict[tuple[str, str], int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "ssh_access_unenforced_bans",
        "Addresses a ban tool bans now that no firewall rule or set entry blocks.",
        labels=["source", "jail"],
    )
    for (source, jail), count in sorted(counts.items()):
        family.add_metric([source, jail], count)
    return family


def families(
    ruleset: Ruleset,
    ports: frozenset[int],
    bans: Iterable[Bans],
    indexes: SetIndexes | None = None,
    counts: UnenforcedCounts | None = None,
) -> Iterator[Metric]:
    """Every family of one read: the ruleset, sshd's ports, and what the ban tools ban (`indexes` and
    `counts`: the reader's set indexes and the collector's last counts, kept between scrapes)."""
    found = blockers(ruleset.chains, ports)
    enforcement = Enforcement(found, ruleset.sets, indexes)
    counts = counts or UnenforcedCounts()
    yield GaugeMetricFamily(
        "ssh_access_firewall_legacy_tables",
        "Legacy iptables tables present (read through python-iptables).",
        value=len(ruleset.legacy_tables),
    )
    yield from set_families(ruleset, enforcement.referenced)
    yield from chain_families(ruleset.chains)
    yield from sshd_rule_families(found)
    yield unenforced_family(counts(bans, enforcement))


class FirewallCollector:
    """Reads the ruleset and the ban tools' bans each scrape; `sshd_ports` tells sshd's ports (the
    context's, cached for SSHD_PORTS_TTL; None: none known)."""

    def __init__(
        self,
        reader: FirewallReader,
        sshd_ports: Callable[[], frozenset[int]] | None,
        fail2ban_db: str = DEFAULT_DB,
        crowdsec: CrowdsecReader | None = None,
    ) -> None:
        self.reader = reader
        self.fail2ban_db = fail2ban_db
        self.crowdsec = crowdsec
        self.sshd_ports = sshd_ports or frozenset
        self.unenforced = UnenforcedCounts()

    def bans(self, ruleset: Ruleset) -> list[Bans]:
        found = fail2ban_bans(self.reader.paths, self.fail2ban_db) + sshguard_bans(ruleset.sets)
        if self.crowdsec is not None:
            found += crowdsec_bans(self.crowdsec)
        return found

    def collect(self) -> Iterator[Metric]:
        ruleset = self.reader.read()
        bans = self.bans(ruleset)
        yield from families(ruleset, self.sshd_ports(), bans, self.reader.indexes, self.unenforced)


def _factory(context: Context) -> FirewallCollector:
    options = context.options
    reader = context.firewall()
    crowdsec = None
    if options.enabled("crowdsec"):  # its bans, when its own collector is on
        crowdsec = CrowdsecReader(context.paths, options.crowdsec.bouncer_config, options.crowdsec.cscli)
    return FirewallCollector(reader, context.sshd_ports, options.fail2ban.db, crowdsec)


register_collector("firewall", _factory, enabled=True, help="iptables, nftables and ipsets against sshd")
