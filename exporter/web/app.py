"""The HTTP view: landing page at `/`, metrics at --web.telemetry-path, served by exporter.web.server.

Exposition (content negotiation, OpenMetrics, gzip) is prometheus-client's `make_wsgi_app`; this module
only routes and renders the landing page. TLS (--web.config.file), request deadlines and the bounded
worker pool are the server's (exporter.web.server).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.scrape import ScrapeCollector
from exporter.web.server import HttpServer, Limits, StartResponse, TLSSource, WSGIApp, bind


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
) -> WSGIApp:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            if environ.get("REQUEST_METHOD") == "HEAD":
                # prometheus-client answers HEAD with 405; the server sends a HEAD answer's headers only.
                environ = {**environ, "REQUEST_METHOD": "GET"}
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            body = _landing_page(scraper, telemetry_path)
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; metrics are at " + telemetry_path.encode() + b"\n"]

    return app


def make_http_server(
    listen_address: str, app: WSGIApp, tls: TLSSource | None = None, limits: Limits | None = None
) -> HttpServer:
    """The server bound to the address (OSError when it cannot be); with `tls`, every connection is
    HTTPS. `:PORT` is IPv4 and IPv6 on one socket, like Go exporters."""
    host, port = parse_listen_address(listen_address)
    limits = limits or Limits()
    return HttpServer([bind(host, port, limits.backlog)], app, tls, limits)
