"""sshd's entries from the systemd journal, as SyslogRecords, through a non-blocking `poll()`.

Debian 12 has no /var/log/auth.log unless rsyslog is installed: the journal is then the only record.
Entries are matched by SYSLOG_IDENTIFIER or _COMM (`sshd`, `sshd-session`), not by unit: post-login
lines sit in session scopes, containers run sshd without a unit, and OpenSSH 9.8+ logs per-connection
lines as `sshd-session`.

Two backends behind one API:
- `binding`: the `systemd` Python package (systemd-python), read in the polling thread, no process.
  Optional because it compiles against libsystemd-dev (`pip install ssh-access-exporter[journal]`).
- `journalctl`: `journalctl --follow -o json` in a subprocess, read by a thread into a bounded queue
  (a full queue blocks the pipe, so journalctl waits instead of anything being dropped). If journalctl
  is missing, exits, or stays silent past `idle_restart_s`, it is restarted with backoff from the last
  cursor (or, before the first entry, from the time the reader started), so a restart neither loses
  nor repeats an entry. Errors are counted in `health`, logged once per change, never raised.

The cursor of the last entry handed out by `poll()` can be kept in a state file (JSON, written
atomically) so the next run resumes after it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import queue
import signal
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.sources.authlog.records import MAX_MESSAGE_CHARS, SyslogRecord
from exporter.sources.host.files import write_file
from exporter.sources.host.paths import HostPaths

log = logging.getLogger(__name__)

SSHD_IDENTS: tuple[str, ...] = ("sshd", "sshd-session")
JOURNAL_DIRS: tuple[str, ...] = ("/var/log/journal", "/run/log/journal")
# journald's native socket: sshd's lines reach the journal only while it exists. It is held by systemd
# (socket activation) even while journald itself is stopped, so its presence is the right test: a line
# sent to it starts journald. Journal files without it are an old record that nothing adds to.
JOURNAL_SOCKET = "/run/systemd/journal/socket"
RUN_SYSTEMD = "/run/systemd"  # present on a running systemd host; absent from a rootfs without its /run
_STATE_VERSION = 1
_READ_CHUNK = 64 * 1024
_MAX_ENTRY_BYTES = 4 * 1024 * 1024  # one JSON entry (journalctl --all prints fields of any size)


def journal_matches() -> list[str]:
    """journalctl match arguments: (SYSLOG_IDENTIFIER in SSHD_IDENTS) OR (_COMM in SSHD_IDENTS)."""
    return [f"SYSLOG_IDENTIFIER={i}" for i in SSHD_IDENTS] + ["+"] + [f"_COMM={i}" for i in SSHD_IDENTS]


def default_journal_dirs(paths: HostPaths) -> list[Path]:
    """The journal directories present under rootfs (persistent first, then volatile)."""
    return [p for p in map(paths.root_or_none, JOURNAL_DIRS) if p is not None and p.is_dir()]


def journal_reader_for(paths: HostPaths, **options: Any) -> JournalReader:
    """The reader for the host's journal: the local one, or journalctl --root=ROOTFS for another tree.
    It is down while journald's socket is missing under rootfs (journald not running), where the host's
    /run can be seen at all: a container given only the journal's directories (no /run/systemd under
    its rootfs) cannot tell, and its journal is judged by its files alone."""
    expected = [d for d in (paths.root_or_none(j) for j in JOURNAL_DIRS) if d is not None]
    run_systemd = paths.root_or_none(RUN_SYSTEMD)
    socket = None
    if run_systemd is not None and run_systemd.is_dir():
        socket = paths.root_or_none(JOURNAL_SOCKET) or paths.rootfs / JOURNAL_SOCKET.lstrip("/")
    if paths.is_host_root:
        return JournalReader(expected_dirs=expected, socket=socket, **options)
    return JournalReader(root=paths.rootfs, expected_dirs=expected, socket=socket, **options)


def is_socket(path: Path) -> bool:
    """Whether a socket is at `path` (a link to one counts: /dev/log is one on systemd hosts)."""
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def holds_journal_files(directory: Path, depth: int = 1) -> bool:
    """Whether `directory` (or a directory in it: journald writes under MACHINE-ID/) holds a journal
    file the exporter may read."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith((".journal", ".journal~")):
                    if entry.is_file() and os.access(entry.path, os.R_OK):
                        return True
                elif (
                    depth
                    and entry.is_dir(follow_symlinks=False)
                    and holds_journal_files(Path(entry.path), depth - 1)
                ):
                    return True
    except OSError:
        return False
    return False


