"""Follow a log file like `tail -F`, by polling, without losing or repeating a line across rotations.

Why polling: inotify misses events on some filesystems (NFS, overlay bind mounts of a host's /var/log)
and a 250 ms poll costs two stat calls. What it handles:

- rename-and-create rotation: the old file stays open and is drained after the new one appears, for as
  long as it keeps growing (a syslog daemon writes to it until it is told to reopen), so no line written
  before the writer switched is lost;
- copytruncate: a file that shrank, or whose bytes before our offset changed (truncated and refilled
  between two polls), is read again from 0; the bytes written between our last read and the copy are
  read from the rotated copy (`NAME.1`, `NAME-DATE`) when its content proves it is that copy;
- the file vanishing and coming back (read from its start), a partial last line (held until its
  newline, emitted when it passes the cap), invalid UTF-8 (replaced), lines of any length (only
  `max_line_bytes` kept; the rest is read in chunks and dropped, so memory stays bounded);
- limits (as for tail -F): two rotations within one poll interval, or a copytruncate of a file that
  was empty at the last poll, can lose the lines only the rotated copy holds;
- errors (missing file, permission denied, a directory) never raise: they are counted in `health`
  and logged once per change of state. While the path holds something that cannot be read (a directory,
  a FIFO, a file it may not open) the file opened before is still drained, and `health.path_readable`
  is False, so the collector says the source is failing instead of reporting all is well;
- --path.rootfs: with `paths`, every open (the file, its successors, its rotated copies) and the stat
  that detects a rotation resolve inside the rootfs (`HostPaths.open`), so a log swapped for a link
  that leads out of it is never followed; only regular files are opened (a FIFO would block).

An optional state file (JSON, written atomically) holds the file's device, inode, offset and a
fingerprint of the bytes before the offset, so a restart resumes where the last run stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from exporter.sources.host.files import open_regular_file, write_file
from exporter.sources.host.paths import HostPaths

log = logging.getLogger(__name__)

# Files sshd's syslog lines land in, by distribution family (Debian/Ubuntu, RHEL/Fedora).
AUTH_LOG_CANDIDATES: tuple[str, ...] = ("/var/log/auth.log", "/var/log/secure")

DEFAULT_MAX_LINE_BYTES = 16 * 1024
_CHUNK = 256 * 1024
_FINGERPRINT = 64  # bytes before the offset that identify "the same content" across truncation
_STATE_VERSION = 1


def default_log_files(paths: HostPaths) -> list[Path]:
    """The auth log files present under rootfs (Debian 12 has none unless rsyslog is installed)."""
    return [p for p in map(paths.root_or_none, AUTH_LOG_CANDIDATES) if p is not None and p.is_file()]


def candidate_log_files(paths: HostPaths) -> list[Path]:
    """Where the distributions' auth logs would be under rootfs, present or not: each is followed as an
    optional source, so a file that appears later (rsyslog installed after the exporter started) is read
    without a restart. A candidate whose links cannot be followed inside the rootfs keeps its plain place."""
    return configured_log_files(paths, AUTH_LOG_CANDIDATES)


def configured_log_files(paths: HostPaths, host_files: Iterable[str]) -> list[Path]:
    """The local paths of configured files. One whose links cannot be followed inside the rootfs keeps
    its plain place under it, so that it is still a source, whose contained open reports why (ELOOP)."""
    return [
        paths.root_or_none(f) or paths.rootfs / PurePosixPath("/", f).relative_to("/") for f in host_files
    ]


@dataclass
class TailHealth:
    """Counters for the pipeline-health metrics; `open` is True while the file is being read."""

    lines_read: int = 0
    bytes_read: int = 0
    rotations: int = 0
    truncations: int = 0
    read_errors: int = 0
    lines_truncated: int = 0  # lines longer than the cap, of which only the cap was kept
    open: bool = False
    path_readable: bool = True  # False while the path holds what cannot be read (an older file may be open)
    missing: bool = False  # nothing is at the path (not yet, or no more): a file created there is read
    optional: bool = False  # a candidate, not a configured file: missing is no problem while another is read
    last_error: str | None = None


class _OpenFile:
    """One open file descriptor with its own read position and unfinished last line."""

    def __init__(self, fd: int, st: os.stat_result, offset: int) -> None:
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.offset = offset  # next byte to read
        self.size_seen = st.st_size
        self.mtime_seen = st.st_mtime_ns
        self.partial = bytearray()
        self.discarding = False  # inside a line longer than the cap: drop bytes until its newline
        self.fingerprint = b""  # the last _FINGERPRINT bytes before offset
        self.last_growth = time.monotonic()

    @property
    def committed(self) -> int:
        """Offset of the end of the last complete line: where a restart must resume."""
        return self.offset if self.discarding else self.offset - len(self.partial)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class FileTailer:
    """`tail -F` for one path; `poll()` returns the complete lines that arrived since the last call.

    Not thread-safe: one thread (the LogFollower) polls it.
    """

    def __init__(
        self,
        path: Path,
        *,
        from_start: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_bytes_per_poll: int = 256 * 1024,
        rotated_grace_s: float = 10.0,
        state_file: Path | None = None,
        state_interval_s: float = 1.0,
        name: str | None = None,
        paths: HostPaths | None = None,
        optional: bool = False,
    ) -> None:
        """optional: a candidate file the host may not have (`/var/log/secure` on Debian): its absence is
        logged at debug level only, since the collector decides whether it matters (another file read)."""
        self.path = path
        self._paths = paths  # set: `path` lies under paths.rootfs and is opened only inside it
        self.name = name or str(path)
        self.health = TailHealth(optional=optional)
        self._from_start = from_start
        self._cap = max_line_bytes
        self._budget = max_bytes_per_poll
        self._grace = rotated_grace_s
        self._state_file = state_file
        self._state_interval = state_interval_s
        self._last_state_write = 0.0
        self._cur: _OpenFile | None = None
        self._retired: list[_OpenFile] = []  # rotated-away files still being drained
        self._first_open = True
        self._error_kind: str | None = None
        self._missing_logged = False
        self._saved = self._load_state() if state_file else None
        self.more_pending = False  # the last poll stopped at max_bytes_per_poll: poll again at once

    # ---- public API -------------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """New complete lines since the last poll (never raises on I/O errors)."""
        out: list[str] = []
        budget = [self._budget]
        if self._cur is None:
            self._open_current()  # may queue a rotated file to drain first (resume after restart)
        for old in list(self._retired):
            self._drain_retired(old, out, budget)
        if self._cur is not None:
            self._check_truncation(self._cur, out)
            self._read(self._cur, out, budget)
            if budget[0] > 0:  # drained to EOF: now it is safe to look for a rotation
                self._check_rotation(out, budget)
        self.more_pending = budget[0] <= 0
        return out

    @property
    def position(self) -> int | None:
        """Bytes read so far of the file now at the path (None while it is not open)."""
        return self._cur.offset if self._cur is not None else None

    def checkpoint(self, *, force: bool = False) -> None:
        """Write the state file if one is configured (at most every state_interval_s unless forced)."""
        if self._state_file is None or self._cur is None:
            return
        now = time.monotonic()
        if not force and now - self._last_state_write < self._state_interval:
            return
        cur = self._cur
        committed = cur.committed
        fp = self._pread(cur.fd, max(0, committed - _FINGERPRINT), min(committed, _FINGERPRINT))
        state = {
            "version": _STATE_VERSION,
            "path": str(self.path),
            "dev": cur.dev,
            "inode": cur.ino,
            "offset": committed,
            "fingerprint": fp.hex() if fp is not None else "",
        }
        try:
            write_file(self._state_file, json.dumps(state).encode())
            self._last_state_write = now
        except OSError as exc:
            self._error("state", f"cannot write state file {self._state_file}: {exc}")

    def close(self) -> None:
        """Save the state and close every descriptor; a closed tailer may be polled again (reopens)."""
        self.checkpoint(force=True)
        for f in self._retired:
            f.close()
        self._retired.clear()
        if self._cur is not None:
            self._cur.close()
            self._cur = None
        self.health.open = False

    # ---- opening and rotation ---------------------------------------------------------------------

    def _open(self, path: Path) -> tuple[int, os.stat_result] | None:
        try:
            return self._open_regular(path)
        except FileNotFoundError:
            if os.path.islink(path):  # a link to nothing, or to a place outside --path.rootfs
                self._error("link", f"cannot open {path}: a symbolic link to nothing inside --path.rootfs")
                return None
            if not self._missing_logged:
                (log.debug if self.health.optional else log.warning)(
                    "auth log file %s does not exist (yet); waiting for it", path
                )
                self._missing_logged = True
            self.health.missing = True
            self.health.last_error = f"{path}: does not exist"
            self._error_kind = "missing"
            return None
        except OSError as exc:
            self._error("open", f"cannot open {path}: {exc.strerror or exc}")
            return None

    def _open_regular(self, path: Path) -> tuple[int, os.stat_result]:
        """A read descriptor of the regular file at `path` (inside the rootfs with `paths`) and its stat.

        OSError for anything else: FileNotFoundError when nothing is there (a link out of the rootfs is
        resolved inside it, where its target does not exist), EINVAL for a FIFO, device or directory.
        """
        fd = open_regular_file(path, paths=self._paths)
        try:
            return fd, os.fstat(fd)
        except OSError:
            os.close(fd)
            raise

    def _stat_path(self) -> os.stat_result:
        """The stat of what is at the path now, resolved as _open resolves it (inside the rootfs)."""
        if self._paths is None:
            return os.stat(self.path)
        handle = self._paths.open(self.path, os.O_PATH)
        try:
            return os.fstat(handle)
        finally:
            os.close(handle)

    def _open_current(self) -> None:
        first_attempt, self._first_open = self._first_open, False
        opened = self._open(self.path)
        if opened is None:
            return  # a file that appears later is new: it is read from its start
        fd, st = opened
        offset = 0
        if self._saved is not None:
            offset = self._resume_offset(fd, st, self._saved)
            self._saved = None
        elif first_attempt and not self._from_start:
            offset = st.st_size  # start at the end, like tail
        f = _OpenFile(fd, st, offset)
        f.fingerprint = self._pread(fd, max(0, offset - _FINGERPRINT), min(offset, _FINGERPRINT)) or b""
        self._cur = f
        self.health.open = True
        self.health.path_readable = True
        self.health.missing = False
        self._missing_logged = False
        if self._error_kind is not None:
            log.info("auth log file %s is readable again", self.path)
            self._error_kind = None
            self.health.last_error = None

    def _check_rotation(self, out: list[str], budget: list[int]) -> None:
        """A different file now sits at the path (rename-and-create, or deleted and recreated)."""
        cur = self._cur
        assert cur is not None
        try:
            st = self._stat_path()
        except FileNotFoundError:
            # Deleted, or renamed with its successor not created yet: drain it as a rotated file
            # while it grows, and wait for a file at the path (read from its start when it comes).
            log.warning("auth log file %s vanished; waiting for it to come back", self.path)
            self._missing_logged = True
            self.health.missing = True
            self.health.last_error = f"{self.path}: does not exist"
            self.health.rotations += 1
            self._retire(cur, out)
            self._cur = None
            self.health.open = False
            return
        except OSError as exc:
            self._error("stat", f"cannot stat {self.path}: {exc.strerror or exc}")
            self.health.path_readable = False
            return
        if (st.st_dev, st.st_ino) == (cur.dev, cur.ino):
            self._path_readable_again()
            return
        opened = self._open(self.path)
        if opened is None:  # a directory, a FIFO, a file we may not open: the old one is still drained
            self.health.path_readable = False
            return
        self._path_readable_again()
        fd, st = opened
        self.health.rotations += 1
        log.info("auth log file %s was rotated or replaced; reading the new file from its start", self.path)
        self._retire(cur, out)
        self._cur = _OpenFile(fd, st, 0)
        self._missing_logged = False
        self._read(self._cur, out, budget)

    def _path_readable_again(self) -> None:
        if not self.health.path_readable:
            log.info("auth log file %s is readable again", self.path)
            self.health.path_readable = True
            self._error_kind = None
            self.health.last_error = None

    def _retire(self, f: _OpenFile, out: list[str]) -> None:
        f.last_growth = time.monotonic()
        self._retired.append(f)
        while len(self._retired) > 4:  # a pathological rotation storm: keep the newest few
            self._retire_close(self._retired.pop(0), out)

    def _drain_retired(self, f: _OpenFile, out: list[str], budget: list[int]) -> None:
        if self._replaced(f):
            # A rotated file is rewritten only by the rotation that follows (`cp NAME NAME.1` into the
            # inode still drained, or compression in place): what it holds now is a copy of lines read
            # already, never lines of its own, so it is not read again. What was unread of it is lost.
            self.health.truncations += 1
            log.warning(
                "rotated auth log file of %s was truncated or rewritten while still read; its new "
                "content (a copy) is not read again",
                self.path,
            )
            self._retired.remove(f)
            f.close()
            return
        before = f.offset
        self._read(f, out, budget)
        now = time.monotonic()
        if f.offset != before:
            f.last_growth = now
        elif now - f.last_growth >= self._grace:
            self._retired.remove(f)
            self._retire_close(f, out)

    def _retire_close(self, f: _OpenFile, out: list[str]) -> None:
        """The writer has moved on: an unfinished last line of the old file will never end, emit it."""
        if f.partial and not f.discarding:
            self._emit(bytes(f.partial), out)
        f.close()

    # ---- truncation (copytruncate) ----------------------------------------------------------------

    def _check_truncation(self, f: _OpenFile, out: list[str]) -> None:
        try:
            st = os.fstat(f.fd)
        except OSError as exc:
            self._error("stat", f"cannot stat {self.path}: {exc.strerror or exc}")
            return
        changed = st.st_size != f.size_seen or st.st_mtime_ns != f.mtime_seen
        f.size_seen, f.mtime_seen = st.st_size, st.st_mtime_ns
        if not changed:
            return
        if not self._replaced(f, st):
            return
        # Shrunk below our offset, or the bytes we read were replaced: the file was truncated.
        self.health.truncations += 1
        log.info("auth log file %s was truncated; reading it again from the start", self.path)
        self._recover_from_copy(f, out)
        # An unfinished last line is kept: after copytruncate the writer finishes it at offset 0.
        f.offset = 0
        f.fingerprint = b""

    def _recover_from_copy(self, f: _OpenFile, out: list[str]) -> None:
        """copytruncate copied the file before truncating it: read what we missed from the copy."""
        for candidate in self._rotated_candidates():
            opened = self._quiet_open(candidate)
            if opened is None:
                continue
            fd, st = opened
            try:
                if st.st_size < f.offset:
                    continue
                start = f.offset - len(f.fingerprint)
                if self._pread(fd, start, len(f.fingerprint)) != f.fingerprint:
                    continue
                copy = _OpenFile(fd, st, f.offset)
                copy.partial, copy.discarding = f.partial, f.discarding
                self._read(copy, out, [1 << 62])  # only what arrived since the last poll
                f.partial, f.discarding = copy.partial, copy.discarding
                return
            finally:
                os.close(fd)

    def _rotated_candidates(self) -> list[Path]:
        """Uncompressed rotated copies, newest first: NAME.1, NAME-YYYYMMDD (logrotate dateext)."""
        parent, base = self.path.parent, self.path.name
        try:
            found = [
                p
                for p in parent.iterdir()
                if p.name == base + ".1" or (p.name.startswith(base + "-") and not p.name.endswith(".gz"))
            ]
        except OSError:
            return []

        def mtime(p: Path) -> float:
            try:
                return p.lstat().st_mtime  # a link's own: what it points to is looked at only inside rootfs
            except OSError:
                return 0.0

        return sorted(found, key=mtime, reverse=True)[:3]

    # ---- reading ----------------------------------------------------------------------------------

    def _read(self, f: _OpenFile, out: list[str], budget: list[int]) -> None:
        while budget[0] > 0:
            want = min(_CHUNK, budget[0])
            try:
                chunk = os.pread(f.fd, want, f.offset)
            except OSError as exc:
                self._error("read", f"cannot read {self.path}: {exc.strerror or exc}")
                return
            if not chunk:
                return
            n = len(chunk)
            f.offset += n
            budget[0] -= n
            self.health.bytes_read += n
            f.fingerprint = (f.fingerprint + chunk[-_FINGERPRINT:])[-_FINGERPRINT:]
            self._split(f, chunk, out)
            if n < want:
                return  # short read: at EOF for now

    def _split(self, f: _OpenFile, chunk: bytes, out: list[str]) -> None:
        start = 0
        if f.discarding:
            nl = chunk.find(b"\n")
            if nl < 0:
                return  # still inside a line longer than the cap
            f.discarding = False  # its kept part was emitted when it passed the cap
            start = nl + 1
        end = chunk.rfind(b"\n")
        if end < start:
            self._hold(f, chunk[start:], out)
            return
        head = chunk[start:end]
        if f.partial:
            head = bytes(f.partial) + head
            f.partial.clear()
        # UTF-8 never has 0x0A inside a multibyte sequence, so decoding whole lines at once is safe.
        lines = head.decode("utf-8", "replace").split("\n")
        if len(head) > self._cap and max(map(len, lines)) > self._cap // 4:
            lines = [self._capped(line) for line in lines]
        out.extend(lines)
        self.health.lines_read += len(lines)
        self._hold(f, chunk[end + 1 :], out)

    def _hold(self, f: _OpenFile, rest: bytes, out: list[str]) -> None:
        """Keep an unfinished line, but never more than the cap of it."""
        if not rest or f.discarding:
            return
        room = self._cap - len(f.partial)
        if len(rest) <= room:
            f.partial += rest
            return
        f.partial += rest[:room]
        self._emit(bytes(f.partial), out)
        self.health.lines_truncated += 1
        f.partial.clear()
        f.discarding = True

    def _capped(self, line: str) -> str:
        if len(line) <= self._cap // 4:
            return line
        raw = line.encode("utf-8")
        if len(raw) <= self._cap:
            return line
        self.health.lines_truncated += 1
        return raw[: self._cap].decode("utf-8", "replace")

    def _emit(self, raw: bytes, out: list[str]) -> None:
        out.append(raw.decode("utf-8", "replace"))
        self.health.lines_read += 1

    # ---- state file -------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, object] | None:
        assert self._state_file is not None
        try:
            data = json.loads(self._state_file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state file %s: %s", self._state_file, exc)
            return None
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            return None
        if data.get("path") != str(self.path):  # another file's state: it says nothing about this one
            log.warning("ignoring state file %s: it is for %s", self._state_file, data.get("path"))
            return None
        return data

    def _resume_offset(self, fd: int, st: os.stat_result, saved: dict[str, object]) -> int:
        """Where to start after a restart: the saved offset if it is the same file with the same bytes."""
        offset, inode, dev = saved.get("offset"), saved.get("inode"), saved.get("dev")
        fp_hex = saved.get("fingerprint")
        if not isinstance(offset, int) or not isinstance(inode, int) or not isinstance(fp_hex, str):
            return 0
        try:
            fp = bytes.fromhex(fp_hex)
        except ValueError:
            return 0
        if (st.st_ino == inode and st.st_dev == dev and st.st_size >= offset) and self._pread(
            fd, offset - len(fp), len(fp)
        ) == fp:
            return offset
        # The file changed while we were stopped. If the rotated copy is the file we were reading,
        # drain it from the saved offset first; the new file is read from its start.
        for candidate in self._rotated_candidates():
            opened = self._quiet_open(candidate)
            if opened is None:
                continue
            cfd, cst = opened
            if (
                cst.st_ino == inode
                and cst.st_dev == dev
                and cst.st_size >= offset
                and self._pread(cfd, offset - len(fp), len(fp)) == fp
            ):
                old = _OpenFile(cfd, cst, offset)
                old.fingerprint = fp
                old.last_growth = time.monotonic()
                self._retired.append(old)
                log.info("resuming the rotated file %s at offset %d", candidate, offset)
                break
            os.close(cfd)
        return 0

    # ---- helpers ----------------------------------------------------------------------------------

    def _replaced(self, f: _OpenFile, st: os.stat_result | None = None) -> bool:
        """The file shrank below our offset, or the bytes just before it are no longer those we read:
        it was truncated (and perhaps refilled) since. A failed stat or read says nothing."""
        if st is None:
            try:
                st = os.fstat(f.fd)
            except OSError:
                return False
        if st.st_size < f.offset:
            return True
        if not f.fingerprint:
            return False
        now = self._pread(f.fd, f.offset - len(f.fingerprint), len(f.fingerprint))
        return now is not None and now != f.fingerprint

    def _quiet_open(self, path: Path) -> tuple[int, os.stat_result] | None:
        """_open for rotated candidates: what cannot be opened is no candidate, and says nothing."""
        try:
            return self._open_regular(path)
        except OSError:
            return None

    @staticmethod
    def _pread(fd: int, offset: int, length: int) -> bytes | None:
        if length <= 0:
            return b""
        try:
            return os.pread(fd, length, offset)
        except OSError:
            return None

    def _error(self, kind: str, message: str) -> None:
        """Count every error; log only when the kind of error changes (not once per poll)."""
        self.health.read_errors += 1
        self.health.last_error = message
        if kind != self._error_kind:
            log.warning("%s", message)
            self._error_kind = kind

    def health_dict(self) -> dict[str, object]:
        """Health as a plain dict (for the collector and for tests)."""
        return asdict(self.health)


__all__ = [
    "AUTH_LOG_CANDIDATES",
    "FileTailer",
    "TailHealth",
    "candidate_log_files",
    "configured_log_files",
    "default_log_files",
]
