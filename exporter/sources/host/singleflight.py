"""One read in flight per source: collectors that need the same host state in the same scrape share it.

The firewall collector, the watchlist and the CrowdSec collector all want `cscli decisions list` and
`nft -j list ruleset`; they run concurrently, so without this every scrape ran each tool two or three
times. Readers with the same configuration (the instance's `__dict__`) that are called while a read
is in flight wait for it and get its result (or its exception). Nothing is cached after it returns, so
no one ever sees older state than a read of their own would have given.

Except where a read is marked `reused_for(MAX_AGE)` (recent_call): asks in one scrape come one after
another as often as at once (the watchlist asks CrowdSec after the firewall; three collectors ask
whether a daemon runs), so a read that started in the same scrape (after the last `scrape_started`)
less than MAX_AGE ago is used again. A scrape never gets a read that started before it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_LOCK = threading.Lock()
_INFLIGHT: dict[tuple[Any, ...], Future[Any]] = {}
MAX_AGE = 1.0  # seconds: less than any scrape interval
_RECENT: dict[tuple[Any, ...], tuple[float, float, Any]] = {}  # key -> (started, max age, result)
_scrape_started = float("-inf")


def scrape_started() -> None:
    """A scrape begins: reads that started before now are not used again (recent_call)."""
    global _scrape_started
    with _LOCK:
        _scrape_started = time.monotonic()


def _key(reader: object, method: str) -> tuple[Any, ...]:
    state = tuple(sorted((k, repr(v)) for k, v in vars(reader).items() if not k.startswith("_")))
    return (type(reader), method, state)


def shared_call(key: tuple[Any, ...], call: Callable[[], T]) -> T:
    """`call()`, or the result of the identical call (same `key`) already in flight."""
    with _LOCK:
        future = _INFLIGHT.get(key)
        leader = future is None
        if future is None:
            future = _INFLIGHT[key] = Future()
    if not leader:
        return future.result()  # type: ignore[no-any-return]
    try:
        result = call()
    except BaseException as exc:
        _done(key)
        future.set_exception(exc)
        raise
    _done(key)  # before the result is published: a caller arriving after the read ended reads anew
    future.set_result(result)
    return result


def _done(key: tuple[Any, ...]) -> None:
    with _LOCK:
        del _INFLIGHT[key]


def singleflight(method: Callable[[Any], T]) -> Callable[[Any], T]:
    """Decorates a reader's argument-less `read(self)`."""

    @functools.wraps(method)
    def wrapper(self: Any) -> T:
        return shared_call(_key(self, method.__name__), lambda: method(self))

    return wrapper


def recent_call(key: tuple[Any, ...], call: Callable[[], T], max_age: float = MAX_AGE) -> T:
    """The result of `call()` started less than `max_age` seconds ago and in this scrape, else
    shared_call's."""
    now = time.monotonic()
    with _LOCK:
        kept = _RECENT.get(key)
        since = _scrape_started
    if kept is not None and kept[0] >= since and 0 <= now - kept[0] < max_age:
        return kept[2]  # type: ignore[no-any-return]
    result = shared_call(key, call)
    with _LOCK:
        for old in [k for k, (started, age, _) in _RECENT.items() if not 0 <= now - started < age]:
            del _RECENT[old]  # bounded by the reads of the last max_age seconds
        _RECENT[key] = (now, max_age, result)
    return result


def reused_for(max_age: float) -> Callable[[Callable[[Any], T]], Callable[[Any], T]]:
    """Decorates a reader's argument-less `read(self)` as recent_call: a read of the same configuration
    that started in this scrape less than `max_age` seconds ago is used again."""

    def decorate(method: Callable[[Any], T]) -> Callable[[Any], T]:
        @functools.wraps(method)
        def wrapper(self: Any) -> T:
            return recent_call(_key(self, method.__name__), lambda: method(self), max_age)

        return wrapper

    return decorate
