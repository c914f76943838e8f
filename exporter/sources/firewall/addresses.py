"""Addresses, prefixes and ranges as integer spans, and an index of many of them.

A host under attack holds 100,000 addresses in a set and 100,000 bans: the enforcement cross-check and the
watchlist ask about every one of them at each scrape. `ipaddress` builds two objects per text (about
10 µs); `socket.inet_pton` reads the same text in well under 1 µs, so the common forms (`a`, `a/len`,
`a-b`, as nft, ipset, iptables and fail2ban print them) go through it, and only what it refuses (a
netmask written out, a scope id) falls back to `ipaddress`, which decides as before.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
import threading
from collections.abc import Iterable, Sequence

Span = tuple[int, int, int]  # (version, first, last)
_BITS = {4: 32, 6: 128}


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


class AddressIndex:
    """Elements (addresses, prefixes, ranges as text) searchable by address or by network.

    An address is first looked up by its text (nft and ipset print canonically, as fail2ban does), then
    by value. Entries are kept sorted by their first address with the running maximum of their last, so
    a question walks back only over entries that can still reach it: a lookup costs a bisection plus
    the entries that overlap, not a pass over the 100,000.
    """

    def __init__(self, elements: Iterable[str]) -> None:
        self.texts: set[str] = set()
        per_version: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for text in elements:
            found = span(text)
            if found is None:
                continue
            version, first, last = found
            if first == last and "/" not in text and "-" not in text:
                self.texts.add(text)
            per_version[version].append((first, last, text))
        # Three parallel lists per version (no object per entry: 100,000 of them are kept between scrapes).
        self._firsts: dict[int, list[int]] = {}
        self._lasts: dict[int, list[int]] = {}
        self._texts: dict[int, list[str]] = {}
        self._reach: dict[int, list[int]] = {}  # the largest `last` of the entries up to each one
        for version, entries in per_version.items():
            entries.sort()
            reach, highest = [], -1
            for _, last, _ in entries:
                highest = max(highest, last)
                reach.append(highest)
            self._firsts[version] = [first for first, _, _ in entries]
            self._lasts[version] = [last for _, last, _ in entries]
            self._texts[version] = [text for _, _, text in entries]
            self._reach[version] = reach
        self.size = sum(len(texts) for texts in self._texts.values())

    def __len__(self) -> int:
        return self.size

    def overlapping(self, version: int, low: int, high: int, limit: int | None = None) -> list[str]:
        """The elements sharing at least one address with [low, high], at most `limit` of them."""
        lasts, texts, reach = self._lasts[version], self._texts[version], self._reach[version]
        found: list[str] = []
        index = bisect.bisect_right(self._firsts[version], high) - 1
        while index >= 0 and reach[index] >= low:
            if lasts[index] >= low:
                found.append(texts[index])
                if limit is not None and len(found) >= limit:
                    break
            index -= 1
        found.reverse()
        return found

    def holds(self, version: int, value: int) -> bool:
        """Does an element hold this address?"""
        return bool(self.overlapping(version, value, value, limit=1))


def covered(indexes: Sequence[AddressIndex], text: str) -> bool:
    """Does one of the indexes hold the address `text` (for a prefix or range: its first address)? Its
    text is looked up first, in each; it is parsed only when no index knows it by name."""
    if any(text in index.texts for index in indexes):
        return True
    found = span(text)
    return found is not None and any(index.holds(found[0], found[1]) for index in indexes)


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
