"""`GET /diagnose?address=ADDRESS` (--web.enable-diagnose): `diagnose --json` over HTTP, off by default,
behind the web config's basic auth, one diagnosis at a time and answers cached, so it cannot load the host."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from exporter.__main__ import main
from exporter.cli import _diagnose_app, serve_parser
from exporter.options import Options
from exporter.registry import Context, registrations
from exporter.scrape import ScrapeCollector
from exporter.sources.access import parse_target
from exporter.web.app import make_app
from exporter.web.diagnose import BusyError, DiagnoseApp, OneAtATime
from exporter.web.middleware import WebConfigMiddleware
from exporter.web.server import Limits, WSGIApp
from exporter.web.settings import WebConfig
from tests.builders import wrapped_sshd_host


class _Diagnosis:
    """A stand-in diagnosis: counts its runs, and can be held to show what waits for it."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, address: str) -> str:
        with self._lock:
            self.runs.append(address)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        self.release.wait(10)
        with self._lock:
            self.running -= 1
        return json.dumps({"address": address, "run": len(self.runs)})


def _app(diagnose: WSGIApp | None, config: WebConfig | None = None) -> WSGIApp:
    scraper = ScrapeCollector({})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    return WebConfigMiddleware(make_app(registry, scraper, "/metrics", diagnose), config or WebConfig())


def _get(app: WSGIApp, query: str, headers: dict[str, str] | None = None) -> tuple[str, dict[str, str], Any]:
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, dict(response_headers)

    environ = {"PATH_INFO": "/diagnose", "QUERY_STRING": query, "REQUEST_METHOD": "GET", **(headers or {})}
    body = b"".join(app(environ, start_response))
    document = json.loads(body) if answer["headers"].get("Content-Type") == "application/json" else body
    return answer["status"], answer["headers"], document


def _endpoint(run: Callable[[str], str], **gate: Any) -> WSGIApp:
    return _app(DiagnoseApp(OneAtATime(run, **gate), parse_target))


def test_without_the_flag_there_is_no_diagnose() -> None:
    status, _, body = _get(_app(None), "address=192.0.2.7")
    assert status == "404 Not Found" and b"metrics are at /metrics" in body


def test_the_serve_flag_is_off_by_default() -> None:
    parser = serve_parser(registrations())
    assert getattr(parser.parse_args([]), "web.enable_diagnose") is False
    assert getattr(parser.parse_args(["--web.enable-diagnose"]), "web.enable_diagnose") is True


@pytest.mark.parametrize("query", ["", "address=", "address=not-an-address", "address=192.0.2.300",
                                   "address=192.0.2.1&address=192.0.2.2", "addr=192.0.2.1"])  # fmt: skip
def test_a_bad_or_missing_address_is_400_with_a_json_error_and_runs_nothing(query: str) -> None:
    diagnosis = _Diagnosis()
    status, headers, document = _get(_endpoint(diagnosis), query)
    assert status == "400 Bad Request" and headers["Content-Type"] == "application/json"
    assert "address" in document["error"]
    assert diagnosis.runs == []


def test_an_answer_is_cached_per_address_for_a_few_seconds() -> None:
    now = [100.0]
    diagnosis = _Diagnosis()
    app = _endpoint(diagnosis, ttl=5.0, clock=lambda: now[0])
    first = _get(app, "address=192.0.2.7")
    assert first[0] == "200 OK" and first[2] == {"address": "192.0.2.7", "run": 1}
    now[0] += 4.0
    assert _get(app, "address=192.0.2.7")[2]["run"] == 1  # the cached answer
    assert _get(app, "address=192.0.2.8")[2]["run"] == 2  # another address is its own diagnosis
    now[0] += 1.5
    assert _get(app, "address=192.0.2.7")[2]["run"] == 3  # stale: diagnosed again
    assert diagnosis.runs == ["192.0.2.7", "192.0.2.8", "192.0.2.7"]


def test_the_cache_is_bounded() -> None:
    diagnosis = _Diagnosis()
    gate = OneAtATime(diagnosis, max_cached=2)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
        gate.answer(address)
    assert diagnosis.runs == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"]  # the oldest went first


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def test_one_diagnosis_at_a_time_others_wait_then_503_with_retry_after() -> None:
    diagnosis = _Diagnosis()
    diagnosis.release.clear()
    app = _endpoint(diagnosis, wait=0.2)
    first, result = _in_thread(lambda: _get(app, "address=192.0.2.7"))
    assert diagnosis.started.wait(5)
    status, headers, document = _get(app, "address=198.51.100.7")  # another address: waits 0.2 s, then 503
    assert status == "503 Service Unavailable" and headers["Retry-After"] == "5"
    assert "busy" in document["error"]
    diagnosis.release.set()
    first.join(5)
    assert result[0][0] == "200 OK"
    assert diagnosis.runs == ["192.0.2.7"] and diagnosis.most_at_once == 1


