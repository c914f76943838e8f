"""psutil under --path.procfs: psutil reads a process-wide PROCFS_PATH, so every use goes through here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

_LOCK = threading.Lock()


@contextmanager
def psutil_procfs(procfs: Path) -> Iterator[None]:
    """Point psutil at procfs for the duration of the block; serialised, restored afterwards."""
    with _LOCK:
        saved = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = str(procfs)
        try:
            yield
        finally:
            psutil.PROCFS_PATH = saved
