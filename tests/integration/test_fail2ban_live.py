"""The fail2ban collector against a real fail2ban-server, sshd and rsyslog in a network namespace.

sshd logs through a real rsyslogd to a temp auth.log; fail2ban's sshd jail (iptables-multiport inside
the namespace) reads it; failed logins from 127.0.0.2 get that address banned for real. The exporter
runs on the host and reaches the server's socket by its path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.exposition import Samples, promtool_check, samples, value
from tests.integration.harness import (
    SSHD,
    Exporter,
    Fail2banServer,
    NetNs,
    Rsyslog,
    Sshd,
    require_root_and,
    ssh_password_attempt,
    wait_until_listed,
)


@pytest.fixture(autouse=True)
def _needs_daemons() -> None:
    require_root_and(SSHD, "fail2ban-server", "rsyslogd", "sshpass", "ip", "iptables", "promtool")


@dataclass
class Stack:
    netns: NetNs
    syslog: Rsyslog
    sshd: Sshd
    fail2ban: Fail2banServer

    def exporter(self, *extra: str) -> Exporter:
        return Exporter(
            f"--collector.fail2ban.socket={self.fail2ban.socket}",
            f"--collector.fail2ban.db={self.fail2ban.db}",
            f"--collector.fail2ban.config-dir={self.fail2ban.conf}",
            f"--collector.sshd.config={self.sshd.config}",
            *extra,
        )


def _jail(jail: str, port: int | str, logpath: Path, extra: str = "") -> str:
    return (
        f"[{jail}]\nenabled = true\nfilter = sshd\nport = {port}\nlogpath = {logpath}\n"
        f"banaction = iptables-multiport\n{extra}"
    )


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    jails = getattr(request, "param", None)
    with NetNs(tmp_path / "netns") as netns, Rsyslog(tmp_path / "syslog") as syslog:
        sshd = Sshd(tmp_path / "sshd", netns=netns, devlog=syslog.socket)
        with sshd:
            body = jails(sshd.port, syslog.log) if jails else _jail("sshd", sshd.port, syslog.log)
            with Fail2banServer(tmp_path / "fail2ban", netns, body) as fail2ban:
                yield Stack(netns, syslog, sshd, fail2ban)


def _banned(found: Samples, jail: str = "sshd") -> float | None:
    return value(found, "ssh_access_banned_addresses", source="fail2ban", jail=jail)


def _up(found: Samples) -> float | None:
    return value(found, "ssh_access_ban_source_up", source="fail2ban")


def test_real_bans_restart_and_stop(stack: Stack) -> None:
    with stack.exporter("--collector.fail2ban.timeout=1") as exporter:
        found = exporter.scrape()
        assert (_up(found), _banned(found)) == (1, 0)
        assert value(found, "ssh_access_fail2ban_jail_guards_sshd", jail="sshd") == 1
        assert value(found, "ssh_access_fail2ban_jail_covers_sshd_port", jail="sshd") == 1
        assert value(found, "ssh_access_fail2ban_jail_log_files_missing", jail="sshd") == 0
        assert value(found, "ssh_access_fail2ban_sshd_guarded") == 1
        assert value(found, "ssh_access_fail2ban_version_info", version="1.0.2") == 1
        assert value(found, "ssh_access_fail2ban_jail_maxretry", jail="sshd") == 2
        assert value(found, "ssh_access_fail2ban_jail_bantime_seconds", jail="sshd") == 600
        first_start = value(found, "ssh_access_fail2ban_server_start_time_seconds")
        assert first_start is not None and abs(first_start - time.time()) < 120

        assert "Permission denied" in ssh_password_attempt(stack.netns, stack.sshd.port)  # bans: see its doc
        found = exporter.wait_until(lambda f: _banned(f) == 1, timeout=20)
        assert _banned(found) == 1, stack.syslog.log.read_text()
        assert value(found, "ssh_access_fail2ban_jail_bans_total", jail="sshd") == 1
        failures = value(found, "ssh_access_fail2ban_jail_failures_total", jail="sshd")
        assert failures is not None and failures >= 2
        assert promtool_check(exporter.text()) is None
        # the ban is real: iptables in the namespace rejects 127.0.0.2 (once its action has run)
        wait_until_listed(stack.netns, ["iptables", "-w", "-S"], "127.0.0.2")
        assert "Connection refused" in ssh_password_attempt(stack.netns, stack.sshd.port)

        # a hung server costs one scrape: up 0, the scrape intact; it recovers when it answers again
        os.kill(stack.fail2ban.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            found = exporter.scrape()
            assert time.monotonic() - started < 5
            assert _up(found) == 0
            assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
            assert value(found, "ssh_access_fail2ban_data_source", source="database") == 1
            assert _banned(found) == 1  # from the database, which the stopped server still holds
        finally:
            os.kill(stack.fail2ban.pid, signal.SIGCONT)
        assert _up(exporter.wait_until(lambda f: _up(f) == 1)) == 1

        # restart: the socket is recreated; the very next scrape reads the new server
        stack.fail2ban.stop()
        stack.fail2ban.start()
        found = exporter.scrape()
        assert _up(found) == 1
        found = exporter.wait_until(lambda f: _banned(f) == 1)  # fail2ban restores it from its database
        assert _banned(found) == 1
        restarted = value(found, "ssh_access_fail2ban_server_start_time_seconds")
        assert restarted is not None and restarted > first_start

        # stopped: up 0, fail2ban's collector still succeeds, the other collectors are unaffected
        stack.fail2ban.stop()
        found = exporter.scrape()
        assert _up(found) == 0
        assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
        assert value(found, "ssh_access_collector_success", collector="sshd") == 1
        assert value(found, "ssh_access_sshd_listeners") is not None
        assert _banned(found) is None  # a clean stop unbanned everything and disabled its jails
        # fail2ban-client -d on its config says why it could be down: here, nothing is wrong with it
        assert value(found, "ssh_access_fail2ban_config_valid") == 1
        assert value(found, "ssh_access_fail2ban_config_jail_log_missing", jail="sshd") == 0
        assert value(found, "ssh_access_fail2ban_sshd_guarded") == 1
        assert promtool_check(exporter.text()) is None


def test_database_only_mode(stack: Stack) -> None:
    assert "Permission denied" in ssh_password_attempt(stack.netns, stack.sshd.port)  # bans: see its doc
    deadline = time.monotonic() + 20
    while "Currently banned:\t1" not in stack.fail2ban.client("status", "sshd"):
        assert time.monotonic() < deadline, stack.fail2ban.client("status", "sshd")
        time.sleep(0.2)
    with stack.exporter("--collector.fail2ban.socket=") as exporter:
        found = exporter.scrape()
        assert _up(found) == 1
        assert value(found, "ssh_access_fail2ban_data_source", source="database") == 1
        assert _banned(found) == 1
        assert value(found, "ssh_access_fail2ban_permanent_bans", jail="sshd") == 0
        assert value(found, "ssh_access_fail2ban_jail_guards_sshd", jail="sshd") is None  # unknowable


def _misconfigured(port: int, log: Path) -> str:
    other_log = log.parent / "other.log"
    other_log.write_text("")
    return (
        _jail("sshd", "ssh", log)
        + _jail("sshd-copy", port, other_log)
        + (f"[web]\nenabled = true\nfilter = nginx-http-auth\nport = http\nlogpath = {other_log}\n")
    )


@pytest.mark.parametrize("stack", [_misconfigured], indirect=True)
def test_config_checks_on_a_misconfigured_server(stack: Stack) -> None:
    (stack.syslog.log.parent / "other.log").unlink()  # e.g. rotated away without a new file
    with stack.exporter() as exporter:
        # fail2ban answers for a jail a moment before its actions (hence their ports) are set up
        found = exporter.wait_until(
            lambda f: value(f, "ssh_access_fail2ban_jail_covers_sshd_port", jail="sshd") is not None
        )
        # sshd listens on a high port; the sshd jail blocks only "ssh" (22)
        assert value(found, "ssh_access_fail2ban_jail_covers_sshd_port", jail="sshd") == 0
        assert value(found, "ssh_access_fail2ban_jail_covers_sshd_port", jail="sshd-copy") == 1
        assert value(found, "ssh_access_fail2ban_jail_log_files_missing", jail="sshd") == 0
        assert value(found, "ssh_access_fail2ban_jail_log_files_missing", jail="sshd-copy") == 1
        assert value(found, "ssh_access_fail2ban_jail_guards_sshd", jail="web") == 0
        assert value(found, "ssh_access_fail2ban_jail_covers_sshd_port", jail="web") is None
        assert samples(exporter.text())  # still a valid exposition


def test_jail_without_its_log_file_keeps_fail2ban_down(tmp_path: Path) -> None:
    """Debian 12 without rsyslog: the sshd jail's /var/log/auth.log does not exist, the server exits."""
    with NetNs(tmp_path / "netns") as netns:
        missing = tmp_path / "no-syslog" / "auth.log"
        fail2ban = Fail2banServer(tmp_path / "fail2ban", netns, _jail("sshd", "ssh", missing))
        with pytest.raises(AssertionError, match="exited"):
            fail2ban.start()
        fail2ban.stop()
        flags = (f"--collector.fail2ban.socket={fail2ban.socket}", f"--collector.fail2ban.db={fail2ban.db}")
        with Exporter(*flags, f"--collector.fail2ban.config-dir={fail2ban.conf}") as exporter:
            found = exporter.scrape()
            assert _up(found) == 0
            assert value(found, "ssh_access_fail2ban_config_jail_log_missing", jail="sshd") == 1
            assert value(found, "ssh_access_fail2ban_config_valid") == 1
            assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
            # the log line a person reads says why, as fail2ban itself would
            why = (
                f"fail2ban-server is not running (nothing answers on {fail2ban.socket}); "
                "jail sshd: no log file found (fail2ban-server refuses to start)"
            )
            assert _logged(exporter, "fail2ban", "ban source unreachable") == [why]


