"""`GET /diagnose?address=ADDRESS` (--web.enable-diagnose): `diagnose ADDRESS --json` answered over HTTP,
so `diagnose --fleet` can ask every exporter without logging in anywhere.

A diagnosis reads every layer (the firewall tools, fail2ban, sshd's state): far dearer than a scrape.
So it cannot be used to load the host: at most one runs at a time; a request for the address being
diagnosed shares that run; another waits at most `wait` seconds for its turn, and at most `max_waiting`
requests wait at all (each holds one of the server's few workers: the running one and the waiting
ones leave the others to scrapes), the rest are answered 503 with Retry-After at once. An answer is
reused for `ttl` seconds per address (at most `max_cached` addresses); errors are not cached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from exporter.web.server import StartResponse

log = logging.getLogger(__name__)

PATH = "/diagnose"


class BusyError(Exception):
    """Another diagnosis holds the host for longer than a request may wait."""


class OneAtATime:
    """Runs `run(address)` for one address at a time, sharing a run in flight and caching answers."""

    def __init__(
        self,
        run: Callable[[str], str],
        *,
        ttl: float = 5.0,
        wait: float = 10.0,
        max_waiting: int = 4,
        max_cached: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.ttl = ttl
        self.wait = wait
        self.max_waiting = max_waiting
        self.max_cached = max_cached
        self.clock = clock
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # held by the one diagnosis running
        self._running: tuple[str, Future[str]] | None = None
        self._waiting = 0
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def answer(self, address: str) -> str:
        """The answer for `address`: cached, shared, or run now; BusyError when none comes in time."""
        with self._lock:
            cached = self._cached(address)
            if cached is not None:
                return cached
            if self._waiting >= self.max_waiting:
                raise BusyError
            self._waiting += 1
            shared = self._running[1] if self._running and self._running[0] == address else None
        try:
            if shared is not None:
                try:
                    return shared.result(timeout=self.wait)
                except FutureTimeoutError:
                    raise BusyError from None
            if not self._turn.acquire(timeout=self.wait):
                raise BusyError
        finally:
            with self._lock:
                self._waiting -= 1
        try:
            return self._lead(address)
        finally:
            self._turn.release()

    def _lead(self, address: str) -> str:
        """With the turn held: the answer a run just before ours left, or a run of our own."""
        future: Future[str] = Future()
        with self._lock:
            cached = self._cached(address)
            if cached is not None:
                return cached
            self._running = (address, future)
        try:
            result = self.run(address)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            with self._lock:
                self._cache[address] = (self.clock() + self.ttl, result)
                self._cache.move_to_end(address)
                while len(self._cache) > self.max_cached:
                    self._cache.popitem(last=False)
            return result
        finally:
            with self._lock:
                self._running = None

    def _cached(self, address: str) -> str | None:
        """Under the lock: a fresh answer for `address`; stale ones are dropped."""
        now = self.clock()
        for key in [key for key, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        entry = self._cache.get(address)
        return entry[1] if entry is not None else None


def _json(
    start_response: StartResponse, status: str, body: object, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    data = (body if isinstance(body, str) else json.dumps(body)).encode() + b"\n"
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *headers])
    return [data]


class DiagnoseApp:
    """The WSGI app of PATH: `check(address)` refuses a bad one (ValueError: 400) before any turn is
    taken; `gate` runs the diagnosis."""

    def __init__(self, gate: OneAtATime, check: Callable[[str], object]) -> None:
        self.gate = gate
        self.check = check

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(
                start_response, "405 Method Not Allowed", {"error": "GET only"}, [("Allow", "GET, HEAD")]
            )
        values = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get(
            "address", []
        )
        if len(values) != 1:
            return _json(
                start_response, "400 Bad Request", {"error": "give one address: /diagnose?address=ADDRESS"}
            )
        address = values[0].strip()
        try:
            self.check(address)
        except ValueError:
            return _json(
                start_response,
                "400 Bad Request",
                {"error": f"{address[:100]!r} is not an address or network"},
            )
        try:
            answer = self.gate.answer(address)
        except BusyError:
            retry = [("Retry-After", str(max(1, round(self.gate.ttl))))]
            return _json(
                start_response,
                "503 Service Unavailable",
                {"error": "busy: another diagnosis is running"},
                retry,
            )
        except Exception as exc:  # a diagnosis that fails is one 500 with the reason, not a dead request
            log.warning("diagnosis failed", extra={"address": address, "err": str(exc)})
            return _json(start_response, "500 Internal Server Error", {"error": f"diagnosis failed: {exc}"})
        return _json(start_response, "200 OK", answer)
