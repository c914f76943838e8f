"""Framing: every framing in docs/sshd-log-lines.md, year inference, and lines that are not log lines."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from exporter.sources.authlog.framing import Framer, parse_line
from exporter.sources.authlog.records import MAX_MESSAGE_CHARS, SyslogRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"
MESSAGE = "Failed password for root from 192.0.2.{n} port 5000{n} ssh2"


def _local(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def test_every_framing_in_the_fixture_gives_the_same_message() -> None:
    framer = Framer()
    records = [framer.parse(line) for line in FIXTURES.joinpath("framings.log").read_text().splitlines()]
    got = [r for r in records if r is not None]
    assert len(got) == 10
    assert [r.message for r in got[:-1]] == [
        f"Failed password for root from 192.0.2.{n} port {50000 + n} ssh2" for n in range(1, 10)
    ]
    assert [r.ident for r in got] == ["sshd"] * 4 + [
        "sshd-session",
        "sshd",
        "sshd-session",
        "sshd",
        "sshd",
        None,
    ]
    assert [r.pid for r in got] == [*range(6032, 6041), None]
    assert [r.host for r in got] == ["bastion"] * 3 + [None] + ["bastion"] * 5 + [None]


def test_traditional_with_and_without_host_and_padding() -> None:
    framer = Framer(clock=lambda: _local(2026, 11, 23, 20, 0, 0))
    line = "Nov  3 19:04:34 bastion sshd[6032]: error: PAM: x"
    assert framer.parse(line) == SyslogRecord(
        "error: PAM: x", "sshd", 6032, "bastion", _local(2026, 11, 3, 19, 4, 34)
    )
    assert framer.parse("Nov 03 19:04:34 sshd[1]: error: x") == SyslogRecord(
        "error: x", "sshd", 1, None, _local(2026, 11, 3, 19, 4, 34)
    )
    assert framer.parse("Nov 23 19:04:34 sshd: no pid") == SyslogRecord(
        "no pid", "sshd", None, None, _local(2026, 11, 23, 19, 4, 34)
    )
    record = framer.parse("Nov 23 19:04:34.250000 host sshd-session[7]: m\n")
    assert record is not None and record.time == pytest.approx(_local(2026, 11, 23, 19, 4, 34) + 0.25)


def test_december_line_read_in_january_is_last_year() -> None:
    framer = Framer(clock=lambda: _local(2027, 1, 2, 0, 10, 0))
    december = framer.parse("Dec 31 23:59:59 host sshd[1]: m")
    january = framer.parse("Jan  2 00:05:00 host sshd[1]: m")
    assert december is not None and december.time == _local(2026, 12, 31, 23, 59, 59)
    assert january is not None and january.time == _local(2027, 1, 2, 0, 5, 0)


def test_rfc3339_offsets() -> None:
    record = parse_line("2023-07-29T04:15:01.889064+02:00 host sshd[6032]: msg")
    assert record is not None
    assert record.time == pytest.approx(calendar.timegm((2023, 7, 29, 2, 15, 1)) + 0.889064)
    utc = parse_line("2023-07-29T04:15:01Z sshd-session[1]: msg")
    assert utc == SyslogRecord(
        "msg", "sshd-session", 1, None, float(calendar.timegm((2023, 7, 29, 4, 15, 1)))
    )


def test_rfc5424_nil_fields_and_structured_data() -> None:
    record = parse_line(
        "<38>1 2019-07-08T17:40:16.954167-04:00 host sshd 57915 - - Invalid user a from b port 2"
    )
    assert record is not None
    assert (record.message, record.ident, record.pid, record.host) == (
        "Invalid user a from b port 2",
        "sshd",
        57915,
        "host",
    )
    assert record.time == pytest.approx(calendar.timegm((2019, 7, 8, 21, 40, 16)) + 0.954167)
    nil = parse_line('<38>1 - - - - - [x@1 a="b\\]c"] msg')
    assert nil == SyslogRecord("msg", None, None, None, None)


def test_rfc5424_quoted_value_may_hold_a_bracket() -> None:
    """rsyslog writes a `]` inside a quoted structured-data value unescaped (fail2ban's corpus, gh-2309)."""
    record = parse_line(
        '<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 55555 - [timeQuality tzKnown="1"][x@1 t="[b]"] '
        "Failed unknown for invalid user r from 192.0.2.2 port 5 ssh2"
    )
    assert record is not None
    assert (record.message, record.ident, record.pid) == (
        "Failed unknown for invalid user r from 192.0.2.2 port 5 ssh2",
        "sshd",
        55555,
    )


@pytest.mark.parametrize("separator", [" ", ": "])
def test_metalog(separator: str) -> None:
    """metalog (Gentoo) writes `STAMP [ident] msg`: no host, no pid."""
    framer = Framer(clock=lambda: _local(2026, 7, 1, 0, 0, 0))
    line = (
        f"Jun 25 23:53:34 [sshd]{separator}User root from 192.0.2.4 not allowed because listed in DenyUsers"
    )
    assert framer.parse(line) == SyslogRecord(
        "User root from 192.0.2.4 not allowed because listed in DenyUsers",
        "sshd",
        None,
        None,
        _local(2026, 6, 25, 23, 53, 34),
    )
    assert framer.parse("Foo 25 23:53:34 [sshd] x") == SyslogRecord("Foo 25 23:53:34 [sshd] x")


@pytest.mark.parametrize("line", ["", "\n", "   ", "# a comment", "#", "-- Boot 1234 --\n", "\r\n"])
def test_not_log_lines(line: str) -> None:
    assert parse_line(line) is None


def test_bare_and_garbage_lines_are_bare_messages() -> None:
    assert parse_line("Failed password for x from 192.0.2.1 port 1 ssh2\n") == SyslogRecord(
        "Failed password for x from 192.0.2.1 port 1 ssh2"
    )
    assert parse_line("Novel text without a timestamp") == SyslogRecord("Novel text without a timestamp")
    assert parse_line("2023 was a year") == SyslogRecord("2023 was a year")
    assert parse_line("\x00\x01\ufffd\ufffd") == SyslogRecord("\x00\x01\ufffd\ufffd")


def test_huge_line_is_capped() -> None:
    record = parse_line("Nov 23 19:04:34 host sshd[1]: Failed password for " + "x" * 1_000_000)
    assert record is not None and len(record.message) == MAX_MESSAGE_CHARS
    bare = parse_line("y" * 1_000_000)
    assert bare is not None and len(bare.message) == MAX_MESSAGE_CHARS


def test_parse_many_is_parse_line_by_line() -> None:
    lines = FIXTURES.joinpath("framings.log").read_text().splitlines(keepends=True)
    lines += ["", "Jan 99 junk", "<1>x", "2023 x", "Nov 23 19:04:34 host sshd[1]: m"]
    framer = Framer()
    assert framer.parse_many(lines) == [framer.parse(line) for line in lines]


def test_minute_cache_stays_bounded() -> None:
    framer = Framer()
    for n in range(10_000):
        framer.parse(f"2023-07-29T04:{n % 60:02d}:00+{n // 60 % 24:02d}:00 host sshd[1]: m")
    assert len(framer.minutes) <= 4096
