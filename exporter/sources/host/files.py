"""Reading a host's configuration files safely: a FIFO or device where a file should be must not hang
a scrape (opening a FIFO for reading blocks until a writer comes) or be opened at all (opening some
devices has effects: a watchdog starts, a tape rewinds), and a huge file must not fill memory.

The file is first opened with O_PATH, which touches nothing, and only a regular file is then opened for
reading, through that same descriptor, so nothing can be swapped in between. With `paths`, the path is
resolved inside --path.rootfs (`HostPaths.open`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from exporter.sources.host.paths import HostPaths

MAX_BYTES = 64 * 1024 * 1024
# The operator's own files (--config.file, --web.config.file): a watchlist of 100,000 entries is ~3 MB.
CONFIG_FILE_MAX_BYTES = 16 * 1024 * 1024


def open_regular_file(path: Path, *, paths: HostPaths | None = None) -> int:
    """A read-only descriptor of a regular file; OSError for anything else (FileNotFoundError when it is
    missing, EINVAL for a FIFO, device, socket or directory)."""
    handle = paths.open(path, os.O_PATH) if paths is not None else os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        try:  # reopening the O_PATH descriptor's own file: no second path lookup
            return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except FileNotFoundError:  # no /proc in this process's mount namespace
            if paths is not None:
                return paths.open(path, os.O_RDONLY | os.O_NONBLOCK)
            return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(handle)


def read_regular_file(path: Path, max_bytes: int = MAX_BYTES, *, paths: HostPaths | None = None) -> bytes:
    """A regular file's bytes, at most `max_bytes` (EFBIG past them); OSError for anything else."""
    descriptor = open_regular_file(path, paths=paths)
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        # As much as the file holds (and a byte to see it ended): read(max_bytes + 1) allocated 16 MiB for
        # every read of a small file (3 ms, and the parse's peak memory). Whatever it grew by since is
        # read after.
        wanted = min(max_bytes, status.st_size) + 1
        data = file.read(wanted)
        if len(data) == wanted and len(data) <= max_bytes:
            data += file.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    return data


def read_regular_text(path: Path, max_bytes: int = MAX_BYTES, *, paths: HostPaths | None = None) -> str:
    """The same, decoded as UTF-8 with invalid bytes replaced."""
    return read_regular_file(path, max_bytes, paths=paths).decode("utf-8", "replace")


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """`data` at `path`, atomically: a temporary file in the same directory (named .NAME.*.tmp), synced
    and given `mode`, renamed over `path`; the directory synced. On an error the old file stays, and a
    crash leaves either the old or the new content, never half of one (read positions, textfile output)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# What a cached parse of a host file is keyed on: (mtime_ns, size), None when it cannot be stat'ed. A
# rewrite changes the mtime, an append (DenyHosts, fail2ban) the size too; a reader re-reads on any change.
Signature = tuple[int, int] | None


def file_signature(path: Path | None) -> Signature:
    """The (mtime_ns, size) of `path`, None when it is missing, unresolvable (None) or not stat-able."""
    if path is None:  # its links cannot be followed inside the rootfs
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in a path taken from a host file
        return None
    return (st.st_mtime_ns, st.st_size)
