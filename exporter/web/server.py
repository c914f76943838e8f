"""The HTTP/1.1 server under the exporter's WSGI app: one event-loop thread for every connection, a small
bounded pool for the app.

Why not a thread per connection (socketserver, wsgiref): an idle or half-sent request held a thread for
ever (346 sockets, 346 threads), and a listen backlog of 5 overflowed under 50 scrapers. Here accepting,
the TLS handshake, reading and parsing requests run in one asyncio loop, where a connection is a small
object and a timer; only a complete request reaches the pool, and when the pool's queue is full the
answer is 503 at once rather than a queue without bound. Waiting requests are taken in turn by client
address, the one with the fewest requests running first: 20 connections sending wrong passwords (a
bcrypt each) from one address do not queue another address's scrape behind all of theirs.

An app may name a `Gate`, a check every request passes before the app (basic auth's password check). What
it decides at once (a password it verified before, no credentials) goes straight to the pool; the rest
wait in a pool of the gate's own, at most `checks_per_client` at once per address, then queue for the
workers. So wrong passwords from the scraper's own address (an attacker behind its NAT) hold none of the
workers while their bcrypt runs, and a login the gate knows does not queue behind them.

Every wait has a deadline (`Limits`): the TLS handshake; a request's head, from its first byte (from the
connection for the first request) as Go's ReadHeaderTimeout; the idle wait between keep-alive requests;
a response the client does not read. A head is at most `max_head_bytes` (431 beyond), a connection serves
at most `max_requests_per_connection` requests, pipelined requests are answered one by one in order,
and requests with a body are refused (the exporter takes none). TLS runs through memory BIOs rather than
asyncio's SSL transport, which keeps a 256 KiB read buffer per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import io
import ipaddress
import itertools
import logging
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Response = tuple[str, list[tuple[str, str]], bytes]


class TLSSource(Protocol):
    """What the server needs for TLS: the current context (it may be reloaded) and a peer check."""

    def context(self) -> ssl.SSLContext: ...

    def peer_allowed(self, tls: ssl.SSLObject) -> bool: ...


@dataclass(frozen=True)
class Limits:
    """What one client may cost. The defaults let 1,000 idle or trickling clients connect while
    scrapes still answer in their normal time."""

    backlog: int = 1024  # the kernel caps it at net.core.somaxconn
    max_connections: int = 4096  # past it a new connection is closed at once
    handshake_timeout: float = 10.0
    request_timeout: float = 10.0  # a request's whole head, from its first byte
    idle_timeout: float = 120.0  # between keep-alive requests: above a 1 m scrape interval
    write_timeout: float = 60.0  # a response not read by then ends its connection
    max_head_bytes: int = 16384
    max_headers: int = 100
    max_requests_per_connection: int = 1000
    workers: int = 8  # a scrape mostly waits on the collectors' own threads (up to --scrape.timeout)
    queue: int = 256  # complete requests waiting for a worker (an environ each); past it, 503
    checks_queue: int = 256  # requests waiting for the gate's slow check (see Gate); past it, 503
    checks_per_client: int = 1  # the gate's checks running at once for one address (bcrypt: a core each)
    max_unsent_bytes: int = 64 << 20  # responses clients are slow to read; past it, 503


class Gate(Protocol):
    """A check every request passes before the app, which the server runs outside the worker pool.

    `decided` runs in the event loop and must be cheap: it records its verdict in the environ and says
    True, or says False when only the slow check can tell. `check` is that slow check (a bcrypt), run in
    the gate's own `threads`; it records its verdict in the environ too. The app reads the verdict."""

    threads: int

    def decided(self, environ: dict[str, Any]) -> bool: ...

    def check(self, environ: dict[str, Any]) -> None: ...


class BadRequestError(Exception):
    """A request the server answers itself (status line in `status`) and then closes the connection."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # names lower-cased, in order

    def header(self, name: str) -> str | None:
        """All values of a header joined by commas, as RFC 9110 reads repeated fields."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> set[str]:
        return {token.strip().lower() for token in (self.header(name) or "").split(",") if token.strip()}


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # in a field value: all but HTAB
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"[\0\r\n]")


