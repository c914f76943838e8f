"""A stand-in for CrowdSec's local API in the golden scrape: `GET /v1/decisions` with the fixture
bouncer's key answers tests/fixtures/crowdsec/api_decisions.json (as the real API does), anything else
403 or 404. Run inside the exporter's network namespace: `python -m tests.e2e.lapi`."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ADDRESS = ("127.0.0.1", 8081)  # the bouncer config's api_url (a fresh namespace: always free)
KEY = "e2e-fixture-bouncer-key"  # and its api_key
DECISIONS = Path(__file__).resolve().parents[1] / "fixtures" / "crowdsec" / "api_decisions.json"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("X-Api-Key") != KEY:
            self.send_error(403)
            return
        if self.path.split("?")[0] != "/v1/decisions":
            self.send_error(404)
            return
        body = DECISIONS.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the exporter's scrapes are not news."""


def main() -> None:
    ThreadingHTTPServer(ADDRESS, Handler).serve_forever()


if __name__ == "__main__":
    main()
