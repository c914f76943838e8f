"""One thread that polls every auth-log source (file tailers, the journal reader) and feeds a callback.

Why one polling thread rather than a thread per source: sources are cheap to poll (a stat and a read
per file, a queue drain for the journal), the pipeline behind the callback is single-threaded, and
one thread needs no locking between sources. A source that returned a full batch (`more_pending`) is
polled again at once, so the interval only sets latency, not throughput: at 250 ms, 50,000 lines/s
is about 12,500 lines (1.4 MB) every interval, read as a few polls of a tailer's budget (256 KiB): small
batches keep the lock the scrape needs free and memory flat.

The callback (`sink`) receives `(source_name, batch)`: a list of raw lines (str) from a FileTailer, to
be framed by the parser, or a list of SyslogRecord from the JournalReader (already framed). It runs in
the follower thread; it must not block for long, and an exception in it is logged and counted, never
fatal. Each source's state file is written after the sink returned, so a restart does not skip lines
the sink never saw.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from exporter.sources.authlog.records import SyslogRecord

log = logging.getLogger(__name__)

Batch = list[str] | list[SyslogRecord]
Sink = Callable[[str, Batch], None]


class Source(Protocol):
    """What the follower needs of a source: FileTailer and JournalReader both are one."""

    @property
    def name(self) -> str: ...

    @property
    def more_pending(self) -> bool: ...

    def poll(self) -> Batch: ...

    def checkpoint(self, *, force: bool = False) -> None: ...

    def close(self) -> None: ...

    def health_dict(self) -> dict[str, object]: ...


def state_file_for(state_dir: Path, source_name: str) -> Path:
    """One state file per source, so sources never race on one file.

    `file:/var/log/auth.log` -> `STATE_DIR/file_var_log_auth.log.json`.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source_name).strip("_") or "source"
    return state_dir / f"{safe}.json"


@dataclass
class FollowerHealth:
    """The follower's own counters (per-source ones come from each source's health_dict)."""

    polls: int = 0
    batches: int = 0
    sink_errors: int = 0
    source_errors: int = 0  # a source raised (a bug: sources record I/O errors themselves)
    last_poll_seconds: float = 0.0
    running: bool = False


class LogFollower:
    """Polls `sources` every `interval_s` in a daemon thread and hands each non-empty batch to `sink`."""

    def __init__(
        self,
        sources: Sequence[Source],
        sink: Sink,
        *,
        interval_s: float = 0.25,
        name: str = "authlog-follower",
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        self.sources = list(sources)
        self.health = FollowerHealth()
        self._sink = sink
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failing: set[str] = set()  # sources / sinks whose last call raised: log once per episode

    def start(self) -> None:
        self.health.running = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, join the thread, then close every source (which saves its state)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for source in self.sources:
            try:
                source.close()
            except Exception:
                log.exception("closing auth log source %s failed", source.name)
        self.health.running = False

    def poll_once(self) -> bool:
        """One round over all sources; True if any has more to read right now (the thread, and tests)."""
        started = time.monotonic()
        more = False
        for source in self.sources:
            more |= self._poll_source(source)
        self.health.polls += 1
        self.health.last_poll_seconds = time.monotonic() - started
        return more

    def source_health(self) -> dict[str, dict[str, object]]:
        """Per-source health for the collector: {source name: {counter: value, ...}}."""
        return {s.name: s.health_dict() for s in self.sources}

    def follower_health(self) -> dict[str, object]:
        return asdict(self.health)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.poll_once():
                self._stop.wait(self._interval)

    def _poll_source(self, source: Source) -> bool:
        try:
            batch = source.poll()
        except Exception:
            self.health.source_errors += 1
            self._log_once(f"source:{source.name}", f"polling auth log source {source.name} failed")
            return False
        self._failing.discard(f"source:{source.name}")
        if batch:
            self.health.batches += 1
            try:
                self._sink(source.name, batch)
            except Exception:
                self.health.sink_errors += 1
                self._log_once(f"sink:{source.name}", f"processing a batch from {source.name} failed")
            else:
                self._failing.discard(f"sink:{source.name}")
        try:
            source.checkpoint()
        except Exception:
            self._log_once(f"checkpoint:{source.name}", f"saving the state of {source.name} failed")
        return source.more_pending

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._failing:
            self._failing.add(key)
            log.exception("%s", message)
