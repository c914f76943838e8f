"""Held /proc files against real processes of the test's own: titles that change, children that come
and go, processes that end, and the descriptor budget."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.sshd.held_files import (
    HTTP_CONNECTIONS,
    MAX_HELD,
    RESERVE,
    HeldProcFiles,
    default_budget,
)
from exporter.web.server import Limits

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
        assert title(files.read(proc.pid, "cmdline")) == "title-one"
        assert files.held() == 1
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: title(files.read(proc.pid, "cmdline")) == "title-two")
        assert files.held() == 1  # the same descriptor, read again
    finally:
        proc.kill()
        proc.wait()


def test_children_come_and_go_through_the_held_list(files: HeldProcFiles) -> None:
    shell = subprocess.Popen(
        ["sh", "-c", "read line; sleep 60 & echo $!; wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        files.read(shell.pid, "cmdline")
        assert files.read(shell.pid, "children") == b""
        assert shell.stdin is not None and shell.stdout is not None
        shell.stdin.write(b"go\n")
        shell.stdin.flush()
        child = int(shell.stdout.readline())
        assert files.read(shell.pid, "children").split() == [str(child).encode()]
        assert files.held() == 2
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: files.read(shell.pid, "children") == b"")
    finally:
        shell.kill()
        shell.wait()


def test_an_ended_process_fails_and_its_files_are_dropped(
    files: HeldProcFiles, sleeper: subprocess.Popen[bytes]
) -> None:
    assert title(files.read(sleeper.pid, "cmdline")) == "sleep 60"
    files.read(sleeper.pid, "children")
    assert files.held() == 2
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(OSError):
        files.read(sleeper.pid, "cmdline")
    assert files.held() == 0
    assert list(files.read_each([sleeper.pid], "cmdline")) == []


def test_one_file_of_each_process_in_one_pass(files: HeldProcFiles, sleeper: subprocess.Popen[bytes]) -> None:
    runs = []
    for _ in range(2):  # first pass opens, second reads the held descriptors
        [(pid, ran)] = files.read_each([sleeper.pid, 2**22 + 1], "schedstat")
        assert pid == sleeper.pid
        runs.append(ran)
    assert [title(raw) for _, raw in files.read_each([sleeper.pid], "cmdline")] == ["sleep 60"]
    assert files.held() == 2
    assert runs[0] == runs[1]  # a sleeping process's run time stands still
    assert files.pids() == {sleeper.pid}


def test_run_time_moves_when_the_process_runs(files: HeldProcFiles) -> None:
    """The kernel adds a running task's time at ticks and switches: run until one has come."""
    before = int(files.read(os.getpid(), "schedstat").split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sum(range(200_000))
        os.sched_yield()
        if int(files.read(os.getpid(), "schedstat").split()[0]) > before:
            return
    pytest.fail("schedstat's run time did not move in 5 s of running")


def test_retain_closes_the_files_of_processes_no_longer_wanted(
    files: HeldProcFiles, sleeper: subprocess.Popen[bytes]
) -> None:
    files.read(os.getpid(), "cmdline")
    files.read(sleeper.pid, "cmdline")
    files.retain({sleeper.pid})
    assert files.held() == 1
    files.close()
    assert files.held() == 0


def test_past_the_budget_files_are_read_but_not_held(sleeper: subprocess.Popen[bytes]) -> None:
    files = HeldProcFiles("/proc", budget=1)
    assert title(files.read(os.getpid(), "cmdline"))
    assert title(files.read(sleeper.pid, "cmdline")) == "sleep 60"
    assert files.read(sleeper.pid, "children") == b""
    assert files.held() == 1
    files.close()


def test_missing_process_is_an_os_error(files: HeldProcFiles) -> None:
    with pytest.raises(OSError):
        files.read(2**22 + 1, "cmdline")  # above any pid_max
    assert files.held() == 0


# A child process sets its soft file limit, opens `opened` more descriptors and prints its budget, what it
# has open and its limit: the test process's own limit stays as it is.
CHILD = """
import os, resource, sys
import psutil
from exporter.sources.sshd.held_files import default_budget
soft, opened = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
before = default_budget()
fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(opened)]
print(before, default_budget(), psutil.Process().num_fds())
"""


def budgets_in_child(soft: int, opened: int = 0) -> tuple[int, int, int]:
    """(budget, budget after opening `opened` descriptors, descriptors open then) under a soft limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < soft:
        pytest.skip(f"the hard file limit {hard} is below {soft}")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(soft), str(opened)], capture_output=True, text=True, check=True
    ).stdout
    before, after, open_now = (int(word) for word in out.split())
    return before, after, open_now


def test_the_budget_shrinks_by_each_descriptor_the_exporter_holds() -> None:
    before, after, _ = budgets_in_child(2 * RESERVE + 2000, opened=300)
    assert before > 300
    assert before - after == 300


def test_the_budget_leaves_the_reserve_within_a_lowered_soft_limit() -> None:
    for soft in (2 * RESERVE + 1000, 2 * RESERVE + 3000):  # from 2 * RESERVE the whole reserve stays
        _, budget, open_now = budgets_in_child(soft, opened=10)
        assert budget > 0
        assert budget + open_now + RESERVE <= soft  # the HTTP server's connections still fit
    assert budgets_in_child(2 * RESERVE + 1000)[0] < budgets_in_child(2 * RESERVE + 3000)[0]


def test_the_budget_never_goes_negative() -> None:
    assert budgets_in_child(64, opened=40)[1] == 0  # the open files eat a tiny limit
    before, after, _ = budgets_in_child(2 * RESERVE, opened=RESERVE + 100)  # and the rest of a larger one
    assert before >= 0 and after == 0


def test_under_a_low_limit_half_of_it_stays_for_the_rest_and_files_are_still_held() -> None:
    """1024, the usual hard limit outside systemd: the full reserve would leave nothing to hold."""
    _, budget, open_now = budgets_in_child(1024, opened=10)
    assert budget > 400
    assert budget + open_now + 1024 // 2 <= 1024


def test_the_budget_holds_max_held_at_most_and_leaves_the_reserve() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 0 <= default_budget() <= max(0, min(MAX_HELD, soft - min(RESERVE, soft // 2)))
    assert Limits().max_connections == HTTP_CONNECTIONS < RESERVE  # every connection the server admits
