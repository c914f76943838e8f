"""Services the end-to-end tests share beyond harness.py's daemons: Prometheus with the shipped config
and rules, connections held open to sshd, and a socket-activation stand-in in front of sshd.

Everything started here is stopped by pid; everything written lives under the test's tmp_path.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.integration.harness import SSHD, NetNs, Sshd, _stop
from tests.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
EXAMPLE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Call check until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.25)


class Prometheus:
    """`prometheus` on 127.0.0.1 with its config and TSDB in a temp dir, stopped by pid."""

    def __init__(
        self,
        directory: Path,
        target_port: int,
        *,
        rules: Path = RULES,
        labels: dict[str, str] | None = None,
        alertmanager_port: int | None = None,
    ) -> None:
        """The example config, made fast and local: 1 s scrapes and evaluations; `labels` on the target,
        alerts sent to the Alertmanager on `alertmanager_port` (none without it)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
        config.pop("alerting", None)
        if alertmanager_port is not None:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
            }
        config["rule_files"] = [str(rules)]
        (job,) = config["scrape_configs"]
        job.pop("scrape_timeout", None)
        target: dict[str, Any] = {"targets": [f"127.0.0.1:{target_port}"]}
        if labels:
            target["labels"] = labels
        job["static_configs"] = [target]
        self.port = free_port()
        self.start(directory, config)

    def start(self, directory: Path, config: dict[str, Any]) -> None:
        """Run prometheus on 127.0.0.1:self.port with `config` until it is ready (subclasses build their
        own config, then call this)."""
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(shutil.which("prometheus")),
                f"--config.file={self.config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={directory / 'data'}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30)
        eventually(self.ready, what="prometheus /-/ready")  # it listens before the TSDB is open (503)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as response:
                return int(response.status) == 200
        except urllib.error.HTTPError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}{query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Held:
    """Banner-less TCP connections held open to sshd; only those sshd accepted are kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []
        self.dropped = 0

    def hold(self, count: int, attempts: int = 300) -> None:
        """Open connections until `count` are accepted (past `start` sshd drops some at random)."""
        while len(self.sockets) < count:
            assert attempts > 0, f"sshd accepted only {len(self.sockets)} of {count}"
            attempts -= 1
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            first = sock.recv(256)
            if first.startswith(b"SSH-2.0-"):
                self.sockets.append(sock)
                time.sleep(0.2)  # the listener's title updates on accept
            else:
                assert b"Exceeded MaxStartups" in first or first == b"", first
                self.dropped += 1
                sock.close()

    def refused(self) -> bool:
        """One more connection: whether sshd dropped it (past `full` it drops every new one)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            first = sock.recv(256)
        if first.startswith(b"SSH-2.0-"):
            return False
        assert b"Exceeded MaxStartups" in first or first == b"", first
        self.dropped += 1
        return True

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


class SocketUnit:
    """`systemd-socket-activate` listening on sshd's port inside `netns`, spawning `sshd -i`."""

    def __init__(self, netns: NetNs, sshd: Sshd) -> None:
        self.netns = netns
        self.sshd = sshd
        command = ["systemd-socket-activate", f"--listen=127.0.0.1:{sshd.port}", "--accept", "--inetd"]
        # `ip netns exec` execs the command: the pid is the stand-in's own
        self.proc = subprocess.Popen(
            netns.command([*command, SSHD, "-i", "-f", str(sshd.config)]), stderr=subprocess.DEVNULL
        )
        netns.wait_for_port(sshd.port)

    def banner(self) -> str:
        """What a client connecting to the port receives first (sshd, spawned for the connection)."""
        code = (
            f"import socket; s = socket.create_connection(('127.0.0.1', {self.sshd.port}), timeout=10); "
            "print(s.recv(64).decode())"
        )
        return self.netns.run([sys.executable, "-c", code]).stdout

    def stop(self) -> None:
        _stop(self.proc)
