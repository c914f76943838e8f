"""Socket activation on real /proc data: a real listener holding sshd's port in front of a real sshd.

A socket-activated sshd under a real systemd cannot run here (no systemd as pid 1 in the container), so
a stand-in plays pid 1: `systemd-socket-activate` (systemd's own tool for the same job: it listens,
and spawns `sshd -i` per connection, as ssh.socket with Accept=yes does) runs in a network namespace of
its own, and a procfs directory presents it as pid 1 (`1` links to its /proc entry). The exporter,
in the host's namespace, must read the socket from the stand-in's fds and its namespace's TCP tables
(the exporter's own tables do not hold it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exposition import value
from tests.integration.harness import SSHD, Exporter, NetNs, Sshd, require_root_and
from tests.integration.services import SocketUnit


@pytest.fixture(autouse=True)
def _needs_tools() -> None:
    require_root_and(SSHD, "ssh-keygen", "ip", "systemd-socket-activate")


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[NetNs]:
    with NetNs(tmp_path / "ns") as ns:
        yield ns


def _procfs_with_pid_1(directory: Path, pid: int) -> Path:
    """A procfs whose pid 1 is `pid` (a link to its real /proc entry) and which holds no sshd."""
    directory.mkdir()
    (directory / "1").symlink_to(f"/proc/{pid}")
    (directory / "stat").symlink_to("/proc/stat")
    return directory


def _exporter(procfs: Path, config: Path) -> Exporter:
    return Exporter(
        f"--path.procfs={procfs}",
        f"--collector.sshd.config={config}",
        "--no-collector.authlog",
        "--no-collector.firewall",
        "--no-collector.crowdsec",
        "--no-collector.sshguard",
        "--no-collector.fail2ban",
    )


def test_socket_activated_sshd_is_up_without_a_listener(tmp_path: Path, netns: NetNs) -> None:
    sshd = Sshd(tmp_path / "sshd", netns=netns)  # its config, host key and port; never started as -D
    unit = SocketUnit(netns, sshd)
    try:
        assert unit.banner().startswith("SSH-2.0-OpenSSH"), "sshd must answer through the socket"
        procfs = _procfs_with_pid_1(tmp_path / "proc", unit.proc.pid)
        with _exporter(procfs, sshd.config) as exporter:
            found = exporter.scrape()
            assert value(found, "ssh_access_collector_success", collector="sshd") == 1
            assert value(found, "ssh_access_sshd_listeners") == 0
            assert value(found, "ssh_access_sshd_socket_activated") == 1
        run = subprocess.run(
            [sys.executable, "-m", "exporter", "diagnose", "192.0.2.10", "--json",
             f"--path.procfs={procfs}", f"--collector.sshd.config={sshd.config}",
             "--no-collector.firewall", "--no-collector.crowdsec", "--no-collector.sshguard",
             "--no-collector.authlog"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        host = json.loads(run.stdout)["host"]
        assert (host["sshd_running"], host["socket_activated"]) == (True, True), host
        assert not any("not running" in cause for cause in host["causes"]), host
    finally:
        unit.stop()


def test_a_listener_on_another_port_is_no_socket_activation(tmp_path: Path, netns: NetNs) -> None:
    """pid 1 listens, but not on a port of sshd's config: sshd is down."""
    sshd = Sshd(tmp_path / "sshd", netns=netns)
    other = Sshd(tmp_path / "other", netns=netns)
    unit = SocketUnit(netns, other)
    try:
        procfs = _procfs_with_pid_1(tmp_path / "proc", unit.proc.pid)
        with _exporter(procfs, sshd.config) as exporter:
            found = exporter.scrape()
            assert value(found, "ssh_access_sshd_listeners") == 0
            assert value(found, "ssh_access_sshd_socket_activated") == 0
    finally:
        unit.stop()
