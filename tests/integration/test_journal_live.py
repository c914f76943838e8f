"""JournalReader against a real journald, and against a journal file made by systemd-journal-remote.

journald is host-wide here: if one is already running it is used, else one is started for this module
and killed by its pid at the end. Entries carry a per-run marker, so entries from anything else that
logs as sshd at the same time (other tests) are ignored.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.authlog.journal import JournalReader, journal_reader_for
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.host.paths import HostPaths

JOURNALD = Path("/lib/systemd/systemd-journald")
JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
SOCKET = Path("/run/systemd/journal/socket")
DEV_LOG = Path("/run/systemd/journal/dev-log")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "journal" / "sshd.export"
# Sends one syslog datagram and stays alive long enough for journald to read the sender's _COMM.
BY_COMM = "import socket, sys, time; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto("
BY_COMM += "sys.argv[2].encode(), sys.argv[1]); time.sleep(1)"
BACKENDS = ["journalctl"] + (["binding"] if importlib.util.find_spec("systemd") is not None else [])


def journald_listening() -> bool:
    if not SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(str(SOCKET))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald() -> Iterator[int | None]:
    """The pid of the journald this module started, or None when one was already running."""
    if journald_listening():
        yield None
        return
    if os.geteuid() != 0 or not JOURNALD.exists():
        pytest.skip("needs root and systemd-journald (scripts/install-system-deps.sh)")
    proc = subprocess.Popen(
        [str(JOURNALD)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while not journald_listening():
            assert proc.poll() is None or journald_listening(), f"journald exited with {proc.returncode}"
            assert time.monotonic() < deadline, "journald did not open its socket"
            time.sleep(0.05)
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait(10)


def logger(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["logger", *args], input=stdin, text=True, check=True, timeout=30)


def marked(records: list[SyslogRecord], marker: str) -> list[SyslogRecord]:
    return [r for r in records if marker in r.message]


def sync(reader: JournalReader) -> None:
    """Log sync lines until the reader sees one: from then on it is positioned at the journal's end."""
    marker = uuid.uuid4().hex  # not the test's marker: a late sync line must not count as the test's
    deadline = time.monotonic() + 20
    n = 0
    while True:
        n += 1
        logger("-u", str(DEV_LOG), "-t", "sshd", f"sync {marker} {n}")
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            if marked(reader.poll(), f"sync {marker}"):
                return
            time.sleep(0.02)
        assert time.monotonic() < deadline, f"reader never saw a sync line ({reader.health})"