# ---- parsing (pure: tests feed it strings) ---------------------------------------------------------


def _text(value: Any) -> str | None:
    """A journal field as text: JSON gives str, a list of byte values (binary data), or a list of
    either when the field occurs more than once in the entry (the first is taken)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(b, int) for b in value):
            try:
                return bytes(value).decode("utf-8", "replace")
            except ValueError:  # values outside 0..255
                return None
        return _text(value[0])
    if isinstance(value, datetime):
        return str(value.timestamp())
    return str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _realtime(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    usec = _int(value)
    return usec / 1_000_000 if usec is not None else None


def record_from_entry(entry: dict[str, Any]) -> SyslogRecord | None:
    """A journal entry (JSON object or binding dict) as a SyslogRecord; None when it is not sshd's."""
    ident = _text(entry.get("SYSLOG_IDENTIFIER"))
    comm = _text(entry.get("_COMM"))
    if ident not in SSHD_IDENTS and comm not in SSHD_IDENTS:
        return None
    message = _text(entry.get("MESSAGE"))
    if message is None:
        return None
    message = message.rstrip("\n")[:MAX_MESSAGE_CHARS]
    pid = _int(entry.get("SYSLOG_PID"))
    if pid is None:
        pid = _int(entry.get("_PID"))
    return SyslogRecord(
        message=message,
        # Matched as sshd's process under another identifier: it is sshd's line all the same.
        ident=ident if ident in SSHD_IDENTS else comm,
        pid=pid,
        host=_text(entry.get("_HOSTNAME")),
        time=_realtime(entry.get("__REALTIME_TIMESTAMP")),
    )


def parse_journal_json(line: str | bytes) -> tuple[SyslogRecord | None, str | None]:
    """One line of `journalctl -o json`: (record or None, the entry's cursor or None).

    A line that is not a JSON object gives (None, None); an entry that is not sshd's gives its cursor
    with no record, so the reader still advances past it.
    """
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: `[[[[...` deeper than the interpreter's stack
        return None, None
    if not isinstance(entry, dict):
        return None, None
    return record_from_entry(entry), _text(entry.get("__CURSOR"))


# ---- the reader ------------------------------------------------------------------------------------


@dataclass
class JournalHealth:
    """Counters for the pipeline-health metrics; `open` is True while entries can arrive."""

    backend: str = ""
    entries_read: int = 0  # sshd records handed out by poll()
    parse_errors: int = 0
    restarts: int = 0  # journalctl processes started after the first
    read_errors: int = 0
    open: bool = False
    last_error: str | None = None


