"""The parent collector: failures and hangs cost only the collector's own metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.scrape import ScrapeCollector
from tests.exposition import render, samples, value


class Fixed:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        yield GaugeMetricFamily(f"ssh_access_test_{self.name}", "test", value=1)


class Broken:
    def collect(self) -> Iterator[Metric]:
        raise PermissionError("[Errno 13] Permission denied: '/var/run/fail2ban/fail2ban.sock'")


class Hanging:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        self.release.wait(10)
        yield GaugeMetricFamily("ssh_access_test_hanging", "test", value=1)


def test_failure_and_hang_cost_only_their_own_metrics() -> None:
    hanging = Hanging()
    scraper = ScrapeCollector({"ok": Fixed("ok"), "broken": Broken(), "hanging": hanging}, timeout=0.3)
    try:
        started = time.monotonic()
        found = samples(render(scraper.collect()))
        assert time.monotonic() - started < 2
        assert value(found, "ssh_access_test_ok") == 1
        assert value(found, "ssh_access_test_hanging") is None
        assert value(found, "ssh_access_collector_success", collector="ok") == 1
        assert value(found, "ssh_access_collector_success", collector="broken") == 0
        assert value(found, "ssh_access_collector_success", collector="hanging") == 0
        duration = value(found, "ssh_access_collector_duration_seconds", collector="hanging")
        assert duration is not None and duration >= 0.3
        assert "Permission denied" in scraper.status["broken"].error
        assert "timed out" in scraper.status["hanging"].error
        # The next scrape waits on the same hung run instead of starting another thread.
        render(scraper.collect())
        assert hanging.calls == 1
        hanging.release.set()
        time.sleep(0.1)
        found = samples(render(scraper.collect()))
        assert value(found, "ssh_access_collector_success", collector="hanging") == 1
        assert value(found, "ssh_access_build_info", version=__import__("exporter").__version__) == 1
    finally:
        hanging.release.set()
        scraper.close()


def test_concurrent_scrapes_share_one_run() -> None:
    hanging = Hanging()
    scraper = ScrapeCollector({"slow": hanging}, timeout=5)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(render(scraper.collect()))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    hanging.release.set()
    for thread in threads:
        thread.join(5)
    scraper.close()
    assert hanging.calls == 1
    assert all(value(samples(r), "ssh_access_collector_success", collector="slow") == 1 for r in results)


def test_a_repeated_failure_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    broken = Broken()
    scraper = ScrapeCollector({"broken": broken}, timeout=1)
    try:
        with caplog.at_level(logging.INFO, logger="exporter.scrape"):
            for _ in range(5):
                render(scraper.collect())
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "Permission denied" in str(warnings[0].__dict__["err"])
    finally:
        scraper.close()
