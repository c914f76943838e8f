"""nftables from `nft -j list ruleset`: chains with their hooks and policies, rules, address sets.

Tables that iptables-nft made carry `xt` expressions (multiport, set, REJECT) whose details JSON does
not show; `parse_ruleset` names those tables so the reader takes them from `iptables-nft-save` instead.
The JSON is decoded through `replies.loads_json` (depth and numbers bounded, strings valid text), and
anything of an unexpected type is an NftError, never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.sources.firewall.iptables import complement
from exporter.sources.firewall.model import AddressSet, Chain, PortRanges, Rule, set_key
from exporter.sources.host.replies import loads_json

FAMILIES = {"ip": "ipv4", "ip6": "ipv6", "inet": "inet", "netdev": "netdev"}  # bridge, arp: not IP filters
SET_TYPES = {"ipv4_addr": "ipv4", "ipv6_addr": "ipv6"}
VERDICTS = ("drop", "reject", "accept", "return")


class NftError(Exception):
    """Text that is not `nft -j` output."""


@dataclass(frozen=True)
class NftRuleset:
    chains: tuple[Chain, ...]
    sets: tuple[AddressSet, ...]
    compat: frozenset[tuple[str, str]]  # (family, table) made by iptables-nft: read them from its -save
    volatile: frozenset[str] = frozenset()  # keys of sets whose elements change without a commit


def table_label(family: str, table: str) -> str:
    """`inet f2b-table`, as nft names a table."""
    return f"{family} {table}"


def element(value: Any) -> str | None:
    """One set element or match operand as text: `a`, `a/len`, `a-b`; None for anything else."""
    if isinstance(value, dict):
        if "elem" in value:
            return element(value["elem"].get("val"))
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            low, high = value["range"]
            return f"{low}-{high}"
        return None
    return value if isinstance(value, str) else None


def _ports(right: Any) -> PortRanges | None:
    """A dport operand: a number, a range, an anonymous set of them; None when not knowable (a named set)."""
    if isinstance(right, int):
        return ((right, right),)
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        return ((int(low), int(high)),) if isinstance(low, int) and isinstance(high, int) else None
    if isinstance(right, dict) and "set" in right:
        ranges: list[tuple[int, int]] = []
        for item in right["set"]:
            found = _ports(item)
            if found is None:
                return None
            ranges.extend(found)
        return tuple(ranges)
    return None


def _protocols(right: Any) -> set[str]:
    if isinstance(right, dict) and "set" in right:
        return {str(item) for item in right["set"]}
    return {str(right)}


class _RuleBuilder:
    """Folds one rule's expressions into a Rule."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.verdict = ""
        self.target = ""
        self.sources: tuple[str, ...] | None = None
        self.sets: list[str] = []
        self.ports: PortRanges | None = None
        self.negated = False
        self.non_tcp = False
        self.packets = 0
        self.bytes = 0
        self.xt = False

    def match(self, match: dict[str, Any]) -> None:
        left, right, positive = match.get("left"), match.get("right"), match.get("op", "==") in ("==", "in")
        if not isinstance(left, dict):
            return
        payload, meta = left.get("payload"), left.get("meta")
        if isinstance(payload, dict) and payload.get("field") == "saddr":
            if not positive:
                self.negated = True
            elif isinstance(right, str) and right.startswith("@"):
                self.sets.append(set_key("nft", self.table, right[1:]))
            elif isinstance(right, dict) and "set" in right:
                self.sources = tuple(e for e in map(element, right["set"]) if e)
            else:
                found = element(right)
                self.sources = (found,) if found else self.sources
        elif isinstance(payload, dict) and payload.get("field") == "dport":
            if payload.get("protocol") not in ("tcp", "th"):
                self.non_tcp = True
            ports = _ports(right)
            if ports is not None:
                self.ports = ports if positive else complement(ports)
        elif (isinstance(meta, dict) and meta.get("key") == "l4proto") or (
            isinstance(payload, dict) and payload.get("field") in ("protocol", "nexthdr")
        ):
            self.non_tcp |= ("tcp" in _protocols(right)) != positive

    def add(self, expression: dict[str, Any]) -> None:
        for kind, body in expression.items():
            if kind == "match" and isinstance(body, dict):
                self.match(body)
            elif kind == "counter" and isinstance(body, dict):
                self.packets, self.bytes = int(body.get("packets", 0)), int(body.get("bytes", 0))
            elif kind in VERDICTS:
                self.verdict = kind
            elif kind in ("jump", "goto") and isinstance(body, dict):
                self.verdict, self.target = kind, str(body.get("target", ""))
            elif kind == "xt":
                self.xt = True

    def rule(self) -> Rule:
        ports = () if self.non_tcp else self.ports
        return Rule(self.verdict, self.target, self.sources, tuple(self.sets), ports, self.negated,
                    self.packets, self.bytes)  # fmt: skip


def _set(body: dict[str, Any]) -> AddressSet | None:
    kind = body.get("type")
    family = SET_TYPES.get(kind) if isinstance(kind, str) else None
    if family is None or body.get("family") not in FAMILIES:
        return None
    table = table_label(body["family"], body["table"])
    elements = tuple(e for e in map(element, body.get("elem", ())) if e)
    return AddressSet("nft", family, table, str(body["name"]), elements)


def changes_without_commit(body: dict[str, Any]) -> bool:
    """Elements that time out, or that rules add from the packet path (`dynamic`, meters), come and go
    without moving the ruleset generation."""
    flags = body.get("flags", ())
    flags = [flags] if isinstance(flags, str) else flags if isinstance(flags, list) else []
    return "timeout" in body or bool({"timeout", "dynamic"} & {str(flag) for flag in flags})


def parse_ruleset(text: str) -> NftRuleset:
    """`nft -j list ruleset`: IP chains (with rules in order), address sets, iptables-nft's tables."""
    try:
        document: Any = loads_json(text, "nft -j")
        items = document["nftables"]
    except (ValueError, TypeError, KeyError) as exc:
        raise NftError(f"not nft JSON output: {exc}") from exc
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    sets: list[AddressSet] = []
    compat: set[tuple[str, str]] = set()
    volatile: set[str] = set()
    try:
        for item in items:
            if not isinstance(item, dict):
                raise NftError(f"unexpected item {str(item)[:80]}")
            if "chain" in item and item["chain"].get("family") in FAMILIES:
                body = item["chain"]
                chains[(body["family"], body["table"], body["name"])] = body
            elif "rule" in item and item["rule"].get("family") in FAMILIES:
                body = item["rule"]
                builder = _RuleBuilder(table_label(body["family"], body["table"]))
                for expression in body.get("expr", ()):
                    if isinstance(expression, dict):
                        builder.add(expression)
                if builder.xt:
                    compat.add((body["family"], body["table"]))
                rules.setdefault((body["family"], body["table"], body["chain"]), []).append(builder.rule())
            elif "set" in item:
                found = _set(item["set"])
                if found is not None:
                    sets.append(found)
                    if changes_without_commit(item["set"]):
                        volatile.add(found.key)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise NftError(f"unexpected nft JSON: {type(exc).__name__}: {exc}") from exc
    result = tuple(
        Chain("nft", FAMILIES[family], table_label(family, table), name, body.get("hook"),
              body.get("policy"), tuple(rules.get((family, table, name), ())))
        for (family, table, name), body in chains.items()
    )  # fmt: skip
    return NftRuleset(result, tuple(sets), frozenset(compat), frozenset(volatile))
