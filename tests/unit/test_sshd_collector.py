"""The sshd collector on fixture trees: no sshd runs, so the config comes from the file parser."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

import pytest

from exporter.collectors.sshd import SshdCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd import reader as sshd_source
from exporter.sources.sshd.reader import SshdReader
from exporter.sources.sshd.sockets import own_listening_ports
from tests.exposition import promtool_check, render, samples, value
from tests.procfs_tree import add_binary, add_process, add_socket, make_procfs, start_time


@pytest.fixture
def host(tmp_path: Path) -> HostPaths:
    rootfs = tmp_path / "root"
    ssh = rootfs / "etc/ssh"
    (ssh / "sshd_config.d").mkdir(parents=True)
    (ssh / "sshd_config").write_text(
        "Include /etc/ssh/sshd_config.d/*.conf\nPort 2222\nPidFile /run/sshd.pid\n"
    )
    (ssh / "sshd_config.d/limits.conf").write_text("MaxStartups 3:50:6\nLoginGraceTime 1m\n")
    (ssh / "alt_config").write_text("Port 2223\nPidFile /run/alt.pid\n")
    (rootfs / "run").mkdir()
    procfs = make_procfs(tmp_path / "proc")
    sshd = add_binary(rootfs)
    add_process(
        procfs, 100, 1, "sshd: /usr/sbin/sshd -D [listener] 2 of 3-6 startups", start_ticks=1000, exe=sshd
    )
    add_process(procfs, 101, 100, "sshd: [accepted]")
    add_process(procfs, 102, 100, "sshd: alice [priv]")
    add_process(procfs, 103, 102, "sshd: alice@pts/0")
    add_process(procfs, 104, 100, "sshd: [accepted]")
    add_process(
        procfs,
        200,
        1,
        "sshd: /usr/sbin/sshd -D -f /etc/ssh/alt_config [listener] 0 of 10-100 startups",
        exe=sshd,
    )
    # Every config file is older than both listeners...
    old = start_time(1000) - 100
    for path in (ssh / "sshd_config", ssh / "sshd_config.d/limits.conf", ssh / "alt_config"):
        os.utime(path, (old, old))
    return HostPaths(rootfs=rootfs, procfs=procfs)


def scrape(host: HostPaths) -> str:
    return render(SshdCollector(SshdReader(host)).collect())


def test_fixture_host_exposition(host: HostPaths) -> None:
    text = scrape(host)
    found = samples(text)
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_config_source", source="sshd_t") == 0
    assert value(found, "ssh_access_sshd_config_valid") is None  # unknown without running sshd
    assert value(found, "ssh_access_sshd_config_errors") == 0
    assert value(found, "ssh_access_sshd_maxstartups_start") == 3
    assert value(found, "ssh_access_sshd_maxstartups_rate") == 0.5
    assert value(found, "ssh_access_sshd_maxstartups_full") == 6
    persource = value(found, "ssh_access_sshd_persource_maxstartups")
    assert persource is not None and math.isinf(persource)
    assert value(found, "ssh_access_sshd_login_grace_time_seconds") == 60
    assert value(found, "ssh_access_sshd_listeners") == 2
    assert value(found, "ssh_access_sshd_startups") == 2
    assert value(found, "ssh_access_sshd_listener_startups", listener="/etc/ssh/sshd_config") == 2
    assert value(found, "ssh_access_sshd_listener_startups", listener="/etc/ssh/alt_config") == 0
    assert value(found, "ssh_access_sshd_listener_maxstartups_full", listener="/etc/ssh/sshd_config") == 6
    main = "/etc/ssh/sshd_config"
    assert value(found, "ssh_access_sshd_unauthenticated_connections", listener=main, stage="accepted") == 2
    assert value(found, "ssh_access_sshd_unauthenticated_connections", listener=main, stage="preauth") == 0
    assert value(found, "ssh_access_sshd_sessions", listener=main) == 1
    assert value(found, "ssh_access_sshd_sessions", listener="/etc/ssh/alt_config") == 0
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/sshd_config") == 0
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/alt_config") == 0
    if shutil.which("promtool"):
        assert promtool_check(text) is None


def test_edited_include_means_reload_pending(host: HostPaths) -> None:
    (host.rootfs / "etc/ssh/sshd_config.d/limits.conf").write_text("MaxStartups 5:50:9\n")  # mtime: now
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/sshd_config") == 1
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/alt_config") == 0
    assert value(found, "ssh_access_sshd_maxstartups_start") == 5  # the file, not yet the listener
    assert value(found, "ssh_access_sshd_listener_maxstartups_start", listener="/etc/ssh/sshd_config") == 3


def test_pid_file_rewritten_by_reload_clears_pending(host: HostPaths) -> None:
    (host.rootfs / "etc/ssh/sshd_config.d/limits.conf").write_text("MaxStartups 5:50:9\n")
    (host.rootfs / "run/sshd.pid").write_text("100\n")  # sshd rewrites it when SIGHUP re-execs it
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/sshd_config") == 0


def test_no_sshd_running_and_garbage_config(host: HostPaths) -> None:
    for pid in (100, 101, 102, 103, 104, 200):
        shutil.rmtree(host.procfs / str(pid))
    (host.rootfs / "etc/ssh/sshd_config").write_bytes(b"\x7fELF\x00\x01garbage\nMaxStartups banana\n")
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_listeners") == 0
    assert value(found, "ssh_access_sshd_startups") == 0
    # both lines are refused and skipped: what is left is sshd's defaults
    assert value(found, "ssh_access_sshd_config_parse_errors") == 2
    assert value(found, "ssh_access_sshd_config_errors") == 2
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_maxstartups_start") == 10


def test_missing_config_still_reports_load(host: HostPaths) -> None:
    shutil.rmtree(host.rootfs / "etc/ssh")
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_startups") == 2
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/sshd_config") is None


def test_version_is_read_from_the_binary(host: HostPaths) -> None:
    binary = host.rootfs / "usr/sbin/sshd"
    binary.write_bytes(b"\x7fELF\x00OpenSSH_2.*,OpenSSH_3.0*\x00OpenSSH_9.8p1 Debian-3\x00OpenSSH_%s\x00")
    found = samples(scrape(host))
    assert (
        value(found, "ssh_access_sshd_version_info", version="9.8p1", release="OpenSSH_9.8p1 Debian-3") == 1
    )
    assert value(found, "ssh_access_sshd_persource_penalties_enabled") == 1  # default on from 9.8


def test_listeners_sharing_a_config_get_ordinals_not_pids(host: HostPaths) -> None:
    add_process(
        host.procfs,
        300,
        1,
        "sshd: /usr/sbin/sshd -D -p 2224 [listener] 1 of 10-100 startups",
        start_ticks=900,
        exe=host.rootfs / "usr/sbin/sshd",
    )
    found = samples(scrape(host))
    main = "/etc/ssh/sshd_config"
    assert value(found, "ssh_access_sshd_listener_startups", listener=main) == 1  # started first (pid 300)
    assert value(found, "ssh_access_sshd_listener_startups", listener=f"{main} #2") == 2


@pytest.mark.parametrize(
    "line", ["LoginGraceTime " + "9" * 400, "MaxStartups 10:30:" + "9" * 400, "PerSourceNetBlockSize 99"]
)
def test_value_sshd_refuses_is_a_config_error_not_a_failed_scrape(host: HostPaths, line: str) -> None:
    """A 400-digit LoginGraceTime raised OverflowError: the collector failed every scrape. Then any bad
    value removed every effective setting; now the line is counted and skipped."""
    (host.rootfs / "etc/ssh/sshd_config.d/limits.conf").write_text(line + "\n")
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_config_parse_errors") == 1
    assert value(found, "ssh_access_sshd_config_errors") == 1
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_login_grace_time_seconds") == 120  # sshd's default
    assert value(found, "ssh_access_sshd_listeners") == 2  # the listeners are still reported


def test_self_including_config_is_a_parse_error(host: HostPaths) -> None:
    (host.rootfs / "etc/ssh/sshd_config.d/limits.conf").write_text(
        "Include /etc/ssh/sshd_config\nInclude /etc/ssh/sshd_config\n"
    )
    started = time.monotonic()
    found = samples(scrape(host))
    assert time.monotonic() - started < 2
    assert value(found, "ssh_access_sshd_config_parse_errors") == 1
    assert value(found, "ssh_access_sshd_config_errors") == 1  # sshd stops past 16 levels too
    assert value(found, "ssh_access_sshd_config_source", source="file") == 0


def test_config_path_in_a_link_loop_is_a_parse_error_not_a_failed_scrape(host: HostPaths) -> None:
    """Under --path.rootfs a path whose links cannot be followed to the end (a loop) is refused by
    HostPaths.root (OSError ELOOP): that file is unreadable, the listeners are still reported."""
    ssh = host.rootfs / "etc/ssh"
    (ssh / "sshd_config").unlink()
    (ssh / "sshd_config").symlink_to("/etc/ssh/loop")
    (ssh / "loop").symlink_to("/etc/ssh/sshd_config")
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_config_parse_errors") == 1
    assert value(found, "ssh_access_sshd_config_errors") == 0  # the exporter's blind spot, not sshd's
    assert value(found, "ssh_access_sshd_listeners") == 2
    assert value(found, "ssh_access_sshd_config_reload_pending", listener="/etc/ssh/sshd_config") is None


def _systemd_listening(host: HostPaths, *ports: int) -> None:
    """pid 1 as systemd with socket units: listening sockets in its fds and its namespace's table."""
    add_process(host.procfs, 1, 0, "/sbin/init", comm="systemd", start_ticks=1)
    (host.procfs / "1/fd").mkdir(exist_ok=True)
    for index, port in enumerate(ports):
        add_socket(host.procfs, 1, 7000 + index, port, table="tcp6")


