"""Typed firewall objects shared by the parsers: what a rule matches, where it sends a packet.

Only what decides whether traffic to sshd is blocked is kept: source addresses and sets, destination
ports, verdict and counters. Matches the parsers do not model (interfaces, conntrack, ...) are ignored:
the model may call a rule blocking that in fact applies to fewer packets (documented in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BLOCKING = frozenset({"drop", "reject"})
PortRanges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. `sources` None and no `source_sets`: any source; `ports` None: any destination port."""

    verdict: str  # drop | reject | accept | jump | goto | return | "" (no verdict, or one not modelled)
    target: str = ""  # the chain of a jump or goto
    sources: tuple[str, ...] | None = None  # addresses, prefixes (a/len) or ranges (a-b)
    source_sets: tuple[str, ...] = ()  # keys of the AddressSets the source is matched against
    ports: PortRanges | None = None
    negated: bool = False  # a negated source or set match: never counted as blocking a ban
    packets: int = 0
    bytes: int = 0

    @property
    def blocking(self) -> bool:
        return self.verdict in BLOCKING

    @property
    def any_source(self) -> bool:
        return self.sources is None and not self.source_sets and not self.negated


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain; `hook` is set for base chains (nft hooks, iptables' built-in chains), with `policy`."""

    backend: str  # legacy | nft
    family: str  # ipv4 | ipv6 | inet (nft's inet tables hold both)
    table: str
    name: str
    hook: str | None = None  # input | prerouting | ingress | forward | output | postrouting
    policy: str | None = None  # accept | drop, for base chains
    rules: tuple[Rule, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        """Jumps stay inside one table: (backend, family, table)."""
        return (self.backend, self.family, self.table)


@dataclass(frozen=True, slots=True)
class AddressSet:
    """An nft set or an ipset of addresses; `key` is what rules reference it by."""

    backend: str  # nft | ipset
    family: str  # ipv4 | ipv6
    table: str  # "inet f2b-table" for nft, "" for ipsets (global names)
    name: str
    elements: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return set_key(self.backend, self.table, self.name)


def set_key(backend: str, table: str, name: str) -> str:
    """nft sets are scoped by table; ipset names are global."""
    return f"{table} {name}" if backend == "nft" else f"ipset {name}"


@dataclass(frozen=True)
class Ruleset:
    """Everything one read saw."""

    chains: tuple[Chain, ...] = ()
    sets: tuple[AddressSet, ...] = ()
    legacy_tables: tuple[str, ...] = ()  # "ipv4 filter", ... as /proc/net/ip*_tables_names list them
    errors: tuple[str, ...] = field(default_factory=tuple)


def parse_ports(spec: str) -> PortRanges:
    """`22`, `22,2222:2223` (iptables) or `2222-2223` into ranges; names are not resolved (skipped)."""
    ranges = []
    for part in spec.split(","):
        low, _, high = part.replace("-", ":").partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            ranges.append((int(low), int(high or low)))
    return tuple(ranges)
