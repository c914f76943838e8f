"""CrowdSec from fixtures of its answers: the local API (served on loopback) and cscli's JSON."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.collectors.crowdsec import make_collector, snapshot_families
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
    # before: "HTTP 403 Forbidden", the API's own reason left in the body
    assert snapshot.error == f"local API {lapi.rstrip('/')}: HTTP 403 Forbidden: access forbidden"
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
    down = tmp_path / "cscli-down"  # another binary: the same one's answer is reused for a second
    down.write_text("#!/bin/sh\necho 'cannot reach the local API' >&2\nexit 1\n")
    down.chmod(0o755)
    snapshot = CrowdsecReader(HostPaths(), "", str(down)).read()
    assert (snapshot.up, snapshot.error) == (False, "cscli: cannot reach the local API")


def test_not_installed_emits_nothing_and_says_absent_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collector = make_collector(CrowdsecReader(HostPaths(tmp_path)))
    caplog.set_level(logging.INFO)
    assert list(collector.collect()) == list(collector.collect()) == []
    assert [(r.levelname, r.msg) for r in caplog.records] == [("INFO", "ban source absent")]
    assert collector.state is not None and collector.state.status == "absent"


# -- reasons are kept whole -------------------------------------------------------------------------------

# What Debian 12's cscli (1.4.6) writes when its local API is a closed port, as `-o json` and as text.
CSCLI_REFUSED = (
    "Unable to list decisions : performing request: Get "
    '"http://127.0.0.1:9/v1/alerts?has_active_decision=true&include_capi=false&limit=100": '
    'could not get jwt token: Post "http://127.0.0.1:9/v1/watchers/login": '
    "dial tcp 127.0.0.1:9: connect: connection refused"
)
CSCLI_STDERR = {
    "json": '{"level":"fatal","msg":' + json.dumps(CSCLI_REFUSED) + ',"time":"2026-12-06T04:56:24Z"}\n',
    "text": 'time="06-12-2026 04:56:28" level=info msg="loading config"\n'
    'time="06-12-2026 04:56:28" level=fatal msg=' + json.dumps(CSCLI_REFUSED) + "\n",
}


@pytest.mark.parametrize("form", sorted(CSCLI_STDERR))
def test_cscli_failure_keeps_its_whole_chain_of_causes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    (tmp_path / "stderr").write_text(CSCLI_STDERR[form])
    cscli = tmp_path / "cscli"
    cscli.write_text(f"#!/bin/sh\ncat {tmp_path / 'stderr'} >&2\nexit 1\n")
    cscli.chmod(0o755)
    collector = make_collector(CrowdsecReader(HostPaths(), "", str(cscli)))
    found = samples(render(collector.collect()))
    assert value(found, "ssh_access_ban_source_up", source="crowdsec") == 0
    reason = f"cscli: {CSCLI_REFUSED}"  # before: cut at 200 characters, after "could not get jwt token:"
    assert [getattr(r, "err", "") for r in caplog.records if r.msg == "ban source unreachable"] == [reason]
    assert collector.state is not None and (collector.state.status, collector.state.reason) == (
        "down",
        reason,
    )


def test_cscli_failing_silently_says_how_it_exited(tmp_path: Path) -> None:
    cscli = tmp_path / "cscli"
    cscli.write_text("#!/bin/sh\nexit 3\n")
    cscli.chmod(0o755)
    snapshot = CrowdsecReader(HostPaths(), "", str(cscli)).read()
    assert snapshot.error == "cscli: exited with status 3"  # before: "cscli: "


def test_local_api_on_a_closed_port_names_the_address_and_the_refusal(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    snapshot = CrowdsecReader(bouncer_root(tmp_path, f"http://127.0.0.1:{port}/", KEY)).read()
    assert (snapshot.installed, snapshot.up) == (True, False)
    # before: "[Errno 111] Connection refused", with nothing saying where
    expected = f"local API http://127.0.0.1:{port}: connect to 127.0.0.1:{port}: Connection refused"
    assert snapshot.error == expected


def test_an_unusable_bouncer_config_is_named_with_the_cscli_reason(tmp_path: Path) -> None:
    config = tmp_path / "etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("mode: nftables\napi_url: http://127.0.0.1:8080/\n")
    snapshot = CrowdsecReader(HostPaths(tmp_path), cscli="/usr/bin/cscli").read()
    assert (snapshot.installed, snapshot.up) == (True, False)
    assert snapshot.error == (  # before: "no bouncer config and no runnable /usr/bin/cscli"
        "bouncer config /etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml: no api_url and api_key; "
        "no usable bouncer config, and /usr/bin/cscli runs only when rootfs is this machine's root"
    )


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
