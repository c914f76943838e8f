"""Real daemons for integration tests: an sshd on loopback and the exporter as a subprocess.

Everything started here is stopped by pid; everything written lives under the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import pytest

from tests.exposition import Samples, samples
from tests.net import free_port, wait_for_port

SSHD = "/usr/sbin/sshd"


def require_root_and(*binaries: str) -> None:
    """Skip (a failure under REQUIRE_INTEGRATION=1) without root or a needed binary."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for binary in binaries:
        if not (Path(binary).exists() or shutil.which(binary)):
            pytest.skip(f"{binary} not installed (make system-deps)")


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Sshd:
    """sshd -D on 127.0.0.1 with its own config, host key and pid file in a temp dir."""

    def __init__(self, directory: Path, settings: str = "", port: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.dir / "sshd_config"
        self.pid_file = self.dir / "sshd.pid"
        self.hostkey = self.dir / "hostkey"
        if not self.hostkey.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.hostkey)], check=True
            )
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.hostkey}\nPidFile {self.pid_file}\n"
            "PasswordAuthentication yes\nUsePAM no\n" + settings
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(self.config)])
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Exporter:
    """The exporter as users run it: the installed command, scraped over HTTP (or HTTPS with `tls`).

    `tls` is the client's context for https scrapes; `headers` go with every scrape (e.g. Authorization).
    """

    def __init__(
        self, *args: str, tls: ssl.SSLContext | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/metrics"
        self.tls = tls
        self.headers = dict(headers or {})
        command = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *args]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        wait_for_port(self.port)

    def text(self) -> str:
        request = urllib.request.Request(self.url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=15, context=self.tls) as response:
            return str(response.read().decode())

    def scrape(self) -> Samples:
        return samples(self.text())

    def wait_until(self, predicate: object, timeout: float = 10.0) -> Samples:
        """Scrape until predicate(samples) holds; the last scrape is returned either way."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while True:
            found = self.scrape()
            if predicate(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _stop(self.proc)