def _logged(exporter: Exporter, source: str, message: str) -> list[str]:
    """The `err` of each line the exporter logged with this message for this ban source ("" if none)."""
    found = []
    for line in exporter.log().splitlines():
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line))
        unquoted = {key: json.loads(text) if text.startswith('"') else text for key, text in fields.items()}
        if unquoted.get("msg") == message and unquoted.get("source") == source:
            found.append(unquoted.get("err", ""))
    return found


def test_a_rootfs_without_fail2ban_is_absent_not_unreachable(tmp_path: Path) -> None:
    """No socket, database, /etc/fail2ban or binary under rootfs: nothing to alert on, said once."""
    root = tmp_path / "root"
    root.mkdir()
    with Exporter(f"--path.rootfs={root}", "--no-collector.sshd") as exporter:
        exporter.scrape()
        found = exporter.scrape()
        assert _up(found) is None and _banned(found) is None
        assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
        # before: a warning "ban source unreachable" with the socket's FileNotFoundError
        assert _logged(exporter, "fail2ban", "ban source unreachable") == []
        assert _logged(exporter, "fail2ban", "ban source absent") == [""]


def test_a_config_fail2ban_client_refuses_is_named_in_the_reason(tmp_path: Path) -> None:
    """The real fail2ban-client on a jail naming a filter that does not exist: its last line is a bare
    "Init of command line failed"; the reason is in the lines before."""
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    (conf / "jail.local").write_text("[sshd]\nenabled = true\nfilter = sae-no-such-filter\n")
    flags = (
        f"--collector.fail2ban.socket={tmp_path / 'fail2ban.sock'}",
        f"--collector.fail2ban.db={tmp_path / 'fail2ban.sqlite3'}",
        f"--collector.fail2ban.config-dir={conf}",
        "--no-collector.sshd",
    )
    with Exporter(*flags) as exporter:
        found = exporter.scrape()
        assert _up(found) == 0
        assert value(found, "ssh_access_fail2ban_config_valid") == 0
        [why] = _logged(exporter, "fail2ban", "ban source unreachable")
        assert why.startswith(
            f"fail2ban-server is not running (nothing answers on {tmp_path / 'fail2ban.sock'}); "
        )
        missing = f"Found no accessible config files for 'filter.d/sae-no-such-filter' under {conf}"
        assert f"fail2ban-client -d: {missing}; " in why
        assert why.endswith(
            "Unable to read the filter 'sae-no-such-filter'; Errors in jail 'sshd'. Skipping..."
        )
