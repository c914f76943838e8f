"""Running host tools (sshd -T, nft, ipset, cscli, fail2ban-client, journalctl) the one safe way.

An argv list (never a shell), no stdin, a minimal C-locale environment so output is parseable, and no
exception: a missing binary, a failure or a hang comes back as a result to report. The run has one
deadline for all of it (start, every read of its output, its exit) and a cap on what it may print, so
neither a hung tool nor one printing without end (`nft -j list ruleset` of a huge set, a broken cscli)
can hold a thread or fill memory. The tool runs in its own process group and, past the deadline or the
cap, the whole group is killed: helpers it started die with it instead of living on.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.host.replies import Deadline

DEFAULT_TIMEOUT = 5.0
MAX_OUTPUT = 128 << 20  # stdout: `nft -j` of a set of a million addresses with timeouts is ~70 MB
MAX_STDERR = 1 << 20  # messages; past this they are read and dropped
_CHUNK = 1 << 16
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one run."""

    returncode: int | None  # None: it could not be started, timed out or printed too much
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class _TooMuchOutputError(Exception):
    """The tool printed more than its cap."""


def _read_output(proc: subprocess.Popen[bytes], deadline: Deadline, max_output: int) -> tuple[bytes, bytes]:
    """All of stdout and the start of stderr, until both are closed: TimeoutError past the deadline,
    _TooMuchOutputError past the cap."""
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, stdout)
        selector.register(proc.stderr, selectors.EVENT_READ, stderr)
        while selector.get_map():
            for key, _ in selector.select(deadline.remaining()):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.data is stdout:
                    stdout += chunk
                    if len(stdout) > max_output:
                        raise _TooMuchOutputError
                elif len(stderr) < MAX_STDERR:
                    stderr += chunk[: MAX_STDERR - len(stderr)]
    return bytes(stdout), bytes(stderr)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the tool's process group, then reap the tool. The group leader is not reaped yet when
    this runs, so its pid (the group's id) cannot have been reused."""
    with contextlib.suppress(OSError):  # the group is gone already
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: Popen reaps it later
        proc.wait(timeout=1.0)


def run_command(
    binary: Path | str, *args: str, timeout: float = DEFAULT_TIMEOUT, max_output: int | None = None
) -> CommandResult:
    """Run `binary args...` within `timeout` seconds in all, keeping at most max_output bytes of stdout
    (MAX_OUTPUT when None); never raises."""
    deadline = Deadline(timeout, f"{binary} timed out after {timeout:g}s")
    cap = MAX_OUTPUT if max_output is None else max_output
    try:
        proc = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_ENV,
            start_new_session=True,  # its own process group, to be killed as one
        )
    except OSError as exc:
        return CommandResult(None, "", f"{binary}: {exc.strerror or exc}")
    try:
        stdout, stderr = _read_output(proc, deadline, cap)
        proc.wait(timeout=deadline.remaining())
    except _TooMuchOutputError:
        _kill_group(proc)
        return CommandResult(None, "", f"{binary} printed more than {cap} bytes")
    except (TimeoutError, subprocess.TimeoutExpired):  # the latter: closed its output, kept running
        _kill_group(proc)
        return CommandResult(None, "", deadline.message)
    finally:  # not `with proc`: its exit waits for the tool without a deadline
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return CommandResult(
        proc.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    )
