"""glibc's allocator, told to hold less memory for a long-running, many-threaded process.

glibc gives each thread that meets contention its own arena (up to 8 per core) and keeps what is freed
there for reuse. The exporter's collectors run in a pool of threads, and on a host under attack each
scrape reads large outputs in them (an `nft` listing of 100,000 addresses, 100,000 fail2ban bans, a
50,000-line hosts.deny): the freed buffers stayed in a dozen arenas, and resident memory settled at
258-278 MB where the live data is under 100 MB (docs/benchmarks.md, "A host under attack"). Two arenas,
set before the first thread starts, and `malloc_trim` after a scrape (it hands whole free pages back to
the kernel) keep it near what is in use. Elsewhere (musl, another allocator) both are no-ops.

glibc also raises its mmap threshold to the size of each large block freed (up to 32 MB): after the
first 4 MB listing is freed, every later multi-megabyte buffer (a listing, a 2 MB legacy table, a log
tail) is carved from the heap, where the small objects allocated around it keep its pages from going
back. A fixed threshold of MMAP_THRESHOLD keeps each such buffer a mapping of its own, unmapped when
freed: 150-174 MB resident became 103-107 MB in the attacked-host benchmark.

The first trim also freezes what the first scrape built (freeze_survivors), so Python's cyclic collector
does not walk the long-lived caches again in every full collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 128 << 10  # glibc's starting value, made fixed
TRIM_EVERY_S = 10.0  # a trim walks the heap: at most this often


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc
    return libc


_LIBC = _libc()


def limit_arenas(count: int = ARENAS) -> bool:
    """At most `count` malloc arenas and a fixed mmap threshold: call before any thread starts. False
    when not glibc."""
    if _LIBC is None:
        return False
    done = bool(_LIBC.mallopt(M_ARENA_MAX, count)) and bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("malloc arenas limited", extra={"arenas": count, "done": done})
    return done


class Trimmer:
    """`malloc_trim(0)` at most every TRIM_EVERY_S seconds, in a thread of its own started by whichever
    thread calls `maybe` (after a scrape); the first time, freeze_survivors before it."""

    def __init__(self, every: float = TRIM_EVERY_S) -> None:
        self.every = every
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None  # the last trim's

    def maybe(self) -> bool:
        """Trims when the last trim is old enough; True when it trimmed."""
        if _LIBC is None:
            return False
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every:
                return False
            first, self._last = self._last == float("-inf"), now
        # Off the scrape's path: the response that called this does not wait for the heap walk.
        self.thread = threading.Thread(target=self._trim, args=(first,), name="trim", daemon=True)
        self.thread.start()
        return True

    @staticmethod
    def _trim(first: bool) -> None:
        if first:
            freeze_survivors()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)


def freeze_survivors() -> None:
    """Takes what is alive now out of the cyclic garbage collector's walks (gc.freeze). After the first
    scrape that is the caches of a host under attack (hosts.deny's index, 100,000 bans, the rulesets):
    every full collection walked them again, 75-145 ms with the GIL held, in whichever scrape it fell.
    Frozen objects are still freed when their last reference goes; only a cycle among them stays."""
    gc.collect()
    gc.freeze()
