"""sshd's PerSourcePenalty and MaxStartups events in the end of an auth log, read as the log grows.

The watchlist asks at every scrape, and on a host under attack the log grows by thousands of lines a
second: reading its last TAIL_BYTES again each time (about 90,000 lines) cost most of a scrape's CPU. A
LogTail remembers what it found in one file (its inode, the offset it read complete lines up to, and each
event with where its line is) and reads only the complete lines added since; it reads the tail afresh when
the file was replaced, shrank or was rewritten (rotation, truncation, copytruncate). Its answer is always
the one a fresh read of the tail gives:

- the text is decoded as UTF-8 (bad bytes replaced) and split into lines as str.splitlines does;
- when the tail starts inside the file its first line is cut and left out, and lines are not numbered
  (numbers are the lines' own only when the whole file is read);
- a last line without its newline counts, but is read again until it is complete.

Only lines holding one of LOG_EVENT_WORDS can hold a LOG_EVENTS event: they are found by searching the
bytes for the words, and only they are decoded, framed and classified.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from exporter.sources.access.layers import LogLine
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats

TAIL_BYTES = 4 << 20
LOG_EVENTS = frozenset({"penalty_applied", "penalty_drop", "maxstartups_drop"})
# classify finds LOG_EVENTS only in messages whose first word is `drop` or `srclimit_penalise:`, the
# listener's lines, which name their own address (no address carried over from a connection's earlier
# lines): the rest of a busy log's tail need not be framed and classified.
LOG_EVENT_WORDS = ("drop", "srclimit_penalise:")
_WORD_BYTES = tuple(word.encode() for word in LOG_EVENT_WORDS)
# Line ends str.splitlines knows besides "\n", as UTF-8 bytes (a lone "\r"; "\r\n" is one end).
_OTHER_ENDS = re.compile(rb"\r(?!\n)|[\x0b\x0c\x1c-\x1e]|\xc2\x85|\xe2\x80[\xa8\xa9]")
MARK_BYTES = 256  # the bytes before the read offset, kept to tell a file rewritten in place from one grown


def may_hold_log_event(line: str) -> bool:
    """Can classify find a LOG_EVENTS event in the line (LOG_EVENT_WORDS)?"""
    return any(word in line for word in LOG_EVENT_WORDS)


def _lines_with_words(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Where each "\\n"-ended line of data[start:end] holding one of LOG_EVENT_WORDS starts and ends, in
    order: a search for each word (bytes.find: C speed, where one regular expression of both words was 10
    times slower), rather than a look at every line."""
    found = set()
    for word in _WORD_BYTES:
        at = start
        while (hit := data.find(word, at, end)) >= 0:
            first = data.rfind(b"\n", start, hit) + 1 or start
            at = data.find(b"\n", hit + len(word), end) + 1 or end
            found.add((first, at))
    return sorted(found)


def classified(
    records: Sequence[SyslogRecord | None], texts: Sequence[str], name: str, numbers: Sequence[int]
) -> list[LogLine | None]:
    """Each line's LOG_EVENTS event through the live classification (None: none); `numbers` are the
    lines' numbers in their file (0: unknown)."""
    events = Stats(top_n=0).feed_batch(records, name)
    return [
        LogLine(name, number, text.strip(), event)
        if event is not None and event.event in LOG_EVENTS
        else None
        for number, text, event in zip(numbers, texts, events, strict=True)
    ]


def events_of(
    records: Sequence[SyslogRecord | None],
    texts: Sequence[str],
    name: str,
    numbers: Sequence[int],
    since: float,
) -> list[LogLine]:
    """The events (classified) at or after `since` (those without a time always)."""
    return after([line for line in classified(records, texts, name, numbers) if line is not None], since)


def after(lines: Iterable[LogLine], since: float) -> list[LogLine]:
    """The events at or after `since`; those without a time always."""
    return [line for line in lines if line.event.time is None or line.event.time >= since]


def _line_ends(data: bytes, start: int, end: int, others: bool) -> int:
    """How many lines str.splitlines ends in data[start:end] (`others`: data holds ends besides "\\n")."""
    count = data.count(b"\n", start, end)
    return count + len(_OTHER_ENDS.findall(data, start, end)) if others else count


@dataclass(frozen=True)
class _Found:
    start: int  # where its "\n"-ended line starts in the file (where the tail started, for a cut one)
    end: int  # after that line's "\n" (or the end of the file)
    line: LogLine


