"""Families every ban-source collector shares (fail2ban, sshguard, denyhosts, crowdsec); no collector here.

Each collector emits them with its own `source` value, so the label sets never collide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


class _Snapshot(Protocol):
    @property
    def installed(self) -> bool: ...

    @property
    def up(self) -> bool: ...

    @property
    def error(self) -> str: ...


@dataclass(frozen=True)
class BanState:
    """What a ban collector's last read found: the tool absent, up, or down and why.

    `reason` is empty when the tool is up or absent; when it is down, the whole chain of causes as the
    source gave it (never cut to its first words), e.g. `local API http://127.0.0.1:8080: connect to
    127.0.0.1:8080: Connection refused`. The landing page shows it per tool; the log carries the same.
    """

    source: str
    installed: bool
    up: bool
    reason: str = ""

    @property
    def status(self) -> str:
        """`absent`, `up` or `down`: the words the log and the landing page use."""
        return "absent" if not self.installed else "up" if self.up else "down"


NO_REASON = "no reason given"


def ban_state(source: str, snapshot: _Snapshot) -> BanState:
    """The one rule for every ban tool: absent is not down; a tool that is down always has a reason."""
    if not snapshot.installed:
        return BanState(source, False, False)
    if snapshot.up:
        return BanState(source, True, True)
    return BanState(source, True, False, snapshot.error or NO_REASON)


class StateLog:
    """Logs a ban tool's state when it changes, not once per scrape: absent (info, once at start),
    unreachable with its reason (warning, again when the reason changes), reachable again or newly
    present (info). A tool up from the start logs nothing."""

    def __init__(self) -> None:
        self._last: BanState | None = None

    def update(self, state: BanState) -> None:
        last, self._last = self._last, state
        if state == last:
            return
        fields: dict[str, object] = {"source": state.source}
        if state.status == "absent":
            log.info("ban source absent", extra=fields)
        elif state.status == "down":
            log.warning("ban source unreachable", extra={**fields, "err": state.reason})
        elif last is not None and last.status == "down":
            log.info("ban source reachable again", extra=fields)
        elif last is not None:
            log.info("ban source present", extra=fields)


S = TypeVar("S", bound=_Snapshot)
S_co = TypeVar("S_co", bound=_Snapshot, covariant=True)


class _Reader(Protocol[S_co]):
    def read(self) -> S_co: ...


class BanCollector(Generic[S]):
    """One snapshot per scrape: read it, log a change of state, render it when the tool is installed.

    A tool that is down is a report (`ban_source_up 0`), not a collector failure: `state` keeps the
    last read's BanState (None before the first scrape) for views that show each tool and its reason.
    An absent tool renders nothing, so hosts that never had it neither alert nor show it down.
    """

    def __init__(self, source: str, reader: _Reader[S], render: Callable[[S], Iterable[Metric]]) -> None:
        self.source = source
        self.reader = reader
        self.render = render
        self.state: BanState | None = None
        self._log = StateLog()

    def collect(self) -> Iterator[Metric]:
        snapshot = self.reader.read()
        self.state = ban_state(self.source, snapshot)
        self._log.update(self.state)
        if self.state.installed:
            yield from self.render(snapshot)