def test_a_waiting_request_runs_when_the_running_one_ends_never_two_at_once() -> None:
    diagnosis = _Diagnosis()
    diagnosis.release.clear()
    gate = OneAtATime(diagnosis, wait=10.0)
    first, _ = _in_thread(lambda: gate.answer("192.0.2.7"))
    assert diagnosis.started.wait(5)
    second, result = _in_thread(lambda: gate.answer("198.51.100.7"))
    threading.Timer(0.3, diagnosis.release.set).start()
    first.join(10)
    second.join(10)
    assert json.loads(result[0])["address"] == "198.51.100.7"
    assert diagnosis.runs == ["192.0.2.7", "198.51.100.7"] and diagnosis.most_at_once == 1


def test_requests_for_the_address_being_diagnosed_share_its_run() -> None:
    diagnosis = _Diagnosis()
    diagnosis.release.clear()
    gate = OneAtATime(diagnosis, wait=10.0)
    threads = [_in_thread(lambda: gate.answer("192.0.2.7")) for _ in range(3)]
    assert diagnosis.started.wait(5)
    diagnosis.release.set()
    for thread, _ in threads:
        thread.join(10)
    assert diagnosis.runs == ["192.0.2.7"]
    assert {result[0] for _, result in threads} == {json.dumps({"address": "192.0.2.7", "run": 1})}


def test_past_max_waiting_a_request_is_refused_at_once() -> None:
    diagnosis = _Diagnosis()
    diagnosis.release.clear()
    gate = OneAtATime(diagnosis, wait=10.0, max_waiting=1)
    first, _ = _in_thread(lambda: gate.answer("192.0.2.7"))
    assert diagnosis.started.wait(5)
    second, waited = _in_thread(lambda: gate.answer("198.51.100.7"))  # takes the one waiting place
    for _ in range(100):
        if gate._waiting == 1:
            break
        threading.Event().wait(0.01)
    started = time.monotonic()
    with pytest.raises(BusyError):
        gate.answer("203.0.113.7")
    assert time.monotonic() - started < 1  # at once, not after `wait`
    diagnosis.release.set()
    first.join(10)
    second.join(10)
    assert diagnosis.runs == ["192.0.2.7", "198.51.100.7"] and json.loads(waited[0])["run"] == 2


def test_diagnoses_leave_most_of_the_servers_workers_to_scrapes() -> None:
    assert OneAtATime(_Diagnosis()).max_waiting + 1 <= Limits().workers // 2 + 1


def test_a_failed_diagnosis_is_500_and_not_cached() -> None:
    calls: list[str] = []

    def failing(address: str) -> str:
        calls.append(address)
        raise OSError("cannot read /proc")

    app = _endpoint(failing)
    for _ in range(2):
        status, _, document = _get(app, "address=192.0.2.7")
        assert status == "500 Internal Server Error" and "cannot read /proc" in document["error"]
    assert calls == ["192.0.2.7", "192.0.2.7"]


def test_basic_auth_of_the_web_config_guards_diagnose_too() -> None:
    diagnosis = _Diagnosis()
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    app = _app(
        DiagnoseApp(OneAtATime(diagnosis), parse_target), WebConfig(basic_auth_users=(("alice", hashed),))
    )
    status, headers, _ = _get(app, "address=192.0.2.7")
    assert status == "401 Unauthorized" and headers["WWW-Authenticate"] == "Basic"
    wrong = {"HTTP_AUTHORIZATION": "Basic YWxpY2U6d3Jvbmc="}  # alice:wrong
    assert _get(app, "address=192.0.2.7", wrong)[0] == "401 Unauthorized"
    assert diagnosis.runs == []
    right = {"HTTP_AUTHORIZATION": "Basic YWxpY2U6czNjcmV0"}  # alice:s3cret
    assert _get(app, "address=192.0.2.7", right)[0] == "200 OK"


def test_the_answer_is_diagnose_json_through_the_servers_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = wrapped_sshd_host(tmp_path, "sshd: 192.0.2.11\n")
    switches = registrations()
    context = Context(Options.from_namespace(serve_parser(switches).parse_args(tree), switches))
    try:
        app = _app(_diagnose_app(context))
        for address in ("192.0.2.11", "192.0.2.12"):
            status, _, document = _get(app, f"address={address}")
            assert status == "200 OK"
            main(["diagnose", address, "--json", *tree])
            assert document == json.loads(capsys.readouterr().out)  # the same object as the CLI's
        assert document["outcome"] == "gets_in"
        status, _, document = _get(app, "address=192.0.2.11")
        assert document["blocked"] is True and document["remedy"]["tcp_wrappers"]
        assert context._sshd is not None  # the server's one reader, not one per request
    finally:
        context.close()
