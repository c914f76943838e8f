"""CrowdSec from fixtures of its answers: the local API (served on loopback) and cscli's JSON."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.collectors.crowdsec import snapshot_families
from exporter.sources.crowdsec import (
    CrowdsecError,
    CrowdsecReader,
    _literal_host,
    banned_per_scenario,
    parse_api_decisions,
    parse_cscli_alerts,
)
from exporter.sources.host.paths import HostPaths
from tests.exposition import promtool_check, render, samples, value

FIXTURES = Path(__file__).parents[1] / "fixtures" / "crowdsec"
API = (FIXTURES / "api_decisions.json").read_text()
CSCLI = (FIXTURES / "cscli_decisions.json").read_text()
KEY = "0123456789abcdef"


def test_api_answer() -> None:
    decisions = parse_api_decisions(API)
    assert len(decisions) == 6  # the simulated one blocks nothing
    assert banned_per_scenario(decisions) == {
        "crowdsecurity/ssh-bf": 3,
        "crowdsecurity/ssh-slow-bf": 1,
        "firehol_cybercrime": 1,
    }
    assert parse_api_decisions("null") == ()


def test_cscli_answer() -> None:
    decisions = parse_cscli_alerts(CSCLI)
    assert [(d.scenario, d.origin, d.value) for d in decisions] == [
        ("crowdsecurity/ssh-bf", "crowdsec", "192.0.2.10"),
        ("manual 'ban' from 'localhost'", "cscli", "198.51.100.7"),
    ]
    assert parse_cscli_alerts("null") == ()


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_api_decisions, '{"message": "access forbidden"}'),
        (parse_api_decisions, "[1, 2]"),
        (parse_cscli_alerts, '[{"decisions": "x"}]'),
        (parse_api_decisions, '[{"scenario": {"a": 1}, "type": "ban", "value": "192.0.2.1"}]'),
        (parse_api_decisions, '[{"scenario": "x", "type": "ban", "value": "192.0.2.1", "id": 1e999}]'),
        (parse_api_decisions, '[{"scenario": "x", "type": "ban", "value": "192.0.2.1", "id": NaN}]'),
        (parse_api_decisions, "[" * 5000 + "]" * 5000),
    ],
)
def test_unexpected_answers_are_errors(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(CrowdsecError):
        parse(text)


class _Lapi(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/v1/decisions" and self.headers.get("X-Api-Key") == KEY
        body = API.encode() if ok else b'{"message":"access forbidden"}'
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lapi() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lapi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def bouncer_root(tmp_path: Path, url: str, key: str) -> HostPaths:
    config = tmp_path / "etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"mode: nftables\napi_url: {url}\napi_key: {key}\nupdate_frequency: 10s\n")
    return HostPaths(tmp_path)


def test_local_api_with_the_bouncer_key(tmp_path: Path, lapi: str) -> None:
    snapshot = CrowdsecReader(bouncer_root(tmp_path, lapi, KEY)).read()
    assert (snapshot.up, snapshot.via) == (True, "api")
    text = render(snapshot_families(snapshot))
    assert promtool_check(text) is None
    found = samples(text)
    assert value(found, "ssh_access_ban_source_up", source="crowdsec") == 1
    assert value(found, "ssh_access_banned_addresses", source="crowdsec", jail="crowdsecurity/ssh-bf") == 3
    decisions = "ssh_access_crowdsec_ssh_decisions"
    assert value(found, decisions, scenario="crowdsecurity/ssh-bf", origin="crowdsec", action="ban") == 2
    assert value(found, decisions, scenario="crowdsecurity/ssh-bf", origin="CAPI", action="ban") == 1
    assert value(found, decisions, scenario="firehol_cybercrime", origin="lists", action="ban") is None


def test_wrong_key_is_down(tmp_path: Path, lapi: str) -> None:
    snapshot = CrowdsecReader(bouncer_root(tmp_path, lapi, "wrong")).read()
    assert (snapshot.installed, snapshot.up) == (True, False)
    assert "403" in snapshot.error
    assert (
        value(samples(render(snapshot_families(snapshot))), "ssh_access_ban_source_up", source="crowdsec")
        == 0
    )


def test_cscli_when_no_bouncer_config(tmp_path: Path) -> None:
    cscli = tmp_path / "cscli"
    (tmp_path / "answer.json").write_text(CSCLI)
    cscli.write_text(
        f'#!/bin/sh\n[ "$*" = "decisions list -o json" ] && exec cat {tmp_path / "answer.json"}\nexit 1\n'
    )
    cscli.chmod(0o755)
    snapshot = CrowdsecReader(HostPaths(), "", str(cscli)).read()
    assert (snapshot.up, snapshot.via, snapshot.banned) == (
        True,
        "cscli",
        {
            "crowdsecurity/ssh-bf": 1,
            "manual 'ban' from 'localhost'": 1,
        },
    )
    cscli.write_text("#!/bin/sh\necho 'cannot reach the local API' >&2\nexit 1\n")
    snapshot = CrowdsecReader(HostPaths(), "", str(cscli)).read()
    assert (snapshot.up, snapshot.error) == (False, "cscli: cannot reach the local API")


def test_not_installed_emits_nothing(tmp_path: Path) -> None:
    snapshot = CrowdsecReader(HostPaths(tmp_path)).read()
    assert not snapshot.installed
    assert list(snapshot_families(snapshot)) == []


def test_the_local_api_is_asked_without_resolving_names() -> None:
    assert _literal_host("http://localhost:8080/") == "http://127.0.0.1:8080/"
    assert _literal_host("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert _literal_host("http://[::1]:8080") == "http://[::1]:8080"
    with pytest.raises(CrowdsecError, match="host names are not resolved"):
        _literal_host("http://lapi.example.com:8080/")


# -- hostile or broken answers --------------------------------------------------------------------------


class _Trickler:
    """Answers every connection with an endless header, one byte every 0.1 s, for at most `seconds`."""

    def __init__(self, seconds: float = 15.0) -> None:
        self.seconds = seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _trickle(self, conn: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000
        end = time.monotonic() + self.seconds
        with conn:
            for byte in answer:
                if time.monotonic() > end:
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up
                time.sleep(0.1)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(): close() alone would not
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=20)


def test_a_server_trickling_bytes_costs_one_deadline(tmp_path: Path) -> None:
    trickler = _Trickler()
    try:
        started = time.monotonic()
        snapshot = CrowdsecReader(bouncer_root(tmp_path, trickler.url, KEY), timeout=1.0).read()
        elapsed = time.monotonic() - started
    finally:
        trickler.close()
    assert elapsed < 2.5  # before: every byte renewed the timeout, 15 s here (for ever in the field)
    assert (snapshot.installed, snapshot.up) == (True, False)
    assert "no complete answer within 1s" in snapshot.error


@pytest.fixture
def serve_body() -> Iterator[Callable[[bytes], str]]:
    """A local API answering every request with the given body."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_deeply_nested_json_is_a_clear_error_not_a_recursion_error(
    tmp_path: Path, serve_body: Callable[[bytes], str]
) -> None:
    url = serve_body(b"[" * 100_000 + b"]" * 100_000)
    snapshot = CrowdsecReader(bouncer_root(tmp_path, url, KEY)).read()  # before: RecursionError escaped
    assert (snapshot.installed, snapshot.up) == (True, False)
    assert "nested 100000 levels deep" in snapshot.error
    found = samples(render(snapshot_families(snapshot)))
    assert value(found, "ssh_access_ban_source_up", source="crowdsec") == 0


