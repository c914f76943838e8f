"""The sshd collector against a real sshd on loopback (MaxStartups 3:50:6)."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.sshd.config import EffectiveConfig, parse_sshd_t
from tests.exposition import Samples, promtool_check, value
from tests.integration.harness import SSHD, Exporter, NetNs, Sshd, require_root_and
from tests.integration.services import Held
from tests.net import free_port, wait_for_port


@pytest.fixture(autouse=True)
def _needs_sshd() -> None:
    require_root_and(SSHD, "ssh-keygen", "promtool")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd", "MaxStartups 3:50:6\n") as server:
        yield server


def _startups(label: str, expected: int | None) -> object:
    return lambda found: value(found, "ssh_access_sshd_listener_startups", listener=label) == expected


def _listener_values(found: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["listener"]: v for (metric, labels), v in found.items() if metric == name}


def _assert_host_sums(found: Samples) -> None:
    """The host-wide contract gauges are the sums over listeners (other sshd instances may run here)."""
    per_listener = _listener_values(found, "ssh_access_sshd_listener_startups")
    assert value(found, "ssh_access_sshd_startups") == sum(per_listener.values())
    assert value(found, "ssh_access_sshd_listeners") == len(per_listener)


def test_startups_follow_held_connections_exactly(sshd: Sshd) -> None:
    held = Held(sshd.port)
    label = str(sshd.config)
    with Exporter(f"--collector.sshd.config={sshd.config}") as exporter:
        try:
            for count in (0, 2, 4, 6):
                held.hold(count)
                found = exporter.wait_until(_startups(label, count))
                _assert_host_sums(found)
                assert value(found, "ssh_access_sshd_listener_startups", listener=label) == count
                assert value(found, "ssh_access_sshd_listener_startups_from_title", listener=label) == 1
                stages = "ssh_access_sshd_unauthenticated_connections"
                assert value(found, stages, listener=label, stage="accepted") == count
                tcp = "ssh_access_sshd_tcp_connections"
                assert value(found, tcp, listener=label, state="established") == count
                assert value(found, "ssh_access_sshd_listener_maxstartups_start", listener=label) == 3
                assert value(found, "ssh_access_sshd_listener_maxstartups_full", listener=label) == 6
            # at full every new connection is dropped (before it, past start, only some at random)
            assert held.refused()
        finally:
            held.close()
        found = exporter.wait_until(_startups(label, 0))
        assert value(found, "ssh_access_sshd_listener_startups", listener=label) == 0
        _assert_host_sums(found)
        assert promtool_check(exporter.text()) is None


def _sshd_t(config: Path) -> EffectiveConfig:
    out = subprocess.run([SSHD, "-T", "-f", str(config)], capture_output=True, text=True, check=True)
    return EffectiveConfig.from_options(parse_sshd_t(out.stdout), "sshd_t")


def _assert_config_metrics(found: Samples, expected: EffectiveConfig) -> None:
    assert value(found, "ssh_access_sshd_maxstartups_start") == expected.max_startups.start
    assert value(found, "ssh_access_sshd_maxstartups_rate") == expected.max_startups.rate
    assert value(found, "ssh_access_sshd_maxstartups_full") == expected.max_startups.full
    persource = value(found, "ssh_access_sshd_persource_maxstartups")
    assert persource is not None
    if expected.per_source_max_startups is None:
        assert math.isinf(persource)
    else:
        assert persource == expected.per_source_max_startups
    netblock = "ssh_access_sshd_persource_netblock_prefix_length"
    assert value(found, netblock, family="ipv4") == expected.per_source_netblock_v4
    assert value(found, netblock, family="ipv6") == expected.per_source_netblock_v6
    assert value(found, "ssh_access_sshd_login_grace_time_seconds") == expected.login_grace_time
    assert value(found, "ssh_access_sshd_max_auth_tries") == expected.max_auth_tries


def test_config_metrics_equal_sshd_t_and_version(sshd: Sshd) -> None:
    with sshd.config.open("a") as config:
        config.write(
            "PerSourceMaxStartups 2\nPerSourceNetBlockSize 24:56\nLoginGraceTime 1m30s\nMaxAuthTries 4\n"
        )
    with Exporter(f"--collector.sshd.config={sshd.config}") as exporter:
        found = exporter.scrape()
    expected = _sshd_t(sshd.config)
    assert expected.per_source_max_startups == 2 and expected.login_grace_time == 90
    _assert_config_metrics(found, expected)
    assert value(found, "ssh_access_sshd_config_source", source="sshd_t") == 1
    assert value(found, "ssh_access_sshd_config_valid") == 1
    version = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False).stderr
    [info] = [k for k in found if k[0] == "ssh_access_sshd_version_info"]
    labels = dict(info[1])
    assert version.startswith(f"OpenSSH_{labels['version'].split('p')[0]}")
    assert labels["release"].startswith(f"OpenSSH_{labels['version']}")


def test_reload_pending_after_edit_and_cleared_by_reload(sshd: Sshd) -> None:
    label = str(sshd.config)
    with Exporter(f"--collector.sshd.config={sshd.config}") as exporter:
        assert value(exporter.scrape(), "ssh_access_sshd_config_reload_pending", listener=label) == 0
        time.sleep(1.1)  # mtimes and process start times are compared, not file contents
        with sshd.config.open("a") as config:
            config.write("MaxStartups 4:50:8\n")  # ignored: first value wins, but the file changed
        found = exporter.scrape()
        assert value(found, "ssh_access_sshd_config_reload_pending", listener=label) == 1
        started = value(found, "ssh_access_sshd_listener_start_time_seconds", listener=label)
        time.sleep(1.1)
        os.kill(sshd.pid, signal.SIGHUP)  # sshd re-execs itself under the same pid
        found = exporter.wait_until(
            lambda f: value(f, "ssh_access_sshd_config_reload_pending", listener=label) == 0
        )
        assert value(found, "ssh_access_sshd_config_reload_pending", listener=label) == 0
        reloaded = value(found, "ssh_access_sshd_listener_start_time_seconds", listener=label)
        assert started is not None and reloaded is not None and reloaded > started
        wait_for_port(sshd.port)


def test_killed_sshd_is_reported_absent_without_failing_the_scrape(sshd: Sshd) -> None:
    label = str(sshd.config)
    with Exporter(f"--collector.sshd.config={sshd.config}") as exporter:
        before = exporter.scrape()
        assert value(before, "ssh_access_sshd_listener_startups", listener=label) == 0
        os.kill(sshd.pid, signal.SIGKILL)
        found = exporter.wait_until(_startups(label, None))
        assert value(found, "ssh_access_sshd_listener_startups", listener=label) is None
        assert label not in _listener_values(found, "ssh_access_sshd_listener_start_time_seconds")
        listeners = value(before, "ssh_access_sshd_listeners")
        assert listeners is not None and value(found, "ssh_access_sshd_listeners") == listeners - 1
        _assert_host_sums(found)  # 0 listeners and 0 startups when no other sshd runs here (as in CI)
        assert value(found, "ssh_access_collector_success", collector="sshd") == 1
        assert value(found, "ssh_access_sshd_maxstartups_start") == 3  # config still known


def test_two_instances_are_reported_apart(tmp_path: Path) -> None:
    with (
        Sshd(tmp_path / "a", "MaxStartups 3:50:6\n") as first,
        Sshd(tmp_path / "b", "MaxStartups 5:30:10\n") as second,
        Exporter(f"--collector.sshd.config={first.config}") as exporter,
    ):
        one, two = Held(first.port), Held(second.port)
        try:
            one.hold(1)
            two.hold(3)
            found = exporter.wait_until(_startups(str(second.config), 3))
            _assert_host_sums(found)
            assert value(found, "ssh_access_sshd_listener_startups", listener=str(first.config)) == 1
            assert value(found, "ssh_access_sshd_listener_startups", listener=str(second.config)) == 3
            assert (
                value(found, "ssh_access_sshd_listener_maxstartups_full", listener=str(second.config)) == 10
            )
            for server, count in ((first, 1), (second, 3)):
                tcp = "ssh_access_sshd_tcp_connections"
                assert value(found, tcp, listener=str(server.config), state="established") == count
        finally:
            one.close()
            two.close()


def test_fallback_to_files_when_sshd_t_cannot_run(tmp_path: Path) -> None:
    """No readable host key: `sshd -T` fails, the file parser gives the same answer."""
    server = Sshd(tmp_path / "s", "MaxStartups 7:40:20\nInclude limits.d/*.conf\n")
    include = Path("/etc/ssh/limits.d")
    assert not include.exists()
    good = _sshd_t(server.config)
    server.hostkey.unlink()
    with Exporter(f"--collector.sshd.config={server.config}") as exporter:
        found = exporter.scrape()
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_config_source", source="sshd_t") == 0
    assert value(found, "ssh_access_sshd_config_valid") is None  # sshd could not tell
    _assert_config_metrics(found, good)


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    server = Sshd(tmp_path / "s", "MaxStartups 4:30:8\nNoSuchOption yes\n")
    with Exporter(f"--collector.sshd.config={server.config}") as exporter:
        found = exporter.scrape()
    assert value(found, "ssh_access_sshd_config_valid") == 0
    assert value(found, "ssh_access_sshd_config_source", source="file") == 1
    assert value(found, "ssh_access_sshd_maxstartups_start") == 4
    assert value(found, "ssh_access_collector_success", collector="sshd") == 1


# Runs in sshd's namespace: a line on stdin `open N` opens N banner-less connections, `banner N` sends
# our version banner on the N oldest untouched ones (sshd then starts key exchange in a pre-auth
# child), `close N` closes the N oldest. Each command is answered `ok` once done.
CLIENT = """
import socket, sys, time
port, held, bannered = int(sys.argv[1]), [], []
for line in sys.stdin:
    verb, count = line.split()
    for _ in range(int(count)):
        if verb == "open":
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            assert sock.recv(256).startswith(b"SSH-2.0-")
            held.append(sock)
        elif verb == "banner":
            sock = held.pop(0)
            sock.sendall(b"SSH-2.0-stagetest\\r\\n")
            bannered.append(sock)
        else:
            (bannered or held).pop(0).close()
    print("ok", flush=True)