def _stop_listeners(host: HostPaths) -> None:
    for pid in (100, 101, 102, 103, 104, 200):
        shutil.rmtree(host.procfs / str(pid))


def test_socket_activated_sshd_without_a_listener(host: HostPaths) -> None:
    """Ubuntu 22.10+'s ssh.socket after a reboot: systemd listens on sshd's port, no sshd runs yet."""
    _stop_listeners(host)
    _systemd_listening(host, 2222)
    text = scrape(host)
    found = samples(text)
    assert value(found, "ssh_access_sshd_listeners") == 0
    assert value(found, "ssh_access_sshd_socket_activated") == 1
    if shutil.which("promtool"):
        assert promtool_check(text) is None


def test_socket_activated_with_listeners_running(host: HostPaths) -> None:
    """Accept=no: sshd runs with the socket systemd passed, which systemd keeps holding."""
    _systemd_listening(host, 2223)  # the alt_config listener's port
    found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_listeners") == 2
    assert value(found, "ssh_access_sshd_socket_activated") == 1


@pytest.mark.parametrize("case", ["other port", "pid 1 holds no socket", "pid 1 unreadable", "no pid 1"])
def test_not_socket_activated(host: HostPaths, case: str, caplog: pytest.LogCaptureFixture) -> None:
    _stop_listeners(host)
    if case == "other port":
        _systemd_listening(host, 8080, 53)
    elif case == "pid 1 holds no socket":
        _systemd_listening(host)
    elif case == "pid 1 unreadable":
        add_process(host.procfs, 1, 0, "/sbin/init", comm="systemd")  # no fd directory: not root
    with caplog.at_level(logging.INFO):
        found = samples(scrape(host))
    assert value(found, "ssh_access_sshd_socket_activated") == 0
    assert value(found, "ssh_access_sshd_listeners") == 0
    unreadable = "pid 1's sockets cannot be read" in caplog.text
    assert unreadable == (case in ("pid 1 unreadable", "no pid 1"))


