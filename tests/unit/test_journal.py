"""JournalReader: journalctl JSON parsing, and the subprocess supervision with fake journalctl scripts."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.sources.authlog.journal import (
    JournalReader,
    default_journal_dirs,
    journal_matches,
    journal_reader_for,
    parse_journal_json,
)
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.host.paths import HostPaths
from tests.builders import journal_entry


def test_parse_plain_entry() -> None:
    record, cursor = parse_journal_json(journal_entry(SYSLOG_PID="4242"))
    assert cursor == "s=abc;i=1"
    assert record == SyslogRecord(
        message="Failed password for root from 192.0.2.7 port 22 ssh2",
        ident="sshd",
        pid=4242,
        host="vm",
        time=1795464088.821031,
    )


def test_pid_falls_back_to_the_sender_pid() -> None:
    record, _ = parse_journal_json(journal_entry())
    assert record is not None
    assert record.pid == 17684


def test_message_as_byte_array_is_decoded_with_replacement() -> None:
    raw = list(b"Invalid user \xff\x01 from 2001:db8::7 port 22\n")
    record, _ = parse_journal_json(journal_entry(MESSAGE=raw))
    assert record is not None
    assert record.message == "Invalid user \ufffd\x01 from 2001:db8::7 port 22"


def test_field_present_twice_takes_the_first_value() -> None:
    record, _ = parse_journal_json(
        journal_entry(SYSLOG_IDENTIFIER=["sshd-session", "sshd"], MESSAGE=[list(b"first"), "second"])
    )
    assert record is not None
    assert (record.ident, record.message) == ("sshd-session", "first")


def test_ident_from_comm_when_no_syslog_identifier() -> None:
    record, _ = parse_journal_json(journal_entry(SYSLOG_IDENTIFIER=None, _COMM="sshd-session"))
    assert record is not None
    assert record.ident == "sshd-session"


def test_other_programs_give_a_cursor_but_no_record() -> None:
    assert parse_journal_json(journal_entry(SYSLOG_IDENTIFIER="cron", _COMM="cron")) == (None, "s=abc;i=1")


def test_sshd_entry_without_message_is_skipped() -> None:
    assert parse_journal_json(journal_entry(MESSAGE=None)) == (None, "s=abc;i=1")


def test_long_message_is_capped() -> None:
    record, _ = parse_journal_json(journal_entry(MESSAGE="x" * 100_000))
    assert record is not None
    assert len(record.message) == 2048


@pytest.mark.parametrize("line", ["", "not json", "[1, 2]", '{"MESSAGE": "no cursor"'])
def test_garbage_lines(line: str) -> None:
    assert parse_journal_json(line) == (None, None)


def test_matches_are_identifier_or_comm() -> None:
    assert journal_matches() == [
        "SYSLOG_IDENTIFIER=sshd",
        "SYSLOG_IDENTIFIER=sshd-session",
        "+",
        "_COMM=sshd",
        "_COMM=sshd-session",
    ]


def test_default_journal_dirs(tmp_path: Path) -> None:
    paths = HostPaths(rootfs=tmp_path)
    assert default_journal_dirs(paths) == []
    (tmp_path / "run/log/journal").mkdir(parents=True)
    assert default_journal_dirs(paths) == [tmp_path / "run/log/journal"]


# ---- supervision, with fake journalctl executables -------------------------------------------------


def fake_journalctl(tmp_path: Path, body: str) -> Path:
    """A script standing in for journalctl; it appends its arguments to argv.log, one run per line."""
    script = tmp_path / "journalctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/argv.log\n{body}\n')
    script.chmod(0o755)
    return script


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def collect(reader: JournalReader, n: int, timeout: float = 10.0) -> list[SyslogRecord]:
    got: list[SyslogRecord] = []

    def enough() -> bool:
        got.extend(reader.poll())
        return len(got) >= n

    wait_for(enough, timeout)
    return got


def test_reads_entries_and_restarts_after_exit_from_the_cursor(tmp_path: Path) -> None:
    lines = tmp_path / "entries.json"
    lines.write_text(
        journal_entry(__CURSOR="c1")
        + "\n"
        + journal_entry(__CURSOR="c2", SYSLOG_IDENTIFIER="cron", _COMM="cron")
        + "\n"
    )
    script = fake_journalctl(tmp_path, f"cat {lines}; echo 'boom' >&2; exit 3")
    reader = JournalReader(journalctl=str(script), backend="journalctl", backoff_s=(0.05, 0.1))
    try:
        assert reader.health.backend == "journalctl"
        got = collect(reader, 3)
        wait_for(lambda: reader.health.restarts >= 2)
    finally:
        reader.close()
    assert got[0].message.startswith("Failed password")
    runs = (tmp_path / "argv.log").read_text().splitlines()
    assert "--lines=0" in runs[0] and "--after-cursor" not in runs[0]
    assert "--after-cursor=c2" in runs[1]  # resumes after the last entry read, sshd's or not
    assert runs[0].endswith(" ".join(journal_matches()))
    assert "--follow" in runs[0] and "--output=json" in runs[0] and "--all" in runs[0]
    assert reader.health.read_errors >= 1
    assert "exited with status 3: boom" in (reader.health.last_error or "")


def test_restart_before_any_entry_resumes_from_the_start_time(tmp_path: Path) -> None:
    script = fake_journalctl(tmp_path, "exit 1")
    reader = JournalReader(journalctl=str(script), backend="journalctl", backoff_s=(0.05, 0.05))
    try:
        wait_for(
            lambda: (
                len((tmp_path / "argv.log").read_text().splitlines()) >= 2
                if (tmp_path / "argv.log").exists()
                else False
            )
        )
    finally:
        reader.close()
    second = (tmp_path / "argv.log").read_text().splitlines()[1]
    assert "--since=@" in second and "--lines=all" in second


def test_missing_journalctl_is_an_error_not_a_crash(tmp_path: Path) -> None:
    reader = JournalReader(journalctl=str(tmp_path / "nope"), backend="journalctl", backoff_s=(0.05, 0.05))
    try:
        wait_for(lambda: reader.health.read_errors >= 2)
        assert reader.poll() == []
        assert not reader.health.open
        assert "cannot run" in (reader.health.last_error or "")
    finally:
        reader.close()


def test_silent_journalctl_is_restarted_and_close_kills_it(tmp_path: Path) -> None:
    script = fake_journalctl(tmp_path, "exec sleep 300")
    reader = JournalReader(
        journalctl=str(script), backend="journalctl", idle_restart_s=0.3, backoff_s=(0.05, 0.05)
    )
    try:
        wait_for(lambda: reader.pid is not None)
        first_pid = reader.pid
        deadline = time.monotonic() + 10
        while reader.health.restarts < 1:
            reader.poll()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        wait_for(lambda: reader.pid not in (None, first_pid))
        second_pid = reader.pid
    finally:
        reader.close()
    assert first_pid is not None
    assert second_pid is not None
    for pid in (first_pid, second_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_cursor_is_saved_and_used_after_a_restart(tmp_path: Path) -> None:
    lines = tmp_path / "entries.json"
    lines.write_text(journal_entry(__CURSOR="s=1;i=5") + "\n")
    script = fake_journalctl(tmp_path, f"cat {lines}; exec sleep 300")
    state = tmp_path / "journal.state"
    reader = JournalReader(journalctl=str(script), backend="journalctl", state_file=state)
    try:
        collect(reader, 1)
    finally:
        reader.close()
    assert json.loads(state.read_text())["cursor"] == "s=1;i=5"
    again = JournalReader(journalctl=str(script), backend="journalctl", state_file=state)
    try:
        wait_for(lambda: len((tmp_path / "argv.log").read_text().splitlines()) >= 2)
    finally:
        again.close()
    assert "--after-cursor=s=1;i=5" in (tmp_path / "argv.log").read_text().splitlines()[1]


def test_directory_file_and_from_start_options(tmp_path: Path) -> None:
    script = fake_journalctl(tmp_path, "exec sleep 300")
    reader = JournalReader(
        journalctl=str(script),
        backend="journalctl",
        directory=tmp_path / "jdir",
        files=[tmp_path / "a.journal"],
        from_start=True,
    )
    try:
        wait_for((tmp_path / "argv.log").exists)
    finally:
        reader.close()
    argv = (tmp_path / "argv.log").read_text()
    assert f"--directory={tmp_path / 'jdir'}" in argv
    assert f"--file={tmp_path / 'a.journal'}" in argv
    assert "--lines=all" in argv


def test_backpressure_blocks_the_pipe_instead_of_dropping(tmp_path: Path) -> None:
    lines = tmp_path / "entries.json"
    lines.write_text("".join(journal_entry(__CURSOR=f"c{i}", MESSAGE=f"m{i}") + "\n" for i in range(500)))
    script = fake_journalctl(tmp_path, f"cat {lines}; exec sleep 300")
    reader = JournalReader(journalctl=str(script), backend="journalctl", queue_size=10, max_batch=7)
    try:
        time.sleep(0.3)  # the queue is full by now; the reader thread waits
        got = collect(reader, 500)
        assert reader.more_pending in (True, False)
    finally:
        reader.close()
    assert [r.message for r in got] == [f"m{i}" for i in range(500)]
    assert reader.health.entries_read == 500


def test_an_oversized_entry_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    lines = tmp_path / "entries.json"
    huge = journal_entry(__CURSOR="big", MESSAGE="x" * (5 * 1024 * 1024))
    lines.write_text(
        journal_entry(__CURSOR="a", MESSAGE="before")
        + "\n"
        + huge
        + "\n"
        + journal_entry(__CURSOR="b", MESSAGE="after")
        + "\n"
    )
    script = fake_journalctl(tmp_path, f"cat {lines}; exec sleep 300")
    reader = JournalReader(journalctl=str(script), backend="journalctl")
    try:
        got = collect(reader, 2)
    finally:
        reader.close()
    assert [r.message for r in got] == ["before", "after"]
    assert reader.health.parse_errors == 1


def test_a_rejected_cursor_is_dropped_instead_of_failing_forever(tmp_path: Path) -> None:
    state = tmp_path / "journal.state"
    state.write_text(json.dumps({"version": 1, "cursor": "not-a-cursor"}))
    body = (
        'case "$*" in *--after-cursor*) echo "Failed to seek to cursor: Invalid argument" >&2; exit 1;; esac'
    )
    script = fake_journalctl(tmp_path, body + "\nexec sleep 300")
    reader = JournalReader(
        journalctl=str(script), backend="journalctl", state_file=state, backoff_s=(0.05, 0.05)
    )
    try:
        wait_for(
            lambda: reader.pid is not None and len((tmp_path / "argv.log").read_text().splitlines()) >= 2
        )
    finally:
        reader.close()
    runs = (tmp_path / "argv.log").read_text().splitlines()
    assert "--after-cursor=not-a-cursor" in runs[0]
    assert "--after-cursor" not in runs[1] and "--since=@" in runs[1]
    assert "Failed to seek to cursor" in (reader.health.last_error or "")


def test_auto_uses_journalctl_when_the_binding_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JournalReader, "_import_binding", staticmethod(lambda: None))
    script = fake_journalctl(tmp_path, "exec sleep 300")
    reader = JournalReader(journalctl=str(script))
    try:
        assert reader.health.backend == "journalctl"
        with pytest.raises(RuntimeError, match="not installed"):
            JournalReader(backend="binding")
    finally:
        reader.close()


def test_a_journal_without_journald_socket_is_not_running(tmp_path: Path) -> None:
    """Journal files with no journald socket under the rootfs: an old record nothing adds to now, so the
    reader says the journal is not running; the socket (held by journald, or by systemd for socket
    activation) is what makes it a source of sshd's lines."""
    journal = tmp_path / "var/log/journal/0123456789abcdef"
    journal.mkdir(parents=True)
    (journal / "system.journal").write_bytes(b"LPKSHHRH")
    (tmp_path / "run/systemd").mkdir(parents=True)  # a systemd host's /run
    reader = journal_reader_for(HostPaths(rootfs=tmp_path), journalctl=str(tmp_path / "no-journalctl"))
    try:
        assert reader.journal_problem() == "journal not running (no /run/systemd/journal/socket)"
        assert reader.health_dict()["path_readable"] is False
        (tmp_path / "run/systemd/journal").mkdir()
        (tmp_path / "run/systemd/journal/socket").write_bytes(b"")  # a file is no socket
        assert reader.journal_problem() == "journal not running (no /run/systemd/journal/socket)"
        (tmp_path / "run/systemd/journal/socket").unlink()
        os.mknod(tmp_path / "run/systemd/journal/socket", stat.S_IFSOCK | 0o666)
        assert reader.journal_problem() is None
    finally:
        reader.close()


def test_a_rootfs_without_the_hosts_run_judges_the_journal_by_its_files(tmp_path: Path) -> None:
    """A container given the journal's directories but not the host's /run cannot see journald's socket:
    that is no evidence journald is down, so readable journal files make it a source."""
    journal = tmp_path / "var/log/journal/0123456789abcdef"
    journal.mkdir(parents=True)
    (journal / "system.journal").write_bytes(b"LPKSHHRH")
    reader = journal_reader_for(HostPaths(rootfs=tmp_path), journalctl=str(tmp_path / "no-journalctl"))
    try:
        assert reader.journal_problem() is None
    finally:
        reader.close()
