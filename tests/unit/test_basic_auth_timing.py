"""Basic auth as an attacker probes it: by timing, and by flooding it with wrong passwords."""

from __future__ import annotations

import base64
import contextlib
import http.client
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest

from exporter.web.app import make_http_server
from exporter.web.auth import BCRYPT_CONCURRENCY, BasicAuth, bcrypt_concurrency
from exporter.web.middleware import WebConfigMiddleware
from exporter.web.settings import WebConfig


def _median_seconds(auth: BasicAuth, user: str) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        assert not auth.check(user, b"wrong password")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@pytest.mark.parametrize("order", ["slow-first", "fast-first"])
def test_known_and_unknown_users_take_the_same_time_whatever_costs_the_file_mixes(order: str) -> None:
    """The decoy for unknown users had the first user's cost: a cost-4 user answered in 1 ms, an unknown
    one in 50 ms, so an attacker could tell which users exist."""
    users = {
        "slow": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=11)).decode(),
        "fast": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode(),
    }
    if order == "fast-first":
        users = dict(reversed(users.items()))
    auth = BasicAuth(users)
    took = {user: _median_seconds(auth, user) for user in ("slow", "fast", "nobody")}
    assert max(took.values()) < 3 * min(took.values()), took  # before: 1 ms against 120 ms
    assert auth.check("fast", b"s3cret") and auth.check("slow", b"s3cret")


def test_bcrypt_checks_run_side_by_side_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks were serialised: 20 wrong passwords made the first good login wait for all of them."""
    running = 0
    most = 0
    lock = threading.Lock()

    def slow_checkpw(password: bytes, hashed: bytes) -> bool:  # bcrypt's cost, without its CPU
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(bcrypt, "checkpw", slow_checkpw)
    auth = BasicAuth({"alice": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()})
    threads = [threading.Thread(target=auth.check, args=("alice", b"wrong")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert 2 <= most <= BCRYPT_CONCURRENCY
    assert auth.bcrypt_calls == 8


@pytest.mark.parametrize(("cpus", "checks"), [(None, 2), (1, 2), (2, 2), (4, 4), (64, 4)])
def test_wrong_passwords_take_a_core_each_and_never_more_than_four(cpus: int | None, checks: int) -> None:
    """Checks ran in the 8 workers, so 8 cores at most; now in a pool of their own, sized here."""
    assert bcrypt_concurrency(cpus) == checks


BCRYPT_SECONDS = 0.1  # a cost-10 bcrypt's time, slept rather than spent, so the test needs no free core
SCRAPE_SECONDS = 0.05  # the app's own time: the good login's baseline is a scrape, not scheduler noise
FLOOD = 20
GOOD = "Basic " + base64.b64encode(b"prometheus:good-password").decode()
WRONG = "Basic " + base64.b64encode(b"prometheus:wrong").decode()


def _scrape(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    time.sleep(SCRAPE_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"metrics\n"]


def _get(port: int, authorization: str, connection: http.client.HTTPConnection | None = None) -> int:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": authorization})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        if connection is None:
            conn.close()


def _good_login_seconds(port: int, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        assert _get(port, GOOD) == 200
        times.append(time.perf_counter() - started)
    return times


@contextlib.contextmanager
def _wrong_passwords(port: int, clients: int) -> Iterator[list[int]]:
    """`clients` keep-alive connections from the good login's own address, each sending a wrong password
    as soon as the last one was answered; yields the statuses they got."""
    statuses: list[int] = []
    stop = threading.Event()

    def flood() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while not stop.is_set():
                statuses.append(_get(port, WRONG, conn))
        finally:
            conn.close()

    threads = [threading.Thread(target=flood) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_wrong_passwords_from_a_good_logins_own_address_do_not_slow_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 clients sending wrong passwords from the scraper's own address (an attacker behind its NAT):
    each took one of the 8 workers for its bcrypt, and the cached good login queued behind them (p50 45 ms
    -> 844 ms, docs/benchmarks.md). Factors of the good login's time alone, measured here."""
    real_checkpw = bcrypt.checkpw
    running = most = 0
    lock = threading.Lock()

    def slow_checkpw(password: bytes, hashed: bytes) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(BCRYPT_SECONDS)
        with lock:
            running -= 1
        return bool(real_checkpw(password, hashed))

    monkeypatch.setattr(bcrypt, "checkpw", slow_checkpw)
    hashed = bcrypt.hashpw(b"good-password", bcrypt.gensalt(rounds=4)).decode()
    app = WebConfigMiddleware(_scrape, WebConfig(basic_auth_users=(("prometheus", hashed),)))
    server = make_http_server("127.0.0.1:0", app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert _get(port, GOOD) == 200  # the first login pays its bcrypt; cached from here on
        alone = statistics.median(_good_login_seconds(port, 8))
        with _wrong_passwords(port, FLOOD) as statuses:
            deadline = time.monotonic() + 10
            while len(statuses) < 5:  # the flood is under way
                assert time.monotonic() < deadline
                time.sleep(0.05)
            attacked = statistics.median(_good_login_seconds(port, 8))
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert set(statuses) == {401}
    # Before: ~20 wrong passwords ahead of it, two bcrypts at a time (~1 s, 20x); now its own time.
    assert attacked < 3 * alone, (attacked, alone)
    # One address keeps at most one bcrypt running: the other cores stay for the scrapes.
    assert most == 1
