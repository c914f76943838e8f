"""The penalty log's tail read as it grows (exporter.sources.access.logtail): a host under attack adds
thousands of lines a second, and the watchlist asks at every scrape. Whatever happened to the file, the
events are those a fresh read of its tail finds; only the cost differs."""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.authlog_gen import generate
from exporter.sources.access.layers import LogLine
from exporter.sources.access.logtail import LogTail, events_of, may_hold_log_event
from exporter.sources.access.reader import read_log_tail
from exporter.sources.authlog.framing import Framer

STAMP = time.strftime("%b %e %H:%M:%S", time.localtime(time.time() - 60))
PENALTY = f"{STAMP} bastion sshd[900]: srclimit_penalise: ipv4: new 192.0.2.{{}}/32 active penalty of 30 seconds for penalty: failed authentication\n"  # noqa: E501
DROP = f"{STAMP} bastion sshd[900]: drop connection #0 from [192.0.2.{{}}]:50009 on [198.51.100.200]:22 penalty: failed authentication\n"  # noqa: E501
OTHER = f"{STAMP} bastion sshd[1234]: Failed password for root from 203.0.113.{{}} port 50010 ssh2\n"


def fresh(path: Path, tail_bytes: int) -> list[LogLine]:
    """What the tail holds, read the way it was read before LogTail, at every scrape: decode it all,
    split it, leave out the cut first line, frame and classify the lines holding a word."""
    data = path.read_bytes()
    start = max(0, len(data) - tail_bytes)
    lines = data[start:].decode("utf-8", "replace").splitlines()
    if start > 0:
        lines = lines[1:]
    picked = [(number, line) for number, line in enumerate(lines, 1) if may_hold_log_event(line)]
    texts = [line for _, line in picked]
    numbers = [number if start == 0 else 0 for number, _ in picked]
    return events_of(Framer().parse_many(texts), texts, "auth.log", numbers, 0.0)


def read(tail: LogTail, path: Path) -> list[LogLine]:
    with open(path, "rb") as stream:
        return list(tail.events(stream))


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(text.encode() if isinstance(text, str) else text)


def addresses(lines: list[LogLine]) -> list[str | None]:
    return [line.event.address for line in lines]


def test_an_appended_log_is_read_from_where_the_last_read_ended(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(OTHER.format(n % 250) for n in range(20_000)) + PENALTY.format(1))
    tail = LogTail("auth.log")
    assert addresses(read(tail, log)) == ["192.0.2.1/32"]
    before = tail.bytes_read
    added = OTHER.format(7) + DROP.format(2)
    append(log, added)
    found = read(tail, log)
    assert addresses(found) == ["192.0.2.1/32", "192.0.2.2"]
    assert tail.bytes_read - before == len(added)  # the new lines, not the tail again
    assert [line.line for line in found] == [20_001, 20_003]  # the whole file is in the tail: numbered
    assert found == fresh(log, 4 << 20)


@pytest.mark.parametrize("how", ["rename", "truncate", "copytruncate_past_old_size", "rewritten_same_size"])
def test_a_rotated_or_truncated_log_is_read_afresh(tmp_path: Path, how: str) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(OTHER.format(n) for n in range(30)) + PENALTY.format(1) + OTHER.format(1))
    tail = LogTail("auth.log", tail_bytes=8_000)
    assert addresses(read(tail, log)) == ["192.0.2.1/32"]
    if how == "rename":
        log.rename(tmp_path / "auth.log.1")
        log.write_text(DROP.format(3))
    elif how == "truncate":
        os.truncate(log, 0)
        append(log, DROP.format(3))
    elif how == "copytruncate_past_old_size":  # same inode, larger than before: not a growth
        os.truncate(log, 0)
        append(log, "".join(OTHER.format(n) for n in range(100, 150)) + DROP.format(3))
        assert log.stat().st_size < 8_000  # all of it in the tail, as all of it was
    else:
        text = log.read_text()
        log.write_text(text.replace("192.0.2.1/32", "192.0.2.4/32"))
    found = read(tail, log)
    assert found == fresh(log, 8_000)
    assert addresses(found) == (["192.0.2.4/32"] if how == "rewritten_same_size" else ["192.0.2.3"])


def test_a_partial_line_counts_as_a_fresh_read_counts_it_and_is_read_again_once_complete(
    tmp_path: Path,
) -> None:
    log = tmp_path / "auth.log"
    log.write_text(OTHER.format(1))
    tail = LogTail("auth.log")
    line = DROP.format(5)
    append(log, line[:40])  # cut before the address
    assert read(tail, log) == fresh(log, 4 << 20)
    append(log, line[40:-1])  # all but its newline: a fresh read takes it as it is
    assert addresses(read(tail, log)) == ["192.0.2.5"] == addresses(fresh(log, 4 << 20))
    append(log, "\n" + PENALTY.format(6))
    found = read(tail, log)
    assert addresses(found) == ["192.0.2.5", "192.0.2.6/32"]  # once, though read twice
    assert found == fresh(log, 4 << 20)


