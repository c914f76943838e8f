"""FileTailer: tail -F semantics on temp files (rotation, truncation, vanishing, odd bytes, restarts)."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from exporter.sources.authlog.tail import FileTailer, default_log_files
from exporter.sources.host.paths import HostPaths

LINE = (
    "2026-11-23T19:04:40.598425+00:00 host sshd[6032]: Failed password for root from 192.0.2.7 port 22 ssh2"
)


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "auth.log"
    path.write_text("old 1\nold 2\n")
    return path


def test_starts_at_end_by_default(log: Path) -> None:
    t = FileTailer(log)
    assert t.poll() == []
    append(log, "new 1\n")
    assert t.poll() == ["new 1"]
    assert t.health.open
    assert t.health.lines_read == 1


def test_from_start_reads_existing_lines(log: Path) -> None:
    t = FileTailer(log, from_start=True)
    assert t.poll() == ["old 1", "old 2"]
    assert t.poll() == []


def test_partial_line_is_held_until_newline(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "half a ")
    assert t.poll() == []
    append(log, "line\nnext")
    assert t.poll() == ["half a line"]
    append(log, "\n")
    assert t.poll() == ["next"]


def test_empty_lines_are_lines(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "a\n\nb\n")
    assert t.poll() == ["a", "", "b"]


def test_invalid_utf8_is_replaced(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, b"Invalid user \xff\xfe from 192.0.2.9 port 4\n\xc3")
    append(log, b"\xa9t\xc3\xa9\n")  # a multibyte character split across two writes
    assert t.poll() == ["Invalid user \ufffd\ufffd from 192.0.2.9 port 4", "\u00e9t\u00e9"]


def test_rename_and_create_keeps_lines_written_to_the_old_file(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "before rotation\n")
    old = log.with_name("auth.log.1")
    log.rename(old)
    append(old, "written late to the old file\n")  # the writer has not reopened yet
    log.write_text("first in new file\n")
    lines = t.poll()
    assert lines == ["before rotation", "written late to the old file", "first in new file"]
    append(old, "even later, old file\n")
    append(log, "second in new file\n")
    assert sorted(t.poll()) == ["even later, old file", "second in new file"]
    assert t.health.rotations == 1


def test_retired_file_is_closed_after_the_grace_period_and_flushes_its_partial_line(log: Path) -> None:
    t = FileTailer(log, rotated_grace_s=0.0)
    t.poll()
    append(log, "no newline at the end")
    old = log.with_name("auth.log.1")
    log.rename(old)
    log.write_text("")
    assert t.poll() == []
    assert t.poll() == ["no newline at the end"]
    assert t.poll() == []


def test_copytruncate_rereads_from_start(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "line a\n")
    assert t.poll() == ["line a"]
    os.truncate(log, 0)
    append(log, "after truncate\n")
    assert t.poll() == ["after truncate"]
    assert t.health.truncations == 1


def test_truncated_and_refilled_past_the_offset_between_polls(log: Path) -> None:
    t = FileTailer(log, from_start=True)
    assert t.poll() == ["old 1", "old 2"]
    with log.open("r+b") as f:  # truncate, then the writer appends more than was there before
        f.truncate(0)
    append(log, "fresh line number one\nfresh line number two\n")
    assert t.poll() == ["fresh line number one", "fresh line number two"]
    assert t.health.truncations == 1


def test_copytruncate_recovers_lines_from_the_copy(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "read before\n")
    assert t.poll() == ["read before"]
    append(log, "missed 1\nmissed 2\n")  # written after our last poll, before the copy
    copy = log.with_name("auth.log.1")
    copy.write_bytes(log.read_bytes())
    os.truncate(log, 0)
    append(log, "after\n")
    assert t.poll() == ["missed 1", "missed 2", "after"]


def test_vanish_and_return(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    append(log, "last words\n")
    log.unlink()
    assert t.poll() == ["last words"]
    assert t.poll() == []
    assert not t.health.open
    log.write_text("reborn 1\nreborn 2\n")
    assert t.poll() == ["reborn 1", "reborn 2"]
    assert t.health.rotations == 1


def test_missing_at_start_then_created_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "secure"
    t = FileTailer(path)
    assert t.poll() == []
    assert not t.health.open
    assert t.health.last_error is not None
    path.write_text("first\n")
    assert t.poll() == ["first"]
    assert t.health.open
    assert t.health.last_error is None


def test_errors_never_raise_and_log_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    t = FileTailer(not_a_dir / "auth.log")  # ENOTDIR: root cannot bypass it
    d = FileTailer(tmp_path)  # a directory, not a log file
    for _ in range(5):
        assert t.poll() == []
        assert d.poll() == []
    assert t.health.read_errors == 5
    assert d.health.read_errors == 5
    assert "not a regular file" in (d.health.last_error or "")
    assert len([r for r in caplog.records if "not a regular file" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if str(not_a_dir) in r.getMessage()]) == 1


def test_permission_denied_as_unprivileged_user(tmp_path: Path) -> None:
    """Root ignores file modes, so the tailer runs in a forked child that dropped to nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(shared, 0o755)
    secret = shared / "auth.log"
    secret.write_text("root only\n")
    os.chmod(secret, 0o600)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            t = FileTailer(secret)
            lines = [t.poll() for _ in range(3)]
            os.write(wfd, json.dumps({"lines": lines, "health": t.health_dict()}).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert result["lines"] == [[], [], []]
    assert result["health"]["open"] is False
    assert result["health"]["read_errors"] == 3
    assert "Permission denied" in result["health"]["last_error"]


def test_long_line_is_capped_and_reading_goes_on(log: Path) -> None:
    t = FileTailer(log, max_line_bytes=100)
    t.poll()
    append(log, "x" * 1000 + "\nshort\n" + "y" * 150 + "\n")
    lines = t.poll()
    assert lines == ["x" * 100, "short", "y" * 100]
    assert t.health.lines_truncated == 2


def test_partial_line_past_the_cap_is_emitted_not_held_forever(log: Path) -> None:
    t = FileTailer(log, max_line_bytes=100)
    t.poll()
    append(log, "z" * 60)
    assert t.poll() == []
    append(log, "z" * 60)
    assert t.poll() == ["z" * 100]
    append(log, "z" * 500 + "\nafter\n")
    assert t.poll() == ["after"]


def drain(t: FileTailer) -> list[str]:
    """Poll until the tailer has caught up (each poll reads at most its per-poll budget)."""
    lines = t.poll()
    while t.more_pending:
        lines += t.poll()
    return lines


def test_ten_megabyte_line_without_newline_keeps_memory_bounded(log: Path) -> None:
    t = FileTailer(log)
    t.poll()
    block = b"A" * (1024 * 1024)
    with log.open("ab") as f:
        for _ in range(10):
            f.write(block)
    del block
    tracemalloc.start()
    try:
        lines = drain(t)
        for _ in range(3):
            with log.open("ab") as f:
                f.write(b"A" * (1024 * 1024))
            lines += drain(t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == ["A" * 16384]
    assert peak < 3 * 1024 * 1024, f"peak allocation {peak} bytes"
    append(log, "\nnext line\n")
    assert drain(t) == ["next line"]
    assert t.health.bytes_read == 13 * 1024 * 1024 + len("\nnext line\n")


def test_budget_per_poll_sets_more_pending(log: Path) -> None:
    t = FileTailer(log, max_bytes_per_poll=1000)
    t.poll()
    append(log, (LINE + "\n") * 50)
    got: list[str] = []
    polls = 0
    while True:
        got += t.poll()
        polls += 1
        if not t.more_pending:
            break
    assert got == [LINE] * 50
    assert polls > 3


def test_state_file_resumes_where_it_stopped(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "tail.state"
    t = FileTailer(log, state_file=state)
    t.poll()
    append(log, "seen\npartial")
    assert t.poll() == ["seen"]
    t.close()
    saved = json.loads(state.read_text())
    assert saved["offset"] == len("old 1\nold 2\nseen\n")
    append(log, " line\nwhile stopped\n")
    t2 = FileTailer(log, state_file=state)
    assert t2.poll() == ["partial line", "while stopped"]


def test_state_file_new_inode_reads_rotated_copy_then_new_file(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "tail.state"
    t = FileTailer(log, state_file=state)
    t.poll()
    append(log, "seen\n")
    assert t.poll() == ["seen"]
    t.close()
    append(log, "unseen in old\n")
    log.rename(log.with_name("auth.log.1"))
    log.write_text("new file\n")
    t2 = FileTailer(log, state_file=state)
    assert t2.poll() == ["unseen in old", "new file"]


def test_state_file_ignored_when_content_changed(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "tail.state"
    t = FileTailer(log, state_file=state)
    t.poll()
    t.close()
    log.write_text("replaced entirely, same inode, longer than before\n")
    t2 = FileTailer(log, state_file=state)
    assert t2.poll() == ["replaced entirely, same inode, longer than before"]


def test_corrupt_state_file_is_ignored(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "tail.state"
    state.write_text("{not json")
    t = FileTailer(log, state_file=state)
    assert t.poll() == []
    append(log, "x\n")
    assert t.poll() == ["x"]


def test_default_log_files(tmp_path: Path) -> None:
    paths = HostPaths(rootfs=tmp_path)
    assert default_log_files(paths) == []
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/secure").write_text("")
    assert default_log_files(paths) == [tmp_path / "var/log/secure"]
    (tmp_path / "var/log/auth.log").write_text("")
    assert default_log_files(paths) == [tmp_path / "var/log/auth.log", tmp_path / "var/log/secure"]


def test_state_file_of_another_path_is_ignored(log: Path, tmp_path: Path) -> None:
    state = tmp_path / "tail.state"
    other = tmp_path / "secure"
    other.write_text("other file\n")
    t = FileTailer(other, state_file=state)
    t.poll()
    t.close()
    t2 = FileTailer(log, state_file=state)  # the configuration changed: start at the end as usual
    assert t2.poll() == []
    append(log, "new\n")
    assert t2.poll() == ["new"]


def test_a_rotated_copy_that_links_out_of_the_rootfs_is_not_read(tmp_path: Path) -> None:
    """copytruncate recovery reads the missed lines from `auth.log.1`: never from a link out of rootfs."""
    rootfs = tmp_path / "root"
    (rootfs / "var/log").mkdir(parents=True)
    log = rootfs / "var/log/auth.log"
    log.write_text("seen 1\n")
    t = FileTailer(log, from_start=True, paths=HostPaths(rootfs=rootfs))
    assert t.poll() == ["seen 1"]
    outside = tmp_path / "outside.log"
    outside.write_text("seen 1\nfrom outside the rootfs\n")  # the copy's bytes, and more
    log.with_name("auth.log.1").symlink_to(outside)
    log.write_text("")  # truncated
    append(log, "after\n")
    assert t.poll() == ["after"]
    assert t.health.truncations == 1


@pytest.mark.parametrize("optional", [False, True])
def test_missing_is_known_and_clears_when_the_file_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, optional: bool
) -> None:
    """A configured file that is missing is a warning; a candidate (`/var/log/secure` on Debian) is not:
    the collector decides whether its absence matters. Either is read from its start once created."""
    path = tmp_path / "secure"
    t = FileTailer(path, optional=optional)
    with caplog.at_level("DEBUG"):
        assert t.poll() == []
    assert t.health.missing and not t.health.open
    assert t.health.optional is optional
    missing = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert [r.levelname for r in missing] == ["DEBUG" if optional else "WARNING"]
    path.write_text("first\n")
    assert t.poll() == ["first"]
    assert not t.health.missing and t.health.open
    path.unlink()
    t.poll()
    assert t.health.missing and not t.health.open
