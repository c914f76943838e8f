"""fail2ban's database is read again only when it changed; the clock still expires its bans at each call."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.fail2ban import database
from exporter.sources.fail2ban.database import current_addresses, current_bans, read_database
from tests.builders import V2_SCHEMA, V4_SCHEMA, make_db

NOW = 1_790_000_000
ROWS = [
    ("192.0.2.1", "sshd", NOW - 100, 600),  # current until NOW + 500
    ("192.0.2.2", "sshd", NOW - 700, 600),  # expired
    ("192.0.2.3", "sshd", NOW - 10**6, -1),  # permanent
    ("192.0.2.4", "sshd", NOW - 100, -2),  # the jail's bantime (600 unless told)
    ("2001:db8::5", "sshd", NOW - 10, 600),
]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths the database module opens, one entry per connection."""
    seen: list[Path] = []
    connect = database.connect_readonly

    def counting(path: Path) -> sqlite3.Connection:
        seen.append(path)
        return connect(path)

    monkeypatch.setattr(database, "connect_readonly", counting)
    return seen


def _addresses(path: Path, now: int, bantimes: dict[str, int] | None = None) -> set[str]:
    return {ban.ip for ban in current_bans(path, bantimes, now=now)}


def test_unchanged_database_is_read_once(tmp_path: Path, opened: list[Path]) -> None:
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    first = current_bans(db, now=NOW)
    assert current_bans(db, now=NOW + 1) == first
    assert current_addresses(db, now=NOW + 2) == {"sshd": tuple(ban.ip for ban in first)}
    assert opened == [db]


def test_a_ban_expires_by_the_clock_without_a_write(tmp_path: Path, opened: list[Path]) -> None:
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    assert _addresses(db, NOW + 499) == {"192.0.2.1", "192.0.2.3", "192.0.2.4", "2001:db8::5"}
    assert _addresses(db, NOW + 500) == {"192.0.2.3", "2001:db8::5"}  # 192.0.2.1 and the -2 ban: 600 s
    assert current_addresses(db, now=NOW + 590) == {"sshd": ("192.0.2.3",)}
    assert len(opened) == 1


def test_bantimes_apply_to_the_kept_rows(tmp_path: Path, opened: list[Path]) -> None:
    """-2 takes the caller's jail bantime at each call (the socket's, or fail2ban's default)."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    assert "192.0.2.4" not in _addresses(db, NOW + 600)
    assert "192.0.2.4" in _addresses(db, NOW + 600, {"sshd": 6000})
    (forever,) = [ban for ban in current_bans(db, {"sshd": -1}, now=NOW + 10**7) if ban.ip == "192.0.2.4"]
    assert forever.expires is None
    assert len(opened) == 1


def test_an_earlier_time_reads_again(tmp_path: Path, opened: list[Path]) -> None:
    """The rows kept are those current at the read or later: an earlier question is asked of the file."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    assert "192.0.2.2" not in _addresses(db, NOW)
    assert "192.0.2.2" in _addresses(db, NOW - 200)
    assert len(opened) == 2


def test_a_write_is_seen(tmp_path: Path, opened: list[Path]) -> None:
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    assert "198.51.100.7" not in _addresses(db, NOW)
    assert _addresses(db, NOW + 1) == _addresses(db, NOW) and len(opened) == 1  # kept until the write
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO bips(ip, jail, timeofban, bantime) VALUES ('198.51.100.7', 'sshd', ?, 600)", (NOW,)
        )
        conn.execute("DELETE FROM bips WHERE ip = '192.0.2.3'")  # unbanned
    conn.close()
    assert _addresses(db, NOW) == {"192.0.2.1", "192.0.2.4", "2001:db8::5", "198.51.100.7"}
    assert len(opened) == 2


