"""`diagnose ADDRESS --fleet=PROMETHEUS_URL` against stand-ins on loopback: a Prometheus targets API and
exporters' /diagnose (the real ones: tests/integration/test_fleet_diagnose.py). What is asked, of whom,
with which credentials, and the exit code of every mix of answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from exporter.__main__ import main

ADDRESS = "198.51.100.7"
Reply = tuple[int, dict[str, str], Any]


class Stub:
    """An HTTP server on loopback answering GETs with `reply(path, headers)`; records what it was asked."""

    def __init__(self, reply: Callable[[str, dict[str, str]], Reply]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                stub.requests.append((self.path, headers))
                status, extra, body = reply(self.path, headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def diagnosis(outcome: str, deny: str = "") -> dict[str, Any]:
    """An exporter's /diagnose answer: `deny` is the layer that denies, if any."""
    layer = deny or "tcp_wrappers"
    return {
        "address": ADDRESS,
        "blocked": bool(deny),
        "layers": [
            {
                "layer": layer,
                "verdict": "deny" if deny else ("unknown" if outcome == "unknown" else "no_match"),
                "evidence": [f"/etc/hosts.deny:1: sshd: {ADDRESS}"] if deny else [],
                "detail": "",
            }
        ],
        "outcome": outcome,
        "unread": [{"layer": layer, "reason": "cannot read it"}] if outcome == "unknown" else [],
        "host": {
            "sshd_running": True,
            "socket_activated": False,
            "causes": [],
            "keeps_everyone_out": [],
            "evidence": [],
        },
        "remedy": {deny: ["remove line 1 of /etc/hosts.deny"]} if deny else {},
    }


def exporter(answer: Reply) -> Stub:
    return Stub(lambda path, headers: answer if path.startswith("/diagnose?") else (404, {}, b""))


def prometheus(targets: list[tuple[str, str, str]]) -> Stub:
    """(job, instance, scrape URL) of each active target."""
    active = [
        {"labels": {"job": job, "instance": instance}, "scrapeUrl": url} for job, instance, url in targets
    ]
    body = {"status": "success", "data": {"activeTargets": active, "droppedTargets": []}}
    return Stub(
        lambda path, headers: (200, {}, body) if path == "/api/v1/targets?state=active" else (404, {}, b"")
    )


@pytest.fixture
def stubs() -> Iterator[list[Stub]]:
    started: list[Stub] = []
    yield started
    for stub in started:
        stub.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diagnose", ADDRESS, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_only_the_jobs_targets_are_asked_at_their_scrape_address_and_named_by_instance(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    deny = exporter((200, {}, diagnosis("kept_out", deny="tcp_wrappers")))
    allow = exporter((200, {}, diagnosis("gets_in")))
    other = exporter((200, {}, diagnosis("kept_out", deny="firewall")))
    stubs += [deny, allow, other]
    prom = prometheus(
        [
            ("ssh-access-exporter", "web-1.example:9822", f"{deny.url}/metrics?collect%5B%5D=x"),
            ("ssh-access-exporter", "web-2.example:9822", f"{allow.url}/metrics"),
            ("node", "web-1.example:9100", f"{other.url}/metrics"),
        ]
    )
    stubs.append(prom)
    code, out, _ = _run(capsys, f"--fleet={prom.url}", "--json")
    assert code == 1
    answer = json.loads(out)
    assert [host["instance"] for host in answer["hosts"]] == ["web-1.example:9822", "web-2.example:9822"]
    assert other.requests == []
    assert [path for path, _ in deny.requests] == [f"/diagnose?address={ADDRESS}"]
    (layer,) = answer["hosts"][0]["layers"]
    assert layer["remedy"] == ["remove line 1 of /etc/hosts.deny"]
    code, out, _ = _run(capsys, f"--fleet={prom.url}", "--fleet.job=node")
    assert code == 1 and "web-1.example:9100: firewall" in out and len(other.requests) == 1


