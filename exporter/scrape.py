"""The parent collector: runs every enabled collector concurrently, each with a timeout.

A collector that raises or overruns costs only its own metrics: it reports
`ssh_access_collector_success{collector} 0` and the scrape goes on (one that raises PartialFailureError
keeps the families it raises with: which of its sources are down). A collector still running from an
earlier scrape (hung on a dead socket, say) is not started again: later scrapes wait on the same run,
so a hang holds at most one thread per collector.

What a collector yields is checked before it joins the exposition, as one bad sample would otherwise
fail the whole answer (500): text UTF-8 cannot carry (a lone surrogate from a peer's JSON or a
surrogate-escaped file name) is repaired to U+FFFD, a repeated series is exposed once, a family whose
name another collector already uses with another type is dropped; what cannot be exposed at all (a
value that is no number, a label value that is no string, a foreign or reserved family name) fails that
collector only. Each is logged.

    # HELP ssh_access_collector_success 1 if the collector's last scrape worked.
    # TYPE ssh_access_collector_success gauge
    ssh_access_collector_success{collector="sshd"} 1.0
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from prometheus_client.metrics_core import METRIC_TYPES, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.samples import Sample

from exporter import __version__
from exporter.allocator import Trimmer
from exporter.registry import Collector, PartialFailureError
from exporter.sources.host import singleflight

log = logging.getLogger(__name__)

PREFIX = "ssh_access_"
# The families the scrape adds itself; the process_* and python_* families of the same registry are
# kept apart by PREFIX.
OWN_FAMILIES = frozenset(
    {"ssh_access_collector_success", "ssh_access_collector_duration_seconds", "ssh_access_build"}
)
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What the text format appends to a family's name: a counter `x` is exposed as `x_total`.
_EXPOSED_SUFFIX = {"counter": "_total", "info": "_info"}


def printable(text: str) -> str:
    """`text` as UTF-8 can carry it: lone surrogates become U+FFFD. Only surrogates make a str
    unencodable, and an ASCII string (nearly every one, every scrape) costs one C-speed test."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


class BadOutputError(Exception):
    """A collector yielded something the exposition cannot carry: that collector fails, not the scrape."""


@dataclass
class CollectorStatus:
    """The outcome of a collector's last scrape, for the landing page."""

    success: bool | None = None
    duration: float = 0.0
    error: str = ""
    last_scrape: float = 0.0


@dataclass(frozen=True)
class Collection:
    """One whole scrape as the landing page reads it: every family /metrics exposed (the scrape's own
    included), each collector's status, and when it ended (wall clock)."""

    families: tuple[Metric, ...]
    status: dict[str, CollectorStatus]
    finished: float


@dataclass
class Run:
    """One collector run: its checked families, what had to be repaired in them, how long it took."""

    families: list[Metric] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    elapsed: float = 0.0


class FailedRunError(Exception):
    """A collector failed with families that stand (PartialFailureError), checked as any run's."""

    def __init__(self, message: str, run: Run) -> None:
        super().__init__(message)
        self.run = run


def _run(collector: Collector) -> Run:
    """Runs in the collector's pool thread, so checking its output counts towards its timeout, and
    scrapes sharing the run share the check."""
    start = time.monotonic()
    run = Run()
    try:
        for metric in collector.collect():
            run.families.append(_checked_family(metric, run.repairs))
    except PartialFailureError as exc:
        kept = Run([_checked_family(metric, run.repairs) for metric in exc.families], run.repairs)
        kept.elapsed = time.monotonic() - start
        raise FailedRunError(f"{type(exc).__name__}: {exc}", kept) from exc
    run.elapsed = time.monotonic() - start
    return run


def _checked_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _LEGACY_NAME.fullmatch(name):
        raise BadOutputError(f"{what} {printable(repr(name))} is not a valid name")
    return name


