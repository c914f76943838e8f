"""Is a daemon running: one pass over /proc/*/comm, for tools that have no socket to ask."""

from __future__ import annotations

import os
from pathlib import Path


def running(procfs: Path, names: frozenset[str]) -> bool:
    """True when a process whose comm (executable or script name, 15 chars) is in names exists."""
    for entry in os.scandir(procfs):
        if entry.name.isdigit():
            try:
                comm = Path(entry.path, "comm").read_text().strip()
            except OSError:
                continue  # exited meanwhile
            if comm in names:
                return True
    return False
