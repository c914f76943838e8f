"""The web config's per-request part: extra response headers and basic auth around the WSGI app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.web.auth import BCRYPT_CONCURRENCY, BasicAuth, basic_credentials
from exporter.web.server import StartResponse, WSGIApp
from exporter.web.settings import WebConfig

# The gate's verdict on a request's credentials, in its environ (a client's headers arrive as HTTP_*).
VERDICT = "exporter.basic_auth.verified"


class BasicAuthGate:
    """Basic auth as the HTTP server's Gate (exporter/web/server.py), so a bcrypt never holds a worker.

    Credentials that verified before are let through from the cache, and a request without credentials
    is refused, at once in the event loop; only the others wait for a bcrypt, in the gate's own threads
    (one a core, one per client address at a time), and never ahead of a login the cache knows. Without
    this, 20 wrong passwords from the scraper's own address took the workers and its good login queued
    behind them (p50 45 ms -> 844 ms, docs/benchmarks.md)."""

    threads = BCRYPT_CONCURRENCY

    def __init__(self, auth: BasicAuth) -> None:
        self.auth = auth

    def decided(self, environ: dict[str, Any]) -> bool:
        credentials = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        if credentials is None:
            environ[VERDICT] = False
        elif self.auth.known(*credentials):
            environ[VERDICT] = True
        return VERDICT in environ

    def check(self, environ: dict[str, Any]) -> None:
        environ[VERDICT] = self.auth.check_header(environ.get("HTTP_AUTHORIZATION"))


class WebConfigMiddleware:
    """Wraps the WSGI app: extra response headers on every answer, then basic auth when users exist."""

    def __init__(self, app: WSGIApp, config: WebConfig) -> None:
        self.app = app
        self.headers = config.headers
        self.auth = BasicAuth(dict(config.basic_auth_users)) if config.basic_auth_users else None
        self.gate = BasicAuthGate(self.auth) if self.auth is not None else None  # HttpServer runs it

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # The app's own header wins, as in exporter-toolkit where the handler may set it again.
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in self.headers if name.lower() not in present]
            return start_response(status, headers + extra, exc_info)

        if self.auth is not None and not self._allowed(self.auth, environ):
            start(
                "401 Unauthorized",
                [("WWW-Authenticate", "Basic"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"Unauthorized\n"]
        return self.app(environ, start)

    @staticmethod
    def _allowed(auth: BasicAuth, environ: dict[str, Any]) -> bool:
        """The gate's verdict when the server ran it, else the check here (a server without the gate)."""
        verdict = environ.get(VERDICT)
        if verdict is None:
            return auth.check_header(environ.get("HTTP_AUTHORIZATION"))
        return verdict is True
