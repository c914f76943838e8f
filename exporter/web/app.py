"""The HTTP view: the host status page at `/`, metrics at --web.telemetry-path, `/diagnose` when enabled
(exporter.web.diagnose), served by exporter.web.server.

Metrics requests share collections (SharedExposition): one that arrives while a collection of the registry
runs is answered from it, and each body (per negotiated format, gzipped or not) is encoded once per
collection; 50 concurrent scrapers cost the host one collection at a time, not one each, while a
request that arrives after a collection ended starts a new one (never older data than its own would
give). Encoding and content negotiation (Accept: OpenMetrics, Accept-Encoding: gzip, `name[]`) are
prometheus-client's. The landing page shows exporter.status's findings of a recent scrape (one is run
when the last is older than PAGE_MAX_AGE), a table of host findings, then one of collectors. TLS
(--web.config.file), request deadlines and the bounded worker pool are the server's (exporter.web.server).
"""

from __future__ import annotations

import gzip
import html
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.scrape import ScrapeCollector
from exporter.sources.host.singleflight import shared_call
from exporter.status import Finding, HostStatus, Severity, down_reasons, host_status, utc
from exporter.web.diagnose import PATH as DIAGNOSE_PATH
from exporter.web.server import (
    RECEIVED,
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


class _Collected:
    """One collection of the registry (the scrape's families, process_*, python_*), frozen, and the bodies
    encoded from it: each (content type, gzip) once, by the first request that asks for it."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families
        self._bodies: dict[tuple[str, bool], bytes] = {}
        self._lock = threading.Lock()  # a request needing a body being encoded waits for it

    def collect(self) -> list[Metric]:
        """The encoders read the collection as they would a registry."""
        return self.families

    def body(self, accept: str, accept_encoding: str, names: Sequence[str] | None) -> tuple[str, bytes, bool]:
        """Content type, body, gzipped. A `name[]` selection is encoded for its request alone."""
        encoder, content_type = choose_encoder(accept)
        gzipped = gzip_accepted(accept_encoding)
        if names is not None:
            selection = CollectorRegistry(auto_describe=False)
            selection.register(self)
            chosen = encoder(selection.restricted_registry(names))
            return content_type, gzip.compress(chosen) if gzipped else chosen, gzipped
        plain, packed = (content_type, False), (content_type, True)
        with self._lock:
            if plain not in self._bodies:
                self._bodies[plain] = encoder(self)
            if gzipped and packed not in self._bodies:
                self._bodies[packed] = gzip.compress(self._bodies[plain])
            return content_type, self._bodies[packed if gzipped else plain], gzipped


class SharedExposition:
    """GET /metrics: requests that arrive while a collection of the registry runs wait for it and are
    answered from it (host.singleflight's shared_call: the one in-flight mechanism of the exporter); the
    first request after it ended runs the next one, in its own worker thread, so the scrape's deadline
    (--scrape.timeout) bounds it as before. The last collection is kept only to answer the requests the
    server received before it ended: a scrape is never answered with data collected before it arrived
    unless a collection was running when it did."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._last: tuple[_Collected, float] | None = None  # the last collection, and when it ended

    def _collect(self) -> tuple[_Collected, float]:
        return _Collected(list(self._registry.collect())), time.monotonic()

    def collection(self, received: float | None = None) -> _Collected:
        """The running collection's result, or that of a new one this request runs. A request the
        server received (`received`, its monotonic clock) before the last collection ended is answered
        from it: it arrived while that collection ran (or before it started) and only waited in the
        server's queue for a worker, so that answer is as fresh as joining the run would have been."""
        with self._lock:
            last = self._last
        if received is not None and last is not None and received < last[1]:
            return last[0]
        collected = shared_call((SharedExposition, id(self)), self._collect)
        with self._lock:  # every request that shared it offers the same pair; a late one, no older pair
            if self._last is None or self._last[1] < collected[1]:
                self._last = collected
        return collected[0]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        content_type, body, gzipped = self.collection(environ.get(RECEIVED)).body(
            environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", ""), names
        )
        headers = [("Content-Type", content_type)]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]


def make_app(
    registry: CollectorRegistry,
    scraper: ScrapeCollector,
    telemetry_path: str = "/metrics",
    diagnose: WSGIApp | None = None,
) -> WSGIApp:
    """The routes; `diagnose` answers at DIAGNOSE_PATH (with --web.enable-diagnose; else 404 there)."""
    metrics = SharedExposition(registry)
    other_methods = make_wsgi_app(registry)  # OPTIONS and 405 as prometheus-client words them

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            # prometheus-client answers HEAD with 405; the server sends a HEAD answer's headers only.
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
                return metrics(environ, start_response)
            return other_methods(environ, start_response)  # type: ignore[no-any-return]
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