def parse_head(head: bytes, limits: Limits) -> Request:
    """A request line and header fields (without the blank line ending them) -> Request."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    if len(lines) - 1 > limits.max_headers:
        raise BadRequestError(
            "431 Request Header Fields Too Large", f"more than {limits.max_headers} headers"
        )
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or _CONTROL.search(parts[1]) or not parts[1]:
        raise BadRequestError("400 Bad Request", "malformed request line")
    version = _VERSION.fullmatch(parts[2])
    if version is None:
        raise BadRequestError("400 Bad Request", "malformed HTTP version")
    if version.group(1) != b"1":
        raise BadRequestError("505 HTTP Version Not Supported", "not HTTP/1.x")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # also refuses obsolete line folding
            raise BadRequestError("400 Bad Request", "malformed header field")
        value = value.strip(b" \t")
        if _CONTROL.search(value):
            raise BadRequestError("400 Bad Request", "control character in a header field")
        headers.append((name.decode("ascii").lower(), value.decode("latin-1")))
    return Request(parts[0].decode("ascii"), parts[1].decode("latin-1"), parts[2].decode("ascii"), headers)


# The environ key of the moment (time.monotonic) the request's head was read: the app answers a request
# that waited in the queue for a worker from a collection that ended after it arrived.
RECEIVED = "exporter.received"


def wsgi_environ(
    request: Request, server: tuple[str, int], peer: tuple[str, int], https: bool
) -> dict[str, Any]:
    """The PEP 3333 environ of a body-less request."""
    target = request.target
    if not target.startswith("/"):
        split = urllib.parse.urlsplit(target)  # absolute form: http://host/metrics
        if split.scheme not in ("http", "https") or not split.path.startswith("/"):
            raise BadRequestError("400 Bad Request", "request target is neither a path nor an http URL")
        target = split.path + ("?" + split.query if split.query else "")
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": request.version,
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": str(peer[1]),
        "CONTENT_LENGTH": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if https else "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        RECEIVED: time.monotonic(),
    }
    if https:
        environ["HTTPS"] = "on"
    for name in {name for name, _ in request.headers}:
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = request.header(name)
    return environ


def run_app(app: WSGIApp, environ: dict[str, Any]) -> Response:
    """Runs in a pool thread: the app's status, headers and whole body (metrics are built whole anyway)."""
    started: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"], started["headers"] = status, list(headers)  # nothing is sent before the end
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            close()
    if "status" not in started:
        raise RuntimeError("the WSGI app did not call start_response")
    return started["status"], started["headers"], b"".join(chunks)


# Headers the server sets itself from what it knows of the connection and the body.
_SERVER_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive", "date"})


def response_bytes(response: Response, keep_alive: bool, http10: bool, head_only: bool) -> bytes:
    """The response on the wire; ValueError when the app's status or headers cannot go on it."""
    status, headers, body = response
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _SERVER_HEADERS]
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    if any(_LINE_BREAK.search(line) for line in lines):
        raise ValueError("line break or NUL in the status or a header")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # UnicodeEncodeError is a ValueError
    return head if head_only else head + body


# The answer when a queue is full: at once, rather than a wait without bound.
BUSY: Response = (
    "503 Service Unavailable",
    [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")],
    b"busy\n",
)


def plain_response(
    status: str, text: str, keep_alive: bool, extra: list[tuple[str, str]] | None = None
) -> bytes:
    """An answer of the server's own (errors, 503)."""
    headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or [])]
    return response_bytes((status, headers, text.encode() + b"\n"), keep_alive, False, False)


class Episode:
    """A condition remote clients cause at will (too many connections, busy workers), logged when it
    begins and when it ends rather than once per client, so they cannot flood the log."""

    def __init__(self, begins: str, ends: str) -> None:
        self.begins, self.ends = begins, ends
        self.active = False

    def begin(self, **extra: object) -> None:
        if not self.active:
            log.warning(self.begins, extra=extra)
            self.active = True

    def end(self, **extra: object) -> None:
        if self.active:
            log.info(self.ends, extra=extra)
            self.active = False