def _checked_family(metric: object, repairs: list[str]) -> Metric:
    """The family as the exposition can carry it (a repaired copy if need be), or BadOutputError."""
    if not isinstance(metric, Metric):
        raise BadOutputError(f"yielded a {type(metric).__name__}, not a metric family")
    name = _checked_name(metric.name, "family")
    if not name.startswith(PREFIX) or name in OWN_FAMILIES:
        raise BadOutputError(f"family {name}: outside {PREFIX}* or reserved for the scrape itself")
    if metric.type not in METRIC_TYPES or not (isinstance(metric.unit, str) and metric.unit.isascii()):
        raise BadOutputError(f"family {name}: type {metric.type!r} or unit {metric.unit!r} cannot be exposed")
    if not isinstance(metric.documentation, str):
        raise BadOutputError(f"family {name}: help text is a {type(metric.documentation).__name__}")
    documentation = printable(metric.documentation)
    if documentation is not metric.documentation:
        repairs.append(f"{name}: help text not UTF-8, repaired")
    label_names: set[str] = set()
    seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    kept: list[Sample] = []
    changed = documentation is not metric.documentation
    for sample in metric.samples:
        checked = _checked_sample(name, sample, label_names, repairs)
        key = (checked.name, frozenset(checked.labels.items()))
        if key in seen:
            repairs.append(f"{name}: duplicate series {printable(repr(checked.labels))} dropped")
            changed = True
            continue
        seen.add(key)
        kept.append(checked)
        changed = changed or checked is not sample
    if not changed:
        return metric
    copy = Metric(name, documentation, metric.type, metric.unit)
    copy.samples = kept
    return copy


def _checked_sample(family: str, sample: object, label_names: set[str], repairs: list[str]) -> Sample:
    """The sample, or a copy with label values repaired; BadOutputError when it cannot be exposed.
    `label_names` holds the names already checked in this family (each is checked once)."""
    if not isinstance(sample, Sample) or not isinstance(sample.labels, dict):
        raise BadOutputError(f"family {family}: a sample is a {type(sample).__name__}, not a Sample")
    if not isinstance(sample.name, str) or not sample.name.startswith(family):
        raise BadOutputError(f"family {family}: sample {printable(repr(sample.name))} is not of the family")
    if type(sample.value) not in (float, int, bool):
        raise BadOutputError(f"family {family}: value {printable(repr(sample.value))[:80]} is not a number")
    if not (sample.timestamp is None and sample.exemplar is None and sample.native_histogram is None):
        raise BadOutputError(f"family {family}: samples carry no timestamps, exemplars or native histograms")
    repaired = False
    for label, text in sample.labels.items():
        if label not in label_names:
            label_names.add(_checked_name(label, f"family {family}: label"))
        if not isinstance(text, str):
            raise BadOutputError(f"family {family}: label {label} is a {type(text).__name__}, not a string")
        repaired = repaired or (not text.isascii() and printable(text) != text)
    if not repaired:
        return sample
    labels = {label: printable(text) for label, text in sample.labels.items()}
    repairs.append(f"{family}: label values not UTF-8, repaired to {printable(repr(labels))}")
    return sample._replace(labels=labels)


@dataclass
class _Exposition:
    """The families of one scrape, one per name: collectors sharing a family (banned_addresses{source})
    each add their samples; a family whose name is taken by another type is refused."""

    families: dict[str, Metric] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # exposed name -> family name holding it

    def add(self, metric: Metric) -> str | None:
        """None when added; else why it was refused, for the log."""
        exposed = (metric.name, metric.name + _EXPOSED_SUFFIX.get(metric.type, ""))
        for name in exposed:
            holder = self.families.get(self.owners.get(name, ""))
            if holder is not None and (holder.name != metric.name or holder.type != metric.type):
                return f"family {metric.name} ({metric.type}) clashes with {holder.name} ({holder.type})"
        known = self.families.get(metric.name)
        if known is None:
            self.families[metric.name] = metric
            self.owners.update(dict.fromkeys(exposed, metric.name))
            return None
        return self._join(known, metric)

    def _join(self, known: Metric, metric: Metric) -> str | None:
        """A copy holding both collectors' samples; a series both yield is exposed once (the first)."""
        joined = Metric(known.name, known.documentation, known.type, known.unit)
        seen = {(s.name, frozenset(s.labels.items())) for s in known.samples}
        fresh = [s for s in metric.samples if (s.name, frozenset(s.labels.items())) not in seen]
        joined.samples = [*known.samples, *fresh]
        self.families[known.name] = joined
        dropped = len(metric.samples) - len(fresh)
        return (
            f"family {known.name}: {dropped} series another collector yields too, dropped"
            if dropped
            else None
        )


