"""`diagnose ADDRESS --fleet=PROMETHEUS_URL` against a real Prometheus scraping two real exporters.

Two fixture hosts (rootfs and procfs trees: an sshd linked with libwrap listening on each): host A's
hosts.deny has `sshd: 198.51.100.7`, host B lets every address in. Each runs the installed command with
--web.enable-diagnose on its own loopback port; Prometheus scrapes both under job ssh-access-exporter,
labelled instance="host-a.example:9822" and "host-b.example:9822" (not the scrape URLs: the answer must
name hosts as Prometheus does), and itself under another job that the fleet must leave alone. Then
exporter B is stopped: still an active target, it is listed as not asked, and with nothing blocking the
exit is 3.

A fleet of 20 exporters (every other one denying) is answered right, whole, and in bounded time.

Last, an exporter behind TLS and basic auth (its --web.config.file), scraped over https: the fleet asks
it at the scrape URL's scheme with --fleet.ca-file and the basic auth flags, and without them it is
listed as not asked with the HTTP status that says why.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.builders import wrapped_sshd_host
from tests.integration.harness import Exporter, _stop, require_root_and
from tests.integration.services import Prometheus, eventually
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "198.51.100.7"
JOB = "ssh-access-exporter"


class FleetPrometheus(Prometheus):
    """Prometheus scraping `targets` (instance label -> port) under JOB, and itself under job prometheus."""

    def __init__(self, directory: Path, targets: dict[str, int], **scrape: Any) -> None:
        """`scrape`: more settings of the job's scrape config (scheme, tls_config, basic_auth)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"instance": instance}}
                        for instance, port in targets.items()
                    ],
                    **scrape,
                },
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]},
            ],
        }
        self.start(directory, config)


