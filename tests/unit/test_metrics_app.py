"""GET /metrics: concurrent scrapes share one collection and its encoded body; the answers are those
prometheus-client's app gives."""

from __future__ import annotations

import gzip
import platform
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import prometheus_client.exposition
import pytest
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.scrape import ScrapeCollector
from exporter.web.app import make_app
from exporter.web.server import RECEIVED
from tests.builders import HeldCollector
from tests.exposition import samples, value

SCRAPERS = 20
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Held(HeldCollector):
    """A collector that counts its runs and exposes the count; held until released when asked to."""

    def families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ssh_access_test_run", "which run this is", value=self.runs)


class Other:
    """Another collector of the registry (as process_* and python_* are): counts how often it is read."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        yield CounterMetricFamily("other_reads", "reads of this collector", value=self.calls)


class Answer:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}
        self.body = b""

    def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, dict(headers)


def request(app: Any, method: str = "GET", query: str = "", **headers: str) -> Answer:
    return received_at(app, None, method, query, **headers)


def received_at(
    app: Any, received: float | None, method: str = "GET", query: str = "", **headers: str
) -> Answer:
    """A request whose head the server read at `received` (its monotonic clock), as the server says."""
    environ: dict[str, object] = {"PATH_INFO": "/metrics", "REQUEST_METHOD": method, "QUERY_STRING": query}
    environ.update(headers)
    if received is not None:
        environ[RECEIVED] = received
    answer = Answer()
    answer.body = b"".join(app(environ, answer.start_response))
    return answer


def _app(collector: Held, other: Other, timeout: float = 5) -> tuple[Any, ScrapeCollector]:
    scraper = ScrapeCollector({"held": collector}, timeout=timeout)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    registry.register(other)
    return make_app(registry, scraper, "/metrics"), scraper


def _all_waiting(threads: list[threading.Thread]) -> bool:
    """Every thread blocked in a threading wait (each request has arrived and waits for a collection)."""
    frames = sys._current_frames()
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        if (
            frame is None
            or frame.f_code.co_name != "wait"
            or not frame.f_code.co_filename.endswith("threading.py")
        ):
            return False
    return True


def _wait_until_waiting(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + 10
    while not _all_waiting(threads) and time.monotonic() < deadline:
        time.sleep(0.01)


def _concurrent(app: Any, collector: Held, headers: list[dict[str, str]]) -> list[Answer]:
    """One request per entry of `headers`, all arriving while the collector is held; then released."""
    collector.release.clear()
    answers: list[Answer | None] = [None] * len(headers)

    def scrape(index: int) -> None:
        answers[index] = request(app, **headers[index])

    threads = [threading.Thread(target=scrape, args=(i,)) for i in range(len(headers))]
    for thread in threads:
        thread.start()
    _wait_until_waiting(threads)
    collector.release.set()
    for thread in threads:
        thread.join(10)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_concurrent_scrapes_share_one_collection_and_one_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    encodings: list[int] = []
    encode = prometheus_client.exposition.generate_latest

    def counted(registry: Any, *args: Any, **kwargs: Any) -> bytes:
        encodings.append(1)
        return encode(registry, *args, **kwargs)

    monkeypatch.setattr(prometheus_client.exposition, "generate_latest", counted)
    collector, other = Held(), Other()
    app, _ = _app(collector, other)
    answers = _concurrent(app, collector, [{}] * SCRAPERS)
    assert collector.runs == 1 and other.calls == 1  # not one each
    assert len(encodings) == 1
    assert {answer.status for answer in answers} == {"200 OK"}
    assert len({answer.body for answer in answers}) == 1
    found = samples(answers[0].body.decode())
    assert value(found, "ssh_access_test_run") == 1
    assert value(found, "other_reads_total") == 1
    assert value(found, "ssh_access_collector_success", collector="held") == 1


def test_each_format_is_encoded_once_per_collection() -> None:
    collector, other = Held(), Other()
    app, _ = _app(collector, other)
    kinds = [{}, {"HTTP_ACCEPT": OPENMETRICS}, {"HTTP_ACCEPT_ENCODING": "gzip"}]
    answers = _concurrent(app, collector, kinds * 4)
    assert collector.runs == 1 and other.calls == 1
    text, openmetrics, packed = answers[:3]
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.endswith(b"# EOF\n")
    assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.body) == text.body
    for index, answer in enumerate(answers):
        assert answer.body is answers[index % 3].body  # the same bytes, not encoded again


def test_a_scrape_after_a_collection_ended_gets_a_new_one() -> None:
    collector, other = Held(), Other()
    app, _ = _app(collector, other)
    first = samples(request(app).body.decode())
    second = samples(request(app).body.decode())
    assert collector.runs == 2 and other.calls == 2
    assert value(first, "ssh_access_test_run") == 1 and value(second, "ssh_access_test_run") == 2
    assert value(second, "other_reads_total") == 2


def test_a_scrape_right_after_its_answer_starts_a_new_collection() -> None:
    """A scraper's next request, sent as soon as it got the shared answer, is not answered from it."""
    collector, other = Held(), Other()
    app, _ = _app(collector, other)
    again: list[Answer] = []

    class Eager(Answer):
        def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
            super().start_response(status, headers)
            if not again:
                again.append(request(app))

    def joining() -> None:
        app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, Eager().start_response)

    collector.release.clear()
    threads = [threading.Thread(target=request, args=(app,))]
    threads[0].start()
    _wait_until_waiting(threads)
    threads.append(threading.Thread(target=joining))
    threads[1].start()
    _wait_until_waiting(threads)
    collector.release.set()
    for thread in threads:
        thread.join(10)
    assert collector.runs == 2
    assert value(samples(again[0].body.decode()), "ssh_access_test_run") == 2


