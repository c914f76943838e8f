"""The HTTP view: landing page at `/`, metrics at --web.telemetry-path, served by a threaded WSGI server.

Exposition (content negotiation, OpenMetrics, gzip) is prometheus-client's `make_wsgi_app`; this module
only routes and renders the landing page. TLS (--web.config.file) wraps each accepted connection, and the
handshake runs in that connection's thread, so a slow or hostile client cannot stall the accept loop.
"""

from __future__ import annotations

import html
import logging
import socket
import socketserver
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.scrape import ScrapeCollector

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
TLS_HANDSHAKE_TIMEOUT = 10.0


class TLSSource(Protocol):
    """What the server needs for TLS: the current context (it may be reloaded) and a peer check."""

    def context(self) -> ssl.SSLContext: ...

    def peer_allowed(self, sock: ssl.SSLSocket) -> bool: ...


class _QuietHandler(WSGIRequestHandler):
    """wsgiref logs every request to stderr; scrapes are not news."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", extra={"client": self.client_address[0], "request": format % args})

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        if isinstance(self.connection, ssl.SSLSocket):
            environ["HTTPS"] = "on"  # wsgiref derives wsgi.url_scheme from it
        return environ


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: TLSSource | None = None

    def server_bind(self) -> None:
        """As HTTPServer.server_bind, minus its `socket.getfqdn()`: the exporter resolves no names (a
        reverse lookup of this host could stall start-up until the resolver times out)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            try:
                sock = self.tls.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:
                sock.close()
                raise  # socketserver drops this connection and keeps serving
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None and isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(TLS_HANDSHAKE_TIMEOUT)
                request.do_handshake()
                request.settimeout(None)
            except OSError as exc:  # plain HTTP, no or a bad client certificate, timeouts
                log.debug("TLS handshake failed", extra={"client": client_address[0], "err": str(exc)})
                return
            if not self.tls.peer_allowed(request):
                log.info("client certificate has no allowed SAN", extra={"client": client_address[0]})
                return
        super().finish_request(request, client_address)


class DualStackWSGIServer(ThreadingWSGIServer):
    """Binds `::` with IPV6_V6ONLY off, so `:9822` answers on IPv4 and IPv6 like Go exporters."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:9822`, `127.0.0.1:9822`, `[::1]:9822` -> (host, port); host '' means every address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"web.listen-address: {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _landing_page(scraper: ScrapeCollector, telemetry_path: str) -> bytes:
    rows = []
    for name, status in scraper.status.items():
        state = {None: "not scraped yet", True: "ok", False: "failed"}[status.success]
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last_scrape))
            if status.last_scrape
            else ""
        )
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{state}</td><td>{status.duration * 1000:.1f} ms</td>"
            f"<td>{when}</td><td>{html.escape(status.error)}</td></tr>"
        )
    path = html.escape(telemetry_path)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ssh-access-exporter</title></head><body>"
        f"<h1>ssh-access-exporter {html.escape(__version__)}</h1>"
        "<p>Who is kept out of sshd, by which layer, and is sshd near its limits.</p>"
        f"<p><a href='{path}'>Metrics</a></p>"
        "<h2>Collectors</h2><table border='1' cellpadding='4'>"
        "<tr><th>collector</th><th>last scrape</th><th>duration</th><th>at</th><th>error</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    ).encode()


def make_app(
    registry: CollectorRegistry, scraper: ScrapeCollector, telemetry_path: str = "/metrics"
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            body = _landing_page(scraper, telemetry_path)
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; metrics are at " + telemetry_path.encode() + b"\n"]

    return app


def make_http_server(
    listen_address: str,
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    tls: TLSSource | None = None,
) -> WSGIServer:
    """A threaded server on the address; with `tls`, every connection is HTTPS."""
    server = _bind(listen_address, app)
    server.tls = tls
    return server


def _bind(
    listen_address: str, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
) -> ThreadingWSGIServer:
    host, port = parse_listen_address(listen_address)
    if host == "" and socket.has_ipv6:
        try:
            return make_server("::", port, app, DualStackWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            log.debug("no IPv6 listener, falling back to IPv4", extra={"err": str(exc)})
    server_class: type[ThreadingWSGIServer] = ThreadingWSGIServer
    if ":" in host:
        server_class = type("V6Server", (ThreadingWSGIServer,), {"address_family": socket.AF_INET6})
    return make_server(host or "0.0.0.0", port, app, server_class, handler_class=_QuietHandler)
