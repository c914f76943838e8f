"""The live `authlog` collector against real daemons: every counter equals exactly what the test did.

A real sshd (OpenSSH 9.2 here) runs in a network namespace with only loopback and logs to a real
rsyslog (RFC 3339 and traditional templates) or a real standalone journald; the exporter runs as users
run it and is scraped over HTTP. Nothing on the host is changed: /dev/log and /etc/hosts.deny are
replaced only inside the private mount namespaces of the processes started here (the host's files are
checked byte for byte afterwards), journald runs in its own mount namespace, the temp user is removed.

What OpenSSH 9.2 logs at LogLevel INFO with UsePAM no, per action (checked on this machine), and the
events they are (issue 3):

- failed password, valid user: `Failed password for U from A port P ssh2` (auth_failed/password),
  `Connection closed by authenticating user U A port P [preauth]` (preauth_disconnect);
- failed password, invalid user: `Invalid user U from A port P` (invalid_user), `error: Could not get
  shadow information for NOUSER` (no event), `Failed password for invalid user U ...` (auth_failed),
  `Connection closed by invalid user U A port P [preauth]` (preauth_disconnect);
- the same under UsePAM yes (each failure takes ~2 s): pam_unix adds `pam_unix(sshd:auth): authentication
  failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=A  user=U` (pam_auth_failure); for an invalid user
  `pam_unix(sshd:auth): check pass; user unknown` (no event), then the same failure line without `user=`
  and ending in a space after the address (pam_auth_failure);
- MaxAuthTries 2 and a client that tries 3 passwords: 2 x `Failed password` (auth_failed),
  `error: maximum authentication attempts exceeded for [invalid user ]U ... [preauth]`
  (max_auth_tries_exceeded), `Disconnecting [authenticating user |invalid user ]U A port P: Too many
  authentication failures [preauth]` (preauth_disconnect), plus `Invalid user` for an invalid user;
- accepted login: `Accepted password for U ...` (auth_accepted); `Received disconnect ...` and
  `Disconnected from user U ...` come after the login (no event);
- a connection that never sends a banner, closed by the client: `error: kex_exchange_identification:
  Connection closed by remote host` (banner_error), `Connection closed by A port P` (no [preauth]: no
  event);
- MaxStartups (8.4 - 9.7): `error: beginning MaxStartups throttling` (maxstartups_throttling_begin), the
  episode's first `drop connection #N ... past MaxStartups` at INFO (maxstartups_drop; later drops are
  VERBOSE, hidden), and, on the next connection accepted below start - 1, `exited MaxStartups throttling
  after T, N connections dropped` (maxstartups_throttling_end; N feeds the dropped-connections counter);
- TCP wrappers: `refused connect from A (A)` (wrapper_refused), via syslog only.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.exposition import Samples, value
from tests.integration.harness import Exporter, Journald, NetNs, Rsyslog, Sshd, require_root_and

EVENTS = (
    "auth_failed", "auth_accepted", "invalid_user", "user_not_allowed", "root_login_refused",
    "max_auth_tries_exceeded", "pam_auth_failure", "preauth_disconnect", "negotiation_failed",
    "banner_error", "login_grace_timeout", "wrapper_refused", "maxstartups_drop",
    "maxstartups_throttling_begin", "maxstartups_throttling_end", "penalty_drop", "penalty_applied",
)  # fmt: skip
HOSTS_DENY = Path("/etc/hosts.deny")
DEV_LOG = Path("/dev/log")
SSH_OPTIONS = [
    "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
]  # fmt: skip
TIMEOUT_S = 20.0  # the follower polls every 250 ms; the machine is shared and may be loaded


@functools.cache
def other_collectors_off() -> list[str]:
    """--no-collector.X for every collector but authlog (whatever this tree registers)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "exporter", "--help"], capture_output=True, text=True, check=True
    ).stdout
    names = sorted(set(re.findall(r"--no-collector\.([a-z0-9_]+)\b", help_text)) - {"authlog"})
    return [f"--no-collector.{name}" for name in names]


