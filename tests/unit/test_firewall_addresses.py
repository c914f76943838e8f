"""Address spans and the set index against ipaddress and a plain scan, and the reader's generation cache."""

from __future__ import annotations

import ipaddress
import json
import struct
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.firewall import generation
from exporter.sources.firewall.addresses import AddressIndex, SetIndexes, count_uncovered, span
from exporter.sources.firewall.bans import Bans, UnenforcedCounts
from exporter.sources.firewall.enforcement import Enforcement
from exporter.sources.firewall.model import AddressSet, Chain, Rule
from exporter.sources.firewall.reader import FirewallReader
from exporter.sources.host.paths import HostPaths


def reference_span(text: str) -> tuple[int, int, int] | None:
    """What the exporter computed with ipaddress before (and still does for what inet_pton refuses)."""
    try:
        if "-" in text:
            low, high = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
            return (low.version, int(low), int(high)) if low.version == high.version else None
        network = ipaddress.ip_network(text.strip().strip("[]"), strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@st.composite
def element_texts(draw: st.DrawFn) -> str:
    address = draw(addresses)
    kind = draw(st.sampled_from(["address", "prefix", "range"]))
    if kind == "address":
        return str(address)
    if kind == "prefix":
        return f"{address}/{draw(st.integers(0, address.max_prefixlen))}"
    other = draw(st.ip_addresses(v=address.version))
    low, high = sorted((address, other))
    return f"{low}-{high}"


@settings(max_examples=400, deadline=None)
@given(element_texts())
def test_span_agrees_with_ipaddress(text: str) -> None:
    assert span(text) == reference_span(text)


@pytest.mark.parametrize(
    "text",
    ["", "-", "/", "192.0.2.1/33", "2001:db8::/129", "192.0.2.1-2001:db8::1", "192.0.2.300", "x/24",
     "192.0.2.0/255.255.255.0", "[2001:db8::1]", "fe80::1%eth0", "192.0.2.01", " 192.0.2.1 "],
)  # fmt: skip
def test_span_of_odd_texts_agrees_with_ipaddress(text: str) -> None:
    assert span(text) == reference_span(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(element_texts(), max_size=40), element_texts())
def test_index_finds_what_a_scan_finds(elements: list[str], question: str) -> None:
    index = AddressIndex(elements)
    found = span(question)
    assert found is not None
    version, low, high = found
    scanned = [e for e in elements if (s := span(e)) and s[0] == version and s[1] <= high and low <= s[2]]
    assert sorted(index.overlapping(version, low, high)) == sorted(scanned)
    spans = [span(e) for e in scanned]
    assert index.holds(version, low) == any(s is not None and s[1] <= low <= s[2] for s in spans)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(element_texts(), max_size=40), max_size=3), st.sets(st.sampled_from([4, 6])), st.data()
)
def test_uncovered_counted_at_once_as_one_by_one(
    sets: list[list[str]], versions: set[int], data: st.DataObject
) -> None:
    """count_uncovered walks each index beside the sorted addresses (or bisects for a few of them):
    the count holds() gives asked one address at a time, repeats, the sets' own elements and
    non-addresses included."""
    own = [text for elements in sets for text in elements] or ["192.0.2.1"]
    texts = data.draw(st.lists(st.one_of(element_texts(), st.sampled_from([*own, "junk"])), max_size=60))
    indexes = [AddressIndex(elements) for elements in sets]

    def held(text: str) -> bool:
        found = span(text)
        return found is not None and (
            found[0] in versions or any(i.holds(found[0], found[1]) for i in indexes)
        )

    assert count_uncovered(indexes, texts, versions) == sum(1 for text in texts if not held(text))
    for index in indexes:
        for version in (4, 6):
            asked = sorted(s[1] for t in texts if (s := span(t)) is not None and s[0] == version)
            assert index.not_held(version, asked) == [v for v in asked if not index.holds(version, v)]


def test_held_by_text_by_value_and_by_a_range() -> None:
    index = AddressIndex(["2001:db8::1", "192.0.2.0/24", "198.51.100.10-198.51.100.20", "junk"])
    assert len(index) == 3  # junk is no element
    assert count_uncovered([index], ["2001:db8::1"]) == 0  # by its text
    assert count_uncovered([index], ["2001:db8:0:0::1"]) == 0  # by value: the same address written otherwise
    assert count_uncovered([index], ["192.0.2.77"]) == 0 and count_uncovered([index], ["198.51.100.15"]) == 0
    assert count_uncovered([index], ["198.51.100.12/30"]) == 0  # a banned range: its first address decides
    assert count_uncovered([index], ["198.51.100.21"]) == 1
    assert count_uncovered([index], ["not an address"]) == 1
    assert count_uncovered([], ["192.0.2.1"]) == 1
    # a drop-all rule's family
    assert count_uncovered([], ["192.0.2.1"], {4}) == 0 and count_uncovered([], ["2001:db8::1"], {4}) == 1


def test_set_indexes_are_kept_while_the_elements_are_the_same() -> None:
    indexes = SetIndexes()
    first = indexes.get("inet t s", ("192.0.2.1", "192.0.2.2"))
    assert indexes.get("inet t s", ("192.0.2.1", "192.0.2.2")) is first  # equal, not the same tuple
    changed = indexes.get("inet t s", ("192.0.2.1",))
    assert changed is not first and count_uncovered([changed], ["192.0.2.2"]) == 1
    indexes.retain([])
    assert indexes.get("inet t s", ("192.0.2.1",)) is not changed


