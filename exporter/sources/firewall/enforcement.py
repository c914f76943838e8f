"""What blocks traffic to sshd: drop/reject rules reachable from an input hook, and which addresses.

A rule blocks sshd's traffic when a packet for one of sshd's ports can reach it: from a base chain on
the input path (`input`, `prerouting`, `ingress` hooks; iptables' INPUT and PREROUTING) through jumps
whose port matches let such a packet through. A ban is enforced when such a rule, covering every port
sshd listens on, matches the address: with no source match, a literal address or prefix, or a set
(nft set or ipset) that holds it. A set nobody's rule references enforces nothing.

Rule order and earlier accepts are not modelled (an `accept` before the ban still counts as blocked).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.sources.firewall.model import AddressSet, Chain, Rule

INPUT_HOOKS = frozenset({"input", "prerouting", "ingress"})
ANY_PORT = -1  # sshd's ports unknown: every port match admits it
MAX_DEPTH = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Blocker:
    chain: Chain
    rule: Rule
    covers_sshd: bool  # every sshd port reaches it


def _admits(rule: Rule, port: int) -> bool:
    return rule.ports is None or port == ANY_PORT or any(low <= port <= high for low, high in rule.ports)


def blockers(chains: Iterable[Chain], sshd_ports: frozenset[int]) -> list[Blocker]:
    """Drop/reject rules a packet to one of sshd's ports can reach from the input path."""
    wanted = sshd_ports or frozenset({ANY_PORT})
    by_name = {(chain.key, chain.name): chain for chain in chains}
    found: dict[tuple[int, int], Blocker] = {}
    seen: set[tuple[int, frozenset[int]]] = set()

    def walk(chain: Chain, admitted: frozenset[int], depth: int) -> None:
        if depth > MAX_DEPTH or (id(chain), admitted) in seen:
            return
        seen.add((id(chain), admitted))
        for index, rule in enumerate(chain.rules):
            through = frozenset(port for port in admitted if _admits(rule, port))
            if not through:
                continue
            if rule.blocking:
                previous = found.get((id(chain), index))
                covers = through == wanted or (previous is not None and previous.covers_sshd)
                found[(id(chain), index)] = Blocker(chain, rule, covers)
            elif rule.target:
                target = by_name.get((chain.key, rule.target))
                if target is not None:
                    walk(target, through, depth + 1)

    for chain in by_name.values():
        if chain.hook in INPUT_HOOKS:
            walk(chain, wanted, 0)
    return list(found.values())


def _network(text: str) -> tuple[int, int, int] | None:
    """(version, first, last) of `a/len` or `a-b`; None when not an address."""
    try:
        if "-" in text:
            low, high = (ipaddress.ip_address(part) for part in text.split("-", 1))
            return low.version, int(low), int(high)
        network = ipaddress.ip_network(text, strict=False)
        return network.version, int(network.network_address), int(network.broadcast_address)
    except ValueError:
        return None


class Enforcement:
    """Answers "does the firewall block this address from sshd?" for many addresses at once.

    The lookup tables are built on the first question: a scrape with no bans to check never walks a
    100,000-entry set. nft and ipset print addresses canonically (inet_ntop), so a question in
    canonical form is answered by one set lookup; prefixes and ranges are compared as integers.
    """

    def __init__(self, found: Iterable[Blocker], sets: Iterable[AddressSet]) -> None:
        found = list(found)
        self._found = [b for b in found if b.covers_sshd and not b.rule.negated]
        self._sets = {address_set.key: address_set for address_set in sets}
        self.referenced = {key for b in found for key in b.rule.source_sets if b.rule.blocking}
        self._built = False
        self.everyone: set[str] = set()  # families in which every source is blocked
        self.exact: set[str] = set()
        self.ranges: list[tuple[int, int, int]] = []

    def _build(self) -> None:
        for blocker in self._found:
            rule = blocker.rule
            if rule.any_source:
                families = ("ipv4", "ipv6") if blocker.chain.family in ("inet", "netdev") else ()
                self.everyone.update(families or (blocker.chain.family,))
                continue
            self._add(rule.sources or ())
            for key in rule.source_sets:
                if key in self._sets:
                    self._add(self._sets[key].elements)
        self._built = True

    def _add(self, elements: Iterable[str]) -> None:
        for text in elements:
            if "/" in text or "-" in text:
                network = _network(text)
                if network:
                    self.ranges.append(network)
            else:
                self.exact.add(text)

    def blocks(self, address: str) -> bool:
        if not self._built:
            self._build()
        network = _network(address)  # an address, or a banned range: its first address decides
        if network is None:
            return False
        version, first, _ = network
        if f"ipv{version}" in self.everyone or str(ipaddress.ip_address(first)) in self.exact:
            return True
        return any(v == version and low <= first <= high for v, low, high in self.ranges)
