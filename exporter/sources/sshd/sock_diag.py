"""TCP connections by state from the kernel's sock_diag netlink interface, in any network namespace.

The text table (`/proc/PID/net/tcp`) makes the kernel render about 150 bytes per socket of the whole
namespace and Python parse them back: under a connection flood that was the largest part of a scrape.
A sock_diag dump with a port filter makes the kernel skip the other sockets and send 80-odd bytes of
binary per matching one, of which only the state byte is read.

A netlink socket belongs to the network namespace it was created in. For sshd in another namespace
(a container, a test), a short-lived thread enters that namespace (setns only moves the calling thread,
which needs CAP_SYS_ADMIN), creates the socket and exits; the dump itself runs on the caller's thread.
Failures raise OSError (no privileges to enter the namespace, no inet_diag, not a real procfs): the
caller then reads the text table.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_EQ = 11
CLONE_NEWNET = 0x40000000
TCP_LISTEN = 10

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBB48xII")  # inet_diag_req: family, src_len, dst_len, ext, id, states, dbug
_ATTR = struct.Struct("=HH")  # rtattr: len, type
_OP = struct.Struct("=BBH")  # inet_diag_bc_op: code, yes, no
_FAMILY_OFFSET = _HEADER.size  # inet_diag_msg: family, state, ...
_ALL_BUT_LISTEN = 0xFFFF & ~(1 << TCP_LISTEN)
_RECV_BUFFER = 1 << 18
_TIMEOUT = 5.0


def port_filter(ports: Iterable[int]) -> bytes:
    """Bytecode accepting sockets whose local port is one of `ports`, laid out as `ss` does for
    `sport = A or sport = B`: each test but the last is followed by a jump to the end (accept), a
    miss skips that jump to the next test, the last miss jumps past the end (reject). The kernel's
    audit wants every op reachable through the `yes` offsets, which this keeps."""
    wanted = sorted(set(ports))
    length = 12 * len(wanted) - 4
    code = bytearray()
    for port in wanted[:-1]:
        code += _OP.pack(INET_DIAG_BC_S_EQ, 8, 12) + _OP.pack(0, 0, port)
        code += _OP.pack(INET_DIAG_BC_JMP, 4, length - len(code))
    return bytes(code + _OP.pack(INET_DIAG_BC_S_EQ, 8, 12) + _OP.pack(0, 0, wanted[-1]))


def dump_request(ports: Iterable[int], sequence: int = 1) -> bytes:
    """A dump of TCP sockets in every state but LISTEN, filtered on local port. The older
    TCPDIAG_GETSOCK request is used on purpose: it covers IPv4 and IPv6 in one walk of the kernel's
    connection hash (SOCK_DIAG_BY_FAMILY walks it once per family, and the walk is most of the cost)."""
    code = port_filter(ports)
    attr = _ATTR.pack(_ATTR.size + len(code), INET_DIAG_REQ_BYTECODE) + code
    body = _REQUEST.pack(0, 0, 0, 0, _ALL_BUT_LISTEN, 0) + attr
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _HEADER.pack(_HEADER.size + len(body), TCPDIAG_GETSOCK, flags, sequence, 0) + body


def _uniform_run(data: bytes) -> tuple[bytes, bytes] | None:
    """(families, states) when the datagram is nothing but socket messages of one length (the usual
    case): then every message's fields sit at fixed strides and slicing reads them all at C speed.
    The headers' length and type bytes are all checked, not assumed."""
    if len(data) < _HEADER.size:
        return None
    length, kind = _HEADER.unpack_from(data)[:2]
    stride = (length + 3) & ~3
    if kind != TCPDIAG_GETSOCK or length < _HEADER.size + 2 or len(data) % stride:
        return None
    count = len(data) // stride
    if any(data[i::stride] != data[i : i + 1] * count for i in range(6)):
        return None
    return data[_FAMILY_OFFSET::stride], data[_FAMILY_OFFSET + 1 :: stride]


def count_states(replies: Iterable[bytes]) -> tuple[Counter[tuple[int, int]], bool]:
    """(address family, state code) counted over the dump's datagrams; True once NLMSG_DONE was
    seen. An NLMSG_ERROR raises OSError with its errno."""
    counts: Counter[tuple[int, int]] = Counter()
    for data in replies:
        run = _uniform_run(data)
        if run is not None:
            counts.update(zip(*run, strict=True))
            continue
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind = _HEADER.unpack_from(data, offset)[:2]
            if kind == NLMSG_DONE:
                return counts, True
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                raise OSError(code, f"sock_diag: {os.strerror(code)}")
            if length < _HEADER.size + 2:
                raise OSError(errno.EPROTO, "sock_diag: malformed netlink message")
            if kind == TCPDIAG_GETSOCK:
                counts[data[offset + _FAMILY_OFFSET], data[offset + _FAMILY_OFFSET + 1]] += 1
            offset += (length + 3) & ~3
    return counts, False


def _dump(sock: socket.socket, ports: Iterable[int]) -> Counter[tuple[int, int]]:
    sock.sendall(dump_request(ports))
    counts, done = count_states(iter(lambda: sock.recv(_RECV_BUFFER), b""))
    if not done:
        raise OSError(errno.EPROTO, "sock_diag: dump ended without NLMSG_DONE")
    return counts


def _setns(fd: int, nstype: int) -> None:
    """setns(2) for the calling thread (os.setns is Python 3.12+); the symbol comes from the libc
    already loaded into this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _socket_in(netns_file: str) -> socket.socket:
    """A sock_diag socket created inside the network namespace that `netns_file` names."""
    result: list[socket.socket | BaseException] = []

    def create() -> None:
        try:
            fd = os.open(netns_file, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=create, name="sock-diag-netns", daemon=True)
    thread.start()
    thread.join()
    if not result:
        raise OSError(errno.EIO, "sock_diag: namespace helper thread failed")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _namespace_key(netns_file: str) -> tuple[int, int]:
    info = os.stat(netns_file)
    return info.st_dev, info.st_ino


class NetnsSockets:
    """One sock_diag socket per network namespace in use, kept between scrapes (creating one in
    another namespace costs a thread). A kept socket keeps its namespace alive, so `forget_unused`
    closes those not used since its last call: the caller calls it once per scrape."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[int, int], socket.socket] = {}
        self._used: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def _socket(self, netns_file: str) -> tuple[tuple[int, int], socket.socket]:
        key = _namespace_key(netns_file)
        sock = self._sockets.get(key)
        if sock is None:
            if key == _namespace_key("/proc/thread-self/ns/net"):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
            else:
                sock = _socket_in(netns_file)
            sock.settimeout(_TIMEOUT)
            self._sockets[key] = sock
        return key, sock

    def tcp_states(self, netns_file: str, ports: Iterable[int]) -> Counter[tuple[int, int]]:
        """Connections (not listeners) on local `ports`, by (address family, kernel state code), in
        the namespace of `netns_file` (`/proc/PID/ns/net`). OSError when the kernel or our
        privileges do not allow it."""
        wanted = tuple(ports)
        if not wanted:
            return Counter()
        with self._lock:
            key, sock = self._socket(netns_file)
            self._used.add(key)
            try:
                return _dump(sock, wanted)
            except OSError:
                del self._sockets[key]  # a dump cut short leaves replies queued: start afresh
                sock.close()
                raise

    def forget_unused(self) -> None:
        with self._lock:
            for key in set(self._sockets) - self._used:
                self._sockets.pop(key).close()
            self._used.clear()

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