class JournalReader:
    """Follows sshd's journal entries; `poll()` never blocks and returns the records since the last call.

    `directory` / `files` point at a journal other than the host's (tests, a --path.rootfs tree);
    `root` makes journalctl read the journal directories under that root (`--root`). `queue_size`
    counts batches (one per 64 KiB of journalctl output), so at most a few MB wait in memory. `socket`:
    the local path of journald's socket (JOURNAL_SOCKET under the rootfs); while none is there the
    journal is not running and the reader says so (None: not checked, as for a journal copied elsewhere).
    """

    def __init__(
        self,
        *,
        directory: Path | None = None,
        files: Sequence[Path] = (),
        root: Path | None = None,
        backend: str = "auto",
        from_start: bool = False,
        state_file: Path | None = None,
        state_interval_s: float = 1.0,
        journalctl: str = "journalctl",
        queue_size: int = 256,
        max_batch: int = 20_000,
        backoff_s: tuple[float, float] = (1.0, 30.0),
        idle_restart_s: float | None = 300.0,
        name: str = "journal",
        expected_dirs: Sequence[Path] | None = None,
        socket: Path | None = None,
    ) -> None:
        if backend not in ("auto", "binding", "journalctl"):
            raise ValueError(f"unknown journal backend {backend!r}")
        self.name = name
        self.health = JournalHealth()
        self.more_pending = False
        self._directory = directory
        self._files = list(files)
        self._root = root
        # where the journal is when neither `directory` nor `files` say (JOURNAL_DIRS under root)
        base = root if root is not None else Path("/")
        self._expected_dirs = (
            list(expected_dirs) if expected_dirs is not None else [base / d.lstrip("/") for d in JOURNAL_DIRS]
        )
        self._socket = socket
        self._from_start = from_start
        self._state_file = state_file
        self._state_interval = state_interval_s
        self._last_state_write = 0.0
        self._max_batch = max_batch
        self._cursor: str | None = None  # of the last entry handed out by poll()
        self._cursor_written: str | None = None
        self._error_kind: str | None = None
        self._lock = threading.Lock()
        if state_file is not None:
            self._cursor = self._load_cursor(state_file)
        binding = self._import_binding() if backend in ("auto", "binding") else None
        if backend == "binding" and binding is None:
            raise RuntimeError("the systemd Python binding is not installed (pip install systemd-python)")
        impl: _Binding | _Journalctl | None = None
        if binding is not None and root is None:
            try:
                impl = _Binding(self, binding)
                self.health.backend = "binding"
            except (OSError, ValueError) as exc:  # e.g. an unreadable journal directory
                log.warning("journal: the systemd binding failed (%s); using journalctl instead", exc)
        if impl is None:
            self.health.backend = "journalctl"
            impl = _Journalctl(self, journalctl, queue_size, backoff_s, idle_restart_s)
        self._impl: _Binding | _Journalctl = impl

    @staticmethod
    def _import_binding() -> Any | None:
        try:
            return importlib.import_module("systemd.journal")
        except ImportError:
            return None

    @property
    def pid(self) -> int | None:
        """The running journalctl's pid (None with the binding, or while it is being restarted)."""
        return self._impl.pid if isinstance(self._impl, _Journalctl) else None

    def poll(self) -> list[SyslogRecord]:
        """Records that arrived since the last poll (at most max_batch; then more_pending is True)."""
        records, cursor = self._impl.poll(self._max_batch)
        if cursor is not None:
            self._cursor = cursor
        self.more_pending = len(records) >= self._max_batch
        self.health.entries_read += len(records)
        return records

    def checkpoint(self, *, force: bool = False) -> None:
        """Persist the last delivered cursor (at most every state_interval_s unless forced)."""
        if self._state_file is None or self._cursor is None or self._cursor == self._cursor_written:
            return
        now = time.monotonic()
        if not force and now - self._last_state_write < self._state_interval:
            return
        data = json.dumps({"version": _STATE_VERSION, "cursor": self._cursor}).encode()
        try:
            write_file(self._state_file, data)
        except OSError as exc:
            self._error("state", f"cannot write state file {self._state_file}: {exc}")
            return
        self._cursor_written = self._cursor
        self._last_state_write = now

    def close(self) -> None:
        """Stop journalctl (by its pid) and its threads, and save the cursor."""
        self._impl.close()
        self.checkpoint(force=True)
        self.health.open = False

    def _load_cursor(self, path: Path) -> str | None:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s: %s", path, exc)
            return None
        if isinstance(data, dict) and data.get("version") == _STATE_VERSION:
            cursor = data.get("cursor")
            if isinstance(cursor, str) and cursor:
                self._cursor_written = cursor
                return cursor
        return None

    def _error(self, kind: str, message: str) -> None:
        """Count every error; log only when the kind of error changes."""
        with self._lock:
            self.health.read_errors += 1
            self.health.last_error = message
            changed = kind != self._error_kind
            self._error_kind = kind
        if changed:
            log.warning("journal: %s", message)

    def _ok(self) -> None:
        with self._lock:
            was, self._error_kind = self._error_kind, None
            self.health.open = True
        if was is not None:
            log.info("journal: reading again")

    def journal_problem(self) -> str | None:
        """Why the journal cannot carry sshd's lines now (journald not running: no socket; no journal
        file where it is looked for, or none the exporter may read); None when it can. journalctl would
        only exit, again and again, or wait on nothing."""
        if self._socket is not None and not is_socket(self._socket):
            return f"journal not running (no {JOURNAL_SOCKET})"
        if self._files:
            unreadable = [str(f) for f in self._files if not os.access(f, os.R_OK)]
            return f"journal files cannot be read: {', '.join(unreadable)}" if unreadable else None
        dirs = [self._directory] if self._directory is not None else self._expected_dirs
        if any(holds_journal_files(d) for d in dirs):
            return None
        where = " or ".join(str(d) for d in dirs) or "nowhere"
        return f"journal: no journal file readable in {where}"

    def health_dict(self) -> dict[str, object]:
        health = asdict(self.health)
        problem = self.journal_problem()
        if problem is not None:
            health["path_readable"] = False
            health["last_error"] = problem
        return health


