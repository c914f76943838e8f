"""glibc's allocator told to hold less: two arenas, and a trim at most every TRIM_EVERY_S seconds."""

from __future__ import annotations

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
