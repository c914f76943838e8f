"""fail2ban's socket protocol, spoken without trusting the other end.

A request is `pickle.dumps([cmd, arg, ...], 4) + b"<F2B_END_COMMAND>"`; the reply is a pickled
`(code, result)` framed the same way, and `b"<F2B_CLOSE_COMMAND><F2B_END_COMMAND>"` ends the session.
Unpickling runs code (a reduce to `os.system` is one opcode away), so replies go through an unpickler
that admits only plain builtins: anything naming a global, a class or a persistent id is refused
before it is called. The socket must be a socket owned by root (or the configured uid), and the peer
process must run as that uid too (SO_PEERCRED), so a socket swapped in by someone else is never read.
Before the unpickler runs, `pickleshape.check_shape` reads the reply's opcodes and refuses one that
would build too much, too deep, or anything but plain builtins, so nothing that later walks the result
(a repr in a message, the reader's helpers) can run for ever or exhaust memory. The session has one
deadline, for connecting, every send, every read and that check: a hung server costs one scrape.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from exporter.sources.fail2ban.pickleshape import ShapeError, UnsafeOpcodeError, check_shape
from exporter.sources.host.replies import Deadline

END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>"
MAX_REPLY = 16 << 20  # `status JAIL` with 100,000 bans is about 2 MB; we never ask for lists that long
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ProtocolError(Exception):
    """The server did not answer as fail2ban does (framing, size, shape, error code)."""


class UnsafeReplyError(ProtocolError):
    """The reply asked the unpickler to import or call something: refused, nothing ran."""


class UntrustedSocketError(OSError):
    """The socket is not a socket, or it or its server belong to another user."""


class PlainUnpickler(pickle.Unpickler):
    """Admits tuples, lists, dicts, sets, str, bytes, int, float, bool and None; refuses the rest.

    Every way a pickle reaches code (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*, and through them REDUCE,
    NEWOBJ, BUILD) goes through find_class, and persistent ids through persistent_load.
    """

    def find_class(self, module: str, name: str) -> object:
        raise UnsafeReplyError(f"reply refers to {module}.{name}: refused")

    def persistent_load(self, pid: object) -> object:
        raise UnsafeReplyError("reply uses a persistent id: refused")


def loads_plain(data: bytes, deadline: Deadline | None = None) -> object:
    """Unpickle data built from plain builtins only, once its shape is known to be bounded."""
    try:
        check_shape(data, deadline)
    except UnsafeOpcodeError as exc:
        raise UnsafeReplyError(str(exc)) from None
    except ShapeError as exc:
        raise ProtocolError(str(exc)) from None
    try:
        return PlainUnpickler(io.BytesIO(data)).load()
    except UnsafeReplyError:
        raise
    except Exception as exc:  # truncated or corrupt: every pickle error class
        raise ProtocolError(f"undecodable reply: {type(exc).__name__}: {exc}") from exc


def encode(command: Sequence[str]) -> bytes:
    """One framed request."""
    return pickle.dumps(list(command), protocol=4) + END


def decode(frame: bytes, deadline: Deadline | None = None) -> object:
    """The result of one framed `(code, result)` reply; code 0 is success."""
    if not frame.endswith(END):
        raise ProtocolError("reply not terminated")
    reply = loads_plain(frame[: -len(END)], deadline)
    if isinstance(reply, str) and reply.startswith("ERROR"):
        raise ProtocolError(reply[:200])  # the server could not even read the request
    if not (isinstance(reply, tuple | list) and len(reply) == 2 and isinstance(reply[0], int)):
        raise ProtocolError(f"unexpected reply shape: {type(reply).__name__}")
    code, result = reply
    if code != 0:
        raise ProtocolError(f"command failed with code {code}: {str(result)[:200]}")
    return result


def check_socket_owner(path: Path, owner_uid: int) -> None:
    """Refuse a path that is not a socket owned by owner_uid (a stale file, or someone else's)."""
    info = os.stat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise UntrustedSocketError(f"{path} is not a socket")
    if info.st_uid != owner_uid:
        raise UntrustedSocketError(f"{path} is owned by uid {info.st_uid}, not {owner_uid}")


class Connection:
    """One session with fail2ban-server: open, a few requests, close. Not thread-safe."""

    def __init__(self, path: Path, timeout: float, owner_uid: int = 0) -> None:
        self.path = path
        self.owner_uid = owner_uid
        self.deadline = Deadline(timeout, f"fail2ban did not answer within the deadline on {path}")
        self.peer_pid = 0  # 0: not visible from this pid namespace
        self._sock: socket.socket | None = None

    def open(self) -> Connection:
        check_socket_owner(self.path, self.owner_uid)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(self.deadline.remaining())
            sock.connect(str(self.path))
            pid, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != self.owner_uid:
                raise UntrustedSocketError(f"server on {self.path} runs as uid {uid}, not {self.owner_uid}")
        except BaseException:
            sock.close()
            raise
        self.peer_pid = pid
        self._sock = sock
        return self

    def request(self, *command: str) -> object:
        """Send one command and return its result (code 0), within the session's deadline."""
        sock = self._sock
        if sock is None:
            raise ProtocolError("connection is not open")
        sock.settimeout(self.deadline.remaining())
        sock.sendall(encode(command))
        frame = bytearray()
        while not frame.endswith(END):
            sock.settimeout(self.deadline.remaining())
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ProtocolError("server closed the connection mid-reply")
            frame += chunk
            if len(frame) > MAX_REPLY:
                raise ProtocolError(f"reply larger than {MAX_REPLY} bytes")
        return decode(bytes(frame), self.deadline)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.settimeout(0.2)
            sock.sendall(CLOSE + END)
        except OSError:
            pass  # the server is gone already: nothing to say goodbye to
        finally:
            sock.close()

    def __enter__(self) -> Connection:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