def test_a_write_held_in_the_wal_is_seen(tmp_path: Path, opened: list[Path]) -> None:
    """fail2ban's writes may sit in the -wal while the database file itself is unchanged."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        assert "198.51.100.8" not in _addresses(db, NOW)  # the first reader may make the -wal: a change
        kept, count = _addresses(db, NOW), len(opened)
        assert _addresses(db, NOW) == kept and len(opened) == count
        main = os.stat(db)
        writer.execute(
            "INSERT INTO bips(ip, jail, timeofban, bantime) VALUES ('198.51.100.8', 'sshd', ?, 600)", (NOW,)
        )
        writer.commit()
        assert (os.stat(db).st_size, os.stat(db).st_mtime_ns) == (main.st_size, main.st_mtime_ns)
        assert "198.51.100.8" in _addresses(db, NOW)
        assert len(opened) == count + 1
    finally:
        writer.close()


def test_another_file_in_its_place_is_read(tmp_path: Path, opened: list[Path]) -> None:
    """Same size and mtime, another inode (a restored backup): the signature changed, the kept rows
    are not consulted."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], [("192.0.2.10", "sshd", NOW, 600)])
    other = make_db(tmp_path / "other.sqlite3", V4_SCHEMA, [("sshd", 1)], [("192.0.2.11", "sshd", NOW, 600)])
    stat = os.stat(db)
    assert os.stat(other).st_size == stat.st_size
    assert _addresses(db, NOW) == {"192.0.2.10"}
    assert _addresses(db, NOW + 1) == {"192.0.2.10"} and len(opened) == 1
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, db)
    assert _addresses(db, NOW) == {"192.0.2.11"}
    assert len(opened) == 2


def test_v2_bans_through_the_kept_rows(tmp_path: Path, opened: list[Path]) -> None:
    """v2 has no per-ban bantime: an address's latest ban lasts the jail's bantime."""
    rows = [
        ("sshd", "192.0.2.1", NOW - 100),
        ("sshd", "192.0.2.1", NOW - 50),
        ("sshd", "192.0.2.2", NOW - 900),
    ]
    db = make_db(tmp_path / "v2.sqlite3", V2_SCHEMA, [("sshd", 1)], rows)
    (ban,) = current_bans(db, now=NOW)
    assert (ban.ip, ban.time, ban.expires) == ("192.0.2.1", NOW - 50, NOW + 550)
    assert current_addresses(db, {"sshd": 1000}, now=NOW) == {"sshd": ("192.0.2.1", "192.0.2.2")}
    assert current_addresses(db, now=NOW + 550) == {"sshd": ()}
    assert len(opened) == 1


def test_one_read_is_kept_per_database(tmp_path: Path) -> None:
    """Reads of many databases (a test run, a changed --collector.fail2ban.db) do not pile up."""
    for number in range(10):
        db = make_db(tmp_path / f"{number}.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS[:1])
        current_bans(db, now=NOW)
    assert len(database._reads) <= database._KEPT_READS


def test_rows_without_numeric_times_are_left_out(tmp_path: Path) -> None:
    """A hand-edited row is not compared with the clock; the address's other bans still count."""
    rows = [("192.0.2.1", "sshd", "soon", 600), ("192.0.2.2", "sshd", NOW, 600)]
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], rows)
    assert _addresses(db, NOW) == {"192.0.2.2"}
    v2 = [("sshd", "192.0.2.1", NOW - 10), ("sshd", "192.0.2.1", "later")]
    db = make_db(tmp_path / "v2.sqlite3", V2_SCHEMA, [("sshd", 1)], v2)
    assert [(ban.ip, ban.time) for ban in current_bans(db, now=NOW)] == [("192.0.2.1", NOW - 10)]


