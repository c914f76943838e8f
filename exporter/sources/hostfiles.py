"""Reading a host's configuration files safely: a FIFO or device where a file should be must not hang
a scrape (opening a FIFO for reading blocks until a writer comes), and a huge file must not fill memory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024


def read_regular_file(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """A regular file's bytes; OSError for anything else (FileNotFoundError when it is missing)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO's open would block
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes")
    return data


def read_regular_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """The same, decoded as UTF-8 with invalid bytes replaced."""
    return read_regular_file(path, max_bytes).decode("utf-8", "replace")
