"""exporter.web.server's limits, each met by a client that pushes on it, over loopback.

The server runs in a thread with short deadlines (Limits) so a test waits fractions of a second for what
takes 10 s or more with the defaults.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from exporter.web.app import make_http_server
from exporter.web.server import HttpServer, Limits

FAST = Limits(request_timeout=0.5, idle_timeout=0.5, handshake_timeout=0.5, write_timeout=0.5)


class App:
    """Answers `hello`; /block waits until released, /boom raises, /big is 8 MB."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.paths: list[str] = []  # in the order the workers took them

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        path = environ["PATH_INFO"]
        self.paths.append(path)
        if path == "/block":
            self.release.wait(10)
        if path == "/boom":
            raise RuntimeError("boom")
        body = b"x" * (8 << 20) if path == "/big" else f"hello {environ['REQUEST_METHOD']} {path}\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


def _serve(app: App, limits: Limits) -> Iterator[HttpServer]:
    server = make_http_server("127.0.0.1:0", app, limits=limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        app.release.set()
        server.shutdown()
        thread.join(5)
        server.server_close()
        assert not thread.is_alive()


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def server(app: App) -> Iterator[HttpServer]:
    yield from _serve(app, FAST)


def _connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(server.server_address, timeout=5)


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _statuses(answer: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"^HTTP/1.1 (\d{3})", answer, re.M)]


