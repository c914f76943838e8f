"""`ssh-access-exporter replay [--format json|metrics] FILE...`: what the exporter makes of a log.

Reads whole files through the live pipeline (framing, classification, Stats), in order, as one
stream (an episode begun in auth.log.1 may end in auth.log). `-` is standard input; a gzip file
(logrotate's `auth.log.2.gz`, known by its first bytes, whatever its name) is decompressed as it is
read, in blocks, like a plain file. Lines that are not log lines (`#` comments, blank lines) are
skipped but still numbered. Bytes are decoded as UTF-8 with replacement, and only the first
MAX_LINE_BYTES of a line are kept, so any input replays without crashing.

A file in which no line was sshd's (no event, no summary, no sshd line left unrecognised: a wrong file,
or one from before sshd logged there) is said on standard error, `... replay: FILE: no sshd line in
N lines`; the output is what it would be without that note.

--format json (default): one object per line that produced an event, keys exactly
  file, line (1-based), event, address, user, method, pid, time
  with null where the line has none; `time` is epoch seconds (a number, fractions kept) or null for
  lines without a timestamp or with one that names no date (`2023-13-29T...`). The address is the
  resolved one (carried over from the connection's earlier lines when the line itself names none).
--format metrics: the exposition the exporter would serve after those lines (the authlog families;
  the top-offender window ends at the last event's time, so old logs still show their offenders).

Exit 0; 2 with a message when a file cannot be opened (checked before any output) or a read fails
(a truncated or corrupt gzip file, EIO) part way.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from itertools import islice
from typing import BinaryIO, TextIO, cast

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors.families.authlog import AuthlogCollector
from exporter.flagparse import FlagParser, count
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.records import Event
from exporter.sources.authlog.stats import Stats, StatsSnapshot

EXIT_UNREADABLE = 2
MAX_LINE_BYTES = 16 * 1024
BLOCK_BYTES = 1 << 20  # what replay --format metrics reads and counts at once
STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
PROG = "ssh-access-exporter replay"


class ReadError(Exception):
    """A read that failed part way through a file: the message names the file."""


def open_log(name: str, stack: ExitStack) -> BinaryIO:
    """The bytes of a log: the file (or standard input for `-`), decompressed when it is gzip.

    Gzip is known by its magic bytes, peeked without consuming them, so a renamed or a piped
    `auth.log.2.gz` reads too; OSError when the file cannot be opened."""
    if name == STDIN:
        stdin = sys.stdin.buffer  # peekable when it is a real standard input; a test's may not be
        raw = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, stdin))
    else:
        raw = stack.enter_context(open(name, "rb"))  # noqa: SIM115 (closed by the stack)
    if raw.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        return cast(BinaryIO, stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
    return raw


def read_lines(stream: BinaryIO, cap: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Each physical line, decoded; a longer line keeps its first `cap` bytes, the rest is skipped."""
    readline = stream.readline
    while True:
        raw = readline(cap)
        if not raw:
            return
        if len(raw) == cap and not raw.endswith(b"\n"):
            tail = raw
            while tail and not tail.endswith(b"\n"):
                tail = readline(cap)
        yield raw.decode("utf-8", "replace")


def _has_long_line(data: bytes, cap: int) -> bool:
    """Whether a line of `data` holds `cap` bytes or more before its newline (about len/cap finds)."""
    start, size = 0, len(data)
    while size - start >= cap:
        newline = data.rfind(b"\n", start, start + cap)  # the lines up to it are all shorter than cap
        if newline < 0:
            return True
        start = newline + 1
    return False


def read_blocks(
    stream: BinaryIO, cap: int = MAX_LINE_BYTES, size: int = BLOCK_BYTES
) -> Iterator[str | list[str]]:
    """The lines read_lines() yields, in blocks: a str of whole lines for Stats.feed_text, or a list of
    read_lines() strings where a line of `cap` bytes or more is cut (only there: cutting is read_lines').

    Blocks end at a newline, so no line is split between two; the last line may lack its newline.
    """
    rest = b""
    while data := stream.read(size):
        data = rest + data
        end = data.rfind(b"\n") + 1
        block, rest = data[:end], data[end:]
        if block:
            if _has_long_line(block, cap):
                yield list(read_lines(io.BytesIO(block), cap))
            else:
                yield block.decode("utf-8", "replace")
        if len(rest) >= cap:  # a long line still without its newline: keep its head, skip the rest
            yield [rest[:cap].decode("utf-8", "replace")]
            tail = rest
            while tail and not tail.endswith(b"\n"):
                tail = stream.readline(cap)
            rest = b""
    if rest:
        yield rest.decode("utf-8", "replace")


