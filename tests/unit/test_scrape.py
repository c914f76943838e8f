"""The parent collector: failures and hangs cost only the collector's own metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.registry import PartialFailureError
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


class Yields:
    """A collector that yields whatever it is given, to feed the scrape bad output."""

    def __init__(self, *metrics: object) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics  # type: ignore[misc]


def _gauge(name: str, labels: dict[str, str], value: object = 1.0, help_text: str = "test") -> Metric:
    family = Metric(name, help_text, "gauge")
    family.add_sample(name, labels, value)  # type: ignore[arg-type]
    return family


def _scrape(collectors: dict[str, object]) -> tuple[str, ScrapeCollector]:
    scraper = ScrapeCollector(collectors, timeout=5)  # type: ignore[arg-type]
    try:
        return render(scraper.collect()), scraper
    finally:
        scraper.close()


def test_lone_surrogates_are_repaired_not_a_failed_scrape(caplog: pytest.LogCaptureFixture) -> None:
    """A jail name or CrowdSec scenario with a lone surrogate made the whole /metrics answer 500."""
    jail = _gauge("ssh_access_test_jail", {"jail": "ssh\ud800d"}, help_text="bans per jail \udcff")
    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        text, _ = _scrape({"f2b": Yields(jail), "ok": Fixed("ok")})
    found = samples(text)
    assert value(found, "ssh_access_test_jail", jail="ssh\ufffdd") == 1
    assert "# HELP ssh_access_test_jail bans per jail \ufffd" in text
    assert value(found, "ssh_access_test_ok") == 1
    assert value(found, "ssh_access_collector_success", collector="f2b") == 1
    assert any("repaired" in r.getMessage() and getattr(r, "collector", "") == "f2b" for r in caplog.records)


@pytest.mark.parametrize(
    "bad",
    [
        _gauge("ssh_access_test_bad", {}, value="many"),
        _gauge("ssh_access_test_bad", {}, value=None),
        _gauge("ssh_access_test_bad", {"jail": 7}),  # type: ignore[dict-item]
        "not a metric family",
        _gauge("process_cpu_seconds_total", {}),  # another collector's family in the same registry
        _gauge("ssh_access_collector_success", {"collector": "ok"}),  # the scrape's own family
    ],
    ids=["text-value", "none-value", "int-label", "not-a-family", "foreign-name", "own-name"],
)
def test_output_that_cannot_be_exposed_costs_only_its_collector(bad: object) -> None:
    text, scraper = _scrape({"bad": Yields(bad), "ok": Fixed("ok")})
    found = samples(text)
    assert value(found, "ssh_access_collector_success", collector="bad") == 0
    assert value(found, "ssh_access_collector_success", collector="ok") == 1
    assert value(found, "ssh_access_test_ok") == 1
    assert value(found, "ssh_access_test_bad") is None
    assert scraper.status["bad"].error


def test_non_finite_values_are_exposed_as_such() -> None:
    text, _ = _scrape({"x": Yields(_gauge("ssh_access_test_nan", {}, float("nan")))})
    assert "ssh_access_test_nan NaN" in text


def test_duplicate_series_are_exposed_once(caplog: pytest.LogCaptureFixture) -> None:
    twice = _gauge("ssh_access_test_dup", {"jail": "sshd"}, 1.0)
    twice.add_sample("ssh_access_test_dup", {"jail": "sshd"}, 2.0)
    shared = _gauge("ssh_access_test_shared", {"source": "a"}, 3.0)
    again = _gauge("ssh_access_test_shared", {"source": "a"}, 4.0)
    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        text, _ = _scrape({"a": Yields(twice, shared), "b": Yields(again)})
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("ssh_access_test_dup{")] == [
        'ssh_access_test_dup{jail="sshd"} 1.0'
    ]
    assert [line for line in lines if line.startswith("ssh_access_test_shared{")] == [
        'ssh_access_test_shared{source="a"} 3.0'
    ]
    assert any("duplicate" in str(getattr(r, "err", "")) for r in caplog.records)


def test_a_family_whose_type_clashes_is_dropped_not_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    gauge = _gauge("ssh_access_test_clash", {}, 1.0)
    counter = Metric("ssh_access_test_clash", "test", "counter")
    counter.add_sample("ssh_access_test_clash_total", {}, 2.0)
    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        text, _ = _scrape({"a": Yields(gauge), "b": Yields(counter), "ok": Fixed("ok")})
    assert text.count("# TYPE ssh_access_test_clash") == 1
    found = samples(text)  # the parser refuses a second TYPE line for a name
    assert value(found, "ssh_access_test_clash") == 1
    assert value(found, "ssh_access_test_ok") == 1
    assert any("clashes" in str(getattr(r, "err", "")) for r in caplog.records)


class PartlyBroken:
    """Fails, naming what is down: those families are exposed with the failure, the rest are not."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ssh_access_test_counts", "test", value=5)
        down = GaugeMetricFamily("ssh_access_test_source_up", "test", labels=["source"])
        down.add_metric(["/var/log/auth.log"], 0)
        raise PartialFailureError("/var/log/auth.log: does not exist", [down])


def test_partial_failure_exposes_only_the_families_it_names(caplog: pytest.LogCaptureFixture) -> None:
    scraper = ScrapeCollector({"partly": PartlyBroken(), "ok": Fixed("ok")})
    try:
        with caplog.at_level(logging.WARNING):
            found = samples(render(scraper.collect()))
    finally:
        scraper.close()
    assert value(found, "ssh_access_collector_success", collector="partly") == 0
    assert value(found, "ssh_access_collector_success", collector="ok") == 1
    assert value(found, "ssh_access_test_source_up", source="/var/log/auth.log") == 0
    assert value(found, "ssh_access_test_counts") is None
    (failure,) = (r for r in caplog.records if r.getMessage() == "collector failed")
    assert getattr(failure, "err", "") == "PartialFailureError: /var/log/auth.log: does not exist"
    assert scraper.status["partly"].success is False


class Flapping:
    """Fails on the calls listed, works on the others."""

    def __init__(self, failing: set[int]) -> None:
        self.failing, self.calls = failing, 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        if self.calls in self.failing:
            raise OSError("fail2ban-server is not running")
        yield GaugeMetricFamily("ssh_access_test_flapping", "test", value=1)


@pytest.mark.parametrize(
    ("failing", "expected"),
    [
        # each failure after a recovery is news again, and each recovery follows a failure shown
        ({1, 3}, ["collector failed", "collector recovered", "collector failed", "collector recovered"]),
        ({1, 2}, ["collector failed", "collector recovered"]),  # the second failure repeats the first
        (set(), []),
    ],
)
def test_failures_and_recoveries_are_logged_in_pairs(
    failing: set[int], expected: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    scraper = ScrapeCollector({"flapping": Flapping(failing)})
    try:
        with caplog.at_level(logging.INFO, logger="exporter.scrape"):
            for _ in range(4):
                render(scraper.collect())
    finally:
        scraper.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == expected
