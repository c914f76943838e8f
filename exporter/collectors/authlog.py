"""The registered auth-log collector: `LiveAuthlogCollector` follows the host's files or journal in a
thread and renders its counters with authlog_families (exporter.collectors.families.authlog).

Each source (a file as configured or found at start, the journal when used) reports whether it is read
now; while one is not, the collector fails and exposes only that:

    # HELP ssh_access_authlog_source_up 1 when the log source is read now; 0 when it cannot be ...
    # TYPE ssh_access_authlog_source_up gauge
    ssh_access_authlog_source_up{source="/var/log/auth.log"} 0.0
    # HELP ssh_access_collector_success 1 if the collector's last scrape worked.
    # TYPE ssh_access_collector_success gauge
    ssh_access_collector_success{collector="authlog"} 0.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

from prometheus_client.metrics_core import Metric

from exporter.collectors.families.authlog import AuthlogCollector, authlog_families, source_up_family
from exporter.config import ConfigError
from exporter.options import AuthlogOptions
from exporter.registry import Context, PartialFailureError, register_collector
from exporter.sources.authlog.follow import Batch, LogFollower, Source, state_file_for
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.journal import journal_reader_for
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats
from exporter.sources.authlog.tail import FileTailer, configured_log_files, default_log_files
from exporter.sources.host.paths import HostPaths

__all__ = ["AuthlogCollector", "LiveAuthlogCollector", "authlog_families"]


class SourceUnavailableError(PartialFailureError, RuntimeError):
    """A configured log source cannot be read now (missing, vanished, permission denied); it carries
    `ssh_access_authlog_source_up` for every source."""


class LiveAuthlogCollector:
    """Follows the host's auth log (files, or the journal) in a thread; a scrape renders the counters.

    Counters come from the follower, never from the scrape, so no line is lost or counted twice
    between scrapes. A source that cannot be read now fails the scrape of this collector
    (`ssh_access_collector_success{collector="authlog"} 0`, with the reason logged, and
    `ssh_access_authlog_source_up` 0 for it) while the follower keeps trying, so the counters carry on
    when the file comes back; when no source at all can be read, the log line says that sshd's lines
    reach none of them. So does a path that holds what
    cannot be read (a directory, a FIFO, a link out of --path.rootfs) while the file read before it is
    still drained.
    """

    def __init__(self, sources: Sequence[Source], stats: Stats, interval_s: float = 0.25) -> None:
        self.stats = stats
        self._framer = Framer()
        for source in sources:
            stats.source(source.name)
        self.follower = LogFollower(sources, self._sink, interval_s=interval_s)
        self.follower.start()

    def _sink(self, name: str, batch: Batch) -> None:
        if batch and isinstance(batch[0], str):  # a tailer's raw lines (a batch is one source's: one kind)
            # Lines come without their newlines (none holds one): joined back, the chunk takes the fast
            # path (fastscan), which counts exactly as feed_batch(parse_many(lines)) would.
            self.stats.feed_text("\n".join(batch) + "\n", name, self._framer)
        else:  # the journal's records, already framed
            self.stats.feed_batch(cast(list[SyslogRecord], batch), name)

    def collect(self) -> Iterator[Metric]:
        problems = []
        up: dict[str, bool] = {}
        for name, health in self.follower.source_health().items():
            rotations = int(str(health.get("rotations", 0))) + int(str(health.get("truncations", 0)))
            self.stats.set_rotations(name, rotations)
            up[name] = False
            if not health.get("open", False):
                problems.append(str(health.get("last_error") or f"{name}: not open"))
            elif not health.get("path_readable", True):  # an older file is still drained: no line is lost
                problems.append(str(health.get("last_error") or f"{name}: cannot be read"))
            else:
                up[name] = True
        if problems:
            message = "; ".join(problems)
            if not any(up.values()):
                message = f"no auth log source can be read, sshd's lines reach none: {message}"
            raise SourceUnavailableError(message, [source_up_family(up)])
        yield from authlog_families(self.stats.snapshot(), up)

    def close(self) -> None:
        self.follower.stop()


def build_sources(paths: HostPaths, options: AuthlogOptions) -> list[Source]:
    """Files as configured or found, and the journal when asked for or when there is no file."""
    state_dir, from_start = options.state_dir, options.from_start
    files = configured_log_files(paths, options.files) if options.files else default_log_files(paths)
    sources: list[Source] = []
    for local in files:
        name = paths.unroot(local)
        state = state_file_for(state_dir, f"file:{name}") if state_dir else None
        sources.append(FileTailer(local, from_start=from_start, state_file=state, name=name, paths=paths))
    journal = options.journal
    if journal == "on" or (journal == "auto" and not files):
        state = state_file_for(state_dir, "journal") if state_dir else None
        sources.append(journal_reader_for(paths, from_start=from_start, state_file=state, name="journal"))
    return sources


def _factory(context: Context) -> LiveAuthlogCollector:
    options = context.options.authlog
    if options.top_offenders < 0:
        raise ConfigError("collector.authlog.top-offenders: must be 0 or more")
    if options.state_dir is not None and not options.state_dir.is_dir():
        raise ConfigError(f"collector.authlog.state-dir: {options.state_dir} is not a directory")
    sources = build_sources(context.paths, options)
    if not sources:
        raise ConfigError("collector.authlog: no auth log file found and --collector.authlog.journal=off")
    return LiveAuthlogCollector(sources, Stats(top_n=options.top_offenders))


register_collector("authlog", _factory, enabled=True, help="sshd events from the auth log or journal")