class ScrapeCollector:
    """Registered into the exporter's own CollectorRegistry; everything else hangs off it."""

    def __init__(
        self, collectors: dict[str, Collector], timeout: float = 8.0, trimmer: Trimmer | None = None
    ) -> None:
        self.collectors = dict(sorted(collectors.items()))
        self.timeout = timeout
        self.trimmer = trimmer  # hands the scrape's freed buffers back to the kernel (exporter.allocator)
        self.status = {name: CollectorStatus() for name in self.collectors}
        self._inflight: dict[str, Future[Run]] = {}
        self._logged: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._last: Collection | None = None
        self._fresh_lock = threading.Lock()  # one page-driven scrape at a time
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, 2 * len(self.collectors)), thread_name_prefix="collector"
        )

    def _submit(self, name: str) -> Future[Run]:
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
        singleflight.scrape_started()  # this scrape's reads are its own (but shared among its collectors)
        futures = {name: self._submit(name) for name in self.collectors}
        exposition = _Exposition()
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
                run = future.result(timeout=remaining)
            except FutureTimeout:
                elapsed = time.monotonic() - started
                self._failed(name, f"timed out after {self.timeout:g}s", elapsed)
            except FailedRunError as exc:  # failed, with the families that say why
                self._failed(name, printable(str(exc)), exc.run.elapsed)
                self._add(name, exc.run, exposition)
                elapsed = exc.run.elapsed
            except Exception as exc:  # a collector's failure must never fail the scrape
                elapsed = time.monotonic() - started
                self._failed(name, printable(f"{type(exc).__name__}: {exc}"), elapsed)
            else:
                ok, elapsed = True, run.elapsed
                if self._logged.pop((name, "failure"), None) is not None:
                    # paired with the failure's warning: a collector flapping between concurrent scrapes
                    # logs each failure and each recovery once, never a recovery from a failure not shown
                    log.info("collector recovered", extra={"collector": name})
                self.status[name] = CollectorStatus(True, elapsed, "", time.time())
                self._add(name, run, exposition)
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], elapsed)
        build = InfoMetricFamily(
            "ssh_access_build", "Version of ssh-access-exporter.", value={"version": __version__}
        )
        families = (*exposition.families.values(), success, duration, build)
        with self._lock:
            self._last = Collection(families, dict(self.status), time.time())
        if self.trimmer is not None:
            self.trimmer.maybe()
        yield from families

    def last_collection(self) -> Collection | None:
        """The last scrape that ran to its end (for /metrics or the landing page), None before any."""
        with self._lock:
            return self._last

    def recent_collection(self, max_age: float) -> Collection:
        """The last scrape if it ended at most `max_age` seconds ago, else a new one. Page requests run
        one scrape at a time (others wait for it and read its result), and a scrape shares each
        collector's in-flight run and deadline with /metrics: the page costs the host no more than a
        scrape does."""
        with self._fresh_lock:
            last = self.last_collection()
            if last is not None and 0.0 <= time.time() - last.finished <= max_age:
                return last
            for _ in self.collect():
                pass
            last = self.last_collection()
            assert last is not None  # collect() ran to its end
            return last

    def _add(self, name: str, run: Run, exposition: _Exposition) -> None:
        notes = list(run.repairs)
        for metric in run.families:
            refused = exposition.add(metric)
            if refused is not None:
                notes.append(refused)
        if notes:
            self._log_changes(name, "output", "collector output repaired", "; ".join(notes)[:2000])

    def _failed(self, name: str, error: str, elapsed: float) -> None:
        self._log_changes(name, "failure", "collector failed", error)
        self.status[name] = CollectorStatus(False, elapsed, error, time.time())

    def _log_changes(self, name: str, kind: str, message: str, detail: str) -> None:
        """A warning when the collector starts failing (or needing repairs) or does so differently; the
        same thing repeated every scrape is logged at debug, so a long outage does not flood the log."""
        repeated = self._logged.get((name, kind)) == detail
        self._logged[(name, kind)] = detail
        if kind == "failure":
            self._logged.pop((name, "output"), None)
        (log.debug if repeated else log.warning)(message, extra={"collector": name, "err": detail})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
