"""The connections of known sshd listeners, followed from scrape to scrape.

Under a connection flood a scrape looks at every connection, so what it costs per connection is the
scrape. Two things keep that small:

- The files read stay open (`held_files.HeldProcFiles`): a re-read is one pread, not a path walk.
- A connection whose monitor has not run since the last pass is not read again when its stage was
  settled. A process's total run time (/proc/PID/schedstat, nanoseconds) changes whenever it runs at
  all, and nothing changes a monitor's title or its children but the monitor itself: it retitles
  itself, forks, and reaps. Settled stages are `accepted` without children (a monitor that has not
  yet spoken to the client) and `session`; the others (a pre-auth child is talking to the client
  and may retitle itself) are read every pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.sshd.held_files import HeldProcFiles
from exporter.sources.sshd.processes import (
    Listener,
    as_listener,
    boot_time,
    by_config,
    connection_stage,
    read_children,
    read_process,
    title_of,
)


@dataclass(frozen=True, slots=True)
class Settled:
    """A connection's stage, valid while its monitor's run time stays `ran`."""

    ran: bytes  # the monitor's schedstat line
    stage: str
    children: tuple[int, ...]


def _settles(stage: str, children: list[int]) -> bool:
    return stage == "session" or (stage == "accepted" and not children)


class ConnectionTracker:
    """Held files and settled stages of the connections seen in the last pass."""

    def __init__(self, procfs: str) -> None:
        self.files = HeldProcFiles(procfs)
        self._settled: dict[int, Settled] = {}

    def count(self, listener: Listener, monitors: list[int], seen: set[int]) -> None:
        """Add each connection's stage to `listener`; ended connections are not counted. The pids
        looked at go into `seen`."""
        # None: no run time (ended, or a kernel without schedstat): read, and never settled
        changed: dict[int, bytes | None] = dict.fromkeys(monitors)
        settled = self._settled
        tally: Counter[str] = Counter()
        for pid, run_time in self.files.read_each(monitors, "schedstat"):
            known = settled.get(pid)
            if known is not None and known.ran == run_time:
                tally[known.stage] += 1
                seen.add(pid)
                if known.children:
                    seen.update(known.children)
                del changed[pid]
            else:
                changed[pid] = run_time
        for pid, ran in changed.items():
            stage, children = self._read_connection(pid, seen)
            if stage is None:
                continue  # ended
            tally[stage] += 1
            if ran is not None and _settles(stage, children):
                settled[pid] = Settled(ran, stage, tuple(children))
            else:
                settled.pop(pid, None)
        for stage, count in tally.items():
            listener.add_connection(stage, count)

    def _read_connection(self, pid: int, seen: set[int]) -> tuple[str | None, list[int]]:
        """A connection's stage from its monitor's title and its children's titles."""
        try:
            title = title_of(self.files.read(pid, "cmdline"))  # first: it fails once the pid ended
            children = [int(word) for word in self.files.read(pid, "children").split()]
        except (OSError, ValueError):
            return None, []
        seen.add(pid)
        titles = []
        for child in children:
            try:
                titles.append(title_of(self.files.read(child, "cmdline")))
            except OSError:
                continue
            seen.add(child)
        return connection_stage(title, titles), children

    def retain(self, seen: set[int]) -> None:
        """Forget the connections not seen in this pass."""
        self.files.retain(seen)
        for pid in set(self._settled) - seen:
            del self._settled[pid]

    def pids(self) -> frozenset[int]:
        return self.files.pids()

    def close(self) -> None:
        self.files.close()
        self._settled.clear()


def read_listener_trees(
    procfs: Path, listeners: dict[int, float], tracker: ConnectionTracker | None
) -> list[Listener] | None:
    """Known listeners and their connections, following children files: cost grows with sshd's
    processes, not the host's. Without a tracker connections are not counted. None when a listener
    is gone or changed, or children files are unavailable (kernel without CONFIG_PROC_CHILDREN):
    the caller scans /proc."""
    found: list[Listener] = []
    seen: set[int] = set()
    try:
        btime = boot_time(procfs)
        for pid, create_time in listeners.items():
            proc = read_process(procfs, pid, btime)
            if proc is None or abs(proc.create_time - create_time) > 0.5:
                return None
            listener = as_listener(proc, parent_is_sshd=False)
            if listener is None:
                return None
            if tracker is not None:
                tracker.count(listener, read_children(procfs, pid), seen)
            found.append(listener)
    except (OSError, ValueError, IndexError):
        return None
    if tracker is not None:
        tracker.retain(seen)
    return by_config(found)
