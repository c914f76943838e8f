"""`diagnose` and the watchlist against a real sshd with real blocks, one layer per 127.0.0.x address.

In a network namespace whose private mount namespace bind-mounts the test's own hosts.deny over
/etc/hosts.deny (the host's file is never written): 127.0.0.2 is denied by TCP wrappers, 127.0.0.3 is
banned by a real fail2ban-server (`set sshd banip`, iptables-multiport inside the namespace), 127.0.0.4
is rejected by an iptables rule for sshd's port, 127.0.0.5 is let in. `diagnose` and the exporter run
in the same namespaces as sshd; a real connection from each address fails the way diagnose says.

Then what diagnose could not see: a real fail2ban-server that refuses to start (its jail's log file is
missing) makes the answer "unknown" (exit 3) with fail2ban and why in the first line, and a real sshd
stopped keeps everyone out (exit 1). There diagnose reads a procfs directory holding only that sshd's
/proc entry, so an sshd the host runs itself is not taken for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.exposition import Samples, samples, value
from tests.integration.harness import (
    SSHD,
    Fail2banServer,
    NetNs,
    Sshd,
    require_root_and,
    ssh_password_attempt,
    wait_until_listed,
)
from tests.net import free_port

HOSTS_DENY = Path("/etc/hosts.deny")
HOSTS_ALLOW = Path("/etc/hosts.allow")
DENY = "# the live test's own hosts.deny\nsshd: 127.0.0.2\n"
CWD = Path(__file__).resolve().parents[2]
# Layers this test does not set up stay out of its verdicts (the host may run CrowdSec or sshguard, and
# its own auth log may hold penalties for 127.0.0.x from other tests).
QUIET = ["--no-collector.crowdsec", "--no-collector.sshguard", "--no-collector.authlog"]

PROBE = """
import json, socket, sys
source, port = sys.argv[1], int(sys.argv[2])
try:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
    data = sock.recv(64)
    print(json.dumps("banner" if data.startswith(b"SSH-") else "closed"))
except ConnectionRefusedError:
    print(json.dumps("refused"))
except ConnectionResetError:
    print(json.dumps("reset"))
