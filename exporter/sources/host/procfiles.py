"""Reading /proc files cheaply: raw os calls.

Under a connection flood a scrape reads a few files per connection; pathlib's open/read/decode costs
several times the kernel's own work there.
"""

from __future__ import annotations

import os

_CHUNK = 1 << 16
MAX_BYTES = 1 << 24  # no /proc file we read is near this; a bound against a fixture gone wrong


def read_proc_file(path: str, *, short_read_is_eof: bool = False, dir_fd: int | None = None) -> bytes:
    """The whole file, read until EOF: seq_file files (children, net/tcp) return about a page per
    read whatever the buffer, so a short read is not the end. Files the kernel renders in one go
    (cmdline, stat) may pass `short_read_is_eof` and save the second, empty read. With `dir_fd` (an
    open /proc/PID), `path` is relative to it: the file is that process's even if its pid was reused."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        chunks: list[bytes] = []
        size = 0
        if short_read_is_eof:
            first = os.read(fd, _CHUNK)
            if len(first) < _CHUNK:
                return first
            chunks, size = [first], len(first)
        while size < MAX_BYTES:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
