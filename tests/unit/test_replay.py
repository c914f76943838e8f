"""`replay`: JSON lines and exposition from whole files, any bytes, exit 2 on unreadable input."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

import exporter
from exporter.__main__ import main
from exporter.replay import BLOCK_BYTES, MAX_LINE_BYTES, open_log, read_blocks, read_lines, replay

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"
KEYS = ["file", "line", "event", "address", "user", "method", "pid", "time"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIXTURES / "debian12.log")
    code, out, _ = _run(capsys, path)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert all(list(row) == KEYS for row in rows)
    assert [(r["line"], r["event"], r["address"], r["user"]) for r in rows] == [
        (1, "invalid_user", "203.0.113.5", "oracle"),
        (3, "pam_auth_failure", "203.0.113.5", None),
        (4, "auth_failed", "203.0.113.5", "oracle"),
        (5, "preauth_disconnect", "203.0.113.5", "oracle"),
        (7, "auth_accepted", "2001:db8::10", "carol"),
        (9, "wrapper_refused", "198.51.100.7", None),
    ]
    assert rows[2] == {
        "file": path,
        "line": 4,
        "event": "auth_failed",
        "address": "203.0.113.5",
        "user": "oracle",
        "method": "password",
        "pid": 6032,
        "time": 1795460682.1,
    }


def test_json_line_numbers_count_skipped_lines_and_bare_lines_have_null_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "--format", "json", str(FIXTURES / "framings.log"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [r["line"] for r in rows] == list(range(3, 13))
    assert rows[-1]["time"] is None and rows[-1]["pid"] is None and rows[-1]["address"] == "192.0.2.10"


def test_files_are_one_stream(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "--format",
        "metrics",
        *(str(FIXTURES / f) for f in ("maxstartups-8.4-info.log", "maxstartups-10.0.log")),
    )
    assert code == 0
    assert "ssh_access_sshd_maxstartups_dropped_connections_total 127.0\n" in out
    assert (
        'ssh_access_authlog_lines_read_total{source="' + str(FIXTURES / "maxstartups-10.0.log") + '"} 8.0'
        in out
    )


def test_metrics_exposition(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--format", "metrics", str(FIXTURES / "debian12.log"))
    assert code == 0
    assert 'ssh_access_sshd_events_total{event="auth_failed"} 1.0' in out
    assert 'ssh_access_sshd_events_total{event="penalty_applied"} 0.0' in out
    assert 'ssh_access_sshd_auth_failures_total{method="password"} 1.0' in out
    assert 'ssh_access_sshd_top_offender_failures{address="203.0.113.5"} 3.0' in out
    assert "ssh_access_sshd_maxstartups_throttling 0.0" in out
    assert 'ssh_access_authlog_lines_unmatched_total{source="' in out


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_metrics_pass_promtool(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in FIXTURES.glob("*.log"))
    code, out, _ = _run(capsys, "--format", "metrics", *files)
    assert code == 0
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=out, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("bad", ["missing.log", "."])
def test_unreadable_input_exits_2_before_any_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str
) -> None:
    code, out, err = _run(capsys, str(FIXTURES / "debian12.log"), str(tmp_path / bad))
    assert code == 2 and out == ""
    assert "cannot read" in err and str(tmp_path / bad) in err


def test_binary_garbage_invalid_utf8_and_huge_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "garbage.log"
    path.write_bytes(
        bytes(range(256)) * 50
        + b"\nNov 23 19:04:34 host sshd[1]: Failed password for \xff\xfe from 192.0.2.1 port 1 ssh2\n"
        + b"Nov 23 19:04:35 host sshd[1]: Invalid user "
        + b"A" * 1_000_000
        + b" from 192.0.2.2 port 1\n"
        + b"\x00" * 100_000
        + b"\nNov 23 19:04:36 host sshd[2]: Invalid user b from 192.0.2.3 port 1"  # no final newline
    )
    code, out, _ = _run(capsys, str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["event"], r["address"], r["user"]) for r in rows] == [
        ("auth_failed", "192.0.2.1", "\ufffd\ufffd"),
        ("invalid_user", "192.0.2.3", "b"),
    ]
    assert [r["line"] for r in rows] == [52, 55]  # the 256-byte garbage holds 50 newlines


def test_read_lines_caps_and_keeps_numbering() -> None:
    data = b"a\n" + b"x" * (3 * MAX_LINE_BYTES + 5) + b"\nb\n\xffc"
    lines = list(read_lines(io.BytesIO(data)))
    assert [len(line) for line in lines] == [2, MAX_LINE_BYTES, 2, 2]
    assert lines[2:] == ["b\n", "\ufffdc"]


def test_console_script(tmp_path: Path) -> None:
    exe = Path(exporter.__file__).parents[1] / ".venv" / "bin" / "ssh-access-exporter"
    if not exe.exists():
        pytest.skip("console script not installed in .venv")
    done = subprocess.run(
        [str(exe), "replay", str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "cannot read" in done.stderr


def _block_lines(data: bytes, cap: int, size: int) -> list[str]:
    lines: list[str] = []
    for block in read_blocks(io.BytesIO(data), cap, size):
        if isinstance(block, list):
            lines.extend(block)
        else:
            parts = [part + "\n" for part in block.split("\n")]
            parts[-1] = parts[-1][:-1]
            lines.extend(part for part in parts if part)
    return lines


@pytest.mark.parametrize("size", [1, 7, 64, 1000])
def test_read_blocks_are_read_lines(size: int) -> None:
    cap = 16
    data = (
        b"a\n\nshort\r\n"
        + b"x" * 15
        + b"\n"
        + b"y" * 16
        + b"\n"
        + b"z" * 17
        + b"\n"
        + b"\xff\xfe\xe2\x82\n"
        + b"w" * 40
        + b"\nend \xe2\x82"
    )
    for cut in range(len(data) + 1):
        sample = data[:cut]
        assert _block_lines(sample, cap, size) == list(read_lines(io.BytesIO(sample), cap)), sample


def _gzipped(tmp_path: Path, name: str, source: Path) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(source.read_bytes()))
    return path


@pytest.mark.parametrize("fmt", ["json", "metrics"])
@pytest.mark.parametrize("name", ["auth.log.2.gz", "auth.log.2"])  # known by its bytes, not its name
def test_a_rotated_gzip_log_replays_like_the_plain_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str, name: str
) -> None:
    plain = tmp_path / "auth.log"
    shutil.copy(FIXTURES / "debian12.log", plain)
    packed = _gzipped(tmp_path, name, plain)
    code, expected, _ = _run(capsys, "--format", fmt, str(plain))
    assert code == 0 and "203.0.113.5" in expected
    code, out, err = _run(capsys, "--format", fmt, str(packed))
    assert code == 0 and err == ""
    assert out == expected.replace(str(plain), str(packed))


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_dash_is_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, packed: bool
) -> None:
    data = (FIXTURES / "debian12.log").read_bytes()
    _stdin(monkeypatch, gzip.compress(data) if packed else data)
    code, out, err = _run(capsys, "--format", "metrics", "-")
    assert code == 0 and err == ""
    assert 'ssh_access_authlog_lines_read_total{source="-"} 10.0' in out
    assert 'ssh_access_sshd_top_offender_failures{address="203.0.113.5"} 3.0' in out


def test_a_file_without_sshd_lines_is_said_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "auth.log.1"
    other.write_text(
        "Nov 23 19:04:34 host CRON[7]: pam_unix(cron:session): session opened for user root\n" * 1234
    )
    code, out, err = _run(capsys, str(other), str(FIXTURES / "debian12.log"), str(tmp_path / "auth.log.1"))
    assert code == 0 and len(out.splitlines()) == 6  # the output is what it was
    assert err.splitlines() == [f"ssh-access-exporter replay: {other}: no sshd line in 1,234 lines"] * 2


def test_a_truncated_gzip_log_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "auth.log.2.gz"
    path.write_bytes(gzip.compress((FIXTURES / "debian12.log").read_bytes() * 50)[:200])
    code, _, err = _run(capsys, "--format", "metrics", str(path))
    assert code == 2
    assert err.startswith(f"ssh-access-exporter replay: {path}: read error: ")


def test_a_gzip_log_is_read_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the whole file at once: a month of rotated logs can be gigabytes once decompressed."""
    path = _gzipped(tmp_path, "auth.log.2.gz", FIXTURES / "debian12.log")
    sizes: list[int] = []
    read = gzip.GzipFile.read

    def recorded(self: gzip.GzipFile, size: int = -1) -> bytes:
        sizes.append(size)
        return read(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", recorded)
    with ExitStack() as stack:
        replay([(str(path), open_log(str(path), stack))], "metrics", io.StringIO())
    assert sizes and all(0 < size <= BLOCK_BYTES for size in sizes)
