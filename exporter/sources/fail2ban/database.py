"""fail2ban's sqlite database, read-only: jails and their current bans when the socket is unreachable.

Schema v4 (0.11+) keeps the latest ban per address and jail in `bips(ip, jail, timeofban, bantime, ...)`;
a ban is current when `timeofban + bantime > now OR bantime <= -1` (fail2ban's own query), where -1
is permanent and -2 means "unknown, from before the upgrade": fail2ban then uses the jail's bantime.
Schema v2 (0.9, 0.10) has only `bans(jail, ip, timeofban, data)`: every ban lasted the jail's bantime.
The database does not hold bantimes, so callers pass one (the socket's, or fail2ban's default).

`now` is bound as an integer: `strftime('%s','now')` is TEXT, and in sqlite an integer compares less
than any text, which would make every ban look expired. The file is opened with `mode=ro`, which
works while fail2ban writes it, and never creates a missing file.

The current bans and addresses (the watchlist, `diagnose`, the firewall's enforcement check) come from
the rows of the last read (`ban_rows`), kept while the file and its -wal and -journal are unchanged: a
host with 100,000 bans would otherwise read them all at every scrape. A ban expires by the clock, with
no write, so the rows kept are every one that is current or may still be at a later time (a row never
becomes current without a write), and `is_current` applies fail2ban's condition again at each call; the
ban counts of `read_database` (the fail2ban collector's fallback) come from the same rows. One read is
kept per database path.
"""

from __future__ import annotations

import array
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.sources.firewall.addresses import AddressIndex
from exporter.sources.host.singleflight import shared_call

if TYPE_CHECKING:
    import sqlite3

DEFAULT_BANTIME = 600  # fail2ban's default bantime, for bans whose jail bantime is unknown
_BUSY_TIMEOUT = 1.0
_KEPT_READS = 4  # databases whose rows are kept (a host has one; a bound, not a tuning)


class DatabaseError(Exception):
    """The file is missing, not a fail2ban database, or of an unknown schema."""


@dataclass(frozen=True)
class DbJail:
    name: str
    enabled: bool
    current_bans: int
    permanent_bans: int


@dataclass(frozen=True)
class DbSnapshot:
    version: int
    jails: tuple[DbJail, ...]


# One jail's rows that are current now or may be later (bantime -2 depends on the caller's jail bantime):
# is_current decides at each call. v2 keeps every ban: its latest one per address decides. fail2ban
# writes integer times; a row holding anything else (a hand-edited database) is left out rather than
# compared with the clock.
_NUMBER = "IN ('integer', 'real')"
_ROWS_V4 = f"""SELECT ip, timeofban AS banned, bantime FROM bips WHERE jail = :jail
              AND typeof(timeofban) {_NUMBER} AND typeof(bantime) {_NUMBER}
              AND (bantime = -1 OR bantime = -2 OR (bantime >= 0 AND timeofban + bantime > :now))"""
_ROWS_V2 = f"""SELECT ip, MAX(timeofban) AS banned, -2 AS bantime FROM bans WHERE jail = :jail
              AND typeof(timeofban) {_NUMBER} GROUP BY ip"""
