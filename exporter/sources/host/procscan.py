"""Is a daemon running: one pass over /proc/*/comm, for tools that have no socket to ask.

Several collectors ask in the same scrape (sshguard, DenyHosts, the watchlist): concurrent asks share
one pass, which reads each comm with one raw read, and a pass is used again for MAX_AGE seconds, so
asks in the same scrape that do not overlap share it too. On a host under attack (1,000 sshd children)
a pass costs 50-80 ms; three a scrape were a tenth of its time. A daemon started or stopped shows at
the next scrape.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from exporter.sources.host.procfiles import read_proc_file
from exporter.sources.host.singleflight import shared_call

MAX_AGE = 1.0  # seconds: less than any scrape interval
_recent: dict[str, tuple[float, frozenset[str]]] = {}
_recent_lock = threading.Lock()


def comm_names(procfs: Path) -> frozenset[str]:
    """The comm (executable or script name, 15 chars) of every process, as of at most MAX_AGE ago."""
    with _recent_lock:
        kept = _recent.get(str(procfs))
    if kept is not None and 0 <= time.monotonic() - kept[0] < MAX_AGE:
        return kept[1]
    started = time.monotonic()  # before the pass: its age counts from before what it saw
    names = shared_call(("comm_names", str(procfs)), lambda: _scan(procfs))
    with _recent_lock:
        _recent.clear()  # one procfs in use: bounded
        _recent[str(procfs)] = (started, names)
    return names


def _scan(procfs: Path) -> frozenset[str]:
    names = set()
    for entry in os.scandir(procfs):
        if entry.name.isdigit():
            try:
                names.add(
                    read_proc_file(f"{entry.path}/comm", short_read_is_eof=True)
                    .decode(errors="replace")
                    .strip()
                )
            except OSError:
                continue  # exited meanwhile
    return frozenset(names)


def running(procfs: Path, names: frozenset[str]) -> bool:
    """True when a process whose comm is in names exists."""
    return not names.isdisjoint(comm_names(procfs))