class _Binding:
    """Reads through sd-journal in the caller's thread: no process, no queue."""

    def __init__(self, owner: JournalReader, module: Any) -> None:
        self._owner = owner
        if owner._directory is not None:
            reader = module.Reader(path=str(owner._directory))
        elif owner._files:
            reader = module.Reader(files=[str(f) for f in owner._files])
        else:
            reader = module.Reader()
        for ident in SSHD_IDENTS:
            reader.add_match(SYSLOG_IDENTIFIER=ident)
        reader.add_disjunction()
        for ident in SSHD_IDENTS:
            reader.add_match(_COMM=ident)
        cursor = owner._cursor
        positioned = False
        if cursor is not None:
            try:
                reader.seek_cursor(cursor)
                entry = reader.get_next()  # the saved entry itself, already counted
                positioned = True
                if entry and entry.get("__CURSOR") != cursor:
                    reader.get_previous()  # the cursor's entry is gone: do not skip the next one
            except (OSError, ValueError) as exc:
                log.warning("journal: saved cursor not usable (%s); starting at the end", exc)
        if not positioned:
            if owner._from_start:
                reader.seek_head()
            else:
                reader.seek_tail()
                reader.get_previous()
        self._reader = reader
        owner._ok()

    def poll(self, limit: int) -> tuple[list[SyslogRecord], str | None]:
        out: list[SyslogRecord] = []
        cursor: str | None = None
        try:
            self._reader.wait(0)  # picks up new and rotated journal files
            while len(out) < limit:
                entry = self._reader.get_next()
                if not entry:
                    break
                cursor = _text(entry.get("__CURSOR")) or cursor
                record = record_from_entry(entry)
                if record is not None:
                    out.append(record)
        except OSError as exc:
            self._owner._error("read", f"reading the journal failed: {exc}")
        return out, cursor

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.close()