def _enforcement(sets: tuple[AddressSet, ...], indexes: SetIndexes) -> Enforcement:
    from exporter.sources.firewall.enforcement import blockers  # noqa: PLC0415

    rule = Rule("drop", source_sets=tuple(s.key for s in sets), ports=((22, 22),))
    chain = Chain("nft", "inet", "inet t", "in", "input", "accept", (rule,))
    return Enforcement(blockers([chain], frozenset({22})), sets, indexes)


def test_unenforced_counts_are_asked_again_only_when_something_changed() -> None:
    indexes, counts = SetIndexes(), UnenforcedCounts()
    blocked = AddressSet("nft", "ipv4", "inet t", "s", ("192.0.2.1",))
    bans = [Bans("fail2ban", "sshd", frozenset({"192.0.2.1", "192.0.2.2"}))]
    asked: list[str] = []

    class Counting(Enforcement):
        def unblocked(self, addresses: Iterable[str]) -> int:
            addresses = list(addresses)
            asked.extend(addresses)
            return super().unblocked(addresses)

    def run(sets: tuple[AddressSet, ...], found: list[Bans]) -> dict[tuple[str, str], int]:
        plain = _enforcement(sets, indexes)
        enforcement = Counting(plain._found, sets, indexes)
        return counts(found, enforcement)

    assert run((blocked,), bans) == {("fail2ban", "sshd"): 1}
    assert len(asked) == 2
    assert run((blocked,), [Bans("fail2ban", "sshd", frozenset({"192.0.2.2", "192.0.2.1"}))]) == {
        ("fail2ban", "sshd"): 1
    }
    assert len(asked) == 2  # same bans, same set: not asked again
    grown = AddressSet("nft", "ipv4", "inet t", "s", ("192.0.2.1", "192.0.2.2"))
    assert run((grown,), bans) == {("fail2ban", "sshd"): 0}  # the set changed: asked again
    more = [Bans("fail2ban", "sshd", frozenset({"192.0.2.1", "192.0.2.2", "192.0.2.3"}))]
    assert run((grown,), more) == {("fail2ban", "sshd"): 1}  # the bans changed: asked again


def _newgen(generation_id: int, kind: int = 0x0A0F) -> bytes:
    attributes = struct.pack("=HH", 8, 1) + generation_id.to_bytes(4, "big")
    attributes += struct.pack("=HH", 8, 2) + (1234).to_bytes(4, "big")
    body = struct.pack("=BBH", 0, 0, 0) + attributes
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 1, 0) + body


def test_generation_replies() -> None:
    assert generation.parse_reply(_newgen(565)) == 565
    assert generation.parse_reply(_newgen(565, kind=2)) is None  # NLMSG_ERROR (no permission)
    assert generation.parse_reply(_newgen(565)[:20]) is None  # cut short
    assert generation.parse_reply(b"") is None
    broken = bytearray(_newgen(565))
    broken[20:22] = struct.pack("=H", 200)  # an attribute longer than the message
    assert generation.parse_reply(bytes(broken)) is None


class ScriptedReader(FirewallReader):
    """The reader with nft's answers and the generation scripted: which listings does it ask for?"""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(HostPaths(tmp_path), generation=True)
        self.now = 1
        self.generation = lambda: self.now
        self.asked: list[tuple[str, ...]] = []
        self.elements = ["192.0.2.1"]
        self.timeout_elements = ["198.51.100.1"]

    def _run(self, tool: str, *args: str) -> str:
        self.asked.append(args)
        terse = "-t" in args
        items: list[dict[str, object]] = []
        for name, elements, extra in (
            ("ban", self.elements, {}),
            ("temporary", self.timeout_elements, {"flags": ["timeout"], "timeout": 60}),
        ):
            body: dict[str, object] = {
                "family": "inet",
                "table": "t",
                "name": name,
                "type": "ipv4_addr",
                **extra,
            }
            if not terse:
                body["elem"] = list(elements)
            if args[1:3] == ("list", "set") and args[-1] != name:
                continue
            items.append({"set": body})
        return json.dumps({"nftables": items})


def test_set_elements_are_listed_again_only_when_the_generation_moves(tmp_path: Path) -> None:
    reader = ScriptedReader(tmp_path)
    first = reader._nft_listing()
    assert {s.name: s.elements for s in first.sets} == {"ban": ("192.0.2.1",), "temporary": ("198.51.100.1",)}
    assert reader.asked == [("-j", "list", "ruleset")]
    reader.asked.clear()
    reader.elements.append("192.0.2.2")  # not seen: nothing was committed (a scripted impossibility)
    reader.timeout_elements.clear()  # an element timed out: no commit either
    again = reader._nft_listing()
    assert reader.asked == [("-j", "-t", "list", "ruleset"), ("-j", "list", "set", "inet", "t", "temporary")]
    assert {s.name: s.elements for s in again.sets} == {"ban": ("192.0.2.1",), "temporary": ()}
    assert again.sets[0] is first.sets[0]  # the same object: its index is kept too
    reader.asked.clear()
    reader.now = 2  # a commit
    moved = reader._nft_listing()
    assert reader.asked == [("-j", "list", "ruleset")]
    assert {s.name: s.elements for s in moved.sets}["ban"] == ("192.0.2.1", "192.0.2.2")


def test_without_a_generation_everything_is_listed_each_time(tmp_path: Path) -> None:
    reader = ScriptedReader(tmp_path)
    reader.generation = lambda: None  # no CAP_NET_ADMIN, or no nf_tables
    reader._nft_listing()
    reader._nft_listing()
    assert reader.asked == [("-j", "list", "ruleset")] * 2
