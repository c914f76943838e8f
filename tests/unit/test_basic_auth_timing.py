"""Basic auth as an attacker probes it: by timing, and by flooding it with wrong passwords."""

from __future__ import annotations

import statistics
import threading
import time

import bcrypt
import pytest

from exporter.web.auth import BCRYPT_CONCURRENCY, BasicAuth


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
