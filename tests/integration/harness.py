"""Real daemons for integration tests: an sshd on loopback and the exporter as a subprocess.

Everything started here is stopped by pid; everything written lives under the test's tmp_path. How each
daemon is started without touching the host, and what its recipe relies on: docs/integration-components.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import yaml

from tests.exposition import Samples, samples
from tests.net import free_port, wait_for_port

SSHD = "/usr/sbin/sshd"
CLONE_NEWNET = 0x40000000


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


class Daemon:
    """A process a test starts and stops: `with Thing(...) as thing:` starts it and stops it by pid."""

    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Sshd(Daemon):
    """sshd -D on 127.0.0.1 with its own config, host key and pid file in a temp dir."""

    def __init__(
        self,
        directory: Path,
        settings: str = "",
        port: int | None = None,
        netns: NetNs | None = None,
        devlog: Path | None = None,
        binds: Mapping[Path, Path] | None = None,
        enter: Sequence[str] = (),
    ) -> None:
        """netns: run inside that network namespace; devlog: the syslog socket it sees as /dev/log;
        binds / enter: as for NetNs.command (only with netns)."""
        assert netns is not None or not (binds or enter), "binds and enter need a netns"
        self.netns = netns
        self.devlog = devlog
        self.binds = dict(binds or {})
        self.enter = list(enter)
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
        # settings first: sshd takes the first value of a keyword, so a test's own (e.g. UsePAM yes) win
        self.config.write_text(
            settings.rstrip("\n") + f"\nPort {self.port}\nListenAddress 127.0.0.1\nHostKey {self.hostkey}\n"
            f"PidFile {self.pid_file}\nPasswordAuthentication yes\nUsePAM no\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(exist_ok=True)
        command = [SSHD, "-D", "-f", str(self.config)]
        if self.netns is None:
            self.proc = subprocess.Popen(command)
            wait_for_port(self.port)
        else:
            self.proc = subprocess.Popen(
                self.netns.command(command, devlog=self.devlog, binds=self.binds, enter=self.enter)
            )
            self.netns.wait_for_port(self.port)
        return self


class Exporter:
    """The exporter as users run it: the installed command, scraped over HTTP (or HTTPS with `tls`).

    `tls` is the client's context for https scrapes; `headers` go with every scrape (e.g. Authorization).
    """

    def __init__(
        self,
        *args: str,
        tls: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        netns: NetNs | None = None,
        enter: Sequence[str] = (),
        wait: bool = True,
        binds: Mapping[Path, Path] | None = None,
    ) -> None:
        """netns: run (and scrape) inside that network namespace, to see its firewall; enter: a prefix
        for the command (e.g. Journald.enter, or setpriv to run unprivileged); wait: for the port;
        binds: as for NetNs.command (only with netns), e.g. a test's own /etc/hosts.deny."""
        assert netns is not None or not binds, "binds need a netns"
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/metrics"
        self.tls = tls
        self.headers = dict(headers or {})
        self.netns = netns
        command = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *args]
        # Its log goes to a file: a pipe nobody drains would block the exporter once 64 KiB are logged.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as this object)
        if netns is None:
            self.proc = subprocess.Popen([*enter, *command], stderr=self._log, text=True)
            if wait:
                wait_for_port(self.port)
        else:
            assert not enter, "enter is for the host's network namespace only"
            self.proc = subprocess.Popen(netns.command(command, binds=binds), stderr=self._log, text=True)
            netns.wait_for_port(self.port)

    def text(self) -> str:
        if self.netns is not None:
            assert self.tls is None and not self.headers, "plain http only inside a namespace"
            code = f"import urllib.request as u; print(u.urlopen({self.url!r}, timeout=15).read().decode())"
            run = self.netns.run([sys.executable, "-c", code])
            assert run.returncode == 0, run.stderr
            return run.stdout
        request = urllib.request.Request(self.url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=15, context=self.tls) as response:
            return str(response.read().decode())

    def scrape(self) -> Samples:
        return samples(self.text())

    def log(self) -> str:
        """What the exporter has logged so far (stderr)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

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
        _stop(self.proc)  # the log stays readable after exit (the temp file goes with this object)


class NetNs:
    """A network namespace with only loopback, under a unique name; deleted on exit.

    `command(argv, devlog=SOCKET)` also gives the process a private /dev/log (an overlay of /dev in
    the mount namespace `ip netns exec` creates), so a daemon logs through a test's own syslog
    socket and the host's /dev/log is never touched.
    """

    def __init__(self, directory: Path, prefix: str = "sae") -> None:
        self.name = f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True)

    def command(
        self,
        argv: list[str],
        devlog: Path | None = None,
        binds: Mapping[Path, Path] | None = None,
        enter: Sequence[str] = (),
    ) -> list[str]:
        """`binds` {target: source}: files bind-mounted over host paths in the private mount namespace
        (e.g. a test's own /etc/hosts.deny); `enter`: a prefix run first (e.g. Journald.enter)."""
        prefix = [*enter, "ip", "netns", "exec", self.name]
        if devlog is None and not binds:
            return [*prefix, *argv]
        steps = [f"mount --bind {source} {target}" for target, source in (binds or {}).items()]
        if devlog is not None:
            upper, work = self.dir / "dev-upper", self.dir / "dev-work"
            upper.mkdir(exist_ok=True)
            work.mkdir(exist_ok=True)
            steps.append(f"mount -t overlay overlay -o lowerdir=/dev,upperdir={upper},workdir={work} /dev")
            steps.append(f"ln -sf {devlog} /dev/log")
        script = " && ".join([*steps, 'exec "$@"'])
        return [*prefix, "sh", "-c", script, "sh", *argv]

    def run(self, argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def enter_this_thread(self) -> None:
        """Move the calling thread (only it: setns(2)) into this namespace, so the sockets it creates
        from now on live there: a scraper thread on the host reaches an exporter listening inside."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def wait_for_port(self, port: int) -> None:
        code = f"from tests.net import wait_for_port; wait_for_port({port})"
        cwd = Path(__file__).resolve().parents[2]
        subprocess.run(self.command([sys.executable, "-c", code]), check=True, cwd=cwd, timeout=30)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)

    def __enter__(self) -> NetNs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Rsyslog(Daemon):
    """rsyslogd -n on its own socket (not /dev/log), writing auth and authpriv to `log`.

    template: "" for rsyslog's default file format (RFC 3339, as on Debian 12), or a template name such
    as RSYSLOG_TraditionalFileFormat (`Nov 23 19:04:34 host sshd[...]: ...`).
    """

    def __init__(self, directory: Path, template: str = "") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "devlog"
        self.log = self.dir / "auth.log"
        self.config = self.dir / "rsyslog.conf"
        self.config.write_text(
            f'global(workDirectory="{self.dir}")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{self.socket}")\n'
            f"auth,authpriv.* {self.log}{';' + template if template else ''}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Rsyslog:
        command = ["rsyslogd", "-n", "-f", str(self.config), "-i", str(self.dir / "rsyslog.pid")]
        self.proc = subprocess.Popen(command)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert time.monotonic() < deadline and self.proc.poll() is None, "rsyslogd did not start"
            time.sleep(0.05)
        return self


class Journald(Daemon):
    """A standalone systemd-journald in a private mount namespace (tmpfs over /run/systemd, /run/log
    and /var/log), so the host's journal, if any, other tests' entries and the host's log files stay
    apart: a process in it sees no auth log file and only this journal (volatile, in /run/log/journal).

    `enter` is the command prefix that runs a process in that mount namespace (an sshd logging to
    `devlog`, an exporter or journalctl reading only this journal).
    """

    JOURNALD = "/lib/systemd/systemd-journald"
    devlog = Path("/run/systemd/journal/dev-log")

    def start(self) -> Journald:
        mounts = " && ".join(
            f"mount -t tmpfs -o mode=0755 tmpfs {d}"
            for d in ("/run/systemd", "/run/log", "/var/log")
            if Path(d).is_dir()
        )
        script = f'{mounts} && mkdir -p /run/systemd/journal && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", script, "sh", self.JOURNALD]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Ready when an entry sent now shows up: a datagram sent while it is still starting (socket
        # bound, kernel ring buffer being imported) is sometimes lost, so the probe is sent again.
        marker = f"sae-journald-ready-{os.getpid()}-{time.monotonic_ns()}"
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"journald exited with {self.proc.returncode}"
            if self._listening():
                send = [*self.enter, "logger", "-u", str(self.devlog), "-t", "sae-journald-ready", marker]
                subprocess.run(send, check=False, capture_output=True)
                if marker in self.journalctl("-t", "sae-journald-ready"):
                    return self
            assert time.monotonic() < deadline, "journald did not start"
            time.sleep(0.2)

    def journalctl(self, *args: str) -> str:
        """journalctl -o cat ARGS on this journal: the messages, one a line."""
        command = [*self.enter, "journalctl", "--no-pager", "-o", "cat", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30).stdout

    @property
    def enter(self) -> list[str]:
        assert self.proc is not None
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--"]

    def _listening(self) -> bool:
        check = [*self.enter, "test", "-S", str(self.devlog)]
        return subprocess.run(check, check=False).returncode == 0


def ssh_password_attempt(netns: NetNs, port: int, source: str = "127.0.0.2", user: str = "nosuchuser") -> str:
    """One failed password login from `source` inside netns; the client's last line of output.

    An invalid user's attempt logs two lines fail2ban's sshd filter counts as failures ("Invalid user"
    and "Failed password"), so with maxretry 2 one attempt bans. Never make a second to be sure: the ban
    can land in the middle of it, and a REJECT of an established connection leaves the client waiting
    (TCP only notes the ICMP error it sends), past this call's 30-second timeout."""
    run = netns.run(
        ["sshpass", "-p", "wrong", "ssh", "-b", source, "-p", str(port), "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", f"{user}@127.0.0.1", "true"],
    )  # fmt: skip
    return (run.stderr.strip().splitlines() or [""])[-1]


def wait_until_listed(netns: NetNs, listing: list[str], address: str, timeout: float = 20.0) -> None:
    """Wait until the firewall listing (`iptables -w -S`, `nft list ruleset`) in netns names `address`.

    fail2ban counts a ban before its action has put it in the firewall, so "banned" in its status or in
    the exporter's metrics does not yet mean a new connection is refused; and one started before the
    rule lands hangs (see ssh_password_attempt). Ask the firewall itself first."""
    deadline = time.monotonic() + timeout
    while address not in (shown := netns.run(listing).stdout):
        assert time.monotonic() < deadline, f"{address} not in {' '.join(listing)}:\n{shown}"
        time.sleep(0.1)


class Sshguard(Daemon):
    """sshguard in a network namespace reading `log`; backend `nft-sets` or `ipset` (a private copy of
    sshguard.conf is bind-mounted in the mount namespace `ip netns exec` creates, the host's untouched)."""

    def __init__(self, directory: Path, netns: NetNs, backend: str = "nft-sets") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.log = self.dir / "auth.log"
        self.log.write_text("")
        self.config = self.dir / "sshguard.conf"
        self.config.write_text(
            f'BACKEND="/usr/libexec/sshguard/sshg-fw-{backend}"\nTHRESHOLD=20\nBLOCK_TIME=300\n'
            "DETECTION_TIME=1800\n"
        )

    def start(self) -> Sshguard:
        script = f'mount --bind {self.config} /etc/sshguard/sshguard.conf && exec "$@"'
        command = ["sh", "-c", script, "sh", "sshguard", "-w", "127.0.0.1", str(self.log)]
        # its own session: sshguard's wrapper signals its whole process group when it stops
        self.proc = subprocess.Popen(self.netns.command(command), start_new_session=True)
        return self

    def attack(self, address: str, times: int = 3) -> None:
        """Failed-password lines for `address` (a documentation address: nothing is sent to it)."""
        stamp = time.strftime("%b %e %H:%M:%S")
        with self.log.open("a") as log:
            for _ in range(times):
                log.write(f"{stamp} vm sshd[123]: Failed password for root from {address} port 2222 ssh2\n")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Fail2banServer(Daemon):
    """fail2ban-server -f in a network namespace, with its config, socket, pid file and DB in a temp dir.

    `jails` is the body of jail.local after a [DEFAULT] with ignoreself off, polling and maxretry 2.
    """

    def __init__(self, directory: Path, netns: NetNs, jails: str) -> None:
        self.dir = directory
        self.netns = netns
        self.conf = self.dir / "conf"
        if not self.conf.exists():
            shutil.copytree("/etc/fail2ban", self.conf)
        (self.conf / "jail.d" / "defaults-debian.conf").unlink(missing_ok=True)
        self.socket = self.dir / "fail2ban.sock"
        self.db = self.dir / "fail2ban.sqlite3"
        (self.conf / "fail2ban.local").write_text(
            f"[Definition]\nlogtarget = {self.dir / 'fail2ban.log'}\nsocket = {self.socket}\n"
            f"pidfile = {self.dir / 'fail2ban.pid'}\ndbfile = {self.db}\n"
        )
        (self.conf / "jail.local").write_text(
            "[DEFAULT]\nignoreself = false\nbackend = polling\nmaxretry = 2\n" + jails
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def banning_nothing(cls, directory: Path, netns: NetNs, jail: str, logpath: Path) -> Fail2banServer:
        """A server whose one jail (sshd's filter on `logpath`) bans through an action that does nothing:
        the bans are in its database and answers, no firewall is touched (for load and fault tests)."""
        server = cls(
            directory,
            netns,
            f"[{jail}]\nenabled = true\nfilter = sshd\nport = ssh\nlogpath = {logpath}\n"
            "banaction = noop\nbantime = 86400\n",
        )
        (server.conf / "action.d" / "noop.conf").write_text(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban =\nactionunban =\n"
        )
        return server

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, *args: str, timeout: float = 60.0) -> str:
        run = subprocess.run(
            ["fail2ban-client", "-s", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return run.stdout

    def start(self) -> Fail2banServer:
        command = self.netns.command(["fail2ban-server", "-c", str(self.conf), "-f", "-x"])
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, "fail2ban-server exited"
            try:
                if "pong" in self.client("ping", timeout=5):
                    return self
            except subprocess.SubprocessError:
                pass
            assert time.monotonic() < deadline, "fail2ban-server did not answer"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError):
                self.client("stop", timeout=30)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _stop(self.proc)


class Crowdsec(Daemon):
    """crowdsec (agent and local API) in a network namespace, offline: a copy of /etc/crowdsec's config
    without the online client, its own database, machine, bouncer key and an acquisition of `log`."""

    def __init__(self, directory: Path, netns: NetNs, bouncer_key: str = "sae-test-bouncer-key") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = self.dir / "auth.log"
        self.log.write_text("")
        self.bouncer_key = bouncer_key
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        for item in Path("/var/lib/crowdsec/data").glob("*.txt"):
            shutil.copy(item, data)
        (self.dir / "acquis.d").mkdir(exist_ok=True)
        (self.dir / "acquis.yaml").write_text(f"filenames:\n  - {self.log}\nlabels:\n  type: syslog\n")
        config = yaml.safe_load(Path("/etc/crowdsec/config.yaml").read_text())
        config["common"].update(daemonize=False, log_media="file", log_dir=str(self.dir), log_level="info")
        config["config_paths"]["data_dir"] = str(data)
        config["crowdsec_service"].update(
            acquisition_path=str(self.dir / "acquis.yaml"), acquisition_dir=str(self.dir / "acquis.d")
        )
        config["db_config"].update(db_path=str(data / "crowdsec.db"), use_wal=False)
        config["api"]["client"]["credentials_path"] = str(self.dir / "local_api_credentials.yaml")
        config["api"]["server"]["listen_uri"] = f"127.0.0.1:{self.port}"
        config["api"]["server"].pop("online_client", None)  # offline: no Central API
        config["prometheus"]["enabled"] = False
        self.config = self.dir / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.cscli("machines", "add", "sae-test", "--password", "sae-test-password", "--force",
                   "--file", str(self.dir / "local_api_credentials.yaml"), "--url", self.url)  # fmt: skip
        self.cscli("bouncers", "add", "sae-test-bouncer", "--key", bouncer_key)
        self.bouncer_config = self.dir / "bouncer.yaml"
        self.bouncer_config.write_text(f"mode: nftables\napi_url: {self.url}\napi_key: {bouncer_key}\n")

    def cscli(self, *args: str) -> str:
        """cscli on this instance's config, inside the namespace (where its local API listens)."""
        run = self.netns.run(["cscli", "-c", str(self.config), "--error", *args], timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def start(self) -> Crowdsec:
        command = self.netns.command(["crowdsec", "-c", str(self.config)])
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.netns.wait_for_port(self.port)
        log, deadline = self.dir / "crowdsec.log", time.monotonic() + 60
        # the local API listens before the agent has loaded its scenarios and opened the log (from its end)
        while not (log.exists() and "Starting processing data" in log.read_text(errors="replace")):
            assert time.monotonic() < deadline and self.proc.poll() is None, "crowdsec agent did not start"
            time.sleep(0.1)
        time.sleep(0.5)
        return self

    def attack(self, address: str, times: int = 8) -> None:
        """sshd failed-password lines for `address` (a documentation address: nothing is sent to it)."""
        stamp = time.strftime("%b %e %H:%M:%S")
        with self.log.open("a") as log:
            for attempt in range(times):
                line = f"Failed password for invalid user admin from {address} port {40000 + attempt} ssh2"
                log.write(f"{stamp} vm sshd[{4000 + attempt}]: {line}\n")