@dataclass
class Fleet:
    deny: Exporter
    allow: Exporter
    prometheus: FleetPrometheus

    def diagnose(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return diagnose(self.prometheus, *flags)


def diagnose(prometheus: Prometheus, *flags: str) -> subprocess.CompletedProcess[str]:
    """`diagnose ADDRESS --fleet=` this Prometheus, as a user runs it."""
    url = f"http://127.0.0.1:{prometheus.port}"
    command = [sys.executable, "-m", "exporter", "diagnose", ADDRESS, f"--fleet={url}", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_root_and("prometheus")
    base = tmp_path_factory.mktemp("fleet")
    host_a = wrapped_sshd_host(base / "host-a", f"sshd: {ADDRESS}\n")
    host_b = wrapped_sshd_host(base / "host-b", "# nobody is denied here\n")
    with (
        Exporter("--web.enable-diagnose", *host_a) as deny,
        Exporter("--web.enable-diagnose", *host_b) as allow,
    ):
        prometheus = FleetPrometheus(
            base / "prometheus", {"host-a.example:9822": deny.port, "host-b.example:9822": allow.port}
        )
        try:
            eventually(lambda: _all_up(prometheus), what="both exporters scraped")
            yield Fleet(deny, allow, prometheus)
        finally:
            prometheus.stop()


def _all_up(prometheus: Prometheus, count: int = 3) -> bool:
    active = prometheus.api("targets", state="active")["activeTargets"]
    return len(active) == count and all(target["health"] == "up" for target in active)


def test_the_host_that_denies_is_named_with_its_layer_and_remedy(fleet: Fleet) -> None:
    run = fleet.diagnose()
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"{ADDRESS}: KEPT OUT by 1 of 2 host(s)"
    assert lines[1].startswith("  kept out   host-a.example:9822: tcp_wrappers (/etc/hosts.deny:1: sshd: ")
    assert "to do: " in lines[1] and "/etc/hosts.deny" in lines[1].split("to do: ", 1)[1]
    assert lines[2:] == ["  gets in    host-b.example:9822"]


def test_json_names_hosts_by_their_instance_label(fleet: Fleet) -> None:
    run = fleet.diagnose("--json")
    assert run.returncode == 1, run.stderr
    answer = json.loads(run.stdout)
    assert list(answer) == ["address", "blocked", "hosts", "unreachable"]
    assert (answer["address"], answer["blocked"], answer["unreachable"]) == (ADDRESS, True, [])
    hosts = {host["instance"]: host for host in answer["hosts"]}
    assert set(hosts) == {"host-a.example:9822", "host-b.example:9822"}  # not the prometheus job
    for host in answer["hosts"]:
        assert list(host) == ["instance", "blocked", "layers", "host"]
    denying = hosts["host-a.example:9822"]
    assert denying["blocked"] is True and denying["host"]["outcome"] == "kept_out"
    (wrappers,) = [layer for layer in denying["layers"] if layer["verdict"] == "deny"]
    assert wrappers["layer"] == "tcp_wrappers"
    assert wrappers["evidence"] == [f"/etc/hosts.deny:1: sshd: {ADDRESS}"] and wrappers["remedy"]
    letting = hosts["host-b.example:9822"]
    assert letting["blocked"] is False and letting["host"]["outcome"] == "gets_in"


def test_a_stopped_exporter_is_listed_as_not_asked(fleet: Fleet) -> None:
    _stop(fleet.deny.proc)
    run = fleet.diagnose("--json")
    answer = json.loads(run.stdout)
    assert run.returncode == 3, run.stderr  # nothing seen blocks it, but host A could not be asked
    assert answer["blocked"] is False
    assert [host["instance"] for host in answer["hosts"]] == ["host-b.example:9822"]
    (unreachable,) = answer["unreachable"]
    assert unreachable["instance"] == "host-a.example:9822" and "refused" in unreachable["error"].lower()
    text = fleet.diagnose()
    assert text.returncode == 3
    assert text.stdout.splitlines()[1:] == [
        "  gets in    host-b.example:9822",
        f"  not asked  host-a.example:9822: {unreachable['error']}",
    ]


def test_prometheus_unreachable_is_an_error(fleet: Fleet) -> None:
    command = [
        sys.executable,
        "-m",
        "exporter",
        "diagnose",
        ADDRESS,
        f"--fleet=http://127.0.0.1:{free_port()}",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert "cannot list the targets of Prometheus" in run.stderr


FLEET_SIZE = 20
FLEET_BOUND_S = 30.0  # generous: about 0.5 s on an idle 2-core machine (docs/benchmarks.md, 200 exporters)


def test_a_fleet_of_twenty_is_answered_whole_in_bounded_time(tmp_path: Path) -> None:
    require_root_and("prometheus")
    denying = {f"host-{n:02d}.example:9822" for n in range(0, FLEET_SIZE, 2)}
    with ExitStack() as stack:
        ports = {}
        for n in range(FLEET_SIZE):
            instance = f"host-{n:02d}.example:9822"
            deny = f"sshd: {ADDRESS}\n" if instance in denying else "sshd: 203.0.113.9\n"
            host = wrapped_sshd_host(tmp_path / f"host-{n:02d}", deny)
            ports[instance] = stack.enter_context(Exporter("--web.enable-diagnose", *host)).port
        prometheus = FleetPrometheus(tmp_path / "prometheus", ports)
        stack.callback(prometheus.stop)
        eventually(lambda: _all_up(prometheus, FLEET_SIZE + 1), timeout=60, what="the fleet scraped")
        began = time.monotonic()
        run = diagnose(prometheus)
        elapsed = time.monotonic() - began
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"{ADDRESS}: KEPT OUT by {len(denying)} of {FLEET_SIZE} host(s)"
    kept_out = {line.split()[2].rstrip(":") for line in lines if line.startswith("  kept out ")}
    gets_in = {line.split()[2] for line in lines if line.startswith("  gets in ")}
    assert kept_out == denying and len(gets_in) == FLEET_SIZE - len(denying)
    assert len(lines) == 1 + FLEET_SIZE  # every host named once: none not asked, none unsure
    assert elapsed <= FLEET_BOUND_S


PASSWORD = "correct horse"


def self_signed(directory: Path) -> Path:
    """server.crt (for 127.0.0.1, its own CA) and server.key in `directory`."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.crt", "-days", "2", "-subj", "/CN=exporter",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    return directory / "server.crt"


def test_tls_and_basic_auth_as_the_scrape_has_them(tmp_path: Path) -> None:
    require_root_and("prometheus", "openssl")
    ca = self_signed(tmp_path)
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    host = wrapped_sshd_host(tmp_path / "host", f"sshd: {ADDRESS}\n")
    auth = {"username": "prometheus", "password_file": str(password)}
    with Exporter(
        "--web.enable-diagnose", f"--web.config.file={web}", *host, tls=ssl.create_default_context(cafile=ca)
    ) as guarded:
        prometheus = FleetPrometheus(
            tmp_path / "prometheus",
            {"bastion.example:9822": guarded.port},
            scheme="https",
            tls_config={"ca_file": str(ca)},
            basic_auth=auth,
        )
        try:
            eventually(lambda: _all_up(prometheus, 2), what="the https exporter scraped")
            fleet = Fleet(guarded, guarded, prometheus)
            run = fleet.diagnose("--json", f"--fleet.ca-file={ca}", "--fleet.basic-auth-user=prometheus",
                                 f"--fleet.basic-auth-password-file={password}")  # fmt: skip
            assert run.returncode == 1, run.stderr
            (host_answer,) = json.loads(run.stdout)["hosts"]
            assert host_answer["instance"] == "bastion.example:9822" and host_answer["blocked"] is True
            run = fleet.diagnose("--json", f"--fleet.ca-file={ca}")
            assert run.returncode == 3
            (unreachable,) = json.loads(run.stdout)["unreachable"]
            assert unreachable["error"].startswith("HTTP 401")
            run = fleet.diagnose("--json")  # the system's CAs do not know the test CA
            assert run.returncode == 3
            assert "CERTIFICATE_VERIFY_FAILED" in json.loads(run.stdout)["unreachable"][0]["error"]
        finally:
            prometheus.stop()