@dataclass(frozen=True)
class Waiting:
    """A complete request waiting for a thread of a Stage."""

    arrival: int
    environ: dict[str, Any]
    answer: asyncio.Future[Response]


class Stage:
    """A thread pool and the requests waiting for it (used by the event loop only), taken in turn by client
    address: the address with the fewest requests running first, then the oldest request, and no address
    past `per_client` running at once. `work` runs in the pool; its result goes to `then`, the next stage,
    or, with no next stage, is the answer."""

    def __init__(
        self,
        name: str,
        work: Callable[[dict[str, Any]], Any],
        threads: int,
        queue: int,
        per_client: int,
        busy: Episode,
        then: Stage | None = None,
    ) -> None:
        self.work, self.threads, self.queue, self.per_client = work, threads, queue, per_client
        self.busy, self.then = busy, then
        self.pending = 0  # requests running or waiting
        self.running: dict[str, int] = {}  # by client address
        self.waiting: dict[str, deque[Waiting]] = {}  # by client address, each in arrival order
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def full(self) -> bool:
        return self.pending >= self.threads + self.queue

    def add(self, client: str, waiting: Waiting) -> None:
        self.pending += 1
        self.waiting.setdefault(client, deque()).append(waiting)

    def take(self) -> tuple[str, Waiting] | None:
        """The next request to start, counted as running; None when no thread or no address may start one."""
        if sum(self.running.values()) >= self.threads:
            return None
        ready = [client for client in self.waiting if self.running.get(client, 0) < self.per_client]
        if not ready:
            return None
        client = min(ready, key=lambda c: (self.running.get(c, 0), self.waiting[c][0].arrival))
        queue = self.waiting[client]
        waiting = queue.popleft()
        if not queue:
            del self.waiting[client]
        self.running[client] = self.running.get(client, 0) + 1
        return client, waiting

    def finished(self, client: str) -> None:
        self.pending -= 1
        self.running[client] -= 1
        if not self.running[client]:
            del self.running[client]