def collect(reader: JournalReader, marker: str, n: int, timeout: float = 15.0) -> list[SyslogRecord]:
    got: list[SyslogRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += marked(reader.poll(), marker)
        time.sleep(0.05)
    time.sleep(0.3)
    got += marked(reader.poll(), marker)  # nothing more may arrive
    return got


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_journald_entries_by_identifier_and_by_comm(
    journald: int | None, tmp_path: Path, backend: str
) -> None:
    marker = uuid.uuid4().hex
    fake_sshd = tmp_path / "sshd"  # a process whose _COMM is "sshd", logging under another identifier
    fake_sshd.symlink_to(sys.executable)  # alive until journald has read its /proc/PID/comm
    state = tmp_path / "journal.state"
    reader = JournalReader(backend=backend, state_file=state)
    try:
        sync(reader)
        logger(
            "-u", str(DEV_LOG), "-t", "sshd", "--id=4242", f"Failed password for root from 192.0.2.7 {marker}"
        )
        logger("-u", str(DEV_LOG), "-t", "cron", f"not sshd {marker}")
        logger(
            "--journald",
            stdin=(
                f"MESSAGE=Invalid user x from 2001:db8::5 {marker}\n"
                "SYSLOG_IDENTIFIER=sshd-session\nSYSLOG_PID=777\n"
            ),
        )
        subprocess.run(
            [str(fake_sshd), "-c", BY_COMM, str(DEV_LOG), f"<38>auth-helper[4343]: by comm {marker}"],
            check=True,
            timeout=30,
        )
        got = collect(reader, marker, 3)
        assert reader.health.open
        assert reader.health.read_errors == 0
    finally:
        reader.close()
    assert [(r.ident, r.pid, r.message.split(" " + marker)[0]) for r in got] == [
        ("sshd", 4242, "Failed password for root from 192.0.2.7"),
        ("sshd-session", 777, "Invalid user x from 2001:db8::5"),
        ("sshd", 4343, "by comm"),  # matched by _COMM: sshd's line under another identifier
    ]
    assert all(r.host and r.time and abs(r.time - time.time()) < 300 for r in got)
    if backend == "journalctl":
        assert reader.pid is None  # closed: journalctl was killed

    # A restart resumes after the saved cursor: only what was logged while stopped is read.
    logger("-u", str(DEV_LOG), "-t", "sshd", f"while stopped {marker}")
    again = JournalReader(backend=backend, state_file=state)
    try:
        resumed = collect(again, marker, 1)
    finally:
        again.close()
    assert [r.message for r in resumed] == [f"while stopped {marker}"]


# What the reader yields from the export fixture: not the cron entry; byte MESSAGE decoded.
EXPECTED_FROM_FIXTURE = [
    SyslogRecord(
        "Failed password for invalid user admin from 192.0.2.7 port 50022 ssh2",
        "sshd",
        812,
        "fixture-host",
        1795464000.0,
    ),
    SyslogRecord(
        "Invalid user oracle from 198.51.100.23 port 40112",
        "sshd-session",
        813,
        "fixture-host",
        1795464001.0,
    ),
    SyslogRecord(
        "Connection closed by invalid user \ufffd\ufffd 203.0.113.5 port 51000 [preauth]",
        "sshd",
        812,
        "fixture-host",
        1795464003.0,
    ),
    SyslogRecord("error: beginning MaxStartups throttling", "sshd", 900, "fixture-host", 1795464004.0),
    SyslogRecord(
        "Accepted publickey for alice from 2001:db8::42 port 52200 ssh2: ED25519 SHA256:abc",
        "sshd",
        2005,
        "fixture-host",
        1795464005.0,
    ),
]


def journal_file(path: Path) -> Path:
    """A journal file made by the real systemd-journal-remote from the export fixture."""
    if not JOURNAL_REMOTE.exists():
        pytest.skip("systemd-journal-remote is not installed (scripts/install-system-deps.sh)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FIXTURE.open("rb") as export:
        subprocess.run(
            [str(JOURNAL_REMOTE), f"--output={path}", "-"],
            stdin=export,
            check=True,
            capture_output=True,
            timeout=30,
        )
    return path


def read_all(reader: JournalReader, n: int) -> list[SyslogRecord]:
    got: list[SyslogRecord] = []
    try:
        deadline = time.monotonic() + 15
        while len(got) < n and time.monotonic() < deadline:
            got += reader.poll()
            time.sleep(0.05)
        time.sleep(0.2)
        got += reader.poll()
    finally:
        reader.close()
    return got


def test_journal_under_rootfs(tmp_path: Path) -> None:
    """--path.rootfs: the journal directories under it are read (journalctl --root)."""
    machine = "5d7e9a3c1b2f4e6d8a0b1c2d3e4f5a6b"
    journal_file(tmp_path / "run/log/journal" / machine / "system.journal")
    reader = journal_reader_for(HostPaths(rootfs=tmp_path), from_start=True)
    assert reader.health.backend == "journalctl"
    got = read_all(reader, 5)
    assert [r.pid for r in got] == [812, 813, 812, 900, 2005]


@pytest.mark.parametrize("backend", BACKENDS)
def test_journal_file_from_export_fixture(tmp_path: Path, backend: str) -> None:
    journal = journal_file(tmp_path / "fixture.journal")
    reader = JournalReader(backend=backend, files=[journal], from_start=True)
    got = read_all(reader, 5)
    assert got == EXPECTED_FROM_FIXTURE
