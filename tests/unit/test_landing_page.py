"""The landing page (`/`): the host status page, rendered from a recent scrape, plain and self-contained."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.scrape import ScrapeCollector
from exporter.status import Finding, HostStatus, Severity
from exporter.web.app import RUNBOOK_URL, make_app, render_landing_page
from tests.builders import HeldCollector

ROOT = Path(__file__).resolve().parents[2]


class _Sshd(HeldCollector):
    """sshd not running; counts its runs, and can be held to show that page requests share one."""

    hold_s = 5.0

    def families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ssh_access_sshd_listeners", "listeners", value=0)
        yield GaugeMetricFamily("ssh_access_sshd_socket_activated", "socket", value=0)


def _get(app: Any, path: str = "/") -> tuple[str, str]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response)).decode()
    return answer["status"], body


def _page(collector: _Sshd) -> tuple[ScrapeCollector, Any]:
    scraper = ScrapeCollector({"sshd": collector})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    return scraper, make_app(registry, scraper, "/metrics")


def test_first_page_runs_a_scrape_instead_of_saying_not_scraped_yet() -> None:
    collector = _Sshd()
    scraper, app = _page(collector)
    status, body = _get(app)
    assert status == "200 OK" and collector.runs == 1
    assert "not scraped yet" not in body
    assert "sshd is not running" in body and "problem" in body
    assert re.search(r"As of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body)
    _get(app)
    assert collector.runs == 1  # a recent scrape is reused
    last = scraper.last_collection()
    assert last is not None and time.time() - last.finished < 5


def test_page_scrapes_again_once_the_last_is_old_and_reads_metrics_scrapes() -> None:
    collector = _Sshd()
    scraper, app = _page(collector)
    _get(app, "/metrics")
    assert collector.runs == 1
    _get(app)
    assert collector.runs == 1  # /metrics' scrape is recent
    assert scraper.recent_collection(0.0).finished >= 0 and collector.runs == 2


def test_concurrent_pages_run_one_scrape() -> None:
    collector = _Sshd()
    collector.release.clear()
    _scraper, app = _page(collector)
    bodies: list[str] = []
    threads = [threading.Thread(target=lambda: bodies.append(_get(app)[1])) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    collector.release.set()
    for thread in threads:
        thread.join(10)
    assert len(bodies) == 4 and collector.runs == 1


def test_everything_is_escaped_and_nothing_is_loaded_or_run() -> None:
    hostile = "<script>alert(1)</script>"
    status = HostStatus(
        0.0,
        (Finding(hostile, Severity.PROBLEM, f"reason {hostile} & 'quotes'"),),
        (Finding("sshd", Severity.OK, "ok"),),
    )
    body = render_landing_page(status, "/m'><script>").decode()
    assert "<script" not in body.lower() and "&lt;script&gt;" in body
    assert "href='/m&#x27;&gt;&lt;script&gt;'" in body
    assert "As of 1970-01-01T00:00:00Z" in body and "Host: 1 problem. Collectors: all 1 ok." in body
    # no external resources: the only URLs are links a person follows
    assert not re.search(r"<(?:img|link|iframe|object|embed)\b|src=|url\(|@import", body, re.IGNORECASE)
    assert re.findall(r"<a href='([^']*)'", body) == [
        "/m&#x27;&gt;&lt;script&gt;",
        "https://github.com/ssh-access-exporter/ssh-access-exporter#readme",
        RUNBOOK_URL,
    ]


def test_runbook_link_is_the_mixins() -> None:
    config = (ROOT / "mixin/config.libsonnet").read_text()
    match = re.search(r"runbookURL:\s*'([^']+)'", config)
    assert match is not None and match.group(1) == RUNBOOK_URL
