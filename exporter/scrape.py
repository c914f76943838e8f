"""The parent collector: runs every enabled collector concurrently, each with a timeout.

A collector that raises or overruns costs only its own metrics: it reports
`ssh_access_collector_success{collector} 0` and the scrape goes on. A collector still running from an
earlier scrape (hung on a dead socket, say) is not started again: later scrapes wait on the same run,
so a hang holds at most one thread per collector.

    # HELP ssh_access_collector_success 1 if the collector's last scrape worked.
    # TYPE ssh_access_collector_success gauge
    ssh_access_collector_success{collector="sshd"} 1.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric

from exporter import __version__
from exporter.collectors.registry import Collector

log = logging.getLogger(__name__)


@dataclass
class CollectorStatus:
    """The outcome of a collector's last scrape, for the landing page."""

    success: bool | None = None
    duration: float = 0.0
    error: str = ""
    last_scrape: float = 0.0


def _run(collector: Collector) -> tuple[list[Metric], float]:
    start = time.monotonic()
    metrics = list(collector.collect())
    return metrics, time.monotonic() - start


def _merge(families: dict[tuple[str, str], Metric], metric: Metric) -> None:
    """Collectors sharing a family (ssh_access_banned_addresses{source}) each add their own samples:
    the exposition must carry one family per name, so their samples are joined into a copy."""
    key = (metric.name, metric.type)
    known = families.get(key)
    if known is None:
        families[key] = metric
        return
    joined = Metric(known.name, known.documentation, known.type, known.unit)
    joined.samples = [*known.samples, *metric.samples]
    families[key] = joined


class ScrapeCollector:
    """Registered into the exporter's own CollectorRegistry; everything else hangs off it."""

    def __init__(self, collectors: dict[str, Collector], timeout: float = 8.0) -> None:
        self.collectors = dict(sorted(collectors.items()))
        self.timeout = timeout
        self.status = {name: CollectorStatus() for name in self.collectors}
        self._inflight: dict[str, Future[tuple[list[Metric], float]]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, 2 * len(self.collectors)), thread_name_prefix="collector"
        )

    def _submit(self, name: str) -> Future[tuple[list[Metric], float]]:
        with self._lock:
            future = self._inflight.get(name)
            if future is None or future.done():
                future = self._pool.submit(_run, self.collectors[name])
                self._inflight[name] = future
            return future

    def describe(self) -> Iterable[Metric]:
        return []  # nothing runs at registration

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        futures = {name: self._submit(name) for name in self.collectors}
        families: dict[tuple[str, str], Metric] = {}
        success = GaugeMetricFamily(
            "ssh_access_collector_success", "1 if the collector's last scrape worked.", labels=["collector"]
        )
        duration = GaugeMetricFamily(
            "ssh_access_collector_duration_seconds",
            "How long the collector's last scrape took.",
            labels=["collector"],
        )
        for name, future in futures.items():
            remaining = max(0.0, self.timeout - (time.monotonic() - started))
            ok = False
            try:
                metrics, elapsed = future.result(timeout=remaining)
            except FutureTimeout:
                elapsed = time.monotonic() - started
                self._failed(name, f"timed out after {self.timeout:g}s", elapsed)
            except Exception as exc:  # a collector's failure must never fail the scrape
                elapsed = time.monotonic() - started
                self._failed(name, f"{type(exc).__name__}: {exc}", elapsed)
            else:
                ok = True
                if self.status[name].success is False:
                    log.info("collector recovered", extra={"collector": name})
                self.status[name] = CollectorStatus(True, elapsed, "", time.time())
                for metric in metrics:
                    _merge(families, metric)
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], elapsed)
        yield from families.values()
        yield success
        yield duration
        yield InfoMetricFamily(
            "ssh_access_build", "Version of ssh-access-exporter.", value={"version": __version__}
        )

    def _failed(self, name: str, error: str, elapsed: float) -> None:
        """Logged as a warning when the collector starts failing or fails differently; a failure that
        repeats every scrape is logged at debug, so a long outage does not flood the log."""
        previous = self.status[name]
        repeated = previous.success is False and previous.error == error
        (log.debug if repeated else log.warning)("collector failed", extra={"collector": name, "err": error})
        self.status[name] = CollectorStatus(False, elapsed, error, time.time())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
