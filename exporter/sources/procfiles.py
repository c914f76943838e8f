"""Reading /proc files cheaply: raw os calls.

Under a connection flood a scrape reads a few files per connection; pathlib's open/read/decode costs
several times the kernel's own work there.
"""

from __future__ import annotations

import os

_CHUNK = 1 << 16
MAX_BYTES = 1 << 24  # no /proc file we read is near this; a bound against a fixture gone wrong


def read_proc_file(path: str) -> bytes:
    """The whole file, read until EOF: seq_file files (children, net/tcp) return about a page per
    read whatever the buffer, so a short read is not the end."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BYTES:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