def _batches(stream: BinaryIO, size: int = 1024) -> Iterator[list[str]]:
    lines = read_lines(stream)
    while batch := list(islice(lines, size)):
        yield batch


def _json(name: str, number: int, event: Event) -> str:
    return json.dumps(
        {
            "file": name,
            "line": number,
            "event": event.event,
            "address": event.address,
            "user": event.user,
            "method": event.method,
            "pid": event.pid,
            "time": event.time,
        }
    )


def _feed(stats: Stats, framer: Framer, name: str, stream: BinaryIO, fmt: str, out: TextIO) -> None:
    """One stream through the pipeline: counted in blocks (metrics), or each event printed (json)."""
    if fmt == "metrics":
        for block in read_blocks(stream):
            if isinstance(block, str):
                stats.feed_text(block, name, framer)
            else:
                stats.feed_batch(framer.parse_many(block), name)
        return
    number = 0
    for batch in _batches(stream):
        events = stats.feed_batch(framer.parse_many(batch), name)
        out.writelines(
            _json(name, number + i, event) + "\n" for i, event in enumerate(events, 1) if event is not None
        )
        number += len(batch)


def _sshd_marks(snapshot: StatsSnapshot, name: str) -> tuple[int, int]:
    """(what sshd's lines leave in the counts, lines read from `name`): an sshd line is an event, a
    drop or penalty summary, or an unrecognised sshd line; other programs' lines leave nothing."""
    source = snapshot.sources[name]
    marks = sum(snapshot.events.values()) + sum(snapshot.penalties.values())
    marks += snapshot.maxstartups_dropped + snapshot.penalty_dropped + source.lines_unmatched
    return marks, source.lines_read


def replay(
    streams: Sequence[tuple[str, BinaryIO]],
    fmt: str,
    out: TextIO,
    top_n: int = 10,
    err: TextIO | None = None,
) -> None:
    """Feed every stream through one pipeline; print events (json) or the final exposition (metrics).

    A stream that held no sshd line is said on `err` (standard error by default); a read failing part
    way raises ReadError naming the stream (a failed write, BrokenPipeError, is left as it is)."""
    stats = Stats(top_n=top_n)
    framer = Framer()
    for name, stream in streams:
        stats.source(name)
        before = _sshd_marks(stats.snapshot(), name)
        try:
            _feed(stats, framer, name, stream, fmt, out)
        except BrokenPipeError:
            raise
        except (OSError, EOFError, zlib.error) as exc:  # EOFError: a truncated gzip file
            raise ReadError(f"{name}: read error: {_reason(exc)}") from exc
        after = _sshd_marks(stats.snapshot(), name)
        if after[0] == before[0]:
            print(f"{PROG}: {name}: no sshd line in {after[1] - before[1]:,} lines", file=err or sys.stderr)
    if fmt == "metrics":
        snapshot = stats.snapshot(now=stats.latest_time)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AuthlogCollector(lambda: snapshot))
        out.write(generate_latest(registry).decode("utf-8"))


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def main(argv: Sequence[str]) -> int:
    parser = FlagParser(
        prog=PROG,
        description="Replay auth log files through the exporter's pipeline: events as JSON lines, or "
        "the metrics the exporter would serve after them.",
        allow_abbrev=False,
    )
    parser.add_argument("--format", choices=("json", "metrics"), default="json", help="output (default json)")
    parser.add_argument(
        "--top-offenders", type=count, default=10, metavar="N", help="top failing addresses kept (0 disables)"
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="log files, read whole, in order; gzip ones (auth.log.2.gz) too; - is standard input",
    )
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        streams: list[tuple[str, BinaryIO]] = []
        for name in args.files:
            try:
                streams.append((name, open_log(name, stack)))
            except OSError as exc:
                print(f"{PROG}: cannot read {name}: {_reason(exc)}", file=sys.stderr)
                return EXIT_UNREADABLE
        try:
            replay(streams, args.format, sys.stdout, args.top_offenders)
        except BrokenPipeError:  # `replay ... | head`: the reader has all it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the interpreter's final flush quiet)
            return 0
        except ReadError as exc:  # part way through a file (EIO, a truncated gzip file)
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    return 0
