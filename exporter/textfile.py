"""`ssh-access-exporter textfile --output FILE`: one collection for node_exporter's textfile collector.

For sites that open no new port: a timer runs this every minute (deploy/systemd/ssh-access-exporter-
textfile.{service,timer}) and node_exporter (`--collector.textfile.directory`) serves the file. The
collection is the server's first scrape (exporter.check.collect_once: the same collectors, options and
deadlines), self-metrics included (`ssh_access_collector_success`, its durations, build info), without
the process_* and python_* families: node_exporter has its own.

The auth log's counters cannot come from one run's reading: a run sees only the lines written since the
last. So each run
1. follows the log with positions kept in the state directory (`--collector.authlog.state-dir`, by
   default /var/lib/ssh-access-exporter; the tailer's own state files, as the server keeps them), and
   so reads only what is new since the last run, a rotated file drained from where the last run
   stopped as the tailer does after a restart;
2. waits until every source was read to its end (at most --scrape.timeout), collects, and stops;
3. adds this run's counts to the totals kept in STATE_DIR/textfile-totals.json (keyed by sample name
   and labels, written atomically) and exposes those totals: the counters never go backwards, and a
   series seen once is exposed in every later run.
The first run starts at the end of the files (like the server; with --collector.authlog.from-start,
at their start). Gauges (top offenders, throttling, last event) are this run's. The tailer saves its
positions as it reads, so a run killed before saving its totals loses that run's lines, never counts one
twice; a journal read before it returned its first entry has no cursor yet, and the next run starts from
its own start. Do not point the server and this command at one state directory: each moves the other's
positions. A file lock (STATE_DIR/textfile.lock) keeps two runs apart.

The output is written to a temporary file in the same directory (its name does not end in .prom, so
node_exporter never reads it half-written), flushed to disk, given mode 0644 and renamed over FILE. A run
that cannot write it, or the totals, leaves the old file in place and exits 1 with a message; a collector
that fails is no failure of the run (its `collector_success` is 0 in the file, as on /metrics).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.check import collect_once, exit_now, host_collectors
from exporter.collectors.authlog import LiveAuthlogCollector, authlog_families
from exporter.config import ConfigError
from exporter.flagparse import FlagParser
from exporter.logsetup import setup_logging
from exporter.options import (
    SERVE,
    CollectorSwitch,
    LogOptions,
    Options,
    add_host_flags,
    add_scrape_timeout_flag,
)
from exporter.registry import registrations
from exporter.sources.authlog.follow import LogFollower
from exporter.sources.host.files import write_file

STATE_DIR = "/var/lib/ssh-access-exporter"
TOTALS = "textfile-totals.json"
LOCK = "textfile.lock"
OUTPUT_MODE = 0o644  # node_exporter runs as its own user
TOTALS_VERSION = 1
DRAIN_POLL_S = 0.02
EXIT_OK, EXIT_FAILED = 0, 1
PROG = "ssh-access-exporter textfile"

Key = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


class TextfileError(Exception):
    """The run could not keep its state or write its output: exit 1 with this message."""


class Totals:
    """The auth log counters summed over every run, by sample name and labels (STATE_DIR/TOTALS)."""

    def __init__(self, path: Path, values: dict[Key, float] | None = None) -> None:
        self.path = path
        self.values = dict(values or {})

    @classmethod
    def load(cls, path: Path) -> Totals:
        """Empty when there is no file yet; TextfileError when it cannot be read: starting again from 0
        would send every counter backwards, so that is left to the operator (remove the file)."""
        try:
            data = json.loads(path.read_bytes())
            if data.get("version") != TOTALS_VERSION:
                raise ValueError(f"version {data.get('version')!r}, not {TOTALS_VERSION}")
            values = {
                (str(row["name"]), tuple(sorted((str(k), str(v)) for k, v in row["labels"].items()))): float(
                    row["value"]
                )
                for row in data["counters"]
            }
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise TextfileError(
                f"cannot read the totals {path}: {exc} (remove it to count from 0 again)"
            ) from exc
        return cls(path, values)

    def add(self, families: Iterable[Metric]) -> None:
        """Adds the samples of the counter families (one run's counts)."""
        for family in families:
            if family.type == "counter":
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    self.values[key] = self.values.get(key, 0.0) + float(sample.value)

    def save(self) -> None:
        rows = [{"name": name, "labels": dict(labels), "value": value}
                for (name, labels), value in sorted(self.values.items())]  # fmt: skip
        data = json.dumps({"version": TOTALS_VERSION, "counters": rows}, indent=1).encode()
        try:
            write_file(self.path, data + b"\n", 0o600)
        except OSError as exc:
            raise TextfileError(f"cannot write the totals {self.path}: {exc.strerror or exc}") from exc

    def family(self, family: Metric) -> Metric:
        """The counter family with the totals as its samples (every series ever seen)."""
        summed = Metric(family.name, family.documentation, family.type, family.unit)
        names = {sample.name for sample in family.samples} | {f"{family.name}_total"}
        totals = sorted(self.values.items())
        summed.samples = [
            Sample(name, dict(labels), value) for (name, labels), value in totals if name in names
        ]
        return summed


def wait_drained(follower: LogFollower, deadline: float) -> bool:
    """Waits (until `deadline`, monotonic) for a round of the follower's polls that began after the call
    and left no source with more to read: what was written before the call is then read. False at the
    deadline (the rest is read by the next run)."""
    start = follower.health.polls
    while time.monotonic() < deadline:
        if follower.health.polls >= start + 2 and not any(s.more_pending for s in follower.sources):
            return True
        time.sleep(DRAIN_POLL_S)
    return False


class _Families:
    """generate_latest's collector: fixed families."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def textfile_parser(collectors: Iterable[CollectorSwitch]) -> FlagParser:
    parser = FlagParser(
        prog=PROG,
        description="Write one collection to FILE for node_exporter's textfile collector (atomically); the "
        "auth log counters are kept in --collector.authlog.state-dir across runs.",
        allow_abbrev=False,
    )
    parser.add_argument("--output", required=True, metavar="FILE", help="the .prom file to write (mode 0644)")
    add_scrape_timeout_flag(parser)
    add_host_flags(parser, collectors, SERVE)
    for action in parser._actions:  # this mode always keeps state: its default is a directory
        if "--collector.authlog.state-dir" in action.option_strings:
            action.default = STATE_DIR
            action.help = f"directory for read positions and the counters' totals (default {STATE_DIR})"
    return parser


def run(options: Options, output: Path, timeout: float) -> bool:
    """One collection written to `output`; TextfileError when the state or the output cannot be written.
    True when a collector overran its deadline (and still runs)."""
    state_dir = options.authlog.state_dir
    assert state_dir is not None  # the parser's default
    with host_collectors(options) as collectors:
        authlog = collectors.get("authlog")
        live = authlog if isinstance(authlog, LiveAuthlogCollector) else None
        if live is not None:
            wait_drained(live.follower, time.monotonic() + timeout)
        once = collect_once(collectors, timeout)
        families = list(once.collection.families)
        if live is not None:
            live.close()  # no more lines: what the totals add is all that was read, positions saved
            totals = Totals.load(state_dir / TOTALS)
            counted = authlog_families(live.stats.snapshot())
            totals.add(counted)
            totals.save()
            summed = {family.name for family in counted if family.type == "counter"}
            families = [totals.family(f) if f.name in summed else f for f in families]
    try:
        write_file(output, generate_latest(_Families(families)), OUTPUT_MODE)
    except OSError as exc:
        raise TextfileError(
            f"cannot write {output}: {exc.strerror or exc}; the previous file is left"
        ) from exc
    return once.overran


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One run at a time per state directory (a timer and a manual run, say)."""
    with open(state_dir / LOCK, "a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise TextfileError(f"another textfile run holds {state_dir / LOCK}") from exc
            raise
        yield


def main(argv: Sequence[str]) -> int:
    switches = registrations()
    parser = textfile_parser(switches)
    args = parser.parse_args(argv)
    logging_options = LogOptions.from_namespace(args)
    setup_logging(logging_options.level, logging_options.format)
    output = Path(args.output)
    state_dir = Path(str(getattr(args, "collector.authlog.state_dir")) or STATE_DIR)
    setattr(args, "collector.authlog.state_dir", str(state_dir))  # given empty: the default still
    try:
        if not output.parent.is_dir():
            raise ConfigError(f"output: {output.parent} is not a directory")
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        options = Options.from_namespace(args, switches)
        with _locked(state_dir):
            overran = run(options, output, float(getattr(args, "scrape.timeout")))
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    except (TextfileError, OSError) as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return EXIT_FAILED
    if overran:
        exit_now(EXIT_OK)
    return EXIT_OK
