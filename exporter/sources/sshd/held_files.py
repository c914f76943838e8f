"""Per-process /proc files kept open between scrapes: a re-read is one pread, not open+read+close.

Under a connection flood the sshd collector reads every connection's title and children list on each
scrape, and opening the files (a path walk through procfs) cost twice the reads. A descriptor of
/proc/PID/... belongs to that process, not to the number: once the process is gone, reading its
cmdline fails with ESRCH (its children list reads empty) instead of answering for a new process that
reused the pid. The caller names the pids still wanted after each pass (`retain`) and the rest are
closed; a budget (`default_budget`) keeps the held descriptors inside what the process's file limit
leaves once its other descriptors are counted, past it files are read the ordinary way.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable, Iterator

import psutil

from exporter.sources.host.procfiles import read_proc_file

# procfs renders a seq_file (children lists) a page at a time: a read that returns less than half a
# page is the end, since records are tiny. cmdline returns all it has up to the request.
_FIRST = 4096
_SHORT = 2048
_MORE = 1 << 16
MAX_HELD = 16384


# Descriptors the exporter needs besides the held files and what it has open when the budget is taken:
# every client connection the HTTP server admits (its default Limits.max_connections, 4096: a source does
# not import the web view, so tests/unit/test_procfds.py checks the two agree), plus the rest: listening
# sockets and the event loop's own, tailed logs and journal files, three pipes per running command,
# sockets to fail2ban, CrowdSec and sock_diag, sqlite databases.
HTTP_CONNECTIONS = 4096
OTHER_FILES = 256
RESERVE = HTTP_CONNECTIONS + OTHER_FILES


def default_budget() -> int:
    """How many /proc files may be held: the soft RLIMIT_NOFILE less the descriptors the exporter has
    open now and the reserve, at most MAX_HELD, never negative. Taken once, when the reader is built
    (after `raise_file_limit` at start).

    The reserve is RESERVE, or half the soft limit where that is smaller: under a low hard limit (1024
    is common outside systemd) the full reserve would leave no budget, and holding files is what keeps
    scrapes fast under a flood; the HTTP server then meets EMFILE at fewer clients, which its own limits
    already survive (it logs and keeps serving).

    Measured with psutil on the exporter's own process (`rlimit`, `num_fds`): right whatever
    `--path.procfs` names, since that is the host's procfs and this is about the exporter itself."""
    process = psutil.Process()
    soft, _ = process.rlimit(psutil.RLIMIT_NOFILE)
    if soft == psutil.RLIM_INFINITY:
        return MAX_HELD
    return max(0, min(MAX_HELD, soft - process.num_fds() - min(RESERVE, soft // 2)))


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


# The files a pass reads, under procfs/PID. cmdline and schedstat fail (ESRCH) once their process
# has ended; a children list then reads empty, so a pass reads one of the first two before it.
PATHS = {
    "cmdline": "{procfs}/{pid}/cmdline",
    "schedstat": "{procfs}/{pid}/schedstat",
    "children": "{procfs}/{pid}/task/{pid}/children",
}


class HeldProcFiles:
    """Processes' files (PATHS) under procfs, held open between passes.
    Not for concurrent passes: the owner serialises them."""

    def __init__(self, procfs: str, budget: int | None = None) -> None:
        self.procfs = procfs
        self.budget = default_budget() if budget is None else budget
        self._held: dict[str, dict[int, int]] = {name: {} for name in PATHS}

    def read(self, pid: int, name: str) -> bytes:
        """A file's content now; OSError when the process is gone (ESRCH, ENOENT).

        A held file that fails means its process ended: every file held for the pid is dropped and
        this one is opened anew, for a process that may have taken the pid since."""
        fd = self._held[name].get(pid)
        if fd is not None:
            try:
                return _read_all(fd)
            except OSError:
                self._drop(pid)
        path = PATHS[name].format(procfs=self.procfs, pid=pid)
        if self.held() >= self.budget:
            return read_proc_file(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._held[name][pid] = fd
        try:
            return _read_all(fd)
        except OSError:
            self._drop(pid)
            raise

    def read_each(self, pids: Iterable[int], name: str) -> Iterator[tuple[int, bytes]]:
        """(pid, content of file `name`) for each process still there: the per-connection loop of a
        scrape, so the usual case (held, one short read) takes no method call."""
        pread, held = os.pread, self._held[name]
        for pid in pids:
            fd = held.get(pid)
            if fd is not None:
                try:
                    content = pread(fd, _FIRST, 0)
                except OSError:
                    pass  # ended, or the pid was taken since: `read` sorts it out
                else:
                    if len(content) < _SHORT:
                        yield pid, content
                        continue
            try:
                yield pid, self.read(pid, name)
            except OSError:
                continue

    def _drop(self, pid: int) -> None:
        for held in self._held.values():
            fd = held.pop(pid, None)
            if fd is not None:
                os.close(fd)

    def retain(self, pids: set[int]) -> None:
        """Close what belongs to processes not in `pids`."""
        for pid in set().union(*self._held.values()) - pids:
            self._drop(pid)

    def pids(self) -> frozenset[int]:
        """The processes whose files are held (read in the last pass)."""
        return frozenset().union(*self._held.values())

    def held(self) -> int:
        return sum(len(held) for held in self._held.values())

    def close(self) -> None:
        self.retain(set())
