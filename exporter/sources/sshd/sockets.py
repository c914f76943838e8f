"""TCP connections on sshd's listening ports, by state, as the kernel sees them in sshd's namespace.

The counts come from a sock_diag dump in the listener's network namespace (`sock_diag.py`: the
kernel filters on the ports), else from `/proc/PID/net/tcp{,6}` of the listener, parsed here (no
privileges needed, but the kernel renders every socket of the namespace as text). Which ports the
listener holds comes from its own fds (socket inodes, which needs root) looked up in the LISTEN entries
of its own namespace's tables (psutil looks them up in the reader's, /proc/net: a listener in another
namespace had none); without root the caller falls back to the ports of the effective config.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.host.procfiles import read_proc_file
from exporter.sources.sshd.sock_diag import NetnsSockets

# /proc/net/tcp state codes (include/net/tcp_states.h); LISTEN is reported apart.
TCP_STATES: dict[int, str] = {
    0x01: "established",
    0x02: "syn_sent",
    0x03: "syn_recv",
    0x04: "fin_wait1",
    0x05: "fin_wait2",
    0x06: "time_wait",
    0x07: "close",
    0x08: "close_wait",
    0x09: "last_ack",
    0x0A: "listen",
    0x0B: "closing",
    0x0C: "new_syn_recv",
}
CONNECTION_STATES: tuple[str, ...] = tuple(s for s in TCP_STATES.values() if s != "listen")


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str


# `sl: LOCAL_ADDR:PORT REMOTE_ADDR:PORT ST`: one C-level regex pass over the whole table (under a flood
# the table has thousands of lines, and a Python split per line cost more than the kernel's read).
_ENTRY = re.compile(
    rb"^\s*\d+: [0-9A-Fa-f]+:([0-9A-Fa-f]{4}) [0-9A-Fa-f]+:([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{2}) ", re.M
)


def parse_proc_net_tcp(text: str | bytes) -> list[TcpSocket]:
    """`/proc/net/tcp` or `tcp6`: header line, then `sl local rem st ...`; bad lines are skipped."""
    data = text.encode() if isinstance(text, str) else text
    sockets = []
    for local, remote, code in _ENTRY.findall(data):
        state = TCP_STATES.get(int(code, 16))
        if state is not None:
            sockets.append(TcpSocket(int(local, 16), int(remote, 16), state))
    return sockets


TABLES = ("tcp", "tcp6")


def read_tcp_sockets(
    procfs: Path, pid: int | None = None, tables: tuple[str, ...] = TABLES
) -> list[TcpSocket]:
    """Sockets of the namespace of `pid` (or of procfs/net). Missing files mean no sockets."""
    base = f"{procfs}/{pid}/net" if pid is not None else f"{procfs}/net"
    sockets: list[TcpSocket] = []
    for table in tables:
        try:
            sockets.extend(parse_proc_net_tcp(read_proc_file(f"{base}/{table}")))
        except OSError:
            continue
    return sockets


def states_on_ports(sockets: list[TcpSocket], ports: set[int]) -> Counter[str]:
    """Connections (not listeners) whose local port is one of sshd's, counted by state."""
    return Counter(s.state for s in sockets if s.local_port in ports and s.state != "listen")


_FAMILIES = {"tcp": socket.AF_INET, "tcp6": socket.AF_INET6}
log = logging.getLogger(__name__)


def connection_states(
    procfs: Path, pid: int, ports: set[int], tables: tuple[str, ...], diag: NetnsSockets | None
) -> dict[str, int]:
    """Connections on `ports` by state in the namespace of `pid`, from `diag` when it can ask the
    kernel (procfs is a real one, privileges allow), else from the text tables."""
    if diag is not None:
        try:
            counts = diag.tcp_states(f"{procfs}/{pid}/ns/net", ports)
        except OSError as exc:
            log.debug("sock_diag unavailable, reading the TCP tables", extra={"pid": pid, "err": str(exc)})
        else:
            families = {_FAMILIES[table] for table in tables}
            states: Counter[str] = Counter()
            for (family, code), count in counts.items():
                name = TCP_STATES.get(code)
                if family in families and name is not None and name != "listen":
                    states[name] += count
            return dict(states)
    return dict(states_on_ports(read_tcp_sockets(procfs, pid, tables), ports))


@dataclass(frozen=True)
class ListeningSockets:
    """The TCP ports a process listens on, and which tables (`tcp`, `tcp6`) their connections are in."""

    ports: frozenset[int]
    tables: tuple[str, ...]


def listening_sockets(procfs: Path, pid: int) -> ListeningSockets | None:
    """A process's listening sockets, in its own network namespace; None when they cannot be read (not
    root) or there are none.

    Connections to an IPv4-only listener appear only in `tcp`, so the (costly, under a flood) read of
    the other table is skipped; a `::` listener takes IPv4 connections too and keeps both."""
    by_table = _listening_by_table(procfs, pid)
    if not by_table:
        return None
    tables = TABLES if "tcp6" in by_table else ("tcp",)
    return ListeningSockets(frozenset().union(*by_table.values()), tables)


# `sl: LOCAL:PORT REMOTE:PORT 0A tx:rx tr:when retrnsmt uid timeout inode`: listening sockets only.
_LISTEN_ENTRY = re.compile(
    rb"^\s*\d+: [0-9A-Fa-f]+:([0-9A-Fa-f]{4}) [0-9A-Fa-f]+:[0-9A-Fa-f]{4} 0A \S+ \S+ \S+ +\d+ +\d+ +(\d+)",
    re.M,
)


def listening_inodes(text: str | bytes) -> dict[int, int]:
    """`/proc/net/tcp` or `tcp6`: {socket inode: local port} of the LISTEN entries; bad lines skipped."""
    data = text.encode() if isinstance(text, str) else text
    return {int(inode): int(port, 16) for port, inode in _LISTEN_ENTRY.findall(data)}


def socket_inodes(procfs: Path, pid: int) -> set[int] | None:
    """The inodes of the sockets among a process's fds (`socket:[INODE]` links); None when its fd
    directory cannot be read (not root, the process is gone)."""
    directory = f"{procfs}/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    inodes: set[int] = set()
    for name in names:
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdigit():
            inodes.add(int(target[8:-1]))
    return inodes


def own_listening_ports(procfs: Path, pid: int) -> frozenset[int] | None:
    """The TCP ports a process holds a listening socket on, looked up in its own network namespace
    (`/proc/PID/net/tcp{,6}`, not the reader's): the inodes of its fds against the LISTEN entries.
    None when its fds cannot be read. Used for pid 1 (systemd's socket units), whose fds hold no
    connections: the tables are read only when it holds a socket at all."""
    by_table = _listening_by_table(procfs, pid)
    return None if by_table is None else frozenset().union(*by_table.values())


def _listening_by_table(procfs: Path, pid: int) -> dict[str, frozenset[int]] | None:
    """{table: ports} of the process's listening sockets (tables without one left out); None when its
    fds cannot be read. The tables are read only when it holds a socket at all."""
    inodes = socket_inodes(procfs, pid)
    if inodes is None:
        return None
    found: dict[str, frozenset[int]] = {}
    for table in TABLES if inodes else ():
        try:
            listening = listening_inodes(read_proc_file(f"{procfs}/{pid}/net/{table}"))
        except OSError:
            continue
        ports = frozenset(port for inode, port in listening.items() if inode in inodes)
        if ports:
            found[table] = ports
    return found