def test_a_half_sent_request_is_closed_at_its_deadline(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert _read_until_closed(sock) == b""
        assert time.monotonic() - started < 3


def test_a_trickling_request_is_closed_at_its_deadline_though_bytes_keep_coming(server: HttpServer) -> None:
    """The deadline is for the whole head (Go's ReadHeaderTimeout), not per read."""
    with _connect(server) as sock:
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(60):  # 6 s of one byte every 0.1 s
                sock.sendall(b"X")
                time.sleep(0.1)
        assert time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed(server: HttpServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock) == b""
        assert time.monotonic() - started < 3


def test_keep_alive_idle_timeout_and_request_cap(app: App) -> None:
    for server in _serve(app, Limits(idle_timeout=0.5, max_requests_per_connection=2)):
        with _connect(server) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            first = sock.recv(65536)
            assert _statuses(first) == [200] and b"Connection: close" not in first
            started = time.monotonic()
            assert _read_until_closed(sock) == b""  # idle past 0.5 s
            assert time.monotonic() - started < 3
        with _connect(server) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            answer = _read_until_closed(sock)
            assert _statuses(answer) == [200, 200]  # the cap: the second answer closes the connection
            assert answer.count(b"Connection: close") == 1


def test_pipelined_requests_are_answered_in_order(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = _read_until_closed(sock)
    assert _statuses(answer) == [200, 200, 200]
    assert re.findall(rb"hello \w+ /\d", answer) == [b"hello GET /1", b"hello GET /3"]  # HEAD: no body
    assert re.findall(rb"Content-Length: (\d+)", answer) == [b"13", b"14", b"13"]  # HEAD: as a GET's


def test_http10_closes_after_the_answer(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /x HTTP/1.0\r\n\r\n")
        answer = _read_until_closed(sock)
    assert _statuses(answer) == [200] and answer.endswith(b"hello GET /x\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS to a plain server
    ],
    ids=["long-head", "many-headers", "body", "chunked", "http09", "http2", "bad-name", "control", "tls"],
)
def test_bad_requests_get_their_status_and_a_closed_connection(
    server: HttpServer, app: App, request_bytes: bytes, status: int
) -> None:
    with _connect(server) as sock:
        sock.sendall(request_bytes)
        answer = _read_until_closed(sock)
    assert _statuses(answer) == [status]
    assert app.calls == 0


def test_a_full_pool_answers_503_at_once_and_recovers(app: App) -> None:
    for server in _serve(app, Limits(workers=1, queue=1)):
        blocked = [_connect(server) for _ in range(2)]
        try:
            for sock in blocked:
                sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
            with _connect(server) as sock:
                started = time.monotonic()
                sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = sock.recv(65536)
                assert _statuses(answer) == [503] and b"Retry-After: 1" in answer
                assert time.monotonic() - started < 2
                app.release.set()
                for blocked_sock in blocked:
                    assert _statuses(blocked_sock.recv(65536)) == [200]
                time.sleep(0.2)
                sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _statuses(sock.recv(65536)) == [200]
        finally:
            for sock in blocked:
                sock.close()


def _wait_for(server: HttpServer, condition: Callable[[HttpServer], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition(server):
        assert time.monotonic() < deadline, "condition not reached in 5 s"
        time.sleep(0.01)


def test_a_client_flooding_the_workers_does_not_queue_another_clients_request_behind_its_own(
    app: App,
) -> None:
    """Before: one FIFO queue; 20 clients sending wrong passwords (a bcrypt each) from one address put a
    good login behind all of their requests. Now the next free worker goes to the address with the
    fewest requests running: the other client's request starts right after the first one ends."""
    for server in _serve(app, Limits(workers=2, queue=16)):
        flood = [socket.create_connection(server.server_address, 5, ("127.0.0.2", 0)) for _ in range(6)]
        try:
            for sock in flood:
                sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            _wait_for(server, lambda s: app.calls == 2 and s.pending == 6)
            with _connect(server) as sock:
                sock.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                _wait_for(server, lambda s: s.pending == 7)
                app.release.set()
                assert _statuses(_read_until_closed(sock)) == [200]
            for flooding in flood:
                assert _statuses(flooding.recv(65536)) == [200]
        finally:
            for sock in flood:
                sock.close()
    assert app.paths.index("/other") == 2, app.paths


def test_an_app_error_is_one_500(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _statuses(_read_until_closed(sock)) == [500]
    with _connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _statuses(_read_until_closed(sock)) == [200]


def test_a_client_that_does_not_read_its_answer_is_dropped(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        assert server.unsent > 0
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.connections and server.unsent == 0


def test_connections_past_the_cap_are_closed(app: App) -> None:
    for server in _serve(app, Limits(max_connections=3)):
        held = [_connect(server) for _ in range(3)]
        try:
            time.sleep(0.2)
            with _connect(server) as extra:
                assert _read_until_closed(extra) == b""
            held[0].sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _statuses(held[0].recv(65536)) == [200]
        finally:
            for sock in held:
                sock.close()


def test_shutdown_is_prompt_with_connections_open(app: App) -> None:
    server = make_http_server("127.0.0.1:0", app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    socks = [_connect(server) for _ in range(20)]
    socks[0].sendall(b"GET /block HTTP/1.1\r\n\r\n")
    time.sleep(0.2)
    started = time.monotonic()
    server.shutdown()
    thread.join(5)
    server.server_close()
    app.release.set()
    assert not thread.is_alive() and time.monotonic() - started < 2
    for sock in socks:
        sock.close()


class GatedApp(App):
    """App with a Gate: /checked needs the slow check, which waits until `checked` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = self
        self.threads = 1
        self.checked = threading.Event()
        self.checks = 0

    def decided(self, environ: dict[str, Any]) -> bool:
        return bool(environ["PATH_INFO"] != "/checked")

    def check(self, environ: dict[str, Any]) -> None:
        self.checks += 1
        self.checked.wait(10)


def test_requests_waiting_for_the_gate_hold_no_worker_and_its_queue_is_bounded() -> None:
    """A gate's slow check (basic auth's bcrypt) runs outside the worker pool: with the one worker free,
    a request the gate decided at once answers while checks are still running, and past the checks'
    queue the answer is 503 at once."""
    app = GatedApp()
    for server in _serve(app, Limits(workers=1, checks_queue=1)):
        waiting = [_connect(server) for _ in range(2)]
        try:
            for sock in waiting:  # one address: one check at a time, the other one waits
                sock.sendall(b"GET /checked HTTP/1.1\r\nHost: x\r\n\r\n")
            _wait_for(server, lambda s: app.checks == 1)
            with _connect(server) as sock:
                sock.sendall(b"GET /checked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = _read_until_closed(sock)
                assert _statuses(answer) == [503] and b"Retry-After: 1" in answer
            with _connect(server) as sock:
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert _statuses(_read_until_closed(sock)) == [200]
            assert app.checks == 1 and app.paths == ["/ok"]
            app.checked.set()
            for sock in waiting:
                assert _statuses(sock.recv(65536)) == [200]
        finally:
            for sock in waiting:
                sock.close()
    assert app.checks == 2