def host_files() -> dict[str, bytes | None]:
    """What the tests must leave exactly as they found it."""
    found: dict[str, bytes | None] = {}
    found["hosts.deny"] = HOSTS_DENY.read_bytes() if HOSTS_DENY.exists() else None
    found["/dev/log"] = os.fsencode(os.readlink(DEV_LOG)) if DEV_LOG.is_symlink() else None
    found["/dev/log exists"] = b"yes" if os.path.lexists(DEV_LOG) else None
    return found


@pytest.fixture(scope="module")
def host_untouched() -> Iterator[None]:
    before = host_files()
    yield
    assert host_files() == before, "/etc/hosts.deny or /dev/log changed"


@dataclass
class TempUser:
    name: str
    password: str


@pytest.fixture(scope="module")
def temp_user() -> Iterator[TempUser]:
    """A local user with a known password (no home directory), removed at the end."""
    require_root_and("useradd", "chpasswd", "userdel")
    user = TempUser(f"sae{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", user.name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{user.name}:{user.password}\n", text=True, check=True)
        yield user
    finally:
        subprocess.run(["userdel", user.name], check=False)
        assert subprocess.run(["id", user.name], check=False, capture_output=True).returncode != 0


@dataclass
class Expected:
    """What the test did, in the exporter's terms."""

    events: Counter[str] = field(default_factory=Counter)
    password_failures: int = 0
    dropped: int = 0

    def add(self, *events: str) -> None:
        self.events.update(events)
        self.password_failures += events.count("auth_failed")

    def holds(self, found: Samples) -> bool:
        return self.mismatches(found) == []

    def mismatches(self, found: Samples) -> list[str]:
        wrong = []
        for event in EVENTS:
            got = value(found, "ssh_access_sshd_events_total", event=event)
            if got != self.events[event]:
                wrong.append(f"events{{{event}}}: {got} != {self.events[event]}")
        got = value(found, "ssh_access_sshd_auth_failures_total", method="password")
        if got != self.password_failures:
            wrong.append(f"auth_failures{{password}}: {got} != {self.password_failures}")
        got = value(found, "ssh_access_sshd_maxstartups_dropped_connections_total")
        if got != self.dropped:
            wrong.append(f"maxstartups_dropped: {got} != {self.dropped}")
        return wrong


class Client:
    """ssh clients inside the namespace; each method does one thing and records its expected events."""

    def __init__(self, netns: NetNs, tmp: Path, expected: Expected) -> None:
        self.netns = netns
        self.expected = expected
        self.askpass = tmp / "askpass"
        self.askpass.write_text("#!/bin/sh\necho wrong-password\n")
        self.askpass.chmod(0o755)

    def _ssh(self, port: int, user: str, password: str) -> subprocess.CompletedProcess[str]:
        argv = ["sshpass", "-p", password, "ssh", "-p", str(port), *SSH_OPTIONS, f"{user}@127.0.0.1", "true"]
        return self.netns.run(argv)

    def failed_password(self, port: int, user: str, valid: bool, pam: bool = False) -> None:
        """One wrong password; under UsePAM yes pam_unix also logs `authentication failure`."""
        run = self._ssh(port, user, "wrong-password")
        assert run.returncode == 5, f"sshpass: {run.returncode} {run.stderr}"  # 5: password rejected
        invalid = () if valid else ("invalid_user",)
        self.expected.add(
            *invalid, *(("pam_auth_failure",) if pam else ()), "auth_failed", "preauth_disconnect"
        )

    def accepted(self, port: int, user: TempUser) -> None:
        run = self._ssh(port, user.name, user.password)
        assert run.returncode == 0, run.stderr
        self.expected.add("auth_accepted")

    def max_auth_tries(self, port: int, user: str, valid: bool, max_auth_tries: int) -> None:
        """One connection trying max_auth_tries + 1 passwords (ssh asks SSH_ASKPASS each time)."""
        argv = [
            "env", f"SSH_ASKPASS={self.askpass}", "SSH_ASKPASS_REQUIRE=force",
            "ssh", "-p", str(port), *SSH_OPTIONS, "-o", f"NumberOfPasswordPrompts={max_auth_tries + 1}",
            f"{user}@127.0.0.1", "true",
        ]  # fmt: skip
        run = self.netns.run(argv)
        assert "Too many authentication failures" in run.stderr, run.stderr
        failures = ("auth_failed",) * max_auth_tries
        invalid = () if valid else ("invalid_user",)
        self.expected.add(*invalid, *failures, "max_auth_tries_exceeded", "preauth_disconnect")

    def wrapper_refused(self, port: int) -> None:
        run = self._ssh(port, "root", "wrong-password")
        assert "kex_exchange_identification: read: Connection reset by peer" in run.stderr, run.stderr
        self.expected.add("wrapper_refused")

    def maxstartups(self, sshd: Sshd, full: int, connections: int) -> None:
        """Hold `connections` banner-less connections on an sshd with `MaxStartups full` (drop rate 100%
        from `full` on); count what the client saw; release them; then one more connection, accepted
        once sshd counts no startup, ends the throttling episode."""
        wait_for(lambda: listener_startups(sshd) == 0, "no connection in progress")
        code = (
            "import json, socket, sys, time\n"
            "held, dropped = [], 0\n"
            f"for _ in range({connections}):\n"
            f"    c = socket.create_connection(('127.0.0.1', {sshd.port}), timeout=10)\n"
            "    data = c.recv(64)\n"
            "    if data.startswith(b'SSH-'): held.append(c)\n"
            "    else: assert data == b'Exceeded MaxStartups\\r\\n', data; dropped += 1; c.close()\n"
            "print(json.dumps({'accepted': len(held), 'dropped': dropped}))\n"
            "for c in held: c.close()\n"
        )
        run = self.netns.run([sys.executable, "-c", code])
        assert run.returncode == 0, run.stderr
        seen = json.loads(run.stdout)
        assert seen["accepted"] == full and seen["dropped"] == connections - full, seen
        wait_for(lambda: listener_startups(sshd) == 0, "the held connections' children to exit")
        self.banner_only(sshd.port)
        self.expected.add(*("banner_error",) * seen["accepted"])
        self.expected.add("maxstartups_throttling_begin", "maxstartups_drop", "maxstartups_throttling_end")
        self.expected.dropped += seen["dropped"]

    def banner_only(self, port: int) -> None:
        code = (
            f"import socket; c = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
            "assert c.recv(64).startswith(b'SSH-'); c.close()\n"
        )
        run = self.netns.run([sys.executable, "-c", code])
        assert run.returncode == 0, run.stderr
        self.expected.add("banner_error")


def listener_startups(sshd: Sshd) -> int:
    """N in the listener's title `sshd: ... [listener] N of S-F startups`."""
    title = Path(f"/proc/{sshd.pid}/cmdline").read_bytes().decode(errors="replace")
    match = re.search(r"\[listener\] (\d+) of", title)
    assert match, title
    return int(match.group(1))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_settled(log: Path, *needles: str) -> None:
    """Until every needle is in the log (the start-up lines of the daemons, written before the
    exporter starts reading from the end)."""
    wait_for(
        lambda: log.exists() and all(n in log.read_text(errors="replace") for n in needles), str(needles)
    )


def assert_exact(exporter: Exporter, expected: Expected) -> Samples:
    found = exporter.wait_until(expected.holds, timeout=TIMEOUT_S)
    assert expected.mismatches(found) == []
    assert value(found, "ssh_access_collector_success", collector="authlog") == 1.0
    return found


@pytest.mark.parametrize("template", ["", "RSYSLOG_TraditionalFileFormat"], ids=["rfc3339", "traditional"])
def test_rsyslog_counters_equal_real_traffic(
    tmp_path: Path, template: str, temp_user: TempUser, host_untouched: None
) -> None:
    require_root_and("/usr/sbin/sshd", "rsyslogd", "sshpass", "ssh", "ip")
    deny = tmp_path / "hosts.deny"  # the wrapped sshd's own /etc/hosts.deny (the host's stays as it is)
    deny.write_bytes((HOSTS_DENY.read_bytes() if HOSTS_DENY.exists() else b"") + b"sshd: 127.0.0.1\n")
    max_tries, full = 2, 2
    with (
        NetNs(tmp_path / "netns") as netns,
        Rsyslog(tmp_path / "syslog", template=template) as syslog,
        Sshd(tmp_path / "sshd", f"MaxAuthTries {max_tries}\n", netns=netns, devlog=syslog.socket) as sshd,
        Sshd(tmp_path / "throttled", f"MaxStartups {full}\n", netns=netns, devlog=syslog.socket) as throttled,
        Sshd(
            tmp_path / "wrapped", "", netns=netns, devlog=syslog.socket, binds={HOSTS_DENY: deny}
        ) as wrapped,
        Sshd(tmp_path / "pam", "UsePAM yes\n", netns=netns, devlog=syslog.socket) as pam,
    ):
        # each sshd's start-up port probe: a banner-less connection (three of them) or a refusal
        wait_settled(
            syslog.log, "refused connect from 127.0.0.1", *(f"port {s.port}." for s in (sshd, wrapped))
        )
        wait_for(lambda: syslog.log.read_text().count("Connection closed by 127.0.0.1 port") == 3, "probes")
        lines_before = line_count(syslog.log)
        expected = Expected()
        with Exporter(f"--collector.authlog.files={syslog.log}", *other_collectors_off()) as exporter:
            assert_exact(exporter, expected)  # all zero: nothing before the start is read
            client = Client(netns, tmp_path, expected)
            for _ in range(3):
                client.failed_password(sshd.port, temp_user.name, valid=True)
            for i in range(2):
                client.failed_password(sshd.port, f"nosuch{i}", valid=False)
            client.max_auth_tries(sshd.port, temp_user.name, valid=True, max_auth_tries=max_tries)
            client.max_auth_tries(sshd.port, "nosuchmax", valid=False, max_auth_tries=max_tries)
            client.accepted(sshd.port, temp_user)
            client.failed_password(pam.port, temp_user.name, valid=True, pam=True)
            client.failed_password(pam.port, "nosuchpam", valid=False, pam=True)
            client.wrapper_refused(wrapped.port)
            client.maxstartups(throttled, full=full, connections=5)
            found = assert_exact(exporter, expected)
            assert expected.password_failures == 3 + 2 + 2 * max_tries + 2
            assert expected.events["pam_auth_failure"] == 2
            assert expected.dropped == 3
            # every line rsyslog wrote since the start was read, none twice
            written = line_count(syslog.log) - lines_before
            source = str(syslog.log)
            found = exporter.wait_until(
                lambda s: value(s, "ssh_access_authlog_lines_read_total", source=source) == written
            )
            assert value(found, "ssh_access_authlog_lines_read_total", source=source) == written
            assert value(found, "ssh_access_sshd_maxstartups_throttling") == 0.0
            assert value(found, "ssh_access_sshd_top_offender_failures", address="127.0.0.1") is not None


def test_journald_counters_equal_real_traffic(
    tmp_path: Path, temp_user: TempUser, host_untouched: None
) -> None:
    require_root_and("/usr/sbin/sshd", Journald.JOURNALD, "sshpass", "ssh", "ip", "unshare", "nsenter")
    deny = tmp_path / "hosts.deny"
    deny.write_bytes((HOSTS_DENY.read_bytes() if HOSTS_DENY.exists() else b"") + b"sshd: 127.0.0.1\n")
    max_tries = 2
    with (
        Journald() as journald,
        NetNs(tmp_path / "netns") as netns,
        Sshd(
            tmp_path / "sshd",
            f"MaxAuthTries {max_tries}\n",
            netns=netns,
            devlog=journald.devlog,
            enter=journald.enter,
        ) as sshd,
        Sshd(
            tmp_path / "wrapped",
            "",
            netns=netns,
            devlog=journald.devlog,
            enter=journald.enter,
            binds={HOSTS_DENY: deny},
        ) as wrapped,
    ):
        # the sshds' start-up port probes are in the journal before the exporter starts (from the end)
        probes = ("Connection closed by 127.0.0.1 port", "refused connect from 127.0.0.1")
        wait_for(lambda: all(p in journald.journalctl("-t", "sshd") for p in probes), "the probes")
        expected = Expected()
        # no auth log file in journald's namespace (tmpfs over /var/log): the journal is the source
        args = ["--collector.authlog.journal=on", *other_collectors_off()]
        with Exporter(*args, enter=journald.enter) as exporter:
            assert_exact(exporter, expected)
            client = Client(netns, tmp_path, expected)
            for _ in range(3):
                client.failed_password(sshd.port, temp_user.name, valid=True)
            for i in range(2):
                client.failed_password(sshd.port, f"nosuch{i}", valid=False)
            client.accepted(sshd.port, temp_user)
            client.max_auth_tries(sshd.port, "nosuchmax", valid=False, max_auth_tries=max_tries)
            client.wrapper_refused(wrapped.port)
            found = assert_exact(exporter, expected)
            assert value(found, "ssh_access_sshd_events_total", event="invalid_user") == 3
            assert value(found, "ssh_access_sshd_auth_failures_total", method="password") == 5 + max_tries
            assert value(found, "ssh_access_sshd_events_total", event="wrapper_refused") == 1
            assert (value(found, "ssh_access_authlog_lines_read_total", source="journal") or 0) > 0
            assert value(found, "ssh_access_authlog_source_up", source="journal") == 1


# ---- bad input, vanishing and unreadable files, restart: a file the test writes ---------------------


def sshd_line(message: str, pid: int = 4242) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
    return f"{stamp} host sshd[{pid}]: {message}\n".encode()


def failed(address: str, user: str = "root") -> bytes:
    return sshd_line(f"Failed password for {user} from {address} port 50022 ssh2")


def invalid(address: str, user: str) -> bytes:
    return sshd_line(f"Invalid user {user} from {address} port 50022")


def append(path: Path, *chunks: bytes) -> int:
    """Append, one write per chunk (as a syslog daemon does); the number of lines written."""
    with path.open("ab") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
    return sum(chunk.count(b"\n") for chunk in chunks)


def authlog(path: Path, *extra: str) -> list[str]:
    return [f"--collector.authlog.files={path}", *other_collectors_off(), *extra]


def success(found: Samples) -> float | None:
    return value(found, "ssh_access_collector_success", collector="authlog")


def test_bad_input_vanishing_and_returning_file(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(failed("192.0.2.1"))  # before the start: not read (tail from the end)
    source = str(log)
    with Exporter(*authlog(log)) as exporter:
        expected = Expected()
        assert_exact(exporter, expected)
        garbage = bytes(range(256)) * 64 + b"\n" + os.urandom(4096).replace(b"\n", b"\0") + b"\n"
        huge = b"2026-11-23T19:04:40.000000+00:00 host kernel: " + b"x" * (1 << 20) + b"\n"
        written = append(
            log,
            failed("192.0.2.10"),
            huge,  # one 1 MiB line: only the cap of it is kept; it is one line, and not sshd's
            invalid("192.0.2.11", "bob"),
            garbage,
            # invalid UTF-8 in the user name
            sshd_line("Failed password for invalid user USER from 192.0.2.12 port 22 ssh2").replace(
                b"USER", b"\xff\xfe"
            ),
            b"\xc3\x28 not even a log line \xa0\xa1\n",
            failed("192.0.2.13"),
        )
        expected.add("auth_failed", "invalid_user", "auth_failed", "auth_failed")
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source=source) == written
        )
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == written
        assert_exact(exporter, expected)
        assert exporter.proc.poll() is None

        log.unlink()
        found = exporter.wait_until(lambda s: success(s) == 0.0, timeout=TIMEOUT_S)
        assert success(found) == 0.0
        # the scrape itself is intact: the exporter's own series are served, and the failed collector's
        # counters too (totals of what was read), with source_up 0 saying why
        names = {name for name, _ in found}
        assert {"ssh_access_build_info", "ssh_access_collector_duration_seconds"} <= names, names
        assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 3
        assert up(found, log) == 0.0
        assert exporter.proc.poll() is None

        more = append(log, failed("192.0.2.20"), invalid("198.51.100.7", "eve"), failed("203.0.113.9"))
        expected.add("auth_failed", "invalid_user", "auth_failed")
        assert_exact(exporter, expected)
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source=source) == written + more
        )
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == written + more