# The rows of one of those queries by column, each a JSON array, in the rows' order. sqlite3 makes a tuple
# and three objects per row (175 ms for 100,000 rows); the arrays cost 136 ms to build and decode, and
# under an attack fail2ban bans every few seconds: every ban is a new read. An address is
# text as fail2ban writes it (anything else as sqlite quotes it: no address, never a JSON error). A time
# fail2ban wrote is an integer; a fractional one (hand-edited) goes as 17-digit text, since sqlite's JSON
# keeps 15 digits and writes infinity as `Inf`, which no JSON reader takes. A bantime is whole seconds
# (sqlite's cast also bounds an infinite one, where int() raised).
_COLUMNS = """SELECT json_group_array(CASE typeof(ip) WHEN 'text' THEN ip ELSE quote(ip) END),
                     json_group_array(CASE typeof(banned) WHEN 'real' THEN printf('%!.17g', banned)
                                      ELSE banned END),
                     json_group_array(CAST(bantime AS INTEGER))
              FROM ({rows})"""


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; a missing file is an error rather than a new empty database."""
    # Imported here, when a database is first read: it is the fallback most hosts never open, and
    # the module costs about 1.5 MB of resident memory.
    import sqlite3  # noqa: PLC0415

    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT, check_same_thread=False)


def schema_version(conn: sqlite3.Connection) -> int:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "fail2banDb" not in tables or "jails" not in tables:
        raise DatabaseError("not a fail2ban database (no fail2banDb/jails tables)")
    row = conn.execute("SELECT version FROM fail2banDb LIMIT 1").fetchone()
    version = int(row[0]) if row else 0
    if version >= 4 and "bips" in tables:
        return 4
    if version >= 2 and "bans" in tables:
        return 2  # v3 (a transient upgrade step) also has bans with bantime; v2's query holds for it
    raise DatabaseError(f"unsupported fail2ban database schema version {version}")


def _stamp(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _unknown(bantimes: dict[str, int] | None, jail: str) -> int:
    """The bantime of the jail's bans the database cannot date (-2, and every v2 ban); forever as 2**62."""
    unknown = (bantimes or {}).get(jail, DEFAULT_BANTIME)
    return 1 << 62 if unknown < 0 else unknown  # the jail bans forever: each of its bans is current


def _per_jail(path: Path, now: float | None, queries: tuple[str, str]) -> tuple[int, list[JailRows]]:
    """Run queries[0] (v4) or queries[1] (v2) per jail: (schema version, each jail's rows by column). The
    columns come from sqlite as JSON arrays (_COLUMNS): no tuple per row is ever made (fetchall's list of
    100,000 of them was 18 MB held at once beside the columns, which left the heap fragmented)."""
    stamp = _stamp(now)
    import sqlite3  # noqa: PLC0415 (see connect_readonly)

    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: {exc}") from exc
    try:
        version = schema_version(conn)
        jails = conn.execute("SELECT name, enabled FROM jails ORDER BY name").fetchall()
        query = _COLUMNS.format(rows=queries[0] if version == 4 else queries[1])
        result = []
        for name, enabled in jails:
            params = {"now": stamp, "unknown": _unknown(None, name), "jail": name}
            ips, banned_at, bantimes = conn.execute(query, params).fetchone()
            result.append(JailRows.of_json(str(name), bool(enabled), ips, banned_at, bantimes))
        return version, result
    except sqlite3.Error as exc:  # "file is not a database", locked beyond the busy timeout, ...
        raise DatabaseError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def read_database(path: Path, bantimes: dict[str, int] | None = None, now: float | None = None) -> DbSnapshot:
    """Jails and current ban counts; bantimes maps jail -> bantime for bans the database cannot date.
    Counted from the kept rows (ban_rows) with `is_current`, the rule the watchlist and the firewall's
    enforcement check use: one rule, not a second one in SQL."""
    stamp = _stamp(now)
    read = ban_rows(path, stamp)
    jails = (
        DbJail(
            jail.name, jail.enabled, sum(1 for _ in jail.current(bantimes, stamp)), jail.bantimes.count(-1)
        )
        for jail in read.jails
    )
    return DbSnapshot(read.version, tuple(jails))


@dataclass(frozen=True, slots=True)
class DbBan:
    """One current ban; `expires` None: permanent."""

    jail: str
    ip: str
    time: float
    expires: float | None


Row = tuple[str, Any, Any]  # (ip, timeofban, bantime) as the database holds them; bantime -2: unknown


