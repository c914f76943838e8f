"""Held /proc files against real processes of the test's own: titles that change, children that come
and go, processes that end, and the descriptor budget."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.procfds import HeldProcFiles, default_budget

PERL = shutil.which("perl")
# A process that retitles itself as sshd does (Perl's $0 rewrites argv in place), on SIGUSR1.
RETITLE = '$0 = "title-one"; $SIG{USR1} = sub { $0 = "title-two" }; print "ready\\n"; $| = 1; sleep 1 while 1'


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def files() -> Iterator[HeldProcFiles]:
    held = HeldProcFiles("/proc")
    yield held
    held.close()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    wait_for(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep"))  # exec'd
    yield proc
    proc.kill()
    proc.wait()


def title(raw: bytes) -> str:
    return raw.replace(b"\0", b" ").decode().strip()


@pytest.mark.skipif(PERL is None, reason="needs perl to retitle a process")
def test_a_held_title_follows_the_process_retitling_itself(files: HeldProcFiles) -> None:
    assert PERL is not None
    proc = subprocess.Popen([PERL, "-e", RETITLE], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert title(files.cmdline(proc.pid)) == "title-one"
        assert files.held() == 1
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: title(files.cmdline(proc.pid)) == "title-two")
        assert files.held() == 1  # the same descriptor, read again
    finally:
        proc.kill()
        proc.wait()


def test_children_come_and_go_through_the_held_list(files: HeldProcFiles) -> None:
    shell = subprocess.Popen(
        ["sh", "-c", "read line; sleep 60 & echo $!; wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        files.cmdline(shell.pid)
        assert files.children(shell.pid) == b""
        assert shell.stdin is not None and shell.stdout is not None
        shell.stdin.write(b"go\n")
        shell.stdin.flush()
        child = int(shell.stdout.readline())
        assert files.children(shell.pid).split() == [str(child).encode()]
        assert files.held() == 2
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: files.children(shell.pid) == b"")
    finally:
        shell.kill()
        shell.wait()


def test_an_ended_process_fails_and_its_files_are_dropped(
    files: HeldProcFiles, sleeper: subprocess.Popen[bytes]
) -> None:
    assert title(files.cmdline(sleeper.pid)) == "sleep 60"
    files.children(sleeper.pid)
    assert files.held() == 2
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(OSError):
        files.cmdline(sleeper.pid)
    assert files.held() == 0
    assert list(files.titles_and_children([sleeper.pid])) == []


def test_titles_and_children_in_one_pass(files: HeldProcFiles, sleeper: subprocess.Popen[bytes]) -> None:
    for _ in range(2):  # first pass opens, second reads the held descriptors
        [(pid, raw, children)] = files.titles_and_children([sleeper.pid, 2**22 + 1])
        assert (pid, title(raw), children) == (sleeper.pid, "sleep 60", b"")
    assert files.held() == 2


def test_retain_closes_the_files_of_processes_no_longer_wanted(
    files: HeldProcFiles, sleeper: subprocess.Popen[bytes]
) -> None:
    files.cmdline(os.getpid())
    files.cmdline(sleeper.pid)
    files.retain({sleeper.pid})
    assert files.held() == 1
    files.close()
    assert files.held() == 0


def test_past_the_budget_files_are_read_but_not_held(sleeper: subprocess.Popen[bytes]) -> None:
    files = HeldProcFiles("/proc", budget=1)
    assert title(files.cmdline(os.getpid()))
    assert title(files.cmdline(sleeper.pid)) == "sleep 60"
    assert files.children(sleeper.pid) == b""
    assert files.held() == 1
    files.close()


def test_missing_process_is_an_os_error(files: HeldProcFiles) -> None:
    with pytest.raises(OSError):
        files.cmdline(2**22 + 1)  # above any pid_max
    assert files.held() == 0


def test_budget_is_half_the_file_limit_at_most() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 0 <= default_budget() <= max(0, soft // 2)