NOTHING = "sshd's log lines reach nothing this exporter reads"


def failures_logged(exporter: Exporter) -> list[str]:
    """The reasons of the exporter's `collector failed` lines (logfmt: err="..." is JSON-quoted)."""
    found: list[str] = []
    for line in exporter.log().splitlines():
        if 'msg="collector failed"' in line and (err := re.search(r'err=("(?:[^"\\]|\\.)*")', line)):
            found.append(json.loads(err.group(1)))
    return found


def up(found: Samples, source: Path | str) -> float | None:
    return value(found, "ssh_access_authlog_source_up", source=str(source))


def test_source_up_for_a_missing_file_then_read(tmp_path: Path) -> None:
    """The configured log does not exist yet (rsyslog not installed, a typo): the source is down, the
    collector fails with a log line saying sshd's lines reach no source, and both clear once it exists."""
    log = tmp_path / "auth.log"
    with Exporter(*authlog(log)) as exporter:
        reason = (
            f"SourceUnavailableError: no auth log source: {log} absent, journal not read (auth log files "
            f"configured or found at start) — {NOTHING}"
        )
        found = exporter.wait_until(lambda s: reason in failures_logged(exporter), TIMEOUT_S)
        assert (success(found), up(found, log)) == (0.0, 0.0)
        assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 0
        assert reason in failures_logged(exporter), exporter.log()

        written = append(log, failed("192.0.2.40"))
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source=str(log)) == written,
            timeout=TIMEOUT_S,
        )
        assert (success(found), up(found, log)) == (1.0, 1.0)
        assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 1