def test_a_lone_surrogate_in_a_scenario_still_reports_it(
    tmp_path: Path, serve_body: Callable[[bytes], str]
) -> None:
    decision = (
        '{"origin": "crowdsec", "scenario": "crowdsecurity/ssh-\\ud800", "type": "ban", "value": "192.0.2.9"}'
    )
    url = serve_body(f"[{decision}]".encode())
    text = render(snapshot_families(CrowdsecReader(bouncer_root(tmp_path, url, KEY)).read()))  # before: 500
    assert promtool_check(text) is None
    found = samples(text)
    assert (
        value(found, "ssh_access_banned_addresses", source="crowdsec", jail="crowdsecurity/ssh-\ufffd") == 1
    )


def test_a_bouncer_config_that_is_a_fifo_is_not_waited_for(tmp_path: Path) -> None:
    config = tmp_path / "etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
    config.parent.mkdir(parents=True)
    os.mkfifo(config)

    done = threading.Event()

    def unblock() -> None:  # a writer, so that a reader blocked in open() goes on after a while
        done.wait(timeout=5)
        with contextlib.suppress(OSError):  # ENXIO: nobody is blocked reading it
            os.close(os.open(config, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=unblock, daemon=True)
    writer.start()
    started = time.monotonic()
    snapshot = CrowdsecReader(HostPaths(tmp_path), cscli="").read()
    assert time.monotonic() - started < 2.0  # before: blocked in open() until a writer came
    assert (snapshot.installed, snapshot.up) == (True, False)
    done.set()
    writer.join(timeout=10)
