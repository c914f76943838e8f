"""Real daemons for integration tests: an sshd on loopback and the exporter as a subprocess.

Everything started here is stopped by pid; everything written lives under the test's tmp_path.
"""

from __future__ import annotations

import contextlib
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
from typing import Self

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
    ) -> None:
        """netns: run inside that network namespace; devlog: the syslog socket it sees as /dev/log."""
        self.netns = netns
        self.devlog = devlog
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
        command = [SSHD, "-D", "-f", str(self.config)]
        if self.netns is None:
            self.proc = subprocess.Popen(command)
            wait_for_port(self.port)
        else:
            self.proc = subprocess.Popen(self.netns.command(command, devlog=self.devlog))
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
    ) -> None:
        """netns: run (and scrape) inside that network namespace, to see its firewall."""
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/metrics"
        self.tls = tls
        self.headers = dict(headers or {})
        self.netns = netns
        command = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *args]
        if netns is None:
            self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
            wait_for_port(self.port)
        else:
            self.proc = subprocess.Popen(netns.command(command), stderr=subprocess.PIPE, text=True)
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

    def command(self, argv: list[str], devlog: Path | None = None) -> list[str]:
        prefix = ["ip", "netns", "exec", self.name]
        if devlog is None:
            return [*prefix, *argv]
        upper, work = self.dir / "dev-upper", self.dir / "dev-work"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        script = (
            f"mount -t overlay overlay -o lowerdir=/dev,upperdir={upper},workdir={work} /dev"
            f' && ln -sf {devlog} /dev/log && exec "$@"'
        )
        return [*prefix, "sh", "-c", script, "sh", *argv]

    def run(self, argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout, check=False
        )

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
    """rsyslogd -n on its own socket (not /dev/log), writing auth and authpriv to `log`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "devlog"
        self.log = self.dir / "auth.log"
        self.config = self.dir / "rsyslog.conf"
        self.config.write_text(
            f'global(workDirectory="{self.dir}")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{self.socket}")\n'
            f"auth,authpriv.* {self.log}\n"
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


def ssh_password_attempt(netns: NetNs, port: int, source: str = "127.0.0.2", user: str = "nosuchuser") -> str:
    """One failed password login from `source` inside netns; the client's last line of output."""
    run = netns.run(
        ["sshpass", "-p", "wrong", "ssh", "-b", source, "-p", str(port), "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", f"{user}@127.0.0.1", "true"],
    )  # fmt: skip
    return (run.stderr.strip().splitlines() or [""])[-1]


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
