"""The HTTP view: the host status page at `/`, metrics at --web.telemetry-path, `/diagnose` when enabled
(exporter.web.diagnose), served by exporter.web.server.

Exposition (content negotiation, OpenMetrics, gzip) is prometheus-client's `make_wsgi_app`; this module
only routes and renders the landing page: exporter.status's findings of a recent scrape (one is run
when the last is older than PAGE_MAX_AGE), a table of host findings, then one of collectors. TLS
(--web.config.file), request deadlines and the bounded worker pool are the server's (exporter.web.server).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.scrape import ScrapeCollector
from exporter.status import Finding, HostStatus, Severity, down_reasons, host_status, utc
from exporter.web.diagnose import PATH as DIAGNOSE_PATH
from exporter.web.server import (
    HttpServer,
    Limits,
    StartResponse,
    TLSSource,
    WSGIApp,
    bind,
    parse_listen_address,
)

# Where people read the docs: the README on the project page, and the runbook at the address the mixin's
# alerts link to (mixin/config.libsonnet's runbookURL; tests/unit/test_landing_page.py keeps them equal).
PROJECT_URL = "https://github.com/ssh-access-exporter/ssh-access-exporter"
RUNBOOK_URL = f"{PROJECT_URL}/blob/main/docs/runbook.md"
# A scrape older than this is run again before the page is rendered (or the scrape timeout, if longer).
PAGE_MAX_AGE = 60.0

# One colour per severity: the cell's background; the word is written out too (no colour-only meaning).
_COLOURS = {
    Severity.PROBLEM: "#f8d0d0",
    Severity.WARNING: "#fbe7b5",
    Severity.OK: "#d4efd4",
    Severity.UNKNOWN: "#e2e2e2",
}
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:70em;color:#111}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border:1px solid #bbb;padding:.35em .6em;text-align:left;vertical-align:top}"
    "td.severity{font-weight:bold}"
    "table{table-layout:fixed}th:nth-child(1){width:6em}th:nth-child(2){width:13em}"
    ".headline{padding:.4em .6em}"
    + "".join(f".{severity.value}{{background:{colour}}}" for severity, colour in _COLOURS.items())
)


def _rows(findings: Iterable[Finding]) -> str:
    return "".join(
        f"<tr><td class='severity {finding.severity.value}'>{finding.severity.value}</td>"
        f"<td class='topic'>{html.escape(finding.topic)}</td><td>{html.escape(finding.text)}</td></tr>"
        for finding in findings
    )


def _headline(status: HostStatus) -> str:
    when = f" As of {utc(status.collected)}." if status.collected is not None else ""
    summary = html.escape(status.summary())
    return f"<p class='headline {status.worst.value}'><strong>{summary}</strong>{when}</p>"


def render_landing_page(status: HostStatus, telemetry_path: str) -> bytes:
    """The host status page: plain HTML, every text escaped, no script, nothing loaded from elsewhere."""
    path = html.escape(telemetry_path)
    head = "<tr><th>status</th><th>what</th><th>finding</th></tr>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ssh-access-exporter: host status</title><style>{_STYLE}</style></head><body>"
        f"<h1>ssh-access-exporter {html.escape(__version__)}</h1>"
        "<p>Who is kept out of sshd, by which layer, and is sshd near its limits.</p>"
        + _headline(status)
        + f"<p><a href='{path}'>Metrics</a> · <a href='{html.escape(PROJECT_URL)}#readme'>README</a> · "
        f"<a href='{html.escape(RUNBOOK_URL)}'>Runbook</a></p>"
        f"<h2>Host</h2><table>{head}{_rows(status.findings)}</table>"
        f"<h2>Collectors</h2><table>{head}{_rows(status.collectors)}</table>"
        "<p>Times are UTC.</p></body></html>"
    ).encode()


def _landing_page(scraper: ScrapeCollector, telemetry_path: str) -> bytes:
    collection = scraper.recent_collection(max(PAGE_MAX_AGE, scraper.timeout))
    status = host_status(
        collection.families, collection.status, collection.finished, down_reasons(scraper.collectors)
    )
    return render_landing_page(status, telemetry_path)


def make_app(
    registry: CollectorRegistry,
    scraper: ScrapeCollector,
    telemetry_path: str = "/metrics",
    diagnose: WSGIApp | None = None,
) -> WSGIApp:
    """The routes; `diagnose` answers at DIAGNOSE_PATH (with --web.enable-diagnose; else 404 there)."""
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
        if path == DIAGNOSE_PATH and diagnose is not None:
            return diagnose(environ, start_response)
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
