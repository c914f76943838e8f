"""fail2ban's sqlite database, read-only: jails and their current bans when the socket is unreachable.

Schema v4 (0.11+) keeps the latest ban per address and jail in `bips(ip, jail, timeofban, bantime, ...)`;
a ban is current when `timeofban + bantime > now OR bantime <= -1` (fail2ban's own query), where -1
is permanent and -2 means "unknown, from before the upgrade": fail2ban then uses the jail's bantime.
Schema v2 (0.9, 0.10) has only `bans(jail, ip, timeofban, data)`: every ban lasted the jail's bantime.
The database does not hold bantimes, so callers pass one (the socket's, or fail2ban's default).

`now` is bound as an integer: `strftime('%s','now')` is TEXT, and in sqlite an integer compares less
than any text, which would make every ban look expired. The file is opened with `mode=ro`, which
works while fail2ban writes it, and never creates a missing file.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

DEFAULT_BANTIME = 600  # fail2ban's default bantime, for bans whose jail bantime is unknown
_BUSY_TIMEOUT = 1.0


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


# A current v4 ban. -2 (unknown) takes the jail's bantime, :unknown.
_IS_CURRENT_V4 = """(bantime = -1 OR (bantime = -2 AND timeofban + :unknown > :now)
             OR (bantime >= 0 AND timeofban + bantime > :now))"""
# One jail's permanent and current bans.
_CURRENT_V4 = f"SELECT TOTAL(bantime = -1), TOTAL({_IS_CURRENT_V4}) FROM bips WHERE jail = :jail"
_CURRENT_V2 = "SELECT 0, COUNT(DISTINCT ip) FROM bans WHERE jail = :jail AND timeofban + :unknown > :now"
# One jail's currently banned addresses.
_ADDRESSES_V4 = f"SELECT ip FROM bips WHERE jail = :jail AND {_IS_CURRENT_V4}"
_ADDRESSES_V2 = "SELECT DISTINCT ip FROM bans WHERE jail = :jail AND timeofban + :unknown > :now"
# One jail's current bans with their times (v2 has no per-ban bantime: -2, the jail's).
_BANS_V4 = f"SELECT ip, timeofban, bantime FROM bips WHERE jail = :jail AND {_IS_CURRENT_V4}"
_BANS_V2 = (
    "SELECT ip, MAX(timeofban), -2 FROM bans WHERE jail = :jail AND timeofban + :unknown > :now GROUP BY ip"
)


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


def _per_jail(
    path: Path, bantimes: dict[str, int] | None, now: float | None, queries: tuple[str, str]
) -> tuple[int, list[tuple[str, bool, list[tuple[Any, ...]]]]]:
    """Run queries[0] (v4) or queries[1] (v2) per jail: (schema version, [(jail, enabled, rows)])."""
    bantimes = bantimes or {}
    stamp = int(time.time() if now is None else now)
    import sqlite3  # noqa: PLC0415 (see connect_readonly)

    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: {exc}") from exc
    try:
        version = schema_version(conn)
        jails = conn.execute("SELECT name, enabled FROM jails ORDER BY name").fetchall()
        query = queries[0] if version == 4 else queries[1]
        result = []
        for name, enabled in jails:
            unknown = bantimes.get(name, DEFAULT_BANTIME)
            if unknown < 0:  # the jail bans forever: each of its bans is current
                unknown = 1 << 62
            params = {"now": stamp, "unknown": unknown, "jail": name}
            result.append((str(name), bool(enabled), conn.execute(query, params).fetchall()))
        return version, result
    except sqlite3.Error as exc:  # "file is not a database", locked beyond the busy timeout, ...
        raise DatabaseError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def read_database(path: Path, bantimes: dict[str, int] | None = None, now: float | None = None) -> DbSnapshot:
    """Jails and current ban counts; bantimes maps jail -> bantime for bans the database cannot date."""
    version, jails = _per_jail(path, bantimes, now, (_CURRENT_V4, _CURRENT_V2))
    result = []
    for name, enabled, rows in jails:
        permanent, current = rows[0]
        result.append(DbJail(name, enabled, int(current), int(permanent)))
    return DbSnapshot(version, tuple(result))


def current_addresses(
    path: Path, bantimes: dict[str, int] | None = None, now: float | None = None
) -> dict[str, frozenset[str]]:
    """Each enabled jail's currently banned addresses (for the firewall's enforcement check)."""
    _, jails = _per_jail(path, bantimes, now, (_ADDRESSES_V4, _ADDRESSES_V2))
    return {name: frozenset(str(row[0]) for row in rows) for name, enabled, rows in jails if enabled}


@dataclass(frozen=True)
class DbBan:
    """One current ban; `expires` None: permanent."""

    jail: str
    ip: str
    time: float
    expires: float | None


def current_bans(path: Path, bantimes: dict[str, int] | None = None, now: float | None = None) -> list[DbBan]:
    """Every enabled jail's current bans with ban and expiry times (for `diagnose` and the watchlist)."""
    _, jails = _per_jail(path, bantimes, now, (_BANS_V4, _BANS_V2))
    found = []
    for name, enabled, rows in jails:
        if not enabled:
            continue
        unknown = (bantimes or {}).get(name, DEFAULT_BANTIME)
        for ip, banned_at, bantime in rows:
            seconds = unknown if bantime == -2 else int(bantime)
            expires = None if seconds < 0 else float(banned_at) + seconds
            found.append(DbBan(name, str(ip), float(banned_at), expires))
    return found