"""


@dataclass
class Blocked:
    netns: NetNs
    sshd: Sshd
    fail2ban: Fail2banServer
    binds: dict[Path, Path]
    config: Path

    def flags(self) -> list[str]:
        return [
            f"--collector.fail2ban.socket={self.fail2ban.socket}",
            f"--collector.fail2ban.db={self.fail2ban.db}",
            f"--collector.sshd.config={self.sshd.config}",
            *QUIET,
        ]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        command = self.netns.command(argv, binds=self.binds)
        return subprocess.run(command, capture_output=True, text=True, cwd=CWD, timeout=120, check=False)

    def diagnose(self, address: str) -> tuple[int, dict[str, object]]:
        run = self.run([sys.executable, "-m", "exporter", "diagnose", address, "--json", *self.flags()])
        assert run.returncode in (0, 1), run.stderr
        document: dict[str, object] = json.loads(run.stdout)
        return run.returncode, document

    def probe(self, source: str) -> str:
        run = self.netns.run([sys.executable, "-c", PROBE, source, str(self.sshd.port)])
        assert run.returncode == 0, run.stderr
        outcome: str = json.loads(run.stdout)
        return outcome


@pytest.fixture
def blocked(tmp_path: Path) -> Iterator[Blocked]:
    require_root_and(SSHD, "fail2ban-server", "iptables", "ip", "ssh", "sshpass")
    if not HOSTS_DENY.exists():
        pytest.skip("/etc/hosts.deny is missing (package tcpd or libwrap0 provides it)")
    before = HOSTS_DENY.read_bytes()
    files = tmp_path / "etc"
    files.mkdir()
    (files / "hosts.deny").write_text(DENY)
    (files / "hosts.allow").write_text("")
    binds = {HOSTS_DENY: files / "hosts.deny"}
    if HOSTS_ALLOW.exists():
        binds[HOSTS_ALLOW] = files / "hosts.allow"
    log = tmp_path / "auth.log"
    log.write_text("")
    config = tmp_path / "watchlist.yml"
    config.write_text(
        "watchlist:\n  - 127.0.0.2\n  - 127.0.0.3\n  - 127.0.0.4\n  - 127.0.0.5\n  - 127.0.0.0/30\n"
    )
    try:
        with NetNs(tmp_path / "ns") as netns, Sshd(tmp_path / "sshd", netns=netns, binds=binds) as sshd:
            jail = (
                f"[sshd]\nenabled = true\nfilter = sshd\nport = {sshd.port}\nlogpath = {log}\n"
                "banaction = iptables-multiport\n"
            )
            with Fail2banServer(tmp_path / "fail2ban", netns, jail) as fail2ban:
                fail2ban.client("set", "sshd", "banip", "127.0.0.3")
                wait_until_listed(netns, ["iptables", "-w", "-S"], "127.0.0.3")  # the action ran
                reject = [
                    "iptables",
                    "-I",
                    "INPUT",
                    "-s",
                    "127.0.0.4",
                    "-p",
                    "tcp",
                    "--dport",
                    str(sshd.port),
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "tcp-reset",
                ]
                added = netns.run(reject)
                assert added.returncode == 0, added.stderr
                yield Blocked(netns, sshd, fail2ban, binds, config)
    finally:
        assert HOSTS_DENY.read_bytes() == before, "the host's /etc/hosts.deny changed"


def _layers(document: dict[str, object]) -> dict[str, dict[str, object]]:
    layers = document["layers"]
    assert isinstance(layers, list)
    return {str(layer["layer"]): layer for layer in layers}


def _denying(document: dict[str, object]) -> set[str]:
    return {name for name, layer in _layers(document).items() if layer["verdict"] == "deny"}


def test_diagnose_names_the_layer_and_the_connection_fails_that_way(blocked: Blocked) -> None:
    code, wrapped = blocked.diagnose("127.0.0.2")
    assert code == 1 and _denying(wrapped) == {"tcp_wrappers"}, wrapped
    assert _layers(wrapped)["tcp_wrappers"]["evidence"] == [f"{HOSTS_DENY}:2: sshd: 127.0.0.2"]
    assert blocked.probe("127.0.0.2") in ("reset", "closed")  # libwrap: accepted, then closed unanswered

    code, banned = blocked.diagnose("127.0.0.3")
    assert code == 1 and _denying(banned) == {"fail2ban", "firewall"}, banned  # the ban, and its rule
    evidence = _layers(banned)["fail2ban"]["evidence"]
    assert isinstance(evidence, list) and evidence[0].startswith("jail sshd: 127.0.0.3 banned, until ")
    assert "f2b-sshd" in str(_layers(banned)["firewall"]["evidence"])
    assert blocked.probe("127.0.0.3") == "refused"  # iptables-multiport: REJECT, port unreachable
    assert "Connection refused" in ssh_password_attempt(blocked.netns, blocked.sshd.port, source="127.0.0.3")

    code, rejected = blocked.diagnose("127.0.0.4")
    assert code == 1 and _denying(rejected) == {"firewall"}, rejected
    assert "reject from source 127.0.0.4" in str(_layers(rejected)["firewall"]["evidence"])
    assert _layers(rejected)["fail2ban"]["verdict"] == "no_match"
    assert blocked.probe("127.0.0.4") == "refused"  # a reset answering the SYN: ECONNREFUSED

    code, clear = blocked.diagnose("127.0.0.5")
    assert (code, clear["blocked"], _denying(clear)) == (0, False, set()), clear
    assert {"tcp_wrappers", "fail2ban", "firewall"} <= set(_layers(clear))
    host = clear["host"]
    assert isinstance(host, dict) and host["sshd_running"] is True, host
    assert blocked.probe("127.0.0.5") == "banner"
    assert "Permission denied" in ssh_password_attempt(blocked.netns, blocked.sshd.port, source="127.0.0.5")

    code, network = blocked.diagnose("127.0.0.0/30")  # holds .2 and .3
    assert code == 1 and {"tcp_wrappers", "fail2ban", "firewall"} <= _denying(network)


def _scrape(blocked: Blocked, port: int) -> Samples:
    url = f"http://127.0.0.1:{port}/metrics"
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=30).read().decode())"
    deadline = time.monotonic() + 30
    while True:
        run = blocked.netns.run([sys.executable, "-c", code], timeout=60)
        if run.returncode == 0:
            return samples(run.stdout)
        assert time.monotonic() < deadline, run.stderr
        time.sleep(0.2)


def test_watchlist_metric_from_a_real_exporter(blocked: Blocked) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}",
            f"--config.file={blocked.config}", *blocked.flags()]  # fmt: skip
    log = blocked.config.parent / "exporter.log"  # a file: an undrained pipe would block its logging
    with log.open("w") as stderr:
        proc = subprocess.Popen(blocked.netns.command(argv, binds=blocked.binds), cwd=CWD, stderr=stderr)
        try:
            found = _scrape(blocked, port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    name = "ssh_access_watched_address_blocked"
    expected = {
        "127.0.0.2": {"tcp_wrappers": 1, "fail2ban": 0, "firewall": 0},
        "127.0.0.3": {"tcp_wrappers": 0, "fail2ban": 1, "firewall": 1},
        "127.0.0.4": {"tcp_wrappers": 0, "fail2ban": 0, "firewall": 1},
        "127.0.0.5": {"tcp_wrappers": 0, "fail2ban": 0, "firewall": 0},
        "127.0.0.0/30": {"tcp_wrappers": 1, "fail2ban": 1, "firewall": 1},
    }
    for address, layers in expected.items():
        for layer, blocked_now in layers.items():
            assert value(found, name, address=address, layer=layer) == blocked_now, (address, layer)
    assert value(found, name, address="127.0.0.5", layer="crowdsec") is None  # switched off: absent
    assert value(found, "ssh_access_collector_success", collector="watchlist") == 1


# Every layer but fail2ban off: the host's own wrappers, firewall and ban tools stay out of the answer.
ONLY_FAIL2BAN = [
    "--no-collector.tcpwrappers",
    "--no-collector.denyhosts",
    "--no-collector.firewall",
    *QUIET,
]


def _procfs_of(directory: Path, pid: int) -> Path:
    """A procfs whose only process is `pid` (a link to its real /proc entry): gone when it exits."""
    directory.mkdir()
    (directory / str(pid)).symlink_to(f"/proc/{pid}")
    (directory / "stat").symlink_to("/proc/stat")
    return directory


def _diagnose(netns: NetNs, *argv: str) -> tuple[int, str, dict[str, object]]:
    """Exit code, first line of the text output, and the --json document."""
    base = [sys.executable, "-m", "exporter", "diagnose", *argv]
    text = subprocess.run(
        netns.command(base), capture_output=True, text=True, cwd=CWD, timeout=120, check=False
    )
    run = subprocess.run(
        netns.command([*base, "--json"]), capture_output=True, text=True, cwd=CWD, timeout=120, check=False
    )
    assert text.returncode == run.returncode, (text.stderr, run.stderr)
    document: dict[str, object] = json.loads(run.stdout)
    return run.returncode, text.stdout.splitlines()[0], document


def test_fail2ban_that_cannot_start_makes_the_answer_unknown(tmp_path: Path) -> None:
    require_root_and(SSHD, "fail2ban-server", "fail2ban-client", "ip")
    missing = tmp_path / "auth.log"  # never written: no syslog daemon, as on a fresh Debian 12
    with NetNs(tmp_path / "ns") as netns, Sshd(tmp_path / "sshd", netns=netns) as sshd:
        jail = f"[sshd]\nenabled = true\nfilter = sshd\nport = {sshd.port}\nlogpath = {missing}\n"
        fail2ban = Fail2banServer(tmp_path / "fail2ban", netns, jail)
        start = netns.run(["fail2ban-server", "-c", str(fail2ban.conf), "-f", "-x"], timeout=60)
        assert start.returncode != 0 and not fail2ban.socket.exists()  # it refused to start
        flags = [
            "192.0.2.7",
            f"--path.procfs={_procfs_of(tmp_path / 'proc', sshd.pid)}",
            f"--collector.sshd.config={sshd.config}",
            f"--collector.fail2ban.socket={fail2ban.socket}",
            f"--collector.fail2ban.db={fail2ban.db}",
            f"--collector.fail2ban.config-dir={fail2ban.conf}",
            *ONLY_FAIL2BAN,
        ]
        code, headline, document = _diagnose(netns, *flags)
    assert code == 3, document
    assert headline.startswith(
        "192.0.2.7: NOT BLOCKED by what could be read; could not read: fail2ban (fail2ban-server is not "
        f"running (nothing answers on {fail2ban.socket}); no database at {fail2ban.db}"
    ), headline
    assert headline.endswith("; jail sshd: no log file found (fail2ban-server refuses to start))"), headline
    assert (document["outcome"], document["blocked"]) == ("unknown", False)
    unread = document["unread"]
    assert isinstance(unread, list) and [entry["layer"] for entry in unread] == ["fail2ban"], unread
    host = document["host"]
    assert isinstance(host, dict) and host["sshd_running"] is True and host["keeps_everyone_out"] == []


def test_sshd_stopped_keeps_everyone_out(tmp_path: Path) -> None:
    require_root_and(SSHD, "ip", "ssh-keygen")
    with NetNs(tmp_path / "ns") as netns:
        sshd = Sshd(tmp_path / "sshd", netns=netns).start()
        try:
            procfs = _procfs_of(tmp_path / "proc", sshd.pid)
            flags = ["192.0.2.7", f"--path.procfs={procfs}", f"--collector.sshd.config={sshd.config}"]
            flags += [*ONLY_FAIL2BAN, "--no-collector.fail2ban"]
            code, headline, document = _diagnose(netns, *flags)
            assert (code, document["outcome"]) == (0, "gets_in"), document  # every layer read: none left
            assert headline == "192.0.2.7: GETS IN: no layer blocks it and sshd serves"
        finally:
            sshd.stop()
        code, headline, document = _diagnose(netns, *flags)
    assert code == 1, document
    assert headline == "192.0.2.7: KEPT OUT: sshd is not running: no listener process"
    assert (document["outcome"], document["blocked"]) == ("kept_out", False)  # no layer: the host
    host = document["host"]
    assert isinstance(host, dict) and host["sshd_running"] is False
    assert host["keeps_everyone_out"] == ["sshd is not running: no listener process"]
