"""The auth-log counters: fed record by record by a tailer thread, read as a snapshot by scrapes.

Decisions the metrics rest on:
- Only addresses count as addresses: a connection's token that is no IPv4 or IPv6 address (a forged or
  garbled line) gives its event no address (the pid map's, if any), so it never becomes a top-offender
  label or a pid-map entry. Listener lines keep theirs as written (a penalty names a network).
- Addresses carry over by pid: a per-connection line without an address (`kex_exchange_identification:
  ...`, `User x not allowed because account is locked`) gets the address an earlier line of the same pid
  gave. The map keeps two generations of PID_MAP_SIZE pids (remember()); listener lines (drops,
  throttling, penalties) neither feed nor read it, since the listener's pid serves every connection.
- MaxStartups drops are exact whatever the LogLevel and version: within an episode (8.4-9.9, `beginning`
  .. `exited`) the episode's count is max(drop lines seen, largest total an `in ... N connections
  dropped` / `exited ... N connections dropped` line gave), and only its increase is added, so a drop
  logged at VERBOSE and also counted by the summary is counted once, and drops hidden at INFO are still
  counted. Outside an episode (<= 8.3, 10.0+) each drop line counts one and `Maxstartups logging
  rate-limited: additional N connections dropped` adds the N lines sshd did not write.
- Throttling is 1 between `beginning` and `exited`. 10.0+ logs neither: there, throttling is 1 while a
  MaxStartups drop was seen in the last THROTTLING_HOLD_SECONDS.
- Penalties count penalties put in force (`new ... active`, `activating ...`); a deferred one counts
  when it activates. Connections refused under a penalty are counted apart (penalty_dropped), exactly
  as MaxStartups ones are (drop lines plus `PerSourcePenalties logging rate-limited: additional N`).
- Top offenders count FAILURE_EVENTS. preauth_disconnect is left out: every client that hangs up before
  logging in produces one, it would rank busy legitimate hosts. One wrong password may show as several
  events (auth_failed, pam_auth_failure): the ranking, not the count, is the point.
- Times are the log's (epoch seconds); lines without one (bare `sshd -E` lines) take the wall clock.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from exporter.sources.authlog.classify import SSHD_IDENTS, Note, classify
from exporter.sources.authlog.fast import fastscan, linescan
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.ops import NOT_EVENTS, NOTE, UNMATCHED, Op, op_of
from exporter.sources.authlog.records import AUTH_METHODS, EVENTS, PENALTY_REASONS, Event, SyslogRecord
from exporter.sources.authlog.topk import SlidingTopK

_ZONE = re.compile(r"[0-9A-Za-z._@-]{1,15}")  # an interface name or number, as getnameinfo appends it


def is_address(token: str) -> bool:
    """Whether `token` is an IPv4 or IPv6 address as sshd prints one (IPv6 with a `%zone` allowed).

    Only addresses may become top-offender labels or pid-map entries: a forged or garbled line's token
    (`192.0.2.\\ufffd(9`, `::ffff:::ffff:...`, a host name) counts its event without one. inet_pton is as
    strict as ipaddress (four decimal octets, no leading zeros) at a thirtieth of its cost; it runs once
    per connection, in this compiled module, so a dotted quad costs one C call (docs/benchmarks.md).
    """
    if ":" not in token:
        family = socket.AF_INET
        host = token
    else:
        family = socket.AF_INET6
        host, percent, zone = token.partition("%")
        if percent and _ZONE.fullmatch(zone) is None:
            return False
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):  # ValueError: a NUL or a character that is not ASCII
        return False
    return True


FAILURE_EVENTS = frozenset(
    {
        "auth_failed",
        "invalid_user",
        "pam_auth_failure",
        "max_auth_tries_exceeded",
        "user_not_allowed",
        "root_login_refused",
    }
)
LISTENER_EVENTS = frozenset(
    {
        "maxstartups_drop",
        "maxstartups_throttling_begin",
        "maxstartups_throttling_end",
        "penalty_drop",
        "penalty_applied",
    }
)
# The chunk scanner: linescan where mypyc compiled it, else fastscan's regex (faster in pure Python).
scan = linescan.scan if linescan.COMPILED else fastscan.scan
# What count_many does with each op name (see ops.py).
_EVENT, _FAILURE, _LISTENER, _NOT_EVENT = 0, 1, 2, 3
_ROLES: dict[str, int] = {
    **dict.fromkeys(EVENTS, _EVENT),
    **dict.fromkeys(FAILURE_EVENTS, _FAILURE),
    **dict.fromkeys(LISTENER_EVENTS, _LISTENER),
    **dict.fromkeys(NOT_EVENTS, _NOT_EVENT),
}
PID_MAP_SIZE = 4096
THROTTLING_HOLD_SECONDS = 60.0
TOP_OFFENDERS_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class SourceHealth:
    """How one source (a file path, `journal`) is doing."""

    lines_read: int = 0
    lines_unmatched: int = 0
    rotations: int = 0
    last_event_time: float | None = None


@dataclass(frozen=True)
class StatsSnapshot:
    """Plain data for the collector: every closed-set key is present, from 0."""

    events: Mapping[str, int]
    auth_failures: Mapping[str, int]
    maxstartups_dropped: int
    maxstartups_throttling: bool
    penalties: Mapping[str, int]
    penalty_dropped: int
    top_offenders: tuple[tuple[str, int], ...]
    sources: Mapping[str, SourceHealth]


class _Source:
    __slots__ = ("last_event_time", "lines_read", "lines_unmatched", "rotations")

    def __init__(self) -> None:
        self.lines_read = 0
        self.lines_unmatched = 0
        self.rotations = 0
        self.last_event_time: float | None = None


_FOREIGN = Note()  # not a log line, or another program's: read, but neither an event nor unmatched


def _resolved(event: Event, addr: str | None) -> Event:
    """The event with the address counting gave it (carried over by pid), as replay prints it."""
    if addr == event.address:
        return event
    return Event(event.event, addr, event.user, event.method, event.pid, event.time)


class Stats:
    """Aggregates classified records; `feed`/`feed_batch` from one thread, `snapshot` from any."""

    def __init__(self, top_n: int = 10, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._events = dict.fromkeys(EVENTS, 0)
        self._auth_failures = dict.fromkeys(AUTH_METHODS, 0)
        self._penalties = dict.fromkeys(PENALTY_REASONS, 0)
        self._penalty_dropped = 0
        self._dropped = 0
        self._episode_open = False
        self._episode_lines = 0
        self._episode_summary = 0
        self._last_loose_drop: float | None = None
        self._pids: dict[int, str] = {}  # the pid map's young generation
        self._old_pids: dict[int, str] = {}  # and its previous one
        self._top = SlidingTopK(top_n, TOP_OFFENDERS_WINDOW_SECONDS)
        self._sources: dict[str, _Source] = {}
        self.latest_time: float | None = None  # newest event time seen: where replay ends its window

    def source(self, name: str) -> None:
        """Declare a source so its health series exist (at 0) before its first line."""
        with self._lock:
            self._sources.setdefault(name, _Source())

    def set_rotations(self, name: str, total: int) -> None:
        """The tailer's count of rotations (renames and truncations) of the file behind `name`."""
        with self._lock:
            self._sources.setdefault(name, _Source()).rotations = total

    def feed(self, record: SyslogRecord | None, source: str) -> Event | None:
        """Count one line read from `source` (None: not a log line); return its event, address resolved."""
        return self.feed_batch((record,), source)[0]

    def feed_batch(self, records: Sequence[SyslogRecord | None], source: str) -> list[Event | None]:
        """Count lines read from `source` under one lock; their events (or None), in order.

        Tailers deliver lines in batches: one lock and one health lookup per batch, not per line.
        """
        outcomes = [
            _FOREIGN if r is None or (r.ident is not None and r.ident not in SSHD_IDENTS) else classify(r)
            for r in records
        ]
        ops = [op for outcome in outcomes if outcome is not _FOREIGN and (op := op_of(outcome, self._clock))]
        resolved: list[str | None] = []
        with self._lock:
            health = self._health(source)
            health.lines_read += len(records)
            self.count_many(ops, health, resolved)
        addresses = iter(resolved)
        return [
            _resolved(outcome, next(addresses)) if isinstance(outcome, Event) else None
            for outcome in outcomes
        ]

    def feed_text(self, text: str, source: str, framer: Framer) -> None:
        """Count whole lines of text read from `source` (`\\n`-separated, a last one may lack it).

        The same counts as feed_batch(framer.parse_many(lines)), but without a record or an event per
        line (fastscan); the scan runs before the lock is taken, so a scrape waits only for the counting.
        """
        lines = text.count("\n") + (1 if text and text[-1] != "\n" else 0)
        ops = scan(text, framer, self._clock)
        with self._lock:
            health = self._health(source)
            health.lines_read += lines
            self.count_many(ops, health)

    def _health(self, source: str) -> _Source:
        health = self._sources.get(source)
        if health is None:
            health = self._sources[source] = _Source()
        return health

    def count_many(
        self, ops: Iterable[Op], health: _Source, resolved: list[str | None] | None = None
    ) -> None:
        """Count ops (see ops.py) of `health`'s source, in order: the counting rules of both paths.

        Events without an address get the one their pid's earlier lines gave; `resolved` (if given)
        receives each event's address after that. Caller holds the lock.
        """
        events, methods, roles, top = self._events, self._auth_failures, _ROLES, self._top
        latest, last = self.latest_time, health.last_event_time
        for name, given, method, pid, when, reason, count in ops:
            addr = given
            role = roles[name]  # one lookup instead of three set tests
            if role == _NOT_EVENT:
                if name == NOTE:
                    self._note(cast(int, pid), cast(str, addr))
                elif name == UNMATCHED:
                    health.lines_unmatched += 1
                else:
                    self._summary(name, count or 0, when)
                continue
            if role == _LISTENER:
                pass  # a listener line keeps its address as written: a penalty names a network
            elif pid is not None:  # the connection's address (inline: the hot path of every event)
                known = self.known(pid)
                if addr is None or (name == "login_grace_timeout" and known is not None):
                    addr = known  # 9.8.0 swapped a timeout's from/to: trust the connection's own lines
                elif addr != known:  # validated once per connection, not per line
                    if is_address(addr):
                        self.remember(pid, addr)
                    else:
                        addr = known
            elif addr is not None and not is_address(addr):
                addr = None
            events[name] += 1
            last = when
            if latest is None or when > latest:
                latest = when
            if role == _FAILURE:
                if name == "auth_failed" and method is not None:
                    methods[method] += 1
                if addr is not None:
                    top.add(addr, when)
            elif role == _LISTENER:
                self._listener_event(name, when, reason, count)
            if resolved is not None:
                resolved.append(addr)
        self.latest_time, health.last_event_time = latest, last

    def _note(self, pid: int, addr: str) -> None:
        """A known line naming its connection's address: remembered if it is one. Caller holds the lock."""
        if addr == self.known(pid) or is_address(addr):
            self.remember(pid, addr)

    def known(self, pid: int) -> str | None:
        """The address the connection of `pid` gave, if it is still remembered. Caller holds the lock."""
        addr = self._pids.get(pid)
        return self._old_pids.get(pid) if addr is None else addr

    def remember(self, pid: int, addr: str) -> None:
        """The connection of `pid` is from `addr`. Caller holds the lock.

        Two generations of PID_MAP_SIZE pids: when the young one is full it becomes the old one and the
        old one goes, so a pid is remembered at least as long as in an LRU of PID_MAP_SIZE, and at most
        2 * PID_MAP_SIZE are held (plain dicts: an OrderedDict's bookkeeping cost more than counting).
        """
        pids = self._pids
        pids[pid] = addr
        if len(pids) >= PID_MAP_SIZE:
            self._old_pids, self._pids = pids, {}

    def pid_map(self) -> dict[int, str]:
        """The pids remembered and their addresses (for tests and debugging)."""
        with self._lock:
            return {**self._old_pids, **self._pids}

    def _listener_event(self, name: str, when: float, reason: str | None, count: int | None) -> None:
        if name == "maxstartups_drop":
            self._drop_line(when)
        elif name == "maxstartups_throttling_begin":
            self._episode_open, self._episode_lines, self._episode_summary = True, 0, 0
        elif name == "maxstartups_throttling_end":
            self._episode_total(count or 0)
            self._episode_open = False
        elif name == "penalty_drop":
            self._penalty_dropped += 1
        elif name == "penalty_applied" and count:
            self._penalties[reason or "other"] += 1

    def _episode_known(self) -> int:
        return max(self._episode_lines, self._episode_summary)

    def _drop_line(self, when: float) -> None:
        if not self._episode_open:
            self._dropped += 1
            self._last_loose_drop = when
            return
        before = self._episode_known()
        self._episode_lines += 1
        self._dropped += self._episode_known() - before

    def _episode_total(self, total: int) -> None:
        """An `in`/`exited` line's episode total; one without `beginning` seen opens the episode."""
        if not self._episode_open:
            self._episode_open, self._episode_lines, self._episode_summary = True, 0, 0
        before = self._episode_known()
        self._episode_summary = max(self._episode_summary, total)
        self._dropped += self._episode_known() - before

    def _summary(self, kind: str, count: int, when: float) -> None:
        """A DropSummary's counts (see classify.DropSummary for the kinds)."""
        if kind == "episode":
            self._episode_total(count)
        elif kind == "penalty_rate_limited":
            self._penalty_dropped += count
        else:
            self._dropped += count
            self._last_loose_drop = when

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        """A consistent copy; `now` ends the top-offender window and the 10.0+ throttling hold."""
        if now is None:
            now = self._clock()
        with self._lock:
            loose = self._last_loose_drop
            throttling = self._episode_open or (loose is not None and now - loose < THROTTLING_HOLD_SECONDS)
            return StatsSnapshot(
                events=dict(self._events),
                auth_failures=dict(self._auth_failures),
                maxstartups_dropped=self._dropped,
                maxstartups_throttling=throttling,
                penalties=dict(self._penalties),
                penalty_dropped=self._penalty_dropped,
                top_offenders=tuple(self._top.top(now)),
                sources={
                    name: SourceHealth(s.lines_read, s.lines_unmatched, s.rotations, s.last_event_time)
                    for name, s in self._sources.items()
                },
            )
