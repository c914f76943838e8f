"""glibc's allocator told to hold less: two arenas, and a trim at most every TRIM_EVERY_S seconds."""

from __future__ import annotations

import ctypes
import platform

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
    assert [trimmer.maybe() for _ in range(5)] == [False] * 5
    assert allocator.Trimmer(every=0).maybe() is True


def test_nothing_happens_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_LIBC", None)
    assert allocator.limit_arenas() is False
    assert allocator.Trimmer(every=0).maybe() is False


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


@glibc
def test_large_buffers_stay_mappings_of_their_own_after_a_larger_one_was_freed() -> None:
    """glibc's default raises the mmap threshold to each freed block's size: a 1 MiB buffer after an
    8 MiB one was freed came from the heap, where it fragments; with the threshold fixed it is mapped."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _Mallinfo2
    assert allocator.limit_arenas() is True
    big = bytearray(8 << 20)
    del big
    mapped = mallinfo2().hblks
    buffer = bytearray(1 << 20)
    assert mallinfo2().hblks == mapped + 1
    del buffer