def test_events_leave_with_the_lines_that_leave_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(PENALTY.format(1) + OTHER.format(1))
    tail = LogTail("auth.log", tail_bytes=500)
    assert [line.line for line in read(tail, log)] == [1]
    append(log, DROP.format(2) + OTHER.format(2) * 3)  # past 500 bytes: the first line is cut
    found = read(tail, log)
    assert addresses(found) == ["192.0.2.2"] and found == fresh(log, 500)
    assert found[0].line == 0  # the tail starts inside the file: numbers unknown, as a fresh read says
    append(log, OTHER.format(3) * 6)
    assert read(tail, log) == [] == fresh(log, 500)


def test_reads_at_once_from_two_threads_find_each_event_once(tmp_path: Path) -> None:
    """A scrape's collector that outlived its timeout may still read when the next scrape asks."""
    log = tmp_path / "auth.log"
    log.write_text("")
    tail = LogTail("auth.log")
    stop = threading.Event()

    def reading() -> None:
        while not stop.is_set():
            read(tail, log)

    threads = [threading.Thread(target=reading) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for n in range(300):
            append(log, OTHER.format(n % 250) * 20 + DROP.format(n % 250))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert read(tail, log) == fresh(log, 4 << 20)


LINE_PARTS = st.sampled_from(
    [
        PENALTY.format(1),
        DROP.format(2),
        OTHER.format(3),
        "drop\r" + DROP.format(4),  # "\r" ends a line for str.splitlines
        "x\x0cdrop connection\n",
        "srclimit_penalise:\x85" + PENALTY.format(7),  # NEL
        "\u2028" + DROP.format(8),
        "\n",
    ]
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(LINE_PARTS, max_size=6), st.integers(0, 3)),
        st.tuples(st.just("bytes"), st.binary(max_size=40), st.just(0)),
        st.tuples(st.just("truncate"), st.integers(0, 300), st.just(0)),
        st.tuples(st.just("rename"), st.just(b""), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS, st.integers(150, 900))
def test_whatever_happens_to_the_file_the_events_are_a_fresh_reads(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, object, int]], tail_bytes: int
) -> None:
    """Appends (whole lines, lines without their end, bytes that are not UTF-8, line ends other than
    "\\n"), truncations and renames, with a tail small enough to cut lines anywhere. (A copytruncate
    that writes the file past its old size before the next read is told by the bytes before the offset
    read up to: real log lines differ there, these repeated ones need not; its test is above.)"""
    log = tmp_path_factory.mktemp("logtail") / "auth.log"
    log.write_bytes(b"")
    tail = LogTail("auth.log", tail_bytes)
    for kind, value, cut in operations:
        if kind == "append":
            text = "".join(value).encode()  # type: ignore[arg-type]
            append(log, text[: len(text) - cut] if cut < len(text) else text)
        elif kind == "bytes":
            append(log, value)  # type: ignore[arg-type]
        elif kind == "truncate":
            os.truncate(log, min(int(value), log.stat().st_size))  # type: ignore[call-overload]
        else:
            data = log.read_bytes()
            log.unlink()
            log.write_bytes(data)  # another inode, the same bytes
        assert read(tail, log) == fresh(log, tail_bytes)


def test_the_penalty_log_tail_reads_as_before(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(OTHER.format(1) + PENALTY.format(1) + DROP.format(1))
    assert read_log_tail(log, "auth.log", since=0) == fresh(log, 4 << 20)
    assert [line.line for line in read_log_tail(log, "auth.log", since=0)] == [2, 3]


def _cpu(run: object) -> float:
    started = time.process_time()
    run()  # type: ignore[operator]
    return time.process_time() - started


def test_a_growing_4_mib_log_costs_a_fraction_of_a_fresh_read(tmp_path: Path) -> None:
    """1,000 new lines on a 4 MiB tail (a host under attack between two scrapes): the CPU of reading them
    against that of reading the tail afresh, measured in turns so that load weighs on both alike."""
    log = tmp_path / "auth.log"
    lines = generate(400_000, 20_000, seed=3, start=time.time() - 3600)
    log.write_text("".join(itertools.islice(lines, 45_000)))
    assert log.stat().st_size > 4 << 20
    kept = LogTail("auth.log")
    read(kept, log)
    ratios = []
    for _ in range(7):
        append(log, "".join(itertools.islice(lines, 1_000)))
        grown = _cpu(lambda: read(kept, log))
        anew = _cpu(lambda: read(LogTail("auth.log"), log))
        ratios.append(grown / max(anew, 1e-9))
    assert read(kept, log) == fresh(log, 4 << 20)
    assert statistics.median(ratios) < 0.25, ratios


def test_the_rule_for_lines_that_may_hold_an_event() -> None:
    assert may_hold_log_event("sshd[1]: drop connection #3 from [192.0.2.1]:1 on [192.0.2.2]:22 past")
    assert may_hold_log_event("sshd[1]: srclimit_penalise: ipv4: new 192.0.2.1/32 active penalty")
    assert not may_hold_log_event("sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2")
