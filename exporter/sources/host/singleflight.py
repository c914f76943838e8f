"""One read in flight per source: collectors that need the same host state in the same scrape share it.

The firewall collector, the watchlist and the CrowdSec collector all want `cscli decisions list` and
`nft -j list ruleset`; they run concurrently, so without this every scrape ran each tool two or three
times. Readers with the same configuration (the instance's `__dict__`) that are called while a read
is in flight wait for it and get its result (or its exception). Nothing is cached after it returns, so
no one ever sees older state than a read of their own would have given.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_LOCK = threading.Lock()
_INFLIGHT: dict[tuple[Any, ...], Future[Any]] = {}


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
