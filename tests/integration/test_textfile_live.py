"""`ssh-access-exporter textfile` run for real: its file across runs, promtool's verdict on it, and a real
prometheus-node-exporter serving it from its textfile directory on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from exporter.registry import registrations
from tests.exposition import Samples, samples, value
from tests.integration.harness import require_root_and
from tests.net import free_port, wait_for_port

REPOSITORY = Path(__file__).resolve().parents[2]
TEXTFILE = [sys.executable, "-m", "exporter", "textfile"]
NODE_EXPORTER = "prometheus-node-exporter"
FAILED = "Dec  6 05:00:{:02d} host sshd[{}]: Failed password for root from 198.51.100.7 port 4000 ssh2\n"
AUTH_LOG = "/var/log/auth.log"
ONLY_AUTHLOG = [f"--no-collector.{r.name}" for r in registrations() if r.name != "authlog"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=REPOSITORY)


class Site:
    """An auth log under a rootfs, a state directory and a textfile directory."""

    def __init__(self, root: Path) -> None:
        self.log = root / "rootfs" / AUTH_LOG.lstrip("/")
        self.log.parent.mkdir(parents=True)
        self.log.write_text("")
        self.state = root / "state"
        self.directory = root / "textfile"
        self.directory.mkdir()
        self.output = self.directory / "ssh_access.prom"
        self.lines = 0

    def append(self, count: int) -> None:
        with self.log.open("a") as log:
            for _ in range(count):
                self.lines += 1
                log.write(FAILED.format(self.lines % 60, 2000 + self.lines))

    def run(self) -> Samples:
        rootfs = self.log.parents[2]
        run = _run(
            [
                *TEXTFILE,
                f"--output={self.output}",
                f"--path.rootfs={rootfs}",
                f"--collector.authlog.state-dir={self.state}",
                f"--collector.authlog.files={AUTH_LOG}",
                "--collector.authlog.journal=off",
                *ONLY_AUTHLOG,
            ]
        )
        assert run.returncode == 0, run.stderr
        return samples(self.output.read_text())


def _failed(found: Samples) -> float | None:
    return value(found, "ssh_access_sshd_events_total", event="auth_failed")


def test_runs_count_only_new_lines(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.append(4)
    assert _failed(site.run()) == 0  # the first run starts at the end of the file
    site.append(3)
    assert _failed(site.run()) == 3
    assert _failed(site.run()) == 3
    site.append(1)
    assert _failed(site.run()) == 4
    assert site.output.stat().st_mode & 0o777 == 0o644


def test_promtool_accepts_a_whole_collection_of_this_host(tmp_path: Path) -> None:
    require_root_and("promtool")
    output = tmp_path / "ssh_access.prom"
    run = _run([*TEXTFILE, f"--output={output}", f"--collector.authlog.state-dir={tmp_path / 'state'}"])
    assert run.returncode == 0, run.stderr
    text = output.read_text()
    assert "ssh_access_collector_success{" in text and "process_" not in text and "python_" not in text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _node_exporter(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            NODE_EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={directory}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_node_exporter_serves_the_file(tmp_path: Path) -> None:
    if shutil.which(NODE_EXPORTER) is None:
        pytest.skip(f"{NODE_EXPORTER} not installed (make system-deps)")
    site = Site(tmp_path)
    site.run()
    site.append(5)
    site.run()
    port = free_port()
    node = _node_exporter(site.directory, port)
    try:
        wait_for_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            found = samples(answer.read().decode())
    finally:
        node.terminate()
        node.wait(timeout=10)
    assert value(found, "node_textfile_scrape_error") == 0.0
    assert _failed(found) == 5
    assert value(found, "ssh_access_collector_success", collector="authlog") == 1.0
    assert value(found, "ssh_access_authlog_lines_read_total", source=AUTH_LOG) == 5
