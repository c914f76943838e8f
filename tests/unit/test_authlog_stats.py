"""Stats: exact drop counting across versions, pid carry-over, penalties, health, thread safety."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.records import AUTH_METHODS, EVENTS, PENALTY_REASONS, Event, SyslogRecord
from exporter.sources.authlog.stats import PID_MAP_SIZE, THROTTLING_HOLD_SECONDS, Stats, is_address

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"


def _feed(stats: Stats, name: str) -> list[Event]:
    framer = Framer()
    events = []
    for line in FIXTURES.joinpath(name).read_text().splitlines():
        event = stats.feed(framer.parse(line), name)
        if event is not None:
            events.append(event)
    return events


def test_snapshot_starts_at_zero_for_every_closed_set_key() -> None:
    snap = Stats().snapshot()
    assert dict(snap.events) == dict.fromkeys(EVENTS, 0)
    assert dict(snap.auth_failures) == dict.fromkeys(AUTH_METHODS, 0)
    assert dict(snap.penalties) == dict.fromkeys(PENALTY_REASONS, 0)
    assert (snap.maxstartups_dropped, snap.maxstartups_throttling, snap.penalty_dropped) == (0, False, 0)
    assert snap.top_offenders == () and dict(snap.sources) == {}


@pytest.mark.parametrize(
    ("fixture", "dropped", "penalty_dropped"),
    [
        ("maxstartups-8.3.log", 3, 0),
        ("maxstartups-8.4-info.log", 85, 0),
        ("maxstartups-8.4-verbose.log", 4, 0),
        ("maxstartups-9.8.log", 12, 2),
        ("maxstartups-10.0.log", 42, 8),
    ],
)
def test_maxstartups_drops_exact_across_versions(fixture: str, dropped: int, penalty_dropped: int) -> None:
    stats = Stats()
    _feed(stats, fixture)
    snap = stats.snapshot(now=0.0)
    assert (snap.maxstartups_dropped, snap.penalty_dropped) == (dropped, penalty_dropped)


def test_versions_in_one_stream_add_up() -> None:
    stats = Stats()
    for fixture in (
        "maxstartups-8.3.log",
        "maxstartups-8.4-info.log",
        "maxstartups-8.4-verbose.log",
        "maxstartups-9.8.log",
        "maxstartups-10.0.log",
    ):
        _feed(stats, fixture)
    assert stats.snapshot(now=0.0).maxstartups_dropped == 3 + 85 + 4 + 12 + 42


def test_summary_without_beginning_opens_the_episode() -> None:
    stats = Stats()
    for message in (
        "error: in MaxStartups throttling for 00:05:00, 10 connections dropped",
        "error: in MaxStartups throttling for 00:10:00, 25 connections dropped",
        "exited MaxStartups throttling after 00:12:00, 30 connections dropped",
        "exited MaxStartups throttling after 00:01:00, 2 connections dropped",
    ):
        stats.feed(SyslogRecord(message, "sshd", 900, None, 1.0), "f")
    assert stats.snapshot(now=1.0).maxstartups_dropped == 32


def test_throttling_flag_episode_and_10_0_hold() -> None:
    stats = Stats()
    stats.feed(SyslogRecord("error: beginning MaxStartups throttling", "sshd", 900, None, 100.0), "f")
    assert stats.snapshot(now=10_000.0).maxstartups_throttling
    stats.feed(
        SyslogRecord(
            "exited MaxStartups throttling after 00:00:10, 1 connections dropped", "sshd", 900, None, 110.0
        ),
        "f",
    )
    assert not stats.snapshot(now=110.0).maxstartups_throttling
    drop = "drop connection #10 from [192.0.2.1]:5 on [198.51.100.200]:22 Maxstartups"
    stats.feed(SyslogRecord(drop, "sshd", 900, None, 200.0), "f")
    assert stats.snapshot(now=200.0 + THROTTLING_HOLD_SECONDS - 1).maxstartups_throttling
    assert not stats.snapshot(now=200.0 + THROTTLING_HOLD_SECONDS + 1).maxstartups_throttling


def test_penalties_count_those_put_in_force() -> None:
    stats = Stats()
    _feed(stats, "maxstartups-9.8.log")
    _feed(stats, "maxstartups-10.0.log")
    snap = stats.snapshot(now=0.0)
    assert {k: v for k, v in snap.penalties.items() if v} == {"authfail": 1, "noauth": 1, "invaliduser": 1}
    assert snap.events["penalty_applied"] == 4 and snap.events["penalty_drop"] == 3


def test_pid_carry_over() -> None:
    stats = Stats()
    events = _feed(stats, "carryover.log")
    assert [(e.event, e.address, e.pid) for e in events] == [
        ("banner_error", "192.0.2.20", 4001),
        ("banner_error", None, 4002),
        ("auth_failed", "192.0.2.21", 4003),
        ("user_not_allowed", "192.0.2.21", 4003),
        ("max_auth_tries_exceeded", "192.0.2.21", 4003),  # before 6.8: `Disconnecting: Too many ... for bob`
        ("login_grace_timeout", "192.0.2.22", 4004),  # 9.8.0 swapped from/to: the pid's own address wins
    ]


def test_listener_lines_do_not_carry_addresses() -> None:
    stats = Stats()
    stats.feed(
        SyslogRecord(
            "drop connection #10 from [192.0.2.1]:5 on [198.51.100.200]:22 past MaxStartups", "sshd", 900
        ),
        "f",
    )
    event = stats.feed(
        SyslogRecord("error: kex_exchange_identification: banner line too long", "sshd", 900), "f"
    )
    assert event is not None and event.address is None


def test_pid_map_is_bounded() -> None:
    """Any pid is remembered for the next PID_MAP_SIZE - 1 pids (as in an LRU), at most 2x are held."""
    stats = Stats()
    pids = 3 * PID_MAP_SIZE + 100
    for pid in range(pids):
        stats.feed(
            SyslogRecord(f"Invalid user u from 192.0.2.{pid % 256} port 1", "sshd", pid, None, 1.0), "f"
        )
        if pid % 1000 == 0:
            assert len(stats.pid_map()) <= 2 * PID_MAP_SIZE
    newest, oldest = pids - 1, pids - PID_MAP_SIZE
    for pid in (newest, oldest):
        event = stats.feed(SyslogRecord("error: kex_exchange_identification: x", "sshd", pid), "f")
        assert event is not None and event.address == f"192.0.2.{pid % 256}"
    first = stats.feed(SyslogRecord("error: kex_exchange_identification: x", "sshd", 0), "f")
    assert first is not None and first.address is None


def test_source_health() -> None:
    stats = Stats()
    stats.source("/var/log/secure")
    stats.set_rotations("debian12.log", 1)
    _feed(stats, "debian12.log")
    stats.feed(None, "debian12.log")
    snap = stats.snapshot()
    health = snap.sources["debian12.log"]
    assert (health.lines_read, health.lines_unmatched, health.rotations) == (11, 1, 1)
    assert health.last_event_time == pytest.approx(1795460709.0)
    assert snap.sources["/var/log/secure"].lines_read == 0
    assert snap.events["pam_auth_failure"] == 1 and snap.events["wrapper_refused"] == 1


def test_auth_failures_by_method_and_top_offenders() -> None:
    stats = Stats(top_n=2)
    for n, method in enumerate(("password", "publickey", "keyboard-interactive/pam", "password")):
        stats.feed(
            SyslogRecord(f"Failed {method} for u from 192.0.2.{n % 2} port 1 ssh2", "sshd", n, None, 1000.0),
            "f",
        )
    stats.feed(SyslogRecord("Connection closed by 192.0.2.9 port 1 [preauth]", "sshd", 9, None, 1000.0), "f")
    snap = stats.snapshot(now=1000.0)
    assert {k: v for k, v in snap.auth_failures.items() if v} == {
        "password": 2,
        "publickey": 1,
        "keyboard-interactive": 1,
    }
    assert snap.top_offenders == (("192.0.2.0", 2), ("192.0.2.1", 2))
    assert Stats(top_n=0).snapshot().top_offenders == ()


def test_feed_while_snapshotting() -> None:
    stats = Stats()
    line = SyslogRecord("Failed password for u from 192.0.2.1 port 1 ssh2", "sshd", 1, None, 1000.0)
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            snap = stats.snapshot(now=1000.0)
            assert snap.events["auth_failed"] == snap.auth_failures["password"]

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(20_000):
            stats.feed(line, "f")
    finally:
        done.set()
        thread.join()
    assert stats.snapshot(now=1000.0).events["auth_failed"] == 20_000


def test_feed_batch_equals_feeding_one_by_one() -> None:
    framer = Framer()
    records = [
        framer.parse(line)
        for name in ("carryover.log", "maxstartups-8.4-verbose.log", "debian12.log")
        for line in FIXTURES.joinpath(name).read_text().splitlines()
    ]
    one, batch = Stats(), Stats()
    singles = [one.feed(record, "f") for record in records]
    assert batch.feed_batch(records, "f") == singles
    assert one.snapshot(now=0.0) == batch.snapshot(now=0.0)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("192.0.2.7", True),
        ("0.0.0.0", True),
        ("255.255.255.255", True),
        ("192.0.2.07", False),
        ("192.0.2.256", False),
        ("192.0.2.", False),
        ("192.0.2.7%eth0", False),
        ("2001:db8::1", True),
        ("fe80::1%eth0", True),
        ("fe80::1%", False),
        ("::ffff:192.0.2.7", True),
        ("::ffff:::ffff:192.0.2.7", False),
        ("192.0.2.\ufffd(9", False),
        ("2001:db8::\x00", False),
        ("host.example.org", False),
        ("", False),
    ],
)
def test_only_addresses_are_addresses(token: str, expected: bool) -> None:
    assert is_address(token) is expected
