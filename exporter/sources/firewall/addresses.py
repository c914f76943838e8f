"""Addresses, prefixes and ranges as integer spans, and an index of many of them.

A host under attack holds 100,000 addresses in a set and 100,000 bans: the enforcement cross-check and the
watchlist ask about every one of them at each scrape. `ipaddress` builds two objects per text (about
10 µs); `socket.inet_pton` reads the same text in well under 1 µs, so the common forms (`a`, `a/len`,
`a-b`, as nft, ipset, iptables and fail2ban print them) go through it, and only what it refuses (a
netmask written out, a scope id) falls back to `ipaddress`, which decides as before.
"""

from __future__ import annotations

import array
import bisect
import ipaddress
import socket
import threading
from collections.abc import Collection, Iterable, Sequence

Span = tuple[int, int, int]  # (version, first, last)
_BITS = {4: 32, 6: 128}
_LOW = (1 << 64) - 1


def _address(text: str) -> tuple[int, int] | None:
    """(version, value) of one address; None when not one."""
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    return found.version, int(found)


def span(text: str) -> Span | None:
    """(version, first, last) of an address, an `a/len` prefix (host bits allowed) or an `a-b` range;
    None when the text is none of them."""
    try:  # a plain address, as nearly every ban and set element is: read as it stands, in half the time
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
            return 6, value, value
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        return 4, value, value
    except OSError:  # anything else (inet_pton takes no space, bracket, dash or slash): read below
        pass
    text = text.strip().strip("[]")
    if "-" in text:
        low_text, _, high_text = text.partition("-")
        low, high = _address(low_text.strip()), _address(high_text.strip())
        if low is None or high is None or low[0] != high[0]:
            return None
        return low[0], low[1], high[1]
    address, slash, length = text.partition("/")
    if slash and length.isdigit() and address:
        found = _address(address.strip("[]"))
        if found is None or int(length) > _BITS[found[0]]:
            return None
        version, value = found
        host_bits = _BITS[version] - int(length)
        first = value >> host_bits << host_bits
        return version, first, first | ((1 << host_bits) - 1)
    if slash:  # a netmask or hostmask written out: ipaddress's reading
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        return network.version, int(network.network_address), int(network.broadcast_address)
    found = _address(text)
    return None if found is None else (found[0], found[1], found[1])


class _Singles:
    """Single addresses of one IP version, sorted, packed in arrays: 100,000 IPv6 addresses take 2.4 MB
    (two 64-bit halves and a position each) where a list of ints took 5.2 MB, and `bisect` searches an
    array in C. Positions point into the texts the index was built from."""

    def __init__(self, values: list[tuple[int, int]], wide: bool) -> None:
        values.sort()
        self.wide = wide
        self.low = array.array("Q", (value & _LOW for value, _ in values))
        self.high = array.array("Q", (value >> 64 for value, _ in values)) if wide else None
        self.positions = array.array("I", (position for _, position in values))

    def __len__(self) -> int:
        return len(self.positions)

    def where(self, value: int, after: bool) -> int:
        """The insertion point of `value`: before equal values, or after them with `after`."""
        start, end = 0, len(self.positions)
        if self.high is not None:
            start = bisect.bisect_left(self.high, value >> 64)
            end = bisect.bisect_right(self.high, value >> 64, start)
            if start == end:
                return start
        side = bisect.bisect_right if after else bisect.bisect_left
        return side(self.low, value & _LOW, start, end)

    def between(self, low: int, high: int) -> range:
        """Indices of the values in [low, high]."""
        return range(self.where(low, after=False), self.where(high, after=True))

    def value(self, index: int) -> int:
        return (self.high[index] << 64 | self.low[index]) if self.high is not None else self.low[index]


