"""The command line and HTTP view: flags, exit codes, landing page, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from exporter.__main__ import main
from exporter.web.app import make_http_server, parse_listen_address
from tests.exposition import samples, value
from tests.net import free_port, wait_for_port


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-flag"], "--no-such-flag"),
        (["--web.listen-address", "nonsense"], "web.listen-address"),
        (["--web.telemetry-path", "metrics"], "web.telemetry-path"),
        (["--path.procfs", "/nonexistent"], "path.procfs"),
        (["--scrape.timeout", "-1"], "scrape.timeout"),
        (["--log.format", "xml"], "log.format"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_file_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text("watchlist:\n  - 192.0.2.1\nwatchlst: []\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config.file", str(config)])
    assert exit_info.value.code == 2
    assert "watchlst" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [(":9822", ("", 9822)), ("127.0.0.1:1", ("127.0.0.1", 1)), ("[::1]:9822", ("::1", 9822))],
)
def test_listen_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_landing_metrics_404_and_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "exporter",
            f"--web.listen-address=127.0.0.1:{port}", "--web.telemetry-path=/m",
            f"--path.rootfs={tmp_path}", "--no-collector.sshd", "--log.format=json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                status, body = _get(f"http://127.0.0.1:{port}/m")
                break
            except OSError:
                time.sleep(0.05)
        assert status == 200
        found = samples(body)
        assert value(found, "ssh_access_collector_success", collector="sshd") is None  # disabled
        assert value(found, "process_resident_memory_bytes") is not None
        status, landing = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "ssh-access-exporter" in landing and "href='/m'" in landing
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert '"msg": "shutting down"' in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_binding_resolves_no_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPServer.server_bind would call socket.getfqdn(): a reverse lookup of this host."""

    def no_dns(*_args: object) -> str:
        raise AssertionError("name resolution attempted")

    for name in ("getfqdn", "gethostbyaddr", "gethostbyname"):
        monkeypatch.setattr(socket, name, no_dns)
    for address in (":0", "127.0.0.1:0"):
        server = make_http_server(address, lambda environ, start: [])
        server.server_close()


# The exporter with one more collector that never returns (a read stuck on a dead peer, say).
STUCK_EXPORTER = """
import sys, threading
from exporter.registry import register_collector

class Stuck:
    def __init__(self, context):
        pass

    def collect(self):
        threading.Event().wait()
        yield from ()

register_collector("stuck", Stuck, help="never returns")
from exporter.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("mid_scrape", [False, True], ids=["stuck-collector", "stuck-collector-mid-scrape"])
def test_sigterm_exits_promptly_while_a_collector_is_stuck(tmp_path: Path, mid_scrape: bool) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-c", STUCK_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
            f"--path.rootfs={tmp_path}", "--no-collector.sshd", "--log.format=json",
            f"--scrape.timeout={60 if mid_scrape else 0.5}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        scraper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/metrics')",
            ]
        )
        if mid_scrape:
            time.sleep(1)  # the scrape now waits on the stuck collector
        else:
            assert scraper.wait(timeout=10) == 0  # answered; the collector thread stays stuck
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 8
        assert proc.stderr is not None
        assert '"msg": "shutting down"' in proc.stderr.read()
    finally:
        for process in (proc, scraper):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
