"""What blocks traffic to sshd: drop/reject rules reachable from an input hook, and which addresses.

A rule blocks sshd's traffic when a packet for one of sshd's ports can reach it: from a base chain on
the input path (`input`, `prerouting`, `ingress` hooks; iptables' INPUT and PREROUTING) through jumps
whose port matches let such a packet through. A ban is enforced when such a rule, covering every port
sshd listens on, matches the address: with no source match, a literal address or prefix, or a set
(nft set or ipset) that holds it. A set nobody's rule references enforces nothing.

Rule order and earlier accepts are not modelled (an `accept` before the ban still counts as blocked).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from exporter.sources.firewall.addresses import AddressIndex, SetIndexes, count_uncovered
from exporter.sources.firewall.model import AddressSet, Chain, Rule

INPUT_HOOKS = frozenset({"input", "prerouting", "ingress"})
ANY_PORT = -1  # sshd's ports unknown: every port match admits it
MAX_DEPTH = 64
VERSIONS = {"ipv4": (4,), "ipv6": (6,)}  # a chain's family; inet and netdev chains see both


@dataclass(frozen=True, slots=True)
class Blocker:
    chain: Chain
    rule: Rule
    covers_sshd: bool  # every sshd port reaches it


def _admits(rule: Rule, port: int) -> bool:
    return rule.ports is None or port == ANY_PORT or any(low <= port <= high for low, high in rule.ports)


def blockers(chains: Iterable[Chain], sshd_ports: frozenset[int]) -> list[Blocker]:
    """Drop/reject rules a packet to one of sshd's ports can reach from the input path. Where they are is
    kept while the chains differ only in counters (which the walk does not read): the ruleset's reader
    hands out the same Chain objects while nothing in them changed, so most chains compare by identity,
    and 10,000 rules are not walked again at every scrape (10-15 ms of CPU). The Blockers are made from
    these chains, with their counters."""
    chains = tuple(chains)
    with _last_lock:
        last = _last.get(sshd_ports)
    if last is not None and len(last[0]) == len(chains) and all(map(_same_but_counters, last[0], chains)):
        return [Blocker(chains[c], chains[c].rules[r], covers) for c, r, covers in last[1]]
    walked = _walk(chains, sshd_ports)
    position = {id(chain): index for index, chain in enumerate(chains)}
    where = tuple((position[chain], index, blocker.covers_sshd) for (chain, index), blocker in walked.items())
    with _last_lock:
        _last.clear()  # one answer kept: bounded, and no older ruleset held
        _last[sshd_ports] = (chains, where)
    return list(walked.values())


_last: dict[frozenset[int], tuple[tuple[Chain, ...], tuple[tuple[int, int, bool], ...]]] = {}
_last_lock = threading.Lock()


def _same_but_counters(old: Chain, new: Chain) -> bool:
    if old is new:
        return True
    if (old.key, old.name, old.hook, old.policy, len(old.rules)) != (
        new.key, new.name, new.hook, new.policy, len(new.rules)
    ):  # fmt: skip
        return False
    return all(a is b or _rule_shape(a) == _rule_shape(b) for a, b in zip(old.rules, new.rules, strict=True))


def _rule_shape(rule: Rule) -> tuple[object, ...]:
    return (rule.verdict, rule.target, rule.sources, rule.source_sets, rule.ports, rule.negated)


def _walk(chains: tuple[Chain, ...], sshd_ports: frozenset[int]) -> dict[tuple[int, int], Blocker]:
    """The blockers found, by (id of their chain, position in it)."""
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
    return found


@dataclass(frozen=True)
class _Lookups:
    """What Enforcement answers from: IP versions in which every source is blocked, the literal sources,
    the indexes of the sets the rules match against (the reader's), and every non-empty index."""

    everyone: frozenset[int]
    literal: tuple[str, ...]
    sets: tuple[AddressIndex, ...]  # compared by identity (AddressIndex has no __eq__)
    indexes: tuple[AddressIndex, ...]


class Enforcement:
    """Answers "does the firewall block this address from sshd?" for many addresses at once.

    The lookups are built on the first question: a scrape with no bans to check never walks a
    100,000-entry set. A set's index comes from `indexes` (the reader's, kept while the set's elements
    stay the same), so an unchanged set is indexed once, not at every scrape.
    """

    def __init__(
        self, found: Iterable[Blocker], sets: Iterable[AddressSet], indexes: SetIndexes | None = None
    ) -> None:
        found = list(found)
        self._found = [b for b in found if b.covers_sshd and not b.rule.negated]
        self._sets = {address_set.key: address_set for address_set in sets}
        self._indexes = indexes if indexes is not None else SetIndexes()
        self.referenced = {key for b in found for key in b.rule.source_sets if b.rule.blocking}

    @cached_property
    def _lookups(self) -> _Lookups:
        everyone: set[int] = set()
        literal: list[str] = []
        lookups: dict[str, AddressIndex] = {}
        for blocker in self._found:
            rule = blocker.rule
            if rule.any_source:
                everyone.update(VERSIONS.get(blocker.chain.family, (4, 6)))
                continue
            literal.extend(rule.sources or ())
            for key in rule.source_sets:
                if key in self._sets and key not in lookups:
                    lookups[key] = self._indexes.get(key, self._sets[key].elements)
        indexes = tuple(index for index in (AddressIndex(literal), *lookups.values()) if index.size)
        return _Lookups(frozenset(everyone), tuple(literal), tuple(lookups.values()), indexes)

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for two Enforcements that answer every question alike: the same versions blocked
        for everyone, the same literal sources, the same set indexes (the reader's, by identity)."""
        lookups = self._lookups
        return (lookups.everyone, lookups.literal, *lookups.sets)

    def unblocked(self, addresses: Iterable[str]) -> int:
        """How many of the addresses nothing blocks (each index is asked about all of them at once)."""
        return count_uncovered(self._lookups.indexes, addresses, self._lookups.everyone)