def is_current(timeofban: float, bantime: float, unknown: int, now: int) -> bool:
    """fail2ban's own condition for one row: current while `timeofban + bantime > now`, always for -1
    (permanent), with the jail's bantime for -2 (unknown, from before the v4 upgrade: `unknown`, _unknown)."""
    if bantime == -1:
        return True
    if bantime == -2:
        return timeofban + unknown > now
    return bantime >= 0 and timeofban + bantime > now


@dataclass(frozen=True, eq=False)
class JailRows:
    """One jail's rows, by column: 100,000 bans take the addresses and 16 bytes each (about 9 MB), where a
    tuple and two numbers per row took 18 MB, and a DbBan each another 11."""

    name: str
    enabled: bool
    ips: tuple[str, ...]
    banned_at: array.array[float]
    bantimes: array.array[int]  # -1: permanent, -2: unknown (the jail's bantime)

    def first_expiry(self, positions: Iterable[int], bantimes: dict[str, int] | None) -> int:
        """The first moment one of these rows stops being current (2**62: none expires)."""
        unknown = _unknown(bantimes, self.name)
        first = 1 << 62
        for position in positions:
            bantime = self.bantimes[position]
            seconds = unknown if bantime == -2 else bantime
            if bantime != -1:
                first = min(first, int(self.banned_at[position] + seconds))
        return first

    @classmethod
    def of_json(cls, name: str, enabled: bool, ips: str, banned_at: str, bantimes: str) -> JailRows:
        """From _COLUMNS' three JSON arrays: the addresses, the ban times, the bantimes."""
        return cls(
            name, enabled, tuple(json.loads(ips)), array.array("d", map(float, json.loads(banned_at))),
            array.array("q", json.loads(bantimes)),
        )  # fmt: skip

    def current(self, bantimes: dict[str, int] | None, now: int) -> Iterator[int]:
        """The positions of the rows current at `now`, in the database's order."""
        unknown = _unknown(bantimes, self.name)
        for position, (banned_at, bantime) in enumerate(zip(self.banned_at, self.bantimes, strict=True)):
            if is_current(banned_at, bantime, unknown, now):
                yield position

    def ban(self, position: int, bantimes: dict[str, int] | None) -> DbBan:
        seconds = (bantimes or {}).get(self.name, DEFAULT_BANTIME)
        return _ban(
            self.name, (self.ips[position], self.banned_at[position], self.bantimes[position]), seconds
        )


