"""The model of sshd on this host: effective config, its health, listeners and their load.

One `SshdReader.read()` gives a `SshdSnapshot` that the sshd collector and `diagnose` both render.
Expensive facts (running `sshd -T`, reading the binary) are cached on the signature of the files they
depend on, so a scrape re-runs sshd only after a config or binary change.

"Reload pending" compares the newest mtime of a listener's config files (Includes too) with the time
the listener last (re)started. sshd applies a reload (SIGHUP) by re-executing itself under the same
pid, which /proc does not date, but it rewrites its PidFile on every start: the reload time is the later
of the process start and the PidFile's mtime, when that file holds the listener's pid.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.host.commands import run_command
from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.binary import (
    SshdVersion,
    config_test_verdict,
    file_signature,
    read_version,
    version_from_output,
)
from exporter.sources.sshd.config import (
    ConfigProblem,
    EffectiveConfig,
    ParsedFiles,
    parse_sshd_t,
    read_config_files,
)
from exporter.sources.sshd.connections import ConnectionTracker, read_listener_trees
from exporter.sources.sshd.keywords import Keywords
from exporter.sources.sshd.processes import (
    DEFAULT_CONFIG,
    FileId,
    Listener,
    ListenerCheck,
    boot_time,
    check_listener,
    classify_listeners,
    file_id,
    read_processes,
)
from exporter.sources.sshd.sock_diag import NetnsSockets
from exporter.sources.sshd.sockets import (
    TABLES,
    ListeningSockets,
    connection_states,
    listening_sockets,
    own_listening_ports,
)

log = logging.getLogger(__name__)

TcpQuery = tuple[int, tuple[int, ...], tuple[str, ...]]  # listener pid, its ports, its TCP tables

# How often a full /proc scan looks for sshd instances started since the last one (a restarted
# instance is found at once: its old pid is gone).
FULL_SCAN_INTERVAL = 30.0
PID_FILE_BYTES = 4096  # a pid and a newline; anything longer is not sshd's PidFile
DEFAULT_BINARY = "/usr/sbin/sshd"


@dataclass(frozen=True)
class ConfigState:
    """The effective config and how it was obtained."""

    effective: EffectiveConfig | None  # None: neither sshd -T nor the files gave a usable config
    valid: bool | None  # `sshd -t` verdict; None when sshd could not tell (no binary, no host keys)
    sshd_t_error: str  # why `sshd -T` was not used ("" when it was)
    # problems the file parser met: lines sshd refuses, unreadable Includes (`ConfigProblem.refused`)
    parse_errors: tuple[ConfigProblem, ...]

    @property
    def refusals(self) -> tuple[ConfigProblem, ...]:
        """What sshd would refuse in the files now, each naming file, line and reason ("sshd would
        refuse its config: FILE:LINE REASON"). Empty when `sshd -t` accepted the config: sshd's own
        verdict wins over the file parser's reading."""
        if self.valid:
            return ()
        return tuple(problem for problem in self.parse_errors if problem.refused)


@dataclass(frozen=True)
class ListenerState:
    """One sshd instance as seen now."""

    listener: Listener
    started: float  # last (re)start, seconds since the epoch
    reload_pending: bool | None  # None: its config files could not be read
    ports: tuple[int, ...]
    ports_from_sockets: bool  # False: taken from the config (sockets need root)
    tables: tuple[str, ...]  # which TCP tables hold its connections (`tcp`, `tcp6`)
    tcp_states: dict[str, int]


@dataclass(frozen=True)
class SshdSnapshot:
    version: SshdVersion | None
    config: ConfigState
    listeners: tuple[ListenerState, ...]
    # systemd (pid 1) holds a listening socket on one of sshd's ports: sshd starts on the first
    # connection (ssh.socket), so no listener process is no outage
    socket_activated: bool = False

    @property
    def startups(self) -> int:
        return sum(state.listener.startups for state in self.listeners)


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class SshdReader:
    """Reads sshd's state under --path.rootfs / --path.procfs."""

    def __init__(self, paths: HostPaths, binary: str = DEFAULT_BINARY, config: str = DEFAULT_CONFIG):
        self.paths = paths
        self.binary = binary
        self.config = config
        self._version_cache: tuple[object, SshdVersion | None] = ((), None)
        self._config_cache: tuple[object, ConfigState] | None = None
        self._sockets_cache: dict[tuple[int, float], ListeningSockets | None] = {}
        self._known_listeners: dict[int, float] = {}  # pid -> process start, from the last full scan
        # pid -> (process start, whether it is trusted as a listener): checked once per process
        self._verdicts: dict[int, tuple[float, ListenerCheck]] = {}
        self._last_full_scan = -math.inf
        self._connections = ConnectionTracker(str(paths.procfs))
        self._diag = NetnsSockets()
        self._lock = threading.Lock()  # one pass at a time over the tracked connections and sockets
        self._tcp_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sshd-tcp")
        self._last_tcp_queries: list[TcpQuery] = []
        # (when, sshd's ports, listener pids) -> whether pid 1 listens on one of the ports
        self._activation: tuple[float, frozenset[int], frozenset[int], bool] | None = None
        self._activation_error = False

    # -- version -------------------------------------------------------------------------------
    def version(self) -> SshdVersion | None:
        local = self.paths.root_or_none(self.binary)
        if local is None:
            return None
        signature = file_signature([local])
        if self._version_cache[0] != signature:
            version = read_version(local, self.paths)
            if version is None and self.paths.is_host_root and local.exists():
                run = run_command(local, "-V")
                version = version_from_output(run.stderr + run.stdout)
            self._version_cache = (signature, version)
        return self._version_cache[1]

    # -- config --------------------------------------------------------------------------------
    def parse_files(self, config: str, version: SshdVersion | None = None) -> ParsedFiles:
        """The files of `config`, checked against the keywords of the sshd `version` (when known)."""
        keywords = Keywords.of(version.version, version.release) if version else None
        return read_config_files(self.paths, config, keywords)

    def config_state(self, version: SshdVersion | None) -> tuple[ConfigState, ParsedFiles]:
        parsed = self.parse_files(self.config, version)
        host_files = [*(parsed.files or [self.config]), self.binary]
        local_files = [local for local in map(self.paths.root_or_none, host_files) if local is not None]
        signature = (file_signature(local_files), tuple(host_files))
        if self._config_cache is None or self._config_cache[0] != signature:
            state = self._compute_config(parsed, version)
            if state.sshd_t_error:
                log.info(
                    "sshd -T unavailable, using the config file parser",
                    extra={"config": self.config, "reason": state.sshd_t_error},
                )
            self._log_refusals(state)
            self._config_cache = (signature, state)
        return self._config_cache[1], parsed

    def _log_refusals(self, state: ConfigState) -> None:
        """Each line the file parser takes for one sshd refuses, once per change of the files."""
        refused = [problem for problem in state.parse_errors if problem.refused]
        for problem in refused:
            extra = {"file": problem.file, "line": problem.line, "reason": problem.reason}
            if state.valid:  # sshd -t accepts it: the parser is wrong (keywords.py may need an update)
                log.info("sshd -t accepts a line the config file parser refuses", extra=extra)
            else:
                log.warning("sshd would refuse its config", extra=extra)

    def _compute_config(self, parsed: ParsedFiles, version: SshdVersion | None) -> ConfigState:
        ver = version.version if version else None
        files = tuple(parsed.files)
        binary = Path("/", self.binary)  # rootfs is / where it is run
        if not self.paths.is_host_root:
            reason = "--path.rootfs is not /: host binaries are not executed"
        elif not binary.exists():
            reason = f"{self.binary} not found"
        else:
            run = run_command(binary, "-T", "-f", self.config)
            valid = config_test_verdict(run)  # `sshd -T` checks the config exactly as `sshd -t` does
            if run.ok:
                try:
                    effective = EffectiveConfig.from_options(parse_sshd_t(run.stdout), "sshd_t", ver, files)
                    return ConfigState(effective, valid, "", tuple(parsed.errors))
                except (ValueError, IndexError) as exc:
                    reason = f"unexpected sshd -T output: {exc}"
            else:
                reason = (run.stderr.strip().splitlines() or ["failed"])[-1][:200]
                if valid is False:
                    log.warning("sshd config is invalid", extra={"config": self.config, "err": reason})
                    return ConfigState(self._from_files(parsed, ver), False, reason, tuple(parsed.errors))
        return ConfigState(self._from_files(parsed, ver), None, reason, tuple(parsed.errors))

    def _from_files(self, parsed: ParsedFiles, version: str | None) -> EffectiveConfig | None:
        if not parsed.files or parsed.aborted:  # aborted: sshd refuses such a config, or it is cut short
            return None
        try:
            return EffectiveConfig.from_options(parsed.options, "file", version, tuple(parsed.files))
        except (ValueError, IndexError) as exc:
            parsed.errors.append(ConfigProblem(self.config, None, str(exc), refused=False))
            return None

    # -- listeners -----------------------------------------------------------------------------
    def _started(self, listener: Listener, pid_file: str | None) -> float:
        """Process start, or the PidFile's mtime when sshd rewrote it since (a reload re-execs)."""
        started = listener.create_time
        if pid_file:
            try:
                local = self.paths.root(pid_file)
                if read_regular_text(local, PID_FILE_BYTES, paths=self.paths).strip() == str(listener.pid):
                    started = max(started, os.stat(local).st_mtime)
            except OSError:
                pass
        return started

    def _sockets(self, listener: Listener, started: float) -> ListeningSockets | None:
        """The listener's sockets, read once per (re)start: a reload may change them, nothing else does."""
        key = (listener.pid, started)
        if key not in self._sockets_cache:
            if len(self._sockets_cache) > 64:
                self._sockets_cache.clear()
            self._sockets_cache[key] = listening_sockets(self.paths.procfs, listener.pid)
        return self._sockets_cache[key]

    def _prefetch_tcp_states(self) -> dict[TcpQuery, Future[dict[str, int]]]:
        """Start counting TCP states for the listeners of the last scrape, on another thread: the
        kernel's walk of its connection table (most of the cost) then runs beside the title reads,
        and holds no GIL. A listener whose pid, ports or tables changed is counted again inline."""
        return {query: self._tcp_worker.submit(self._tcp_states, query) for query in self._last_tcp_queries}

    def _tcp_states(self, query: TcpQuery) -> dict[str, int]:
        pid, ports, tables = query
        return connection_states(self.paths.procfs, pid, set(ports), tables, self._diag)

    def _listener_state(
        self,
        listener: Listener,
        main: ConfigState,
        main_files: ParsedFiles,
        prefetched: dict[TcpQuery, Future[dict[str, int]]],
    ) -> ListenerState:
        if listener.config == self.config:
            parsed = main_files
            effective = main.effective
        else:
            parsed = self.parse_files(listener.config)
            effective = self._from_files(parsed, None)
        started = self._started(listener, effective.pid_file if effective else "/run/sshd.pid")
        mtimes = [m for m in (_mtime(self.paths.root_or_none(f)) for f in parsed.files) if m is not None]
        newest = max(mtimes, default=None)
        reload_pending = None if newest is None else newest > started
        listening = self._sockets(listener, started)
        if listening is not None:
            ports, tables = tuple(sorted(listening.ports)), listening.tables
        else:  # not root: the config's ports, both tables
            ports, tables = (effective.ports if effective else (22,)), TABLES
        query = (listener.pid, ports, tables)
        future = prefetched.get(query)
        states = future.result() if future is not None else self._tcp_states(query)
        return ListenerState(listener, started, reload_pending, ports, listening is not None, tables, states)

    def listeners(self, connections: bool = True) -> list[Listener]:
        """Known listeners are followed through children files (cost: sshd's processes only). A scan
        of /proc finds the listeners when one of them is gone and every FULL_SCAN_INTERVAL (for new
        ones); it skips the connections read last time, so under a flood it costs the host's other
        processes, not sshd's. Without `connections` (who asks only for ports) they are not read."""
        with self._lock:
            now = time.monotonic()
            if not self._known_listeners or now - self._last_full_scan >= FULL_SCAN_INTERVAL:
                self._find_listeners(now)
            tracker = self._connections if connections else None
            found = read_listener_trees(self.paths.procfs, self._known_listeners, tracker)
            if found is None:  # a listener went away, or restarted
                self._find_listeners(now)
                found = read_listener_trees(self.paths.procfs, self._known_listeners, tracker)
            if found is None:  # no children files (kernel without CONFIG_PROC_CHILDREN)
                found = self._trusted(classify_listeners(read_processes(self.paths.procfs)))
            return found

    def _find_listeners(self, now: float) -> None:
        processes = read_processes(self.paths.procfs, skip=self._connections.pids())
        trusted = self._trusted(classify_listeners(processes))
        self._known_listeners = {item.pid: item.create_time for item in trusted}
        self._last_full_scan = now

    def _trusted(self, candidates: list[Listener]) -> list[Listener]:
        """The candidates that root started from the configured binary (`check_listener`). A process
        is checked when first found (its pid and start time), not on every scrape; one that fails is
        ignored, with one log line for its lifetime."""
        verdicts: dict[int, tuple[float, ListenerCheck]] = {}
        binary: FileId | str | None = None  # opened when a process needs checking; str: why it cannot be
        btime = 0.0
        for listener in candidates:
            known = self._verdicts.get(listener.pid)
            if known is not None and abs(known[0] - listener.create_time) <= 0.5:
                verdicts[listener.pid] = known
                continue
            if binary is None:
                binary, btime = self._binary_id(), boot_time(self.paths.procfs)
            if isinstance(binary, str):
                check = ListenerCheck(False, binary)
            else:
                check = check_listener(self.paths.procfs, listener, btime, binary, self.binary)
            if check.reason:
                log.info(
                    "sshd listener trusted"
                    if check.trusted
                    else "sshd process not trusted as a listener, ignored",
                    extra={"pid": listener.pid, "config": listener.config[:200], "reason": check.reason},
                )
            verdicts[listener.pid] = (listener.create_time, check)
        self._verdicts = verdicts
        return [listener for listener in candidates if verdicts[listener.pid][1].trusted]

    def _binary_id(self) -> FileId | str:
        """The configured sshd binary's identity (opened inside rootfs), or why it has none."""
        try:
            descriptor = self.paths.open(self.paths.root(self.binary), os.O_PATH)
        except OSError as exc:
            return f"the sshd binary {self.binary} cannot be opened ({exc.strerror}): nothing to compare with"
        try:
            return file_id(os.fstat(descriptor))
        finally:
            os.close(descriptor)

    def ports(self) -> frozenset[int]:
        """The ports the sshd of `self.config` listens on, else its config file's `Port`s; empty when
        unknown. Cheap and never runs sshd (a running `sshd -T` is what other collectors race with)."""
        ports: set[int] = set()
        try:
            for listener in self.listeners(connections=False):
                found = (
                    listening_sockets(self.paths.procfs, listener.pid)
                    if listener.config == self.config
                    else None
                )
                if found is not None:
                    ports |= found.ports
        except (OSError, ValueError, IndexError):
            pass  # procfs unusable: the config's ports
        if ports:
            return frozenset(ports)
        parsed = self.parse_files(self.config)
        effective = self._from_files(parsed, None)
        return frozenset(effective.ports) if effective is not None else frozenset()

    def socket_activated(self, ports: frozenset[int], listeners: frozenset[int]) -> bool:
        """Whether systemd (pid 1 under procfs) holds a listening TCP socket on one of `ports`, as a
        socket unit for sshd does (Ubuntu 22.10+'s ssh.socket). pid 1's fds and its namespace's tables
        are read again every FULL_SCAN_INTERVAL, or at once when the ports or the listeners changed
        (sshd stopped, restarted): not every scrape. False when pid 1's fds cannot be read (not root),
        logged once: then a host without a listener is taken for one where sshd is down."""
        now = time.monotonic()
        cached = self._activation
        if (
            cached is not None
            and now - cached[0] < FULL_SCAN_INTERVAL
            and cached[1] == ports
            and cached[2] == listeners
        ):
            return cached[3]
        held = own_listening_ports(self.paths.procfs, 1)
        if held is None and not self._activation_error:
            log.info(
                "pid 1's sockets cannot be read: socket activation of sshd is not detected",
                extra={"procfs": str(self.paths.procfs)},
            )
        self._activation_error = held is None
        activated = bool(held and held & ports)
        self._activation = (now, ports, listeners, activated)
        return activated

    def _sshd_ports(self, config: ConfigState, states: tuple[ListenerState, ...]) -> frozenset[int]:
        """The ports sshd's config uses (its default 22 when the config is unusable), and those its
        listeners hold."""
        ports = set(config.effective.ports) if config.effective is not None else {22}
        for state in states:
            ports.update(state.ports)
        return frozenset(ports)

    def close(self) -> None:
        self._tcp_worker.shutdown(wait=True)
        with self._lock:
            self._connections.close()
            self._diag.close()

    def read(self) -> SshdSnapshot:
        version = self.version()
        config, parsed = self.config_state(version)
        prefetched = self._prefetch_tcp_states()
        try:
            listeners = self.listeners()
            states = tuple(
                self._listener_state(listener, config, parsed, prefetched) for listener in listeners
            )
        finally:
            wait(prefetched.values())
        self._last_tcp_queries = [(state.listener.pid, state.ports, state.tables) for state in states]
        self._diag.forget_unused()
        pids = frozenset(state.listener.pid for state in states)
        activated = self.socket_activated(self._sshd_ports(config, states), pids)
        return SshdSnapshot(version, config, states, activated)


class CachedPorts:
    """sshd's ports, asked again every `ttl` seconds: they change when sshd restarts, not per scrape."""

    def __init__(self, reader: SshdReader, ttl: float = 30.0) -> None:
        self.reader = reader
        self.ttl = ttl
        self._cached: tuple[float, frozenset[int]] | None = None

    def __call__(self) -> frozenset[int]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl:
            self._cached = (now, self.reader.ports())
        return self._cached[1]