def test_source_up_with_one_of_two_files_missing(tmp_path: Path) -> None:
    present, missing = tmp_path / "auth.log", tmp_path / "secure"
    present.write_bytes(b"")
    files = f"--collector.authlog.files={present},{missing}"
    with Exporter(files, *other_collectors_off()) as exporter:
        found = exporter.wait_until(lambda s: up(s, present) == 1.0, timeout=TIMEOUT_S)
        assert (success(found), up(found, present), up(found, missing)) == (0.0, 1.0, 0.0)
        missing.write_bytes(b"")
        found = exporter.wait_until(lambda s: success(s) == 1.0, timeout=TIMEOUT_S)
        assert (up(found, present), up(found, missing)) == (1.0, 1.0)


def test_source_up_for_a_journal_that_is_not_there(tmp_path: Path) -> None:
    """No auth log file and no journal under the rootfs (Debian 12 without rsyslog, journald not
    running: systemd's /run is there, journald's socket is not): the journal is the source, and down."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "run/systemd").mkdir(parents=True)
    with Exporter(f"--path.rootfs={tmp_path}", *other_collectors_off()) as exporter:
        reason = (
            "SourceUnavailableError: no auth log source: /var/log/auth.log and /var/log/secure absent, "
            f"journal not running (no /run/systemd/journal/socket) — {NOTHING}"
        )
        found = exporter.wait_until(lambda s: reason in failures_logged(exporter), TIMEOUT_S)
        assert (success(found), up(found, "journal")) == (0.0, 0.0)
        assert reason in failures_logged(exporter), exporter.log()


def test_permission_denied_as_nobody(tmp_path: Path) -> None:
    """A log the exporter may not read: collector_success 0 with the reason logged, lines read once it may.

    The exporter runs as root without the capabilities that pass over file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH), so a mode-0000 file is as unreadable to it as to nobody, while the checkout,
    the virtualenv and the interpreter stay reachable wherever they lie: run as `nobody`, it could not
    even start from a clone under a 0700 directory (CI clones anywhere).
    """
    require_root_and("setpriv")
    log = tmp_path / "auth.log"
    log.write_bytes(failed("192.0.2.30"))
    log.chmod(0o000)
    unprivileged = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    exporter = Exporter(*authlog(log), enter=unprivileged)
    with exporter:
        found = exporter.wait_until(lambda s: success(s) == 0.0, timeout=TIMEOUT_S)
        assert success(found) == 0.0
        assert exporter.proc.poll() is None
        # readable again: read from its start (nothing written while it was unreadable is lost)
        log.chmod(0o600)
        append(log, invalid("192.0.2.31", "frank"))
        expected = Expected()
        expected.add("auth_failed", "invalid_user")
        found = assert_exact(exporter, expected)
        assert value(found, "ssh_access_authlog_lines_read_total", source=str(log)) == 2
    stderr = exporter.log()
    assert re.search(rf"{re.escape(str(log))}.*[Pp]ermission denied", stderr), stderr


def test_restart_resumes_from_state_dir(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    state.mkdir()
    log.write_bytes(failed("192.0.2.40"))  # before the first start: not read
    source = str(log)
    with Exporter(*authlog(log, f"--collector.authlog.state-dir={state}")) as exporter:
        expected = Expected()
        assert_exact(exporter, expected)
        first = append(log, failed("192.0.2.41"), invalid("192.0.2.42", "alice"))
        expected.add("auth_failed", "invalid_user")
        found = assert_exact(exporter, expected)
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == first
    # stopped: these lines must be read by the next run, the ones above not again
    second = append(log, failed("198.51.100.1"), failed("198.51.100.2"), invalid("203.0.113.3", "mallory"))
    with Exporter(*authlog(log, f"--collector.authlog.state-dir={state}")) as exporter:
        expected = Expected()
        expected.add("auth_failed", "auth_failed", "invalid_user")
        found = assert_exact(exporter, expected)
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source=source) == second
        )
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == second
        third = append(log, failed("198.51.100.3"))
        expected.add("auth_failed")
        found = assert_exact(exporter, expected)
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == second + third


def test_restart_resumes_a_partial_line_and_a_rotation_while_stopped(tmp_path: Path) -> None:
    """Stopped with half a line read; meanwhile the line is finished, more written, the file renamed
    (rotation) and a new one started: the next run reads the rest of the old file, then the new one."""
    log = tmp_path / "auth.log"
    state = tmp_path / "state"
    state.mkdir()
    log.write_bytes(b"")
    source = str(log)
    half = failed("192.0.2.50")
    with Exporter(*authlog(log, f"--collector.authlog.state-dir={state}")) as exporter:
        expected = Expected()
        append(log, failed("192.0.2.51"), half[:30])
        expected.add("auth_failed")
        found = assert_exact(exporter, expected)
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == 1
    append(log, half[30:], invalid("192.0.2.52", "carol"))
    log.rename(tmp_path / "auth.log.1")
    append(log, failed("198.51.100.53"), failed("203.0.113.54"))
    with Exporter(*authlog(log, f"--collector.authlog.state-dir={state}")) as exporter:
        expected = Expected()
        expected.add("auth_failed", "invalid_user", "auth_failed", "auth_failed")
        found = assert_exact(exporter, expected)
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source=source) == 4
        )
        assert value(found, "ssh_access_authlog_lines_read_total", source=source) == 4


def test_journal_restart_resumes_from_cursor(tmp_path: Path) -> None:
    """The journal source with a state dir: entries logged while the exporter is stopped are counted by
    the next run, the earlier ones not again (entries sent as ident sshd with logger(1))."""
    require_root_and(Journald.JOURNALD, "unshare", "nsenter", "logger")
    state = tmp_path / "state"
    state.mkdir()
    with Journald() as journald:

        def sshd_says(message: str) -> None:
            send = ["logger", "-u", str(journald.devlog), "-t", "sshd", "--id=4242", message]
            subprocess.run([*journald.enter, *send], check=True, timeout=30)

        before = "Failed password for root from 192.0.2.60 port 22 ssh2"
        sshd_says(before)
        wait_for(lambda: before in journald.journalctl("-t", "sshd"), "the first entry")
        args = ["--collector.authlog.journal=on", f"--collector.authlog.state-dir={state}"]
        with Exporter(*args, *other_collectors_off(), enter=journald.enter) as exporter:
            expected = Expected()
            assert_exact(exporter, expected)  # from the end: the entry before the start is not read
            sshd_says("Failed password for root from 192.0.2.61 port 22 ssh2")
            expected.add("auth_failed")
            assert_exact(exporter, expected)
        sshd_says("Failed password for root from 198.51.100.62 port 22 ssh2")
        sshd_says("Invalid user dave from 203.0.113.63 port 22")
        with Exporter(*args, *other_collectors_off(), enter=journald.enter) as exporter:
            expected = Expected()
            expected.add("auth_failed", "invalid_user")
            found = assert_exact(exporter, expected)
            assert value(found, "ssh_access_authlog_lines_read_total", source="journal") == 2


def test_no_log_file_and_journal_off_fails_until_a_file_is_created(tmp_path: Path) -> None:
    """A rootfs without auth log files, the journal off: the exporter starts (it used to refuse), the
    collector fails with the reason logged once, and a file created later is read without a restart."""
    (tmp_path / "var/log").mkdir(parents=True)
    args = [f"--path.rootfs={tmp_path}", "--collector.authlog.journal=off", *other_collectors_off()]
    with Exporter(*args) as exporter:
        reason = (
            "SourceUnavailableError: no auth log source: /var/log/auth.log and /var/log/secure absent, "
            f"journal off (--collector.authlog.journal=off) — {NOTHING}"
        )
        found = exporter.wait_until(lambda s: reason in failures_logged(exporter), TIMEOUT_S)
        assert success(found) == 0.0
        assert (up(found, "/var/log/auth.log"), up(found, "/var/log/secure")) == (0.0, 0.0)
        exporter.scrape()
        assert failures_logged(exporter) == [reason], exporter.log()  # once, however many scrapes

        written = append(tmp_path / "var/log/auth.log", failed("192.0.2.41"), invalid("198.51.100.8", "eve"))
        found = exporter.wait_until(
            lambda s: value(s, "ssh_access_authlog_lines_read_total", source="/var/log/auth.log") == written,
            timeout=TIMEOUT_S,
        )
        assert success(found) == 1.0
        assert up(found, "/var/log/auth.log") == 1.0
        assert up(found, "/var/log/secure") is None  # the other candidate: no problem while one is read
        assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 1
        assert value(found, "ssh_access_sshd_events_total", event="invalid_user") == 1
        assert exporter.proc.poll() is None
