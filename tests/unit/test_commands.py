"""commands.run_command against real processes: one deadline, a cap on output, the group killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from exporter.sources.host import commands
from exporter.sources.host.commands import run_command


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_output_and_exit_status_are_returned() -> None:
    run = run_command("/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (run.returncode, run.stdout, run.stderr, run.ok) == (3, "out\n", "err\n", False)
    assert run_command("/bin/echo", "192.0.2.1").stdout == "192.0.2.1\n"


def test_a_missing_binary_is_a_result_not_an_exception(tmp_path: Path) -> None:
    run = run_command(tmp_path / "missing")
    assert run.returncode is None
    assert "No such file" in run.stderr


def test_output_past_the_cap_is_refused_and_the_tool_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "MAX_OUTPUT", 1 << 20)
    started = time.monotonic()
    run = run_command("/bin/sh", "-c", "head -c 200000000 /dev/zero", timeout=20)
    assert time.monotonic() - started < 2.0  # before: 200 MB read into memory (and /dev/zero: all of it)
    assert (run.returncode, run.stdout) == (None, "")
    assert run.stderr == f"/bin/sh printed more than {1 << 20} bytes"


def test_a_timeout_kills_what_the_tool_started_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "helper.pid"
    started = time.monotonic()
    run = run_command("/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert (run.returncode, run.stderr) == (None, "/bin/sh timed out after 0.5s")
    helper = int(pidfile.read_text())
    try:
        deadline = time.monotonic() + 2.0
        while _alive(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(helper)  # before: the helper lived on, holding the output pipe
    finally:
        if _alive(helper):
            os.kill(helper, signal.SIGKILL)


def test_a_tool_that_closes_its_output_and_keeps_running_costs_one_deadline() -> None:
    started = time.monotonic()
    run = run_command("/bin/sh", "-c", "exec >&- 2>&-; sleep 60", timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert run.returncode is None
    assert "timed out" in run.stderr
