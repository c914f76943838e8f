"""Is a daemon running: one pass over /proc/*/comm, for tools that have no socket to ask.

Several collectors ask in the same scrape (sshguard, DenyHosts, the watchlist): concurrent asks share
one pass, which reads each comm with one raw read, and a pass is used again for MAX_AGE seconds, so
asks in the same scrape that do not overlap share it too. On a host under attack (1,000 sshd children)
a pass costs 50-80 ms; three a scrape were a tenth of its time. A daemon started or stopped shows at
the next scrape.
"""

from __future__ import annotations

import os
from pathlib import Path

from exporter.sources.host import singleflight
from exporter.sources.host.procfiles import read_proc_file

MAX_AGE = singleflight.MAX_AGE


def comm_names(procfs: Path) -> frozenset[str]:
    """The comm (executable or script name, 15 chars) of every process, as of at most MAX_AGE ago."""
    return singleflight.recent_call(("comm_names", str(procfs)), lambda: _scan(procfs), MAX_AGE)


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