class LogTail:
    """One file's events in its last `tail_bytes`, kept from one read to the next."""

    def __init__(self, name: str, tail_bytes: int = TAIL_BYTES) -> None:
        self.name = name
        self.tail_bytes = tail_bytes
        self.bytes_read = 0  # in all, for whoever wants to see what a read cost
        self._signature: tuple[int, int, int] | None = None  # inode, size, mtime of the last read
        self._end = 0  # offset after the last complete line read
        self._lines: int | None = 0  # lines before _end while the tail starts at 0; None after
        self._mark = b""  # the file's bytes before _end, up to MARK_BYTES
        self._found: list[_Found] = []  # the complete lines' events, in file order
        self._answer: list[LogLine] = []
        self._lock = threading.Lock()

    def events(self, stream: BinaryIO) -> list[LogLine]:
        """The events in the last `tail_bytes` of the open file, whatever their time. One read at a time:
        a scrape's collector that outlived its timeout may still be reading when the next one asks."""
        with self._lock:
            return self._events(stream)

    def _events(self, stream: BinaryIO) -> list[LogLine]:
        stat = os.fstat(stream.fileno())
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if signature == self._signature:
            return self._answer
        size = stat.st_size
        start = max(0, size - self.tail_bytes)
        if not self._grew(stream, signature, start):
            self._signature, self._end, self._lines, self._mark, self._found = None, start, 0, b"", []
        if start > 0 and self._lines is not None:  # the tail no longer starts at 0: lines lose numbers
            self._lines = None
            self._found = [_Found(f.start, f.end, dataclasses.replace(f.line, line=0)) for f in self._found]
        cut = self._signature is None and start > 0  # a fresh read inside the file: its first line is cut
        self._found = self._kept(stream, start)
        stream.seek(self._end)
        data = stream.read(size - self._end)
        self.bytes_read += len(data)
        complete = data.rfind(b"\n") + 1
        others = self._lines is not None and _OTHER_ENDS.search(data) is not None
        self._found += self._scan(data, 0, complete, self._end, self._lines, cut, others)
        if self._lines is not None:
            self._lines += _line_ends(data, 0, complete, others)
        partial = self._scan(data, complete, len(data), self._end, self._lines, cut and complete == 0, others)
        self._mark = (self._mark + data[max(0, complete - MARK_BYTES) : complete])[-MARK_BYTES:]
        self._end += complete
        self._signature = signature
        self._answer = [found.line for found in self._found] + [found.line for found in partial]
        return self._answer

    def _grew(self, stream: BinaryIO, signature: tuple[int, int, int], start: int) -> bool:
        """Is the file the one read last, with lines added (and the tail still holding the last ones read)?
        Not after a rename (another inode), a truncation (smaller), a change that kept its size, a
        copytruncate that wrote it past its old size (the bytes before the read offset differ) or a growth
        past the tail."""
        if (
            self._signature is None
            or signature[0] != self._signature[0]
            or signature[1] <= self._signature[1]
        ):
            return False  # another file, or one shrunk or changed without growing
        if start >= self._end and start > 0:
            return False
        stream.seek(self._end - len(self._mark))
        return stream.read(len(self._mark)) == self._mark

    def _kept(self, stream: BinaryIO, start: int) -> list[_Found]:
        """The events still in the tail starting at `start`; a line the tail now cuts is read again from
        there (its first part is left out, as a fresh read would)."""
        found = self._found
        if start == 0:  # the whole file: nothing cut
            return found
        first = bisect.bisect_right(found, start, key=lambda f: f.start)
        cut = [f for f in found[:first] if f.end > start]
        if not cut:
            return found[first:] if first else found
        stream.seek(start)
        data = stream.read(cut[0].end - start)
        self.bytes_read += len(data)
        return self._scan(data, 0, len(data), start, None, True, False) + found[first:]

    def _scan(
        self, data: bytes, start: int, end: int, offset: int, lines: int | None, cut: bool, others: bool
    ) -> list[_Found]:
        """The events of data[start:end], data being the file's from `offset` and `lines` the lines before
        data[start] (None: not numbered): each line holding a word is split as str.splitlines splits it;
        `cut`: the first line is cut, left out; `others`: data holds line ends besides "\\n"."""
        texts: list[str] = []
        numbers: list[int] = []
        spans: list[tuple[int, int]] = []
        counted = start
        for first, after in _lines_with_words(data, start, end):
            parts = data[first:after].decode("utf-8", "replace").splitlines()
            skip = 1 if cut and first == start else 0
            if lines is not None:
                lines += _line_ends(data, counted, first, others)
                counted = first
            for index in range(skip, len(parts)):
                if may_hold_log_event(parts[index]):
                    texts.append(parts[index])
                    numbers.append(0 if lines is None else lines + 1 + index)
                    spans.append((offset + first, offset + after))
        lines_found = classified(Framer().parse_many(texts), texts, self.name, numbers)
        return [
            _Found(first, after, line)
            for (first, after), line in zip(spans, lines_found, strict=True)
            if line is not None
        ]
