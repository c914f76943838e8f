"""Families every ban-source collector shares (fail2ban, sshguard, denyhosts, crowdsec); no collector here.

Each collector emits them with its own `source` value, so the label sets never collide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)


def source_up(source: str, up: bool) -> GaugeMetricFamily:
    """`ssh_access_ban_source_up{source}`: 1 reached, 0 installed but unreachable."""
    family = GaugeMetricFamily(
        "ssh_access_ban_source_up",
        "1 when the ban tool was reached, 0 when installed but unreachable.",
        labels=["source"],
    )
    family.add_metric([source], 1.0 if up else 0.0)
    return family


def banned_addresses(source: str, counts: dict[str, int]) -> GaugeMetricFamily:
    """`ssh_access_banned_addresses{source, jail}`: addresses banned now per jail, set or scenario."""
    family = GaugeMetricFamily(
        "ssh_access_banned_addresses",
        "Addresses the tool bans now, per jail, set or scenario.",
        labels=["source", "jail"],
    )
    for jail, count in sorted(counts.items()):
        family.add_metric([source, jail], count)
    return family


def ban_source(source: str, up: bool, counts: dict[str, int]) -> Iterator[GaugeMetricFamily]:
    """Both shared families for a tool that is installed."""
    yield source_up(source, up)
    yield banned_addresses(source, counts)


class ErrorLog:
    """Logs why a tool is unreachable when that changes, and when it is back: not once per scrape."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._last = ""

    def update(self, error: str) -> None:
        if error == self._last:
            return
        if error:
            log.warning("ban source unreachable", extra={"source": self.source, "err": error})
        else:
            log.info("ban source reachable again", extra={"source": self.source})
        self._last = error


class _Snapshot(Protocol):
    @property
    def error(self) -> str: ...


S = TypeVar("S", bound=_Snapshot)
S_co = TypeVar("S_co", bound=_Snapshot, covariant=True)


class _Reader(Protocol[S_co]):
    def read(self) -> S_co: ...


class BanCollector(Generic[S]):
    """One snapshot per scrape: read it, log a change in reachability, render it."""

    def __init__(self, source: str, reader: _Reader[S], render: Callable[[S], Iterable[Metric]]) -> None:
        self.reader = reader
        self.render = render
        self.errors = ErrorLog(source)

    def collect(self) -> Iterator[Metric]:
        snapshot = self.reader.read()
        self.errors.update(snapshot.error)
        yield from self.render(snapshot)
