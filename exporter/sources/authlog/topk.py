"""Bounded top-k over a sliding time window: which addresses fail most, whatever their number.

A dict of every address seen would grow with every scanner on the internet. Instead each time bucket
(default 12 of 5 minutes = the last hour) keeps a Space-Saving summary of fixed capacity, batched:
the table may grow to twice its capacity, then keeps its `capacity` largest counts, and an address
that arrives later starts from the largest count evicted so far (`floor`) plus one. Counts are thus
over-estimates by at most `floor`, and any address with more than a bucket's 1/capacity share of
failures is kept. Memory is buckets * 2 * capacity entries, for any number of distinct addresses.
"""

from __future__ import annotations

from operator import itemgetter


class SpaceSaving:
    """Approximate counts of the heaviest keys of a stream in a fixed-size table."""

    __slots__ = ("capacity", "counts", "floor")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.counts: dict[str, int] = {}
        self.floor = 0

    def add(self, key: str) -> None:
        counts = self.counts
        count = counts.get(key)
        if count is not None:
            counts[key] = count + 1
            return
        if len(counts) >= 2 * self.capacity:
            self._prune()
        self.counts[key] = self.floor + 1

    def _prune(self) -> None:
        ranked = sorted(self.counts.items(), key=itemgetter(1), reverse=True)
        self.floor = max(self.floor, ranked[self.capacity][1])
        self.counts = dict(ranked[: self.capacity])


class SlidingTopK:
    """The `n` keys with most adds in the last `window` seconds (n=0 disables it entirely)."""

    def __init__(
        self, n: int = 10, window: float = 3600.0, buckets: int = 12, capacity_factor: int = 10
    ) -> None:
        self.n = n
        self.buckets = buckets
        self.bucket_seconds = window / buckets
        self.capacity = capacity_factor * n
        self._summaries: dict[int, SpaceSaving] = {}
        self._newest = -1
        self._current: SpaceSaving | None = None

    def add(self, key: str, when: float) -> None:
        """One failure of `key` at `when`; the common case (this bucket, a known key) inline."""
        if self.n <= 0:
            return
        index = int(when // self.bucket_seconds)
        current = self._current
        if index == self._newest and current is not None:
            counts = current.counts
            count = counts.get(key)
            if count is None:
                current.add(key)
            else:
                counts[key] = count + 1
        else:
            self._add_elsewhere(key, index)

    def _add_elsewhere(self, key: str, index: int) -> None:
        """An add outside the newest bucket: an older one in the window, or a new newest one."""
        if index <= self._newest - self.buckets:
            return  # older than the window
        summary = self._summaries.get(index)
        if summary is None:
            summary = self._summaries[index] = SpaceSaving(self.capacity)
        if index > self._newest:
            self._newest = index
            self._current = summary
            for old in [i for i in self._summaries if i <= index - self.buckets]:
                del self._summaries[old]
        summary.add(key)

    def top(self, now: float) -> list[tuple[str, int]]:
        """The top n (key, count) in the window ending at `now`, largest first, ties by key."""
        if self.n <= 0:
            return []
        oldest = int(now // self.bucket_seconds) - self.buckets
        merged: dict[str, int] = {}
        for index, summary in self._summaries.items():
            if index > oldest:
                for key, count in summary.counts.items():
                    merged[key] = merged.get(key, 0) + count
        ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
        return ranked[: self.n]

    def entries(self) -> int:
        """Keys held across buckets: the memory bound the tests check."""
        return sum(len(summary.counts) for summary in self._summaries.values())
