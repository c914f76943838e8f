"""Syslog framings -> SyslogRecord: the first step of the auth-log hot path.

Five framings reach us from files (the journal gives records directly):

    Nov 23 19:04:34 host sshd[6032]: msg                        traditional (day space- or zero-padded,
    Nov 23 19:04:34 sshd[6032]: msg                               host optional, fraction optional)
    2023-07-29T04:15:01.889064+02:00 host sshd[6032]: msg       RFC 3339 (Debian 12 rsyslog default)
    <38>1 2019-07-08T17:40:16.954167-04:00 host sshd 57915 - - msg   RFC 5424
    Jun 25 23:53:34 [sshd] msg                                   metalog (Gentoo; no host, no pid)
    msg                                                          bare (`sshd -E`, pasted lines)

One compiled regex per framing, chosen by a cheap look at the first characters. Converting a timestamp
to epoch seconds is cached per minute, so the calendar arithmetic runs once a minute of log, not per line.
Traditional timestamps carry no year and are local time: the year is the one that puts the line not more
than a week in the future, so a December line read in January belongs to last year.

A timestamp that names no instant (`2023-13-29T...`, year 0000, an offset of a day or more) costs the line
its time and nothing else: the record keeps its ident, pid and message with `time` None, as a bare line,
so its event is still counted (at the wall clock) and `replay` prints `"time": null`. Traditional stamps
cannot fail that way: their fields are normalised (`Nov 31` is December 1st), on every path alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone

from exporter.sources.authlog.records import MAX_MESSAGE_CHARS, SyslogRecord

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}

_MONTH_INITIALS = frozenset(name[0] for name in _MONTHS)

# `host ident[pid]: ` or `ident[pid]: ` or `ident: `. A host never contains `[` nor ends with `:`, which
# is what tells a host-less line (`sshd[1]: error: ...`) from one with a host.
_TAIL = r"(?:([^\s\[]+(?<!:)) )?([^\s\[\]:]+)(?:\[(\d+)\])?: ?(.*)"
# `Mmm d HH:MM:SS[.frac]` and the spaces after it, groups: minute, second, fraction.
_TRADITIONAL_STAMP = r"([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d):(\d\d)(\.\d+)? +"

_TRADITIONAL = re.compile(_TRADITIONAL_STAMP + _TAIL, re.DOTALL)
_STAMP = re.compile(_TRADITIONAL_STAMP.removesuffix(" +"))
# metalog writes `STAMP [ident] msg` (some versions `[ident]: msg`): the ident is in brackets, no pid.
_METALOG = re.compile(_TRADITIONAL_STAMP + r"\[([^\s\[\]:]+)\]:? (.*)", re.DOTALL)
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d) +" + _TAIL, re.DOTALL)
_RFC5424 = re.compile(
    r"<\d{1,3}>\d{1,2} "
    r"(?:-|(\d{4}-\d\d-\d\dT\d\d:\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)) "
    r"(\S+) (\S+) (\S+) \S+ "  # host, app-name, procid, msgid
    r'(?:-|(?:\[(?:[^\]\\"]|\\.|"(?:[^"\\]|\\.)*")*\])+)'  # structured data; a quoted value may hold `]`
    r"(?: (?:\ufeff)?(.*))?",
    re.DOTALL,
)

# Reading a December line in January: a line more than this far in the future is from last year.
_FUTURE_SLACK = 7 * 86400
_CACHE_SIZE = 4096
_STAMP_CACHE_SIZE = 4096
_CACHE_MAX_AGE = 3600.0


class Framer:
    """Parses lines; holds the per-minute timestamp cache (and the clock used to infer years)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.minutes: dict[str, float] = {}  # `Mmm dd HH:MM` (and ISO minute + offset) -> epoch seconds
        self.stamps: dict[str, float] = {}  # whole stamp -> epoch seconds, filled by stamp_time()
        self._born = clock()

    def _miss(self) -> None:
        """Before adding to the cache: bound it, and forget year decisions made long ago."""
        now = self._clock()
        if len(self.minutes) >= _CACHE_SIZE or now - self._born > _CACHE_MAX_AGE:
            self.minutes.clear()
            self.stamps.clear()  # built from the minutes: they go with them
            self._born = now

    def stamp_time(self, stamp: str) -> float:
        """Epoch seconds of a whole traditional stamp (`Nov  3 19:04:34[.frac]`), as parse() computes it.

        For callers that see many lines per second of log (fastscan): they look `stamps` up first and
        call this on a miss; the result is cached there until the minute cache is cleared.
        """
        match = _STAMP.fullmatch(stamp)
        if match is None or match[1][:3] not in _MONTHS:
            raise ValueError(f"not a traditional syslog stamp: {stamp!r}")
        minute, second, fraction = match.groups()
        base = self.minute_time(minute)
        if len(self.stamps) >= _STAMP_CACHE_SIZE:
            self.stamps.clear()
        value = self.stamps[stamp] = base + int(second) + (float(fraction) if fraction else 0.0)
        return value

    def minute_time(self, minute: str) -> float:
        """Epoch seconds of a traditional stamp's minute (`Nov  3 19:04`), as stamp_time() takes it.

        For linescan, which adds the seconds itself: it looks `minutes` up first, calls this on a miss.
        """
        base = self.minutes.get(minute)
        return self._traditional_minute(minute) if base is None else base

    def _traditional_minute(self, key: str) -> float:
        """Epoch seconds of `Mmm d HH:MM` in local time, in the year that is not in the future."""
        self._miss()
        month_day, hm = key.rsplit(" ", 1)
        month_name, day = month_day.split()
        hour, minute = hm.split(":")
        now = self._clock()
        year = time.localtime(now).tm_year
        fields = (int(day), int(hour), int(minute), 0, 0, 0, -1)
        value = time.mktime((year, _MONTHS[month_name], *fields))
        if value - now > _FUTURE_SLACK:
            value = time.mktime((year - 1, _MONTHS[month_name], *fields))
        self.minutes[key] = value
        return value

    def _iso_minute(self, key: str, offset: str) -> float | None:
        """Epoch seconds of `YYYY-MM-DDTHH:MM` at a UTC offset (`Z`, `+02:00`, `-0400`); None if it names
        no instant (not cached: a bad stamp costs one refused conversion a line, never an exception)."""
        cached = self.minutes.get(key + offset)
        if cached is not None:
            return cached
        value = _iso_epoch(key, offset)
        if value is not None:
            self._miss()
            self.minutes[key + offset] = value
        return value

    def _iso_time(self, minute: str, second: str, fraction: str | None, offset: str) -> float | None:
        """Epoch seconds of an ISO stamp's groups; None when its minute names no instant."""
        base = self._iso_minute(minute, offset)
        if base is None:
            return None
        return base + int(second) + (float(fraction) if fraction else 0.0)

    def parse(self, text: str) -> SyslogRecord | None:
        """One line (trailing newline allowed) -> record; None for what is not a log line."""
        return self.parse_many((text,))[0]

    def parse_many(self, lines: Iterable[str]) -> list[SyslogRecord | None]:
        """parse() for a batch, as tailers deliver them: the hot loop keeps its lookups in locals."""
        records: list[SyslogRecord | None] = []
        append = records.append
        traditional = _TRADITIONAL.match
        minutes = self.minutes.get
        for line in lines:
            text = line.rstrip("\r\n") if line[-1:] == "\n" else line
            first = text[:1]
            if first in _MONTH_INITIALS and text[:3] in _MONTHS:
                match = traditional(text)
                if match is not None:
                    minute, second, fraction, host, ident, pid, message = match.groups()
                    base = minutes(minute)
                    if base is None:
                        base = self._traditional_minute(minute)
                    append(
                        SyslogRecord(
                            message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS],
                            ident,
                            None if pid is None else int(pid),
                            host,
                            base + int(second) + (float(fraction) if fraction else 0.0),
                        )
                    )
                    continue
            append(self._other(text))
        return records

    def _other(self, text: str) -> SyslogRecord | None:
        """Everything but a traditional line: RFC 3339, RFC 5424, metalog, bare, or not a log line."""
        if not text:
            return None
        first = text[0]
        if first.isdigit():
            match = _RFC3339.match(text)
            if match is not None:
                minute, second, fraction, offset, host, ident, pid, message = match.groups()
                return SyslogRecord(
                    message[:MAX_MESSAGE_CHARS],
                    ident,
                    None if pid is None else int(pid),
                    host,
                    self._iso_time(minute, second, fraction, offset),
                )
        elif first == "<":
            return self._rfc5424(text)
        elif first == "#" or text.isspace() or text.startswith("-- "):
            return None
        elif text[:3] in _MONTHS and (match := _METALOG.match(text)) is not None:
            minute, second, fraction, ident, message = match.groups()
            when = self.minute_time(minute) + int(second) + (float(fraction) if fraction else 0.0)
            return SyslogRecord(message[:MAX_MESSAGE_CHARS], ident, None, None, when)
        return SyslogRecord(text[:MAX_MESSAGE_CHARS])

    def _rfc5424(self, text: str) -> SyslogRecord | None:
        match = _RFC5424.match(text)
        if match is None:
            return SyslogRecord(text[:MAX_MESSAGE_CHARS])
        minute, second, fraction, offset, host, app, procid, message = match.groups()
        stamp = None if minute is None else self._iso_time(minute, second, fraction, offset)
        return SyslogRecord(
            (message or "")[:MAX_MESSAGE_CHARS],
            None if app == "-" else app,
            int(procid) if procid.isdigit() else None,
            None if host == "-" else host,
            stamp,
        )


def _iso_epoch(minute: str, offset: str) -> float | None:
    """Epoch seconds of `YYYY-MM-DDTHH:MM` at `offset`, or None for a field out of range (month 13, day
    0, year 0000, hour 24, an offset of a day or more), which datetime refuses where timegm raised."""
    try:
        zone = UTC
        if offset != "Z":
            digits = offset[1:].replace(":", "")
            hours, minutes = int(digits[0:2]), int(digits[2:4])
            if minutes > 59:
                return None
            zone = timezone((-1 if offset[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes))
        fields = (minute[0:4], minute[5:7], minute[8:10], minute[11:13], minute[14:16])
        year, month, day, hour, minutes_past = (int(field) for field in fields)
        return datetime(year, month, day, hour, minutes_past, tzinfo=zone).timestamp()
    except (ValueError, OverflowError):
        return None


_DEFAULT = Framer()


def parse_line(text: str) -> SyslogRecord | None:
    """Frame one line with the process-wide Framer (wall clock for the year of traditional lines)."""
    return _DEFAULT.parse(text)
