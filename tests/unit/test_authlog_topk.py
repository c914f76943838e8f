"""Bounded top-k: heavy hitters found, window slides, memory bounded whatever the distinct addresses."""

from __future__ import annotations

from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats
from exporter.sources.authlog.topk import SlidingTopK, SpaceSaving


def _v6(n: int) -> str:
    return f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::1"


def test_space_saving_keeps_heavy_hitters_among_many() -> None:
    """Space-Saving keeps every key with more than 1/capacity of the stream; 10% and 12.5% here."""
    summary = SpaceSaving(20)
    for n in range(50_000):
        summary.add(_v6(n))
        if n % 10 == 0:
            summary.add("192.0.2.1")
        if n % 8 == 0:  # above 1/capacity of the stream: guaranteed kept
            summary.add("198.51.100.2")
    assert len(summary.counts) <= 40
    ranked = sorted(summary.counts.items(), key=lambda kv: -kv[1])
    assert [k for k, _ in ranked[:2]] == ["198.51.100.2", "192.0.2.1"]
    assert ranked[0][1] >= 50_000 // 8 and ranked[1][1] >= 50_000 // 10  # never under-estimates


def test_window_slides_and_buckets_expire() -> None:
    top = SlidingTopK(n=3, window=600.0, buckets=6)
    for _ in range(5):
        top.add("192.0.2.1", 0.0)
    for _ in range(3):
        top.add("192.0.2.2", 500.0)
    assert top.top(now=500.0) == [("192.0.2.1", 5), ("192.0.2.2", 3)]
    assert top.top(now=700.0) == [("192.0.2.2", 3)]
    top.add("192.0.2.3", 5000.0)
    assert top.top(now=5000.0) == [("192.0.2.3", 1)]
    top.add("192.0.2.4", 10.0)  # older than the window: ignored
    assert top.top(now=5000.0) == [("192.0.2.3", 1)]


def test_disabled() -> None:
    top = SlidingTopK(n=0)
    top.add("192.0.2.1", 1.0)
    assert top.top(now=1.0) == [] and top.entries() == 0


def test_memory_bounded_with_200k_distinct_addresses() -> None:
    stats = Stats(top_n=10)
    for n in range(200_000):
        when = 1_000_000.0 + n * 0.01  # 2000 s: several buckets
        stats.feed(SyslogRecord(f"Invalid user u from {_v6(n)} port 1", "sshd", n, None, when), "f")
        if n % 100 == 0:
            stats.feed(SyslogRecord("Invalid user u from 203.0.113.66 port 1", "sshd", n, None, when), "f")
    assert stats._top.entries() <= stats._top.buckets * 2 * stats._top.capacity
    top = stats.snapshot(now=1_002_000.0).top_offenders
    assert top[0] == ("203.0.113.66", 2000) or top[0][0] == "203.0.113.66"
    assert len(top) == 10