class _Journalctl:
    """journalctl --follow in a subprocess, supervised by a thread that restarts it with backoff."""

    def __init__(
        self,
        owner: JournalReader,
        journalctl: str,
        queue_size: int,
        backoff_s: tuple[float, float],
        idle_restart_s: float | None,
    ) -> None:
        self._owner = owner
        self._journalctl = journalctl
        self._queue: queue.Queue[list[tuple[SyslogRecord | None, str]]] = queue.Queue(queue_size)
        self._backoff = backoff_s
        self._idle_restart = idle_restart_s
        self._closing = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        self._read_cursor = owner._cursor  # of the last entry read from the pipe: where a restart resumes
        self._started_at = time.time()  # before the first entry, a restart resumes from here
        self._last_output = time.monotonic()
        self._stderr: deque[str] = deque(maxlen=5)
        self._thread = threading.Thread(target=self._supervise, name=f"journalctl-{owner.name}", daemon=True)
        self._thread.start()

    def command(self, first: bool) -> list[str]:
        o = self._owner
        cmd = [self._journalctl, "--follow", "--output=json", "--no-pager", "--all", "--quiet"]
        if o._directory is not None:
            cmd.append(f"--directory={o._directory}")
        cmd += [f"--file={f}" for f in o._files]
        if o._root is not None:
            cmd.append(f"--root={o._root}")
        if self._read_cursor is not None:
            cmd.append(f"--after-cursor={self._read_cursor}")
        elif o._from_start:
            cmd.append("--lines=all")
        elif first:
            cmd.append("--lines=0")
        else:  # restarted before any entry arrived: nothing since we started has been seen
            cmd += ["--lines=all", f"--since=@{self._started_at:.6f}"]
        return [*cmd, *journal_matches()]

    def _supervise(self) -> None:
        delay = self._backoff[0]
        first = True
        while not self._closing.is_set():
            started = time.monotonic()
            self._run_once(first)
            first = False
            if self._closing.is_set():
                break
            if time.monotonic() - started > 30:
                delay = self._backoff[0]  # it ran fine for a while: restart quickly
            self._closing.wait(delay)
            delay = min(delay * 2, self._backoff[1])
            self._owner.health.restarts += 1

    def _run_once(self, first: bool) -> None:
        cmd = self.command(first)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True
            )
        except OSError as exc:
            self._owner._error("spawn", f"cannot run {self._journalctl}: {exc.strerror or exc}")
            return
        with self._proc_lock:
            if self._closing.is_set():
                _kill(proc)
                return
            self._proc = proc
        self._last_output = time.monotonic()
        self._owner.health.open = True
        err_thread = threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True)
        err_thread.start()
        assert proc.stdout is not None
        cursor_used = self._read_cursor
        produced = self._pump(proc.stdout.fileno())
        rc = proc.wait()
        err_thread.join(2)
        with self._proc_lock:
            self._proc = None
        if not self._closing.is_set():
            detail = "; ".join(self._stderr) or "no message"
            self._owner._error("exit", f"{self._journalctl} exited with status {rc}: {detail}")
            self._owner.health.open = False
            if cursor_used is not None and not produced and "cursor" in detail.lower():
                # A cursor journalctl rejects (another machine's, corrupt state) would fail forever.
                log.warning("journal: cursor rejected; resuming from the time the reader started")
                self._read_cursor = None

    def _pump(self, fd: int) -> bool:
        """Read journalctl's output in chunks; queue one parsed batch per chunk (cheaper than per entry).

        Returns whether journalctl printed anything at all.
        """
        healthy = False
        pending = b""
        skipping = False  # inside an entry longer than _MAX_ENTRY_BYTES: drop it up to its newline
        while not self._closing.is_set():
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except OSError:
                break
            if not chunk:
                break
            self._last_output = time.monotonic()
            if not healthy:  # only output proves it works: a crash loop logs one line, not two per restart
                healthy = True
                self._owner._ok()
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if skipping and lines:
                lines.pop(0)
                skipping = False
            if len(pending) > _MAX_ENTRY_BYTES:
                pending, skipping = b"", True
                self._owner.health.parse_errors += 1
            batch: list[tuple[SyslogRecord | None, str]] = []
            for line in lines:
                record, cursor = parse_journal_json(line)
                if cursor is None:
                    self._owner.health.parse_errors += 1
                    continue
                batch.append((record, cursor))
            if not batch:
                continue
            self._read_cursor = batch[-1][1]
            while not self._closing.is_set():
                try:
                    self._queue.put(batch, timeout=0.2)
                    break
                except queue.Full:  # backpressure: journalctl waits on its pipe, nothing is dropped
                    continue
        return healthy

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            text = raw.decode("utf-8", "replace").strip()
            if text:
                self._stderr.append(text[:300])

    def poll(self, limit: int) -> tuple[list[SyslogRecord], str | None]:
        self._check_idle()
        out: list[SyslogRecord] = []
        cursor: str | None = None
        taken = 0
        while taken < limit:  # whole batches: may pass the limit by one batch
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            taken += len(batch)
            out.extend(record for record, _ in batch if record is not None)
            cursor = batch[-1][1]
        return out, cursor

    def _check_idle(self) -> None:
        """journalctl silent for too long may be stuck (a broken file): restart it from the cursor."""
        if self._idle_restart is None or time.monotonic() - self._last_output < self._idle_restart:
            return
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            self._last_output = time.monotonic()
            log.info("journal: journalctl silent for %.0f s; restarting it", self._idle_restart)
            _kill(proc)

    @property
    def pid(self) -> int | None:
        with self._proc_lock:
            return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        self._closing.set()
        with self._proc_lock:
            proc = self._proc
        if proc is not None:
            _kill(proc)
        self._thread.join(5)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill journalctl by its pid (only while it is unreaped, so the pid cannot be reused) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