def test_credentials_go_to_the_exporters_only(
    stubs: list[Stub], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allow = exporter((200, {}, diagnosis("gets_in")))
    prom = prometheus([("ssh-access-exporter", "a", f"{allow.url}/metrics")])
    stubs += [allow, prom]
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    flags = ["--fleet.basic-auth-user=prometheus", f"--fleet.basic-auth-password-file={password}"]
    code, out, _ = _run(capsys, f"--fleet={prom.url}", *flags)
    assert code == 0 and out == f"{ADDRESS}: kept out by none of 1 host(s)\n  gets in    a\n"
    assert allow.requests[0][1]["authorization"] == "Basic cHJvbWV0aGV1czpzM2NyZXQ="  # prometheus:s3cret
    assert "authorization" not in prom.requests[0][1]
    code, _, err = _run(capsys, f"--fleet={prom.url}", flags[0])
    assert code == 2 and "go together" in err
    code, _, err = _run(capsys, f"--fleet={prom.url}", f"--fleet.ca-file={tmp_path / 'missing.pem'}")
    assert code == 2 and "--fleet.ca-file" in err
    code, _, err = _run(capsys, "--fleet=prometheus.example:9090")  # no scheme
    assert code == 2 and "cannot list the targets of Prometheus" in err


def test_hosts_that_cannot_be_asked_are_listed_and_make_the_answer_not_sure(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    allow = exporter((200, {}, diagnosis("gets_in")))
    disabled = exporter((404, {}, b"not found; metrics are at /metrics\n"))
    busy = exporter((503, {"Retry-After": "5"}, {"error": "busy: another diagnosis is running"}))
    redirect = exporter((302, {"Location": f"{allow.url}/diagnose?address={ADDRESS}"}, b""))
    stubs += [allow, disabled, busy, redirect]
    prom = prometheus(
        [
            ("ssh-access-exporter", "a", f"{allow.url}/metrics"),
            ("ssh-access-exporter", "b", f"{disabled.url}/metrics"),
            ("ssh-access-exporter", "c", f"{busy.url}/metrics"),
            ("ssh-access-exporter", "d", f"{redirect.url}/metrics"),
        ]
    )
    stubs.append(prom)
    code, out, _ = _run(capsys, f"--fleet={prom.url}", "--json")
    assert code == 3
    answer = json.loads(out)
    assert answer["blocked"] is False and [host["instance"] for host in answer["hosts"]] == ["a"]
    errors = {host["instance"]: host["error"] for host in answer["unreachable"]}
    assert "--web.enable-diagnose" in errors["b"]
    assert errors["c"] == "HTTP 503: busy: another diagnosis is running"
    assert errors["d"].startswith("HTTP 302")
    assert len(allow.requests) == 1  # the redirect was not followed (it would carry the credentials)


def test_a_host_answering_unknown_makes_the_answer_not_sure(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    unsure = exporter((200, {}, diagnosis("unknown")))
    prom = prometheus([("ssh-access-exporter", "a", f"{unsure.url}/metrics")])
    stubs += [unsure, prom]
    code, out, _ = _run(capsys, f"--fleet={prom.url}")
    assert code == 3
    assert (
        out.splitlines()[1]
        == "  not sure   a: nothing read denies; could not read: tcp_wrappers (cannot read it)"
    )


def test_a_host_that_does_not_answer_in_time_is_not_waited_for(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()

    def hang(path: str, headers: dict[str, str]) -> Reply:
        release.wait(10)
        return 200, {}, diagnosis("gets_in")

    slow = Stub(hang)
    prom = prometheus([("ssh-access-exporter", "slow", f"{slow.url}/metrics")])
    stubs += [slow, prom]
    started = time.monotonic()
    code, out, _ = _run(capsys, f"--fleet={prom.url}", "--fleet.timeout=0.5", "--json")
    release.set()
    assert time.monotonic() - started < 5
    assert code == 3 and "timed out" in json.loads(out)["unreachable"][0]["error"]


def test_no_target_of_the_job_or_a_bad_address_is_an_error(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    prom = prometheus([("node", "a", "http://127.0.0.1:9/metrics")])
    stubs.append(prom)
    code, out, err = _run(capsys, f"--fleet={prom.url}")
    assert (code, out) == (2, "") and "no active target of job 'ssh-access-exporter'" in err
    code = main(["diagnose", "not-an-address", f"--fleet={prom.url}"])
    assert code == 2 and "is not an address or network" in capsys.readouterr().err
    assert len(prom.requests) == 1  # the bad address asked no one


def test_an_answer_that_is_not_http_lists_the_host_as_not_asked(
    stubs: list[Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def babble() -> None:
        with listener, contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")  # an sshd port given as the scrape target

    threading.Thread(target=babble, daemon=True).start()
    prom = prometheus([("ssh-access-exporter", "a", f"http://127.0.0.1:{port}/metrics")])
    stubs.append(prom)
    code, out, _ = _run(capsys, f"--fleet={prom.url}", "--json")
    assert code == 3 and json.loads(out)["unreachable"][0]["instance"] == "a"
