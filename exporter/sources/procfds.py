"""Per-process /proc files kept open between scrapes: a re-read is one pread, not open+read+close.

Under a connection flood the sshd collector reads every connection's title and children list on each
scrape, and opening the files (a path walk through procfs) cost twice the reads. A descriptor of
/proc/PID/... belongs to that process, not to the number: once the process is gone, reading its
cmdline fails with ESRCH (its children list reads empty) instead of answering for a new process that
reused the pid. The caller names the pids still wanted after each pass (`retain`) and the rest are
closed; a budget keeps the held descriptors well inside the process's file limit, past it files are
read the ordinary way.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable, Iterator

# procfs renders a seq_file (children lists) a page at a time: a read that returns less than half a
# page is the end, since records are tiny. cmdline returns all it has up to the request.
_FIRST = 4096
_SHORT = 2048
_MORE = 1 << 16
MAX_HELD = 16384


def default_budget() -> int:
    """Half of the soft RLIMIT_NOFILE (the other half stays for sockets, logs, pipes), at most MAX_HELD."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_HELD
    return max(0, min(MAX_HELD, soft // 2 - 32))


def raise_file_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (as Go programs such as node_exporter do at start):
    a flood of connections is exactly when the collector holds a descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _read_all(fd: int) -> bytes:
    chunk = os.pread(fd, _FIRST, 0)
    if len(chunk) < _SHORT:
        return chunk
    chunks = [chunk]
    offset = len(chunk)
    while chunk := os.pread(fd, _MORE, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class HeldProcFiles:
    """Processes' `cmdline` and `task/PID/children` under procfs, held open between passes.
    Not for concurrent passes: the owner serialises them."""

    def __init__(self, procfs: str, budget: int | None = None) -> None:
        self.procfs = procfs
        self.budget = default_budget() if budget is None else budget
        self._cmdline: dict[int, int] = {}
        self._children: dict[int, int] = {}

    def cmdline(self, pid: int) -> bytes:
        """The title now; OSError when the process is gone (ESRCH, ENOENT).

        A held cmdline that fails means its process ended: its held children list goes too and the
        cmdline is opened anew, for a process that may have taken the pid since."""
        fd = self._cmdline.get(pid)
        if fd is not None:
            try:
                return _read_all(fd)
            except OSError:
                self._drop(pid)
        return self._open_and_read(self._cmdline, pid, f"{self.procfs}/{pid}/cmdline")

    def children(self, pid: int) -> bytes:
        """Direct children as `PID PID ...`. A held list of an ended process reads empty rather than
        failing: call `cmdline` first, which notices."""
        fd = self._children.get(pid)
        if fd is not None:
            return _read_all(fd)
        return self._open_and_read(self._children, pid, f"{self.procfs}/{pid}/task/{pid}/children")

    def titles_and_children(self, pids: Iterable[int]) -> Iterator[tuple[int, bytes, bytes]]:
        """(pid, cmdline, children) of each process still there: the per-connection loop of a
        scrape, so the usual case (both files held, one short read each) takes no method calls."""
        pread, cmdlines, children = os.pread, self._cmdline, self._children
        for pid in pids:
            title_fd, children_fd = cmdlines.get(pid), children.get(pid)
            if title_fd is not None and children_fd is not None:
                try:
                    title, kids = pread(title_fd, _FIRST, 0), pread(children_fd, _FIRST, 0)
                except OSError:
                    pass  # ended (or the pid was taken since): the general path below sorts it out
                else:
                    if len(title) < _SHORT and len(kids) < _SHORT:
                        yield pid, title, kids
                        continue
            try:
                title = self.cmdline(pid)  # first: it notices a process that ended
                kids = self.children(pid)
            except OSError:
                continue
            yield pid, title, kids

    def _open_and_read(self, held: dict[int, int], pid: int, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        if self.held() >= self.budget:
            try:
                return _read_all(fd)
            finally:
                os.close(fd)
        held[pid] = fd
        try:
            return _read_all(fd)
        except OSError:
            self._drop(pid)
            raise

    def _drop(self, pid: int) -> None:
        for held in (self._cmdline, self._children):
            fd = held.pop(pid, None)
            if fd is not None:
                os.close(fd)

    def retain(self, pids: set[int]) -> None:
        """Close what belongs to processes not in `pids`."""
        for pid in {*self._cmdline, *self._children} - pids:
            self._drop(pid)

    def pids(self) -> frozenset[int]:
        """The processes whose files are held (whose title was read last pass)."""
        return frozenset(self._cmdline)

    def held(self) -> int:
        return len(self._cmdline) + len(self._children)

    def close(self) -> None:
        self.retain(set())