class HttpServer:
    """Serves a WSGI app on listening sockets bound by the caller (bind() below), until shutdown()."""

    def __init__(
        self,
        sockets: list[socket.socket],
        app: WSGIApp,
        tls: TLSSource | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.sockets = sockets
        self.app = app
        self.tls = tls
        self.limits = limits = limits or Limits()
        self.connections: set[Connection] = set()
        self._arrivals = itertools.count()
        self.unsent = 0  # bytes of responses waiting on slow readers
        self.full = Episode("too many connections, refusing new ones", "accepting connections again")
        self.workers = Stage(
            "http",
            functools.partial(run_app, app),
            limits.workers,
            limits.queue,
            limits.workers,
            Episode("HTTP workers busy, answering 503", "HTTP workers keep up again"),
        )
        # WebConfigMiddleware names its basic auth here; any other WSGI app has no gate.
        self.gate: Gate | None = getattr(app, "gate", None)
        self.checks = (
            Stage(
                "http-check",
                self.gate.check,
                self.gate.threads,
                limits.checks_queue,
                limits.checks_per_client,
                Episode("HTTP password checks busy, answering 503", "HTTP password checks keep up again"),
                then=self.workers,
            )
            if self.gate is not None
            else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()

    @property
    def pending(self) -> int:
        """Requests running in the workers or waiting for one."""
        return self.workers.pending

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        """Runs the loop in the calling thread until shutdown()."""
        asyncio.run(self._serve())

    def shutdown(self) -> None:
        """Stops serve_forever; from any thread or a signal handler, without waiting."""
        self._stop_requested.set()
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake)

    def server_close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def _wake(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop = loop
        servers = [
            await loop.create_server(lambda: Connection(self), sock=sock, backlog=self.limits.backlog)
            for sock in self.sockets
        ]
        if not self._stop_requested.is_set():
            await self._stop.wait()
        for server in servers:
            server.close()
        for connection in list(self.connections):
            connection.abort()
        for stage in (self.workers, self.checks):
            if stage is not None:
                stage.pool.shutdown(wait=False, cancel_futures=True)

    def admit(self, connection: Connection) -> bool:
        """Counts a new connection in, or refuses it past max_connections (logged once per episode)."""
        if len(self.connections) >= self.limits.max_connections:
            self.full.begin(max=self.limits.max_connections)
            return False
        if len(self.connections) < self.limits.max_connections // 2:
            self.full.end(open=len(self.connections))
        self.connections.add(connection)
        return True

    def dispatch(self, environ: dict[str, Any]) -> asyncio.Future[Response]:
        """The app's answer to come from the pool, after the gate's check if it needs one (BUSY when a
        queue or the unsent bytes are full)."""
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        waiting = Waiting(next(self._arrivals), environ, answer)
        if self.checks is not None and self.gate is not None and not self.gate.decided(environ):
            self._enter(self.checks, waiting)
        else:
            self._enter(self.workers, waiting)
        return answer

    def _enter(self, stage: Stage, waiting: Waiting) -> None:
        if stage.full() or self.unsent > self.limits.max_unsent_bytes:
            stage.busy.begin(pending=stage.pending, unsent_bytes=self.unsent)
            waiting.answer.set_result(BUSY)
            return
        if stage.pending < stage.threads:
            stage.busy.end(pending=stage.pending)
        stage.add(str(waiting.environ["REMOTE_ADDR"]), waiting)
        self._start_waiting(stage)

    def _start_waiting(self, stage: Stage) -> None:
        """Fills the stage's free threads (see Stage.take)."""
        while (taken := stage.take()) is not None:
            client, waiting = taken
            future = stage.pool.submit(stage.work, waiting.environ)
            future.add_done_callback(functools.partial(self._done_threadsafe, stage, client, waiting))

    def _done_threadsafe(self, stage: Stage, client: str, waiting: Waiting, done: Future[Any]) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
                loop.call_soon_threadsafe(self._done, stage, client, waiting, done)

    def _done(self, stage: Stage, client: str, waiting: Waiting, done: Future[Any]) -> None:
        stage.finished(client)
        answer = waiting.answer
        if done.cancelled():
            answer.cancel()
        elif (error := done.exception()) is not None:
            answer.set_exception(error)
        elif stage.then is not None:
            self._enter(stage.then, waiting)
        else:
            answer.set_result(done.result())
        self._start_waiting(stage)


class Connection(asyncio.Protocol):
    """One client: TLS (if any), reading heads, one request at a time in order, keep-alive, deadlines."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.buffer = bytearray()
        self.scanned = 0  # the head end was not found before this offset
        self.tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.handshaking = False
        self.busy = False  # a request is in the pool
        self.write_paused = False
        self.unsent = 0  # this connection's share of server.unsent
        self.served = 0
        self.closing = False  # no further request is answered
        self.peer_done = False  # the client half-closed
        self.idle = False  # waiting for the first byte of a keep-alive request
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        if not self.server.admit(self):
            transport.abort()
            return
        if self.server.tls is None:
            self._arm(self.limits.request_timeout, "request")
            return
        try:
            self.tls = self.server.tls.context().wrap_bio(self._incoming, self._outgoing, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.error("cannot start TLS", extra={"client": self.peer[0], "err": str(exc)})
            self.abort()
            return
        self.handshaking = True
        self._arm(self.limits.handshake_timeout, "TLS handshake")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.tls is None:
            self._received(data)
            return
        self._incoming.write(data)
        if self.handshaking and not self._handshake():
            return
        self._received(self._decrypt())

    def eof_received(self) -> bool:
        """The client sent all it will: answer what is buffered, then close (see _continue)."""
        self.peer_done = True
        self._continue()
        return True  # keep the transport open for the answers still to come

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._cancel_timer()
        self.server.connections.discard(self)
        self._release_unsent()
        self.transport = None

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.write_paused = True
        self.unsent = self.transport.get_write_buffer_size()
        self.server.unsent += self.unsent
        if not self.handshaking:  # the handshake keeps its own deadline
            self._arm(self.limits.write_timeout, "reading the response")

    def resume_writing(self) -> None:
        self.write_paused = False
        self._release_unsent()
        if not self.handshaking:
            self._cancel_timer()
            self._continue()

    # -- TLS ---------------------------------------------------------------------------------------

    def _handshake(self) -> bool:
        """Advances the handshake; True once it is done and the peer allowed."""
        assert self.tls is not None and self.server.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return False
        except (ssl.SSLError, OSError) as exc:  # plain HTTP, no or a bad client certificate
            log.debug("TLS handshake failed", extra={"client": self.peer[0], "err": str(exc)})
            self._flush_tls()
            self.close()
            return False
        self._flush_tls()
        self.handshaking = False
        if not self.server.tls.peer_allowed(self.tls):
            log.info("client certificate has no allowed SAN", extra={"client": self.peer[0]})
            self.close()
            return False
        self._arm(self.limits.request_timeout, "request")
        return True

    def _decrypt(self) -> bytes:
        assert self.tls is not None
        chunks = []
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: as a TCP half-close, what came is answered
                self.peer_done = True
                break
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS connection failed", extra={"client": self.peer[0], "err": str(exc)})
                self.closing = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        self._flush_tls()
        return b"".join(chunks)

    def _flush_tls(self) -> None:
        if self._outgoing.pending and self.transport is not None:
            self.transport.write(self._outgoing.read())

    def _write(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self.tls is None:
            self.transport.write(data)
            return
        view = memoryview(data)
        try:
            while view:
                view = view[self.tls.write(view[:65536]) :]
                self._flush_tls()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS write failed", extra={"client": self.peer[0], "err": str(exc)})
            self.abort()

    # -- HTTP --------------------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        if data and self.idle:
            self.idle = False
            self._arm(self.limits.request_timeout, "request")
        self.buffer += data
        if self.busy or self.write_paused:
            if len(self.buffer) > self.limits.max_head_bytes and self.transport is not None:
                self.transport.pause_reading()  # pipelined requests wait; their bytes need not
            return
        if self.closing:
            self.close()
            return
        self._next_request()

    def _next_request(self) -> None:
        if self.buffer.startswith((b"\r", b"\n")):  # RFC 9112: empty lines before a request are ignored
            blank = len(self.buffer) - len(self.buffer.lstrip(b"\r\n"))
            del self.buffer[:blank]
            self.scanned = max(0, self.scanned - blank)
        end = _HEAD_END.search(self.buffer, max(0, self.scanned - 3))
        if end is None:
            self.scanned = len(self.buffer)
            if len(self.buffer) > self.limits.max_head_bytes:
                self._refuse(BadRequestError("431 Request Header Fields Too Large", "request head too long"))
            return
        head = bytes(self.buffer[: end.start()])
        del self.buffer[: end.end()]
        self.scanned = 0
        if end.start() > self.limits.max_head_bytes:
            self._refuse(BadRequestError("431 Request Header Fields Too Large", "request head too long"))
            return
        try:
            self._start(parse_head(head, self.limits))
        except BadRequestError as exc:
            self._refuse(exc)

    def _start(self, request: Request) -> None:
        if request.header("transfer-encoding") is not None:
            raise BadRequestError("501 Not Implemented", "request bodies are not accepted")
        if request.header("content-length") not in (None, "0"):
            raise BadRequestError("413 Content Too Large", "request bodies are not accepted")
        self.served += 1
        connection = request.tokens("connection")
        http10 = request.version == "HTTP/1.0"
        keep_alive = (
            "keep-alive" in connection if http10 else "close" not in connection
        ) and self.served < self.limits.max_requests_per_connection
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        environ = wsgi_environ(
            request, sockname[:2] if sockname else ("", 0), self.peer, self.tls is not None
        )
        self._cancel_timer()
        future = self.server.dispatch(environ)
        self.busy = True
        future.add_done_callback(lambda done: self._answer(done, request, keep_alive, http10))

    def _answer(
        self, done: asyncio.Future[Response], request: Request, keep_alive: bool, http10: bool
    ) -> None:
        self.busy = False
        if self.transport is None:
            return
        try:
            response = done.result()
            data = response_bytes(response, keep_alive, http10, request.method == "HEAD")
        except Exception:  # the app's bug is one 500, not a dead connection or server
            log.exception("HTTP request failed", extra={"client": self.peer[0], "path": request.target[:200]})
            self._send(plain_response("500 Internal Server Error", "internal server error", False), False)
            return
        log.debug(
            "http request",
            extra={
                "client": self.peer[0],
                "request": f"{request.method} {request.target[:200]}",
                "status": response[0],
            },
        )
        self._send(data, keep_alive)

    def _refuse(self, error: BadRequestError) -> None:
        log.debug(
            "bad HTTP request", extra={"client": self.peer[0], "status": error.status, "err": str(error)}
        )
        self._send(plain_response(error.status, str(error), False), False)

    def _send(self, data: bytes, keep_alive: bool) -> None:
        self._write(data)
        if not keep_alive:
            self.closing = True
            self.close()
            return
        self._continue()

    def _continue(self) -> None:
        """After a response (or once it is drained): the next pipelined request, or the idle wait."""
        if self.transport is None or self.busy or self.write_paused:
            return
        if self.closing or (self.peer_done and not self.buffer):
            self.close()
            return
        self.transport.resume_reading()
        self.idle = not self.buffer
        if self.idle:
            self._arm(self.limits.idle_timeout, "next request")
            return
        self._arm(self.limits.request_timeout, "request")
        asyncio.get_running_loop().call_soon(self._next_request)

    # -- deadlines and closing ---------------------------------------------------------------------

    def _arm(self, seconds: float, waiting_for: str) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired, seconds, waiting_for)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, seconds: float, waiting_for: str) -> None:
        # debug: any client can cause it at will, and a line per client would flood the log
        extra = {"client": self.peer[0], "waiting_for": waiting_for, "seconds": seconds}
        log.debug("closing a slow connection", extra=extra)
        self.abort()

    def _release_unsent(self) -> None:
        self.server.unsent -= self.unsent
        self.unsent = 0

    def close(self) -> None:
        """Closes once what was written is sent, which a client not reading has write_timeout to take."""
        self.closing = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()
            if self.transport.get_write_buffer_size():
                self._arm(self.limits.write_timeout, "reading the response")

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()


LOCALHOST = "127.0.0.1"  # what `localhost` listens on: the name is never looked up


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:9822`, `127.0.0.1:9822`, `[::1]:9822`, `localhost:9822` -> (host, port); host "" is every address.

    Only what binds without a name lookup is accepted: an IPv4 address, an IPv6 address in brackets,
    `localhost` (127.0.0.1) or nothing. Go's exporters resolve any name, through DNS too; a resolver
    that answers late or wrongly would decide where a root process listens, so a name is refused with
    the reason instead (ValueError, without the flag's name: the caller adds it)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (a port from 0 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        address = host[1:-1]
        if not _is_ip(address, version=6):
            raise ValueError(f"{address!r} in brackets is not an IPv6 address")
        return address, int(port)
    if "[" in host or "]" in host:
        raise ValueError(f"{value!r}: unbalanced brackets (an IPv6 address is written [::1]:{port})")
    if ":" in host:
        raise ValueError(f"{value!r}: an IPv6 address goes in brackets ([{host}]:{port})")
    if host == "localhost":
        return LOCALHOST, int(port)
    if host and not _is_ip(host, version=4):
        raise ValueError(
            f"{host!r} is not an IP address; give an address, localhost or nothing (every address): "
            "names are not looked up"
        )
    return host, int(port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def bind(host: str, port: int, backlog: int = Limits.backlog) -> socket.socket:
    """A listening socket; host "" is every address, IPv4 and IPv6 on one socket (IPV6_V6ONLY off) like
    Go exporters, else IPv4 only when the host has no IPv6. No name is resolved for "" or an address."""
    if host == "" and socket.has_ipv6:
        try:
            return _listen(socket.AF_INET6, ("::", port), backlog, dual_stack=True)
        except OSError as exc:
            log.debug("no IPv6 listener, falling back to IPv4", extra={"err": str(exc)})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _listen(family, (host or "0.0.0.0", port), backlog)


def _listen(
    family: socket.AddressFamily, address: tuple[str, int], backlog: int, dual_stack: bool = False
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
