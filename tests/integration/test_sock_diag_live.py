"""TCP state counts from sock_diag against real sockets in a network namespace the test creates,
compared with what `ss` (iproute2) reports there, and with the text tables the fallback reads."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.sshd.sock_diag import NetnsSockets
from exporter.sources.sshd.sockets import TCP_STATES, connection_states
from tests.integration.harness import NetNs, require_root_and

# Runs in the namespace: listeners on 127.0.0.1:P4 and [::1]:P6 and a decoy port, then connections to
# each in three states: established (held), close_wait (client closed, server not), time_wait (server
# closed first, then the client). Prints the ports, then holds everything until stdin closes.
SOCKETS = """
import socket, sys, time
held = []
def listener(family, host):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0)); s.listen(64); held.append(s)
    return s
def connect(server, count, how):
    for _ in range(count):
        client = socket.create_connection(server.getsockname()[:2])
        accepted, _ = server.accept()
        if how == "close_wait":
            client.close(); held.append(accepted)
        elif how == "time_wait":
            accepted.close(); time.sleep(0.01); client.close()
        else:
            held.extend([client, accepted])
v4, v6 = listener(socket.AF_INET, "127.0.0.1"), listener(socket.AF_INET6, "::1")
decoy = listener(socket.AF_INET, "127.0.0.1")
for server, plan in ((v4, (5, 2, 3)), (v6, (4, 1, 2)), (decoy, (7, 0, 0))):
    for how, count in zip(("established", "close_wait", "time_wait"), plan):
        connect(server, count, how)
time.sleep(0.3)
print(v4.getsockname()[1], v6.getsockname()[1], decoy.getsockname()[1], flush=True)
sys.stdin.read()
"""

SS_STATES = {
    "ESTAB": "established",
    "CLOSE-WAIT": "close_wait",
    "TIME-WAIT": "time_wait",
    "FIN-WAIT-1": "fin_wait1",
    "FIN-WAIT-2": "fin_wait2",
    "SYN-RECV": "syn_recv",
    "LAST-ACK": "last_ack",
    "CLOSING": "closing",
}


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[tuple[NetNs, int, tuple[int, int, int]]]:
    require_root_and("ip", "ss")
    with NetNs(tmp_path / "ns") as ns:
        proc = subprocess.Popen(
            ns.command([sys.executable, "-c", SOCKETS]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            v4, v6, decoy = (int(word) for word in proc.stdout.readline().split())
            yield ns, proc.pid, (v4, v6, decoy)
        finally:
            proc.communicate("")


def ss_states(ns: NetNs, ports: tuple[int, ...]) -> Counter[str]:
    condition = " or ".join(f"sport = :{port}" for port in ports)
    out = ns.run(["ss", "-Htan", "state", "all", f"( {condition} )"])
    assert out.returncode == 0, out.stderr
    states = Counter(SS_STATES.get(line.split()[0], line.split()[0]) for line in out.stdout.splitlines())
    del states["LISTEN"]
    return states


def netns_pid(ns: NetNs, holder: int) -> int:
    """The pid of the Python process holding the sockets (the holder is `ip netns exec`'s child)."""
    found = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True, check=True)
    pids = [int(pid) for pid in found.stdout.split()]
    assert pids, "nothing runs in the namespace"
    return holder if holder in pids else pids[0]


def named(counts: Counter[tuple[int, int]], families: set[int]) -> Counter[str]:
    states: Counter[str] = Counter()
    for (family, code), count in counts.items():
        if family in families:
            states[TCP_STATES[code]] += count
    return states


def test_counts_equal_ss_in_another_namespace(namespace: tuple[NetNs, int, tuple[int, int, int]]) -> None:
    ns, holder, (v4, v6, decoy) = namespace
    pid = netns_pid(ns, holder)
    diag = NetnsSockets()
    try:
        both = diag.tcp_states(f"/proc/{pid}/ns/net", (v4, v6))
        assert named(both, {socket.AF_INET, socket.AF_INET6}) == ss_states(ns, (v4, v6))
        assert named(both, {socket.AF_INET}) == {"established": 5, "close_wait": 2, "time_wait": 3}
        assert named(both, {socket.AF_INET6}) == {"established": 4, "close_wait": 1, "time_wait": 2}
        only_decoy = diag.tcp_states(f"/proc/{pid}/ns/net", (decoy,))
        assert named(only_decoy, {socket.AF_INET}) == ss_states(ns, (decoy,)) == {"established": 7}
    finally:
        diag.forget_unused()
        diag.forget_unused()  # nothing used since: the namespace's socket is closed, not pinned
        diag.close()


def test_sock_diag_and_text_tables_agree(namespace: tuple[NetNs, int, tuple[int, int, int]]) -> None:
    ns, holder, (v4, v6, _) = namespace
    pid = netns_pid(ns, holder)
    tables = ("tcp", "tcp6")
    diag = NetnsSockets()
    try:
        from_kernel = connection_states(Path("/proc"), pid, {v4, v6}, tables, diag)
    finally:
        diag.close()
    from_text = connection_states(Path("/proc"), pid, {v4, v6}, tables, None)
    assert from_kernel == from_text == dict(ss_states(ns, (v4, v6)))
    assert connection_states(Path("/proc"), pid, {v4}, ("tcp",), None) == {
        "established": 5,
        "close_wait": 2,
        "time_wait": 3,
    }


def test_our_own_namespace_needs_no_thread() -> None:
    require_root_and("ss")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client, server.accept()[0] as accepted:
            assert client and accepted
            diag = NetnsSockets()
            try:
                counts = diag.tcp_states("/proc/self/ns/net", (port,))
            finally:
                diag.close()
    assert counts == {(socket.AF_INET, 1): 1}
