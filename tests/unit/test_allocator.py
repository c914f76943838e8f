"""glibc's allocator told to hold less: two arenas, and a trim at most every TRIM_EVERY_S seconds."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import threading

import pytest

from exporter import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt and malloc_trim")


@glibc
def test_arenas_are_limited_on_glibc() -> None:
    assert allocator.limit_arenas() is True


@glibc
def test_trims_at_most_once_per_period() -> None:
    trimmer = allocator.Trimmer(every=3600)
    assert trimmer.maybe() is True
    assert trimmer.thread is not None
    trimmer.thread.join()
    assert [trimmer.maybe() for _ in range(5)] == [False] * 5
    assert allocator.Trimmer(every=0).maybe() is True


def test_nothing_happens_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_LIBC", None)
    assert allocator.limit_arenas() is False
    assert allocator.Trimmer(every=0).maybe() is False


_MAPPED_AFTER_A_LARGER_FREE = """
import ctypes, sys
from exporter import allocator
NAMES = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class Mallinfo2(ctypes.Structure):  # all ten fields: the struct is returned by value
    _fields_ = [(name, ctypes.c_size_t) for name in NAMES.split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
if sys.argv[1] == "limited":
    assert allocator.limit_arenas() is True
big = bytearray(8 << 20)
del big
mapped = mallinfo2().hblks
buffer = bytearray(1 << 20)
print(mallinfo2().hblks - mapped)
"""


@glibc
def test_large_buffers_stay_mappings_of_their_own_after_a_larger_one_was_freed() -> None:
    """glibc's default raises the mmap threshold to each freed block's size: a 1 MiB buffer after an
    8 MiB one was freed came from the heap, where it fragments; with the threshold fixed it is mapped.
    (In a fresh process: a heap that already holds a free 1 MiB chunk serves it whatever the threshold.)"""
    found = {
        how: subprocess.run(
            [sys.executable, "-c", _MAPPED_AFTER_A_LARGER_FREE, how],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for how in ("default", "limited")
    }
    assert found == {"default": "0", "limited": "1"}


@glibc
def test_the_first_trim_freezes_what_the_first_scrape_left_and_runs_off_the_callers_thread() -> None:
    """Full collections stop walking the caches built by the first scrape (75-145 ms each, GIL held)."""
    gc.unfreeze()
    trimmer = allocator.Trimmer(every=0)
    try:
        assert trimmer.maybe() is True
        assert trimmer.thread is not None and trimmer.thread is not threading.current_thread()
        trimmer.thread.join()
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        made_since: list[list[object]] = [[] for _ in range(10_000)]
        assert trimmer.maybe() is True
        assert trimmer.thread is not None
        trimmer.thread.join()
        assert gc.get_freeze_count() < frozen + len(made_since)  # frozen once, not again
    finally:
        gc.unfreeze()
