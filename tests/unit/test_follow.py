"""LogFollower: batches reach the sink by source name, failures are contained, stop() closes sources."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.sources.authlog.follow import Batch, LogFollower, Source, state_file_for
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.tail import FileTailer

LINE = "Nov 23 19:04:34 host sshd[812]: Failed password for root from 203.0.113.9 port 50022 ssh2"


class FakeSource:
    """Hands out prepared batches; counts calls."""

    def __init__(self, name: str, batches: list[Batch], *, raises: bool = False) -> None:
        self.name = name
        self.batches = batches
        self.raises = raises
        self.more_pending = False
        self.polls = 0
        self.checkpoints = 0
        self.closed = False

    def poll(self) -> Batch:
        self.polls += 1
        if self.raises:
            raise RuntimeError("bug in a source")
        batch = self.batches.pop(0) if self.batches else []
        self.more_pending = bool(self.batches)
        return batch

    def checkpoint(self, *, force: bool = False) -> None:
        self.checkpoints += 1

    def close(self) -> None:
        self.closed = True

    def health_dict(self) -> dict[str, object]:
        return {"polls": self.polls}


class Collector:
    def __init__(self) -> None:
        self.got: list[tuple[str, Batch]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, batch: Batch) -> None:
        with self.lock:
            self.got.append((name, batch))

    def lines(self, name: str) -> list[object]:
        with self.lock:
            return [item for n, b in self.got if n == name for item in b]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_reach_the_sink_with_their_source_name(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("")
    state = tmp_path / "tail.state"
    tailer = FileTailer(log, from_start=True, state_file=state, name="file:/var/log/auth.log")
    record = SyslogRecord("Invalid user x from 192.0.2.1 port 22", "sshd", 5, "h", 1.0)
    journal = FakeSource("journal", [[record]])
    sink = Collector()
    follower = LogFollower([tailer, journal], sink, interval_s=0.02)
    follower.start()
    try:
        with log.open("a") as f:
            f.write(LINE + "\n")
        wait_for(lambda: sink.lines("file:/var/log/auth.log") == [LINE] and sink.lines("journal") == [record])
        health = follower.source_health()
        assert health["file:/var/log/auth.log"]["lines_read"] == 1
        assert health["journal"]["polls"] != 0
    finally:
        follower.stop()
    assert journal.closed
    assert not follower.health.running
    assert json.loads(state.read_text())["offset"] == len(LINE) + 1  # stop() closed the tailer: state saved


def test_more_pending_is_polled_again_without_waiting() -> None:
    source = FakeSource("s", [["a"], ["b"], ["c"]])
    sink = Collector()
    follower = LogFollower([source], sink, interval_s=30)
    follower.start()
    try:
        wait_for(lambda: sink.lines("s") == ["a", "b", "c"], timeout=5)
    finally:
        follower.stop()


def test_failing_sink_and_source_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bad = FakeSource("bad", [], raises=True)
    good = FakeSource("good", [["1"], ["2"], ["3"]])

    def sink(name: str, batch: Batch) -> None:
        raise ValueError("bug in the pipeline")

    follower = LogFollower([bad, good], sink, interval_s=0.01)
    for _ in range(5):
        follower.poll_once()
    assert follower.health.source_errors == 5
    assert follower.health.sink_errors == 3
    assert good.checkpoints == 5
    assert len([r for r in caplog.records if "polling auth log source bad" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "processing a batch from good" in r.getMessage()]) == 1


def test_duplicate_source_names_are_refused() -> None:
    sources: list[Source] = [FakeSource("x", []), FakeSource("x", [])]
    with pytest.raises(ValueError, match="unique"):
        LogFollower(sources, Collector())


def test_keeps_up_with_50000_lines_per_second(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("")
    count = [0]

    def sink(name: str, batch: Batch) -> None:
        count[0] += len(batch)

    follower = LogFollower([FileTailer(log)], sink)  # the default 250 ms interval
    follower.start()
    rate, seconds = 50_000, 2.0
    data = (LINE + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        start, written = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            if due > written:
                os.write(fd, data * (due - written))
                written = due
            time.sleep(0.002)
        stopped = time.monotonic()
        wait_for(lambda: count[0] >= written, timeout=10)
        lag = time.monotonic() - stopped
    finally:
        os.close(fd)
        follower.stop()
    assert count[0] == written
    assert lag < 2.0, f"caught up {lag:.2f} s after the writer stopped"


def test_state_file_for_names_one_file_per_source(tmp_path: Path) -> None:
    assert state_file_for(tmp_path, "file:/var/log/auth.log") == tmp_path / "file_var_log_auth.log.json"
    assert state_file_for(tmp_path, "journal") == tmp_path / "journal.json"
    assert state_file_for(tmp_path, "///") == tmp_path / "source.json"
