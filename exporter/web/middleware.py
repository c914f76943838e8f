"""The web config's per-request part: extra response headers and basic auth around the WSGI app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.web.auth import BasicAuth
from exporter.web.server import StartResponse, WSGIApp
from exporter.web.settings import WebConfig


class WebConfigMiddleware:
    """Wraps the WSGI app: extra response headers on every answer, then basic auth when users exist."""

    def __init__(self, app: WSGIApp, config: WebConfig) -> None:
        self.app = app
        self.headers = config.headers
        self.auth = BasicAuth(dict(config.basic_auth_users)) if config.basic_auth_users else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # The app's own header wins, as in exporter-toolkit where the handler may set it again.
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in self.headers if name.lower() not in present]
            return start_response(status, headers + extra, exc_info)

        if self.auth is not None and not self.auth.check_header(environ.get("HTTP_AUTHORIZATION")):
            start(
                "401 Unauthorized",
                [("WWW-Authenticate", "Basic"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"Unauthorized\n"]
        return self.app(environ, start)