@dataclass(frozen=True, eq=False)
class BanRows:
    """One read of a database: per jail, the rows current at `read_at` or later.

    Asked about a time before `read_at`, it may miss rows that were current then: ban_rows reads again."""

    signature: tuple[tuple[int, int, int] | None, ...]
    read_at: int
    version: int
    jails: tuple[JailRows, ...]
    # addresses()' last answer: {bantimes: (asked at, valid until, sets)}
    _addresses: dict[tuple[tuple[str, int], ...], tuple[int, int, dict[str, tuple[str, ...]]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def addresses(self, bantimes: dict[str, int] | None, now: int) -> dict[str, tuple[str, ...]]:
        """Each enabled jail's addresses banned at `now` (not before read_at). The same sets as the last
        call's while no ban of them has expired since (asked each scrape: 100,000 addresses cost
        about 40 ms to gather, and the enforcement check compares them with the last scrape's)."""
        key = tuple(sorted((bantimes or {}).items()))
        with self._lock:
            kept = self._addresses.get(key)
        if kept is not None and kept[0] <= now < kept[1]:
            return kept[2]
        found: dict[str, tuple[str, ...]] = {}
        until = 1 << 62
        for jail in self.jails:
            if jail.enabled:
                positions = list(jail.current(bantimes, now))
                # each address once (bips' key is (ip, jail); the v2 query groups by ip), so no set is
                # made: the rows' own tuple when all are current (a set of 100,000 addresses is 4 MB)
                every = len(positions) == len(jail.ips)
                found[jail.name] = jail.ips if every else tuple(jail.ips[p] for p in positions)
                until = min(until, jail.first_expiry(positions, bantimes))
        with self._lock:
            self._addresses.clear()  # one answer kept (the dict itself: the dataclass is frozen)
            self._addresses[key] = (now, until, found)
        return found

    def bans(
        self, bantimes: dict[str, int] | None, now: int, only: Collection[str] | None = None
    ) -> list[DbBan]:
        """Every enabled jail's bans current at `now` (not before read_at), in the database's order; with
        `only`, those of these addresses alone (a DbBan is made for each ban returned, not kept)."""
        found: list[DbBan] = []
        for jail in self.jails:
            if not jail.enabled:
                continue
            if only is None:
                found.extend(jail.ban(position, bantimes) for position in jail.current(bantimes, now))
                continue
            unknown = _unknown(bantimes, jail.name)
            for position, ip in enumerate(jail.ips):  # the address first: a set lookup, not a date check
                if ip in only and is_current(jail.banned_at[position], jail.bantimes[position], unknown, now):
                    found.append(jail.ban(position, bantimes))
        return found

    @cached_property
    def index(self) -> AddressIndex:
        """The address of every row kept (some no longer current), searchable by network: made once per
        read, for the watchlist's and diagnose's questions (`overlapping`)."""
        return AddressIndex(ip for jail in self.jails for ip in jail.ips)


def _ban(jail: str, row: Row, unknown: int) -> DbBan:
    """The ban of one row; `unknown`: the jail's bantime, for -2 (negative: forever)."""
    ip, banned_at, bantime = row
    seconds = unknown if bantime == -2 else int(bantime)
    return DbBan(jail, str(ip), float(banned_at), None if seconds < 0 else float(banned_at) + seconds)


def _signature(path: Path) -> tuple[tuple[int, int, int] | None, ...]:
    """(inode, size, mtime) of the database and its -wal and -journal: any write moves one of them."""
    found: list[tuple[int, int, int] | None] = []
    for name in (str(path), f"{path}-wal", f"{path}-journal"):
        try:
            stat = os.stat(name)
        except OSError:
            found.append(None)
        else:
            found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


_reads: dict[Path, BanRows] = {}
_reads_lock = threading.Lock()


def ban_rows(path: Path, now: float | None = None) -> BanRows:
    """The rows of the database at `path` that may be current at `now` (default: the clock): those of the
    last read while the files are unchanged (stat signature taken before reading: a write during the
    read moves it, and the next call reads again)."""
    stamp, signature = _stamp(now), _signature(path)

    def kept_or_read() -> BanRows:
        with _reads_lock:
            kept = _reads.get(path)
        if kept is not None and kept.signature == signature and kept.read_at <= stamp:
            return kept
        return _read(path, signature, stamp)

    # after each ban the firewall's check, the watchlist and the fail2ban collector ask at once: one read
    return shared_call(("fail2ban.ban_rows", path, signature, stamp), kept_or_read)


def _read(path: Path, signature: tuple[tuple[int, int, int] | None, ...], stamp: int) -> BanRows:
    version, jails = _per_jail(path, stamp, (_ROWS_V4, _ROWS_V2))
    read = BanRows(signature, stamp, version, tuple(jails))
    with _reads_lock:
        _reads.pop(path, None)
        _reads[path] = read
        while len(_reads) > _KEPT_READS:
            del _reads[next(iter(_reads))]
    return read


def current_addresses(
    path: Path, bantimes: dict[str, int] | None = None, now: float | None = None
) -> dict[str, tuple[str, ...]]:
    """Each enabled jail's currently banned addresses, each once (for the firewall's enforcement check)."""
    stamp = _stamp(now)
    return ban_rows(path, stamp).addresses(bantimes, stamp)


def current_bans(path: Path, bantimes: dict[str, int] | None = None, now: float | None = None) -> list[DbBan]:
    """Every enabled jail's current bans with ban and expiry times (for `diagnose` and the watchlist)."""
    stamp = _stamp(now)
    return ban_rows(path, stamp).bans(bantimes, stamp)