def test_the_same_sets_while_no_ban_expires(tmp_path: Path, opened: list[Path]) -> None:
    """Asked each scrape, the enforcement check's sets are gathered again only when a ban expired."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    first = current_addresses(db, now=NOW + 10)
    assert current_addresses(db, now=NOW + 499) is first
    later = current_addresses(db, now=NOW + 500)  # 192.0.2.1 expired
    assert later is not first and "192.0.2.1" not in later["sshd"]
    assert len(opened) == 1


def test_the_collectors_counts_follow_the_same_rule(tmp_path: Path, opened: list[Path]) -> None:
    """read_database (the fail2ban collector's fallback) counted in SQL beside `is_current`: one rule now,
    so its counts are the sizes of the sets the firewall's check and the watchlist see."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    for now, bantimes in ((NOW, None), (NOW + 499, None), (NOW + 500, None), (NOW + 600, {"sshd": 6000})):
        (jail,) = read_database(db, bantimes, now=now).jails
        assert jail.current_bans == len(current_addresses(db, bantimes, now=now)["sshd"])
    assert read_database(db, now=NOW).jails[0].permanent_bans == 1
    assert len(opened) == 1


def test_a_large_database_is_read_into_columns_without_holding_every_row_at_once(tmp_path: Path) -> None:
    """100,000 bans (a host under attack): what the read allocates at its peak stays near what it keeps.
    fetchall's 100,000 row tuples were 18 MB beside the 9 MB of columns, and left the heap fragmented;
    the columns' JSON texts (4 MB, each a mapping of its own) and one column's numbers as a list (3 MB
    of objects that fill arenas freed whole) are what the read holds beside them now."""
    rows = [(f"2001:db8::{i:x}", "sshd", NOW, 600) for i in range(100_000)]
    path = make_db(tmp_path / "big.sqlite3", V4_SCHEMA, [("sshd", 1)], rows)
    del rows
    tracemalloc.start()
    try:
        read = database.ban_rows(path, NOW)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(read.jails[0].ips) == 100_000
    assert kept < 12_000_000
    assert peak < kept + 8_000_000, (kept, peak)


_TIMES = st.one_of(
    st.integers(NOW - 10**6, NOW + 10**6),
    st.floats(NOW - 10**6, NOW + 10**6),
    st.sampled_from(["soon", b"\x00", float("inf"), float("-inf"), 0.1]),
)
_BANTIMES = st.one_of(st.integers(-3, 10**6), st.floats(-3, 10**6), st.just("forever"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40), _TIMES, _BANTIMES), max_size=30))
def test_the_columns_are_the_rows_a_cursor_gives(rows: list[tuple[str, object, object]]) -> None:
    """The columns sqlite hands over as JSON arrays hold what reading the rows one by one gave (any text
    as an address: quotes, backslashes, newlines, other scripts; times of every type a hand-edited
    database may hold)."""
    with tempfile.TemporaryDirectory() as directory:
        rows = list({ip: (ip, t, b) for ip, t, b in rows}.values())  # bips' key: one row per address
        db = make_db(
            Path(directory) / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], [(i, "sshd", t, b) for i, t, b in rows]
        )
        with sqlite3.connect(db) as conn:
            expected = conn.execute(database._ROWS_V4, {"now": NOW, "jail": "sshd"}).fetchall()
        conn.close()
        (jail,) = database.ban_rows(db, NOW).jails
    assert jail.ips == tuple(ip for ip, _, _ in expected)
    assert list(jail.banned_at) == [float(banned) for _, banned, _ in expected]
    assert list(jail.bantimes) == [int(bantime) for _, _, bantime in expected]


def test_infinite_times_are_read(tmp_path: Path) -> None:
    """A hand-edited infinite time or bantime (sqlite's JSON writes it `Inf`): read, never an error."""
    inf = float("inf")
    rows = [("192.0.2.1", "sshd", inf, 600), ("192.0.2.2", "sshd", NOW, inf), ("192.0.2.3", "sshd", -inf, -1)]
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], rows)
    bans = {ban.ip: (ban.time, ban.expires) for ban in current_bans(db, now=NOW)}
    assert bans == {
        "192.0.2.1": (inf, inf),
        "192.0.2.2": (NOW, NOW + float(2**63 - 1)),
        "192.0.2.3": (-inf, None),
    }


def test_an_address_that_is_not_text_is_read_as_no_address(tmp_path: Path) -> None:
    """A blob where an address belongs (a hand-edited database) neither fails the read nor matches."""
    rows = [(b"\xc0\x00\x02\x01", "sshd", NOW, 600), ("192.0.2.2", "sshd", NOW, 600)]
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], rows)
    assert current_addresses(db, now=NOW) == {"sshd": ("X'C0000201'", "192.0.2.2")}
    assert [ban.ip for ban in current_bans(db, now=NOW)] == ["X'C0000201'", "192.0.2.2"]


def test_callers_at_once_share_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a ban the firewall's check, the watchlist and the fail2ban collector all ask for the changed
    database at the same moment: one of them reads it, the others wait for that read."""
    db = make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], ROWS)
    opened: list[Path] = []
    connect = database.connect_readonly
    all_asking = threading.Barrier(3)

    def slow(path: Path) -> sqlite3.Connection:
        opened.append(path)
        time.sleep(0.3)  # the others ask while this read is under way
        return connect(path)

    monkeypatch.setattr(database, "connect_readonly", slow)

    def ask() -> database.BanRows:
        all_asking.wait()
        return database.ban_rows(db, NOW)

    with ThreadPoolExecutor(3) as pool:
        reads = list(pool.map(lambda _: ask(), range(3)))
    assert opened == [db]
    assert reads[0] is reads[1] is reads[2]