def test_pid_1_is_read_on_the_full_scan_interval_or_when_listeners_change(
    host: HostPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = SshdReader(host)
    _systemd_listening(host, 2222)
    assert reader.read().socket_activated is True
    shutil.rmtree(host.procfs / "1/fd")
    (host.procfs / "1/fd").mkdir()  # ssh.socket stopped
    reads: list[int] = []

    def counted(procfs: Path, pid: int) -> frozenset[int] | None:
        reads.append(pid)
        return own_listening_ports(procfs, pid)

    monkeypatch.setattr(sshd_source, "own_listening_ports", counted)
    assert reader.read().socket_activated is True  # cached: not read on every scrape
    assert reads == []
    shutil.rmtree(host.procfs / "200")  # a listener stopped: read again at once
    assert reader.read().socket_activated is False
    assert reads == [1]
    _systemd_listening(host, 2222)
    assert reader.read().socket_activated is False
    monkeypatch.setattr(sshd_source, "FULL_SCAN_INTERVAL", 0.0)
    assert reader.read().socket_activated is True
    reader.close()


def test_config_errors_name_the_line_logged_once_per_change(
    host: HostPaths, caplog: pytest.LogCaptureFixture
) -> None:
    """sshd would refuse `MaxStartupz 5`: counted, logged with file, line and reason once (not every
    scrape), kept in the snapshot for diagnose and the landing page; the other values still apply."""
    limits = host.rootfs / "etc/ssh/sshd_config.d/limits.conf"
    limits.write_text("MaxStartups 3:50:6\nMaxStartupz 5\nLoginGraceTime 2x\n")
    reader = SshdReader(host)
    with caplog.at_level(logging.WARNING):
        found = samples(render(SshdCollector(reader).collect()))
        render(SshdCollector(reader).collect())
    assert value(found, "ssh_access_sshd_config_errors") == 2
    assert value(found, "ssh_access_sshd_maxstartups_start") == 3
    assert value(found, "ssh_access_sshd_login_grace_time_seconds") == 120
    logged = [
        (r.__dict__["file"], r.__dict__["line"], r.__dict__["reason"])
        for r in caplog.records
        if r.getMessage() == "sshd would refuse its config"
    ]
    conf = "/etc/ssh/sshd_config.d/limits.conf"
    assert [(file, line) for file, line, _ in logged] == [(conf, 2), (conf, 3)]
    assert "MaxStartupz" in logged[0][2] and "2x" in logged[1][2]
    refusals = reader.read().config.refusals
    assert [str(problem) for problem in refusals] == [
        f"{conf}:{line}: {reason}" for _, line, reason in logged
    ]
    caplog.clear()
    limits.write_text("MaxStartups 3:50:6\n")
    with caplog.at_level(logging.WARNING):
        assert value(samples(render(SshdCollector(reader).collect())), "ssh_access_sshd_config_errors") == 0
    assert "sshd would refuse its config" not in caplog.text
    reader.close()