"""


def test_stages_follow_connections_in_another_namespace(tmp_path: Path) -> None:
    """sshd in its own network namespace, the exporter outside it: connections move through the
    stages and come and go between scrapes of one exporter, and TCP states are read in sshd's
    namespace (sock_diag there)."""
    with (
        NetNs(tmp_path / "ns") as ns,
        Sshd(tmp_path / "sshd", "MaxStartups 20:30:40\nLoginGraceTime 120\n", netns=ns) as server,
        Exporter(f"--collector.sshd.config={server.config}") as exporter,
    ):
        client = subprocess.Popen(
            ns.command([sys.executable, "-c", CLIENT, str(server.port)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        label = str(server.config)

        def do(command: str) -> None:
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write(command + "\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "ok"

        def stages(accepted: int, preauth: int) -> Callable[[Samples], bool]:
            def check(found: Samples) -> bool:
                name = "ssh_access_sshd_unauthenticated_connections"
                return (
                    value(found, name, listener=label, stage="accepted") == accepted
                    and value(found, name, listener=label, stage="preauth") == preauth
                )

            return check

        def established(found: Samples) -> float | None:
            return value(found, "ssh_access_sshd_tcp_connections", listener=label, state="established")

        try:
            do("open 4")
            found = exporter.wait_until(stages(4, 0))
            assert stages(4, 0)(found) and established(found) == 4
            do("banner 3")
            found = exporter.wait_until(stages(1, 3))
            assert stages(1, 3)(found) and established(found) == 4
            do("close 2")
            found = exporter.wait_until(stages(1, 1))
            assert stages(1, 1)(found)
            assert value(found, "ssh_access_sshd_listener_startups", listener=label) == 2
            do("open 3")
            found = exporter.wait_until(stages(4, 1))
            assert stages(4, 1)(found) and established(found) == 5
            assert value(found, "ssh_access_collector_success", collector="sshd") == 1
        finally:
            client.communicate("")


def test_ports_are_the_listener_sockets_in_its_own_namespace(tmp_path: Path) -> None:
    """sshd in another network namespace, its config's Port edited since it started: its connections
    are counted on the port it really listens on, read from its sockets in its own namespace (not the
    exporter's, where that listening socket does not exist), not on the edited config's."""
    with (
        NetNs(tmp_path / "ns") as ns,
        Sshd(tmp_path / "sshd", "MaxStartups 20:30:40\n", netns=ns) as server,
    ):
        edited = server.config.read_text().replace(f"Port {server.port}\n", f"Port {free_port()}\n")
        server.config.write_text(edited)  # not reloaded: sshd still listens on server.port
        client = subprocess.Popen(
            ns.command([sys.executable, "-c", CLIENT, str(server.port)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        label = str(server.config)
        try:
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write("open 2\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "ok"
            with Exporter(f"--collector.sshd.config={server.config}") as exporter:
                found = exporter.scrape()
                assert value(found, "ssh_access_sshd_config_reload_pending", listener=label) == 1
                state = "established"
                assert value(found, "ssh_access_sshd_tcp_connections", listener=label, state=state) == 2
        finally:
            client.communicate("")


# A process that calls itself sshd (comm via PR_SET_NAME, its argv a listener's title) and waits.
FAKE_LISTENER = """
import ctypes, time
ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)
print("ready", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def _fake_listener(title: str, uid: int) -> Iterator[subprocess.Popen[str]]:
    """A Python process as `uid`, its comm `sshd` and its argv `title`; killed on exit."""
    fake = subprocess.Popen(
        [title, "-c", FAKE_LISTENER],
        executable="/usr/bin/python3",
        user=uid,
        group=uid,
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        yield fake
    finally:
        fake.kill()
        fake.wait()


@pytest.mark.parametrize("uid", [65534, 0], ids=["nobody", "root-other-binary"])
def test_fake_listener_is_not_trusted(sshd: Sshd, tmp_path: Path, uid: int) -> None:
    """Any user can name a process sshd and give it a listener's title: its `-f` (a FIFO, which hung
    the collector for good) is not read, its 99 startups are not counted, and the exporter says so
    once. Root running another executable is not trusted either (a container's sshd, a script)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with _fake_listener(f"sshd: /usr/sbin/sshd -D -f {fifo} [listener] 99 of 1-2 startups", uid) as fake:
        label = str(sshd.config)
        with Exporter(f"--collector.sshd.config={sshd.config}") as exporter:
            logged: list[list[str]] = []
            for _ in range(3):
                found = exporter.scrape()
                assert value(found, "ssh_access_collector_success", collector="sshd") == 1
                assert value(found, "ssh_access_sshd_listener_startups", listener=label) == 0
                assert value(found, "ssh_access_sshd_listener_startups", listener=str(fifo)) is None
                _assert_host_sums(found)
                logged.append([line for line in exporter.log().splitlines() if f"pid={fake.pid} " in line])
        # once per reader of sshd's state (the sshd collector's, the firewall's for the ports), not per scrape
        assert logged[0] and logged[0] == logged[-1], logged[-1]
        reason = "runs as uid 65534, not root" if uid else "runs another executable"
        assert all("level=info" in line and reason in line for line in logged[0]), logged[0]


def test_without_ptrace_rights_root_listeners_are_trusted_on_their_owner(sshd: Sshd) -> None:
    """Comparing another user's executable takes CAP_SYS_PTRACE (a container may lack it, as does an
    exporter run without root): root's listeners are then trusted on their owner alone, and said so;
    a user's fake is still ignored."""
    require_root_and("setpriv")
    no_ptrace = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", "--"]
    with _fake_listener("sshd: /usr/sbin/sshd -D [listener] 99 of 1-2 startups", 65534):
        held = Held(sshd.port)
        label = str(sshd.config)
        with Exporter(f"--collector.sshd.config={sshd.config}", enter=no_ptrace) as exporter:
            try:
                held.hold(2)
                found = exporter.wait_until(_startups(label, 2))
                assert value(found, "ssh_access_sshd_listener_startups", listener=label) == 2
                _assert_host_sums(found)
                log = exporter.log()
            finally:
                held.close()
        assert f"pid={sshd.pid} " in log and "trusted on its owner alone" in log, log
        assert "runs as uid 65534, not root" in log, log


def test_a_listener_whose_binary_was_replaced_is_still_trusted(tmp_path: Path) -> None:
    """A package upgrade replaces /usr/sbin/sshd while the running listener keeps the old inode: it is
    still root's sshd and serves logins, so it must not vanish from the metrics (sshd reported down)."""
    binary = tmp_path / "sbin/sshd"
    binary.parent.mkdir()
    shutil.copy2(SSHD, binary)
    server = Sshd(tmp_path / "sshd")
    server.proc = subprocess.Popen([str(binary), "-D", "-f", str(server.config)])
    try:
        wait_for_port(server.port)
        upgraded = tmp_path / "sbin/sshd.dpkg-new"
        shutil.copy2(SSHD, upgraded)
        os.replace(upgraded, binary)  # as dpkg installs a new version: a new inode at the same path
        assert os.readlink(f"/proc/{server.pid}/exe") == f"{binary} (deleted)"
        args = (f"--collector.sshd.config={server.config}", f"--collector.sshd.binary={binary}")
        with Exporter(*args) as exporter:
            found = exporter.scrape()
            assert value(found, "ssh_access_sshd_listener_startups", listener=str(server.config)) == 0
            _assert_host_sums(found)
            log = exporter.log()
        assert f"pid={server.pid} " in log and "before being replaced" in log, log
    finally:
        server.stop()