def test_concurrent_scrapes_of_a_hung_collector_end_at_the_timeout_holding_one_run() -> None:
    collector, other = Held(), Other()
    app, scraper = _app(collector, other, timeout=0.3)
    collector.release.clear()
    try:
        started = time.monotonic()
        answers = [request(app) for _ in range(2)]
        threads = [threading.Thread(target=request, args=(app,)) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert time.monotonic() - started < 5
        for answer in answers:
            found = samples(answer.body.decode())
            assert value(found, "ssh_access_collector_success", collector="held") == 0
            assert value(found, "other_reads_total") is not None
        assert collector.runs == 1  # one thread held, however many scrapes
        assert "timed out" in scraper.status["held"].error
    finally:
        collector.release.set()


class Fixed:
    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("ssh_access_test_logins", "logins", value=3)
        yield GaugeMetricFamily("ssh_access_test_open", "open", value=2)
        users = GaugeMetricFamily("ssh_access_test_users", "with a label", labels=["user"])
        users.add_metric(["root"], 1)
        yield users


NEGOTIATIONS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "", {}),
    ("GET", "", {"HTTP_ACCEPT": OPENMETRICS}),
    ("GET", "", {"HTTP_ACCEPT": "application/openmetrics-text"}),
    ("GET", "", {"HTTP_ACCEPT": "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8"}),
    ("GET", "", {"HTTP_ACCEPT": "text/plain; version=1.0.0; escaping=underscores"}),
    ("GET", "", {"HTTP_ACCEPT": "text/html, */*"}),
    ("GET", "", {"HTTP_ACCEPT_ENCODING": "gzip, deflate"}),
    ("GET", "", {"HTTP_ACCEPT": OPENMETRICS, "HTTP_ACCEPT_ENCODING": "GZIP;q=1"}),
    ("GET", "name[]=ssh_access_test_open", {}),
    ("GET", "name[]=ssh_access_test_logins_total&name[]=ssh_access_test_open", {"HTTP_ACCEPT": OPENMETRICS}),
    ("GET", "name[]=ssh_access_test_open", {"HTTP_ACCEPT_ENCODING": "gzip"}),
    ("OPTIONS", "", {}),
    ("POST", "", {}),
]


@pytest.mark.parametrize(("method", "query", "headers"), NEGOTIATIONS)
def test_answers_are_prometheus_clients(method: str, query: str, headers: dict[str, str]) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    ours = request(make_app(registry, ScrapeCollector({}), "/metrics"), method, query, **headers)
    theirs = request(make_wsgi_app(registry), method, query, **headers)
    assert (ours.status, ours.headers) == (theirs.status, theirs.headers)
    if ours.headers.get("Content-Encoding") == "gzip":
        assert gzip.decompress(ours.body) == gzip.decompress(theirs.body)
    else:
        assert ours.body == theirs.body


def test_head_is_answered_as_get() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    app = make_app(registry, ScrapeCollector({}), "/metrics")
    head, get = request(app, "HEAD"), request(app, "GET")
    assert head.status == "200 OK" and head.headers == get.headers and head.body == get.body


def test_process_and_python_families_are_exposed() -> None:
    collector = Held()
    scraper = ScrapeCollector({"held": collector})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scraper)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    found = samples(request(make_app(registry, scraper, "/metrics")).body.decode())
    python = [labels for name, labels in found if name == "python_info"]
    assert len(python) == 1 and ("version", platform.python_version()) in python[0]
    cpu = value(found, "process_cpu_seconds_total")
    assert cpu is not None and cpu > 0
    assert value(found, "ssh_access_test_run") == 1


def test_a_request_queued_during_a_collection_is_answered_from_it() -> None:
    """50 scrapers on 8 workers: a request the server received while a collection ran, and that waited
    for a worker until it ended, is answered from it (it would have joined the run); one received after
    it ended gets a new collection."""
    held, other = Held(), Other()
    app, _ = _app(held, other)
    received = time.monotonic()  # the server read this request's head, then it waited for a worker
    first = request(app)
    assert value(samples(first.body.decode()), "ssh_access_test_run") == 1
    queued = received_at(app, received)
    assert value(samples(queued.body.decode()), "ssh_access_test_run") == 1 and held.runs == 1
    later = received_at(app, time.monotonic())
    assert value(samples(later.body.decode()), "ssh_access_test_run") == 2 and held.runs == 2