class AddressIndex:
    """Elements (addresses, prefixes, ranges as text) searchable by address or by network.

    Single addresses (nearly all of a ban tool's set) are packed and bisected (_Singles). Prefixes and
    ranges are kept sorted by their first address with the running maximum of their last, so a
    question walks back only over those that can still reach it. A lookup costs a few bisections plus
    the elements that overlap, not a pass over the 100,000.
    """

    def __init__(self, elements: Iterable[str]) -> None:
        self._texts = elements if isinstance(elements, tuple) else tuple(elements)  # a set's own tuple
        singles: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        spans: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for position, text in enumerate(self._texts):
            found = span(text)
            if found is None:
                continue
            version, first, last = found
            if first == last:
                singles[version].append((first, position))
            else:
                spans[version].append((first, last, position))
        self._singles = {version: _Singles(values, version == 6) for version, values in singles.items()}
        self._firsts: dict[int, list[int]] = {}
        self._lasts: dict[int, list[int]] = {}
        self._positions: dict[int, list[int]] = {}
        self._reach: dict[int, list[int]] = {}  # the largest `last` of the spans up to each one
        for version, entries in spans.items():
            entries.sort()
            reach, highest = [], -1
            for _, last, _ in entries:
                highest = max(highest, last)
                reach.append(highest)
            self._firsts[version] = [first for first, _, _ in entries]
            self._lasts[version] = [last for _, last, _ in entries]
            self._positions[version] = [position for _, _, position in entries]
            self._reach[version] = reach
        self.size = sum(map(len, self._singles.values())) + sum(map(len, self._firsts.values()))

    def __len__(self) -> int:
        return self.size

    def overlapping(self, version: int, low: int, high: int, limit: int | None = None) -> list[str]:
        """The elements sharing at least one address with [low, high] in order of their first address,
        at most `limit` of them."""
        singles = self._singles[version]
        found = [(singles.value(i), singles.positions[i]) for i in singles.between(low, high)[:limit]]
        lasts, positions, reach = self._lasts[version], self._positions[version], self._reach[version]
        index = bisect.bisect_right(self._firsts[version], high) - 1
        while index >= 0 and reach[index] >= low and (limit is None or len(found) < limit):
            if lasts[index] >= low:
                found.append((self._firsts[version][index], positions[index]))
            index -= 1
        found.sort()
        return [self._texts[position] for _, position in found[:limit]]

    def holds(self, version: int, value: int) -> bool:
        """Does an element hold this address? (overlapping's question for one address, without
        building its answer)"""
        singles = self._singles[version]
        index = singles.where(value, after=False)
        if index < len(singles.positions) and singles.value(index) == value:
            return True
        return self._in_spans(version, value)

    def _in_spans(self, version: int, value: int) -> bool:
        """Does a prefix or range hold this address?"""
        firsts = self._firsts[version]
        if not firsts:
            return False
        lasts, reach = self._lasts[version], self._reach[version]
        index = bisect.bisect_right(firsts, value) - 1
        while index >= 0 and reach[index] >= value:
            if lasts[index] >= value:
                return True
            index -= 1
        return False

    def not_held(self, version: int, values: list[int]) -> list[int]:
        """The addresses (ascending, repeats allowed) no element holds, in the same order. Many of them
        (the enforcement check asks for each of 100,000 bans) are walked beside the sorted singles in
        one pass: holds() bisects the packed arrays three times for each (0.6 s for 100,000)."""
        singles = self._singles[version]
        size = len(singles)
        if len(values) * _WALK_AT_LEAST < size:  # a few addresses against a large set: bisect each
            return [value for value in values if not self.holds(version, value)]
        value_at, missing, index = singles.value, [], 0
        current = value_at(0) if size else -1
        for value in values:
            while index < size and current < value:
                index += 1
                current = value_at(index) if index < size else -1
            if not (index < size and current == value) and not self._in_spans(version, value):
                missing.append(value)
        return missing


_WALK_AT_LEAST = 16  # not_held walks the singles when asked about at least 1/16 as many addresses


def count_uncovered(
    indexes: Sequence[AddressIndex], texts: Iterable[str], versions: Collection[int] = ()
) -> int:
    """How many of the texts no index holds (for a prefix or range: its first address) and are not of
    one of `versions` (IP versions in which every address is held); a text that is no address counts.
    Each text is parsed once; each index is asked about all of them at once (not_held)."""
    uncovered = 0
    asked: dict[int, list[int]] = {4: [], 6: []}
    for text in texts:
        found = span(text)
        if found is None:
            uncovered += 1
        elif found[0] not in versions:
            asked[found[0]].append(found[1])
    for version, values in asked.items():
        left = sorted(values)
        for index in indexes:
            if not left:
                break
            left = index.not_held(version, left)
        uncovered += len(left)
    return uncovered


class SetIndexes:
    """The index of each address set, kept while its elements stay the same: a ruleset read again
    (every scrape) with an unchanged 100,000-element set costs a comparison, not a rebuild. Holds
    only the sets of the latest read (`retain`), so its size follows the host's sets."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[tuple[str, ...], AddressIndex]] = {}
        self._lock = threading.Lock()  # the collectors ask from their own threads: build each once

    def get(self, key: str, elements: tuple[str, ...]) -> AddressIndex:
        with self._lock:
            cached = self._built.get(key)
            if cached is None or cached[0] != elements:
                cached = (elements, AddressIndex(elements))
                self._built[key] = cached
            return cached[1]

    def retain(self, keys: Iterable[str]) -> None:
        kept = set(keys)
        with self._lock:
            for key in [k for k in self._built if k not in kept]:
                del self._built[key]
