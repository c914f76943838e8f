from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.config import (
    MAX_CONFIG_BYTES,
    EffectiveConfig,
    MaxStartups,
    ParsedFiles,
    parse_config_files,
    parse_sshd_t,
    parse_time,
    read_config_files,
    split_args,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:30:100", MaxStartups(10, 0.3, 100)),
        ("3:50:6", MaxStartups(3, 0.5, 6)),
        ("10", MaxStartups(10, 0.3, 10)),
    ],
)
def test_maxstartups(text: str, expected: MaxStartups) -> None:
    assert MaxStartups.parse(text) == expected


@pytest.mark.parametrize("text", ["", "1:2", "a:b:c", "1:2:3:4"])
def test_bad_maxstartups(text: str) -> None:
    with pytest.raises(ValueError):
        MaxStartups.parse(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("120", 120), ("2m", 120), ("1h30m", 5400), ("0", 0), ("1W", 604800)]
)
def test_time_values(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-1"])
def test_bad_time_values(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


SSHD_T = """port 2222
port 2223
listenaddress 127.0.0.1:2222
logingracetime 30
maxauthtries 3
pidfile /run/x.pid
maxstartups 3:50:6
persourcemaxstartups 4
persourcenetblocksize 24:64
persourcepenalties crash:90 authfail:5 noauth:1
"""


def test_effective_config_from_sshd_t() -> None:
    config = EffectiveConfig.from_options(parse_sshd_t(SSHD_T), "sshd_t", "9.8p1")
    assert config.max_startups == MaxStartups(3, 0.5, 6)
    assert config.per_source_max_startups == 4
    assert (config.per_source_netblock_v4, config.per_source_netblock_v6) == (24, 64)
    assert config.login_grace_time == 30
    assert config.max_auth_tries == 3
    assert config.per_source_penalties is True
    assert config.ports == (2222, 2223)
    assert config.pid_file == "/run/x.pid"


def test_defaults_follow_the_version() -> None:
    old = EffectiveConfig.from_options({}, "file", "9.2p1")
    assert (old.max_startups, old.per_source_max_startups, old.login_grace_time) == (
        MaxStartups(10, 0.3, 100),
        None,
        120,
    )
    assert old.per_source_penalties is False
    assert EffectiveConfig.from_options({}, "file", "9.8p1").per_source_penalties is True
    off = EffectiveConfig.from_options({"persourcepenalties": ["no"]}, "file", "10.0p1")
    assert off.per_source_penalties is False
    assert math.isinf(float("inf"))


def _tree(tmp_path: Path, files: dict[str, str]) -> HostPaths:
    for name, text in files.items():
        path = tmp_path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return HostPaths(rootfs=tmp_path)


def test_include_globs_first_match_and_match_blocks(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": (
                "# Debian style\n"
                "Include /etc/ssh/sshd_config.d/*.conf\n"
                "MaxStartups 10:30:100\n"  # the drop-in set it first: ignored
                "Port 22\n"
                "LoginGraceTime=45\n"
                "Match User alice\n"
                "    MaxAuthTries 99\n"
                "Match all\n"
                "MaxAuthTries 4\n"
            ),
            "/etc/ssh/sshd_config.d/10-limits.conf": (
                "MaxStartups 3:50:6\nMatch Address 192.0.2.0/24\n  Port 99\n"
            ),
            "/etc/ssh/sshd_config.d/20-more.conf": "PerSourceMaxStartups 2\nMaxStartups 1:1:1\n",
            "/etc/ssh/sshd_config.d/ignored.txt": "MaxStartups 7:7:7\n",
        },
    )
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert parsed.errors == []
    assert parsed.files == [
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/10-limits.conf",
        "/etc/ssh/sshd_config.d/20-more.conf",
    ]
    config = EffectiveConfig.from_options(parsed.options, "file", "9.2p1")
    assert config.max_startups == MaxStartups(3, 0.5, 6)
    assert config.per_source_max_startups == 2
    assert config.ports == (22,)  # the Match block's Port stays inside its included file
    assert config.login_grace_time == 45
    assert config.max_auth_tries == 4  # `Match all` reopens the global section


def test_relative_include_is_under_etc_ssh(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {"/etc/ssh/sshd_config": "Include extra.conf\n", "/etc/ssh/extra.conf": "MaxAuthTries 2\n"},
    )
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert parsed.options["maxauthtries"] == ["2"]


def test_include_in_match_block_is_not_global(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": "Match User bob\nInclude /etc/ssh/bob.conf\n",
            "/etc/ssh/bob.conf": "MaxAuthTries 1\n",
        },
    )
    assert "maxauthtries" not in read_config_files(paths, "/etc/ssh/sshd_config").options


def test_garbage_and_loops_are_errors_not_crashes(tmp_path: Path) -> None:
    paths = _tree(tmp_path, {"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config\n"})
    (tmp_path / "etc/ssh/garbage").write_bytes(b"\x00\xff\xfe MaxStartups\n=broken\n\x89PNG\r\n")
    looped = read_config_files(paths, "/etc/ssh/sshd_config")
    assert any("too deep" in e for e in looped.errors)
    garbage = read_config_files(paths, "/etc/ssh/garbage")
    assert garbage.errors  # the lines that are not `Keyword value` are reported
    missing = read_config_files(paths, "/etc/ssh/none")
    assert missing.files == [] and missing.errors


def test_parse_config_files_takes_callbacks() -> None:
    files = {"/a": "Include /b\nPort 1\n", "/b": 'Port 2\nX="quoted value"\n'}

    def read(path: str) -> str:
        return files[path]

    parsed = parse_config_files("/a", read, lambda p: [p] if p in files else [])
    assert parsed.options["port"] == ["2", "1"]
    assert parsed.options["x"] == ["quoted value"]


# -- hardening (issue 11): bounded reads, bounded Includes, linear tokenising, sshd's numeric limits --


def _parse_in_thread(paths: HostPaths, main: str, fifos: list[Path], seconds: float = 2.0) -> object:
    """read_config_files, given `seconds`; a reader still blocked on a FIFO is released (a writer opens
    and closes it) so the test fails instead of hanging."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(read_config_files(paths, main)), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(seconds)
    blocked = worker.is_alive()
    for fifo in fifos:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    worker.join(10)
    assert not blocked, f"still reading after {time.monotonic() - started:.1f} s"
    return result[0]


@pytest.mark.parametrize("fifo_name", ["sshd_config", "sshd_config.d/10-fifo.conf"])
def test_fifo_config_or_include_is_an_error_not_a_hang(tmp_path: Path, fifo_name: str) -> None:
    paths = _tree(tmp_path, {"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPort 2\n"})
    fifo = tmp_path / "etc/ssh" / fifo_name
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    parsed = _parse_in_thread(paths, "/etc/ssh/sshd_config", [fifo])
    assert isinstance(parsed, ParsedFiles)
    assert any(f"/etc/ssh/{fifo_name}" in error and "not a regular file" in error for error in parsed.errors)


# Run apart: before the fix `Include /dev/zero` read until MemoryError; the child's address space is capped.
_DEV_ZERO = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.config import read_config_files
print(read_config_files(HostPaths(), sys.argv[1]).errors)
"""


def test_include_of_a_device_is_refused_unread(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text("Include /dev/zero\nPort 2\n")
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", _DEV_ZERO, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "/dev/zero: " in run.stdout and "not a regular file" in run.stdout
    assert time.monotonic() - started < 20


def test_oversized_config_file_is_an_error(tmp_path: Path) -> None:
    paths = _tree(tmp_path, {"/etc/ssh/sshd_config": "Include /etc/ssh/big.conf\nPort 2\n"})
    (tmp_path / "etc/ssh/big.conf").write_bytes(b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert any("/etc/ssh/big.conf" in error and "larger than" in error for error in parsed.errors)
    assert parsed.options["port"] == ["2"]


def test_self_includes_stop_at_sshds_depth_at_once(tmp_path: Path) -> None:
    """sshd refuses a config nested more than 16 Includes deep (fatal): the parse stops there, not
    after 2^16 parses of a file that includes itself twice."""
    paths = _tree(
        tmp_path, {"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config\nInclude /etc/ssh/sshd_config\n"}
    )
    started = time.monotonic()
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert time.monotonic() - started < 2
    assert sum("too deep" in error for error in parsed.errors) == 1
    assert parsed.aborted


def test_include_fan_out_is_bounded(tmp_path: Path) -> None:
    """No cycle, but each file includes the next one twice, 15 levels: 2^15 inclusions."""
    files = {f"/etc/ssh/l{level}.conf": f"Include /etc/ssh/l{level + 1}.conf\n" * 2 for level in range(15)}
    files["/etc/ssh/l15.conf"] = "MaxAuthTries 3\n" + "# a comment line\n" * 200
    paths = _tree(tmp_path, files)
    started = time.monotonic()
    parsed = read_config_files(paths, "/etc/ssh/l0.conf")
    assert time.monotonic() - started < 2
    assert parsed.aborted and any("budget" in error for error in parsed.errors)


def test_a_file_included_many_times_is_read_once() -> None:
    files = {"/a": "Include /b\nInclude /b\nInclude /b\n", "/b": "Port 7\n"}
    reads: list[str] = []

    def read(path: str) -> str:
        reads.append(path)
        return files[path]

    parsed = parse_config_files("/a", read, lambda p: [p] if p in files else [])
    assert sorted(reads) == ["/a", "/b"]
    assert parsed.options["port"] == ["7", "7", "7"]  # as sshd: each Include adds its Ports again


def test_long_quoted_token_is_split_in_linear_time() -> None:
    token = "x" * 2_000_000
    files = {"/a": f'Banner "{token}"\nPort 5\n'}
    started = time.monotonic()
    parsed = parse_config_files("/a", files.__getitem__, lambda p: [])
    assert time.monotonic() - started < 1
    assert parsed.options["banner"] == [token]


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("a b\tc", ["a", "b", "c"]),
        ('"with space" x', ["with space", "x"]),
        ("'single' \"double\"", ["single", "double"]),
        ('pre"mid dle"post', ["premid dlepost"]),
        ('""', [""]),
        ("a # comment", ["a"]),
        ("a#b c", ["a#b", "c"]),
        ('"#x" y', ["#x", "y"]),
        ("back\\ slash", ["back slash"]),
        ('"in \\" quote"', ['in " quote']),
        ('"keep \\ space"', ["keep \\ space"]),
        ("\\q", ["\\q"]),
        ("a\\\\b", ["a\\b"]),
    ],
)
def test_arguments_are_split_as_sshd_splits_them(text: str, args: list[str]) -> None:
    assert split_args(text) == args


@pytest.mark.parametrize("text", ['"open', "a 'b", '"ends escaped\\"'])
def test_unterminated_quote_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quotes"):
        split_args(text)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("LoginGraceTime " + "9" * 400, "logingracetime"),
        ("LoginGraceTime " + "9" * 5000, "logingracetime"),
        ("LoginGraceTime 2147483648", "logingracetime"),
        ("LoginGraceTime 596524h", "logingracetime"),  # INT_MAX / 3600 < 596524
        ("LoginGraceTime 1000000000s2000000000", "logingracetime"),  # the sum overflows
        ("MaxStartups " + "9" * 400, "maxstartups"),
        ("MaxStartups 10:30:5", "maxstartups"),  # start above full
        ("MaxStartups 10:0:100", "maxstartups"),
        ("MaxStartups 10:101:100", "maxstartups"),
        ("MaxStartups 0", "maxstartups"),
        ("MaxAuthTries 2147483648", "maxauthtries"),
        ("MaxAuthTries -1", "maxauthtries"),
        ("PerSourceMaxStartups " + "9" * 400, "persourcemaxstartups"),
        ("PerSourceMaxStartups None", "persourcemaxstartups"),  # sshd compares with "none" exactly
        ("PerSourceNetBlockSize 33", "persourcenetblocksize"),
        ("PerSourceNetBlockSize 24:129", "persourcenetblocksize"),
        ("PerSourceNetBlockSize " + "9" * 400, "persourcenetblocksize"),
        ("Port 0", "port"),
        ("Port 65536", "port"),
        ("Port " + "9" * 400, "port"),
    ],
)
def test_values_sshd_refuses_are_parse_errors(tmp_path: Path, line: str, key: str) -> None:
    paths = _tree(tmp_path, {"/etc/ssh/sshd_config": line + "\n"})
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert key in parsed.options
    with pytest.raises(ValueError):
        EffectiveConfig.from_options(parsed.options, "file", "9.2p1")


def test_values_at_sshds_limits_are_accepted() -> None:
    options = {
        "logingracetime": ["2147483647"],
        "maxstartups": ["1:100:1"],
        "maxauthtries": ["0"],
        "persourcemaxstartups": ["2147483647"],  # sshd's own spelling of none
        "persourcenetblocksize": ["0:0"],
        "port": ["65535", "1"],
    }
    config = EffectiveConfig.from_options(options, "file", "9.2p1")
    assert config.login_grace_time == 2147483647
    assert config.max_startups == MaxStartups(1, 1.0, 1)
    assert config.max_auth_tries == 0
    assert config.per_source_max_startups is None
    assert (config.per_source_netblock_v4, config.per_source_netblock_v6) == (0, 0)
    assert config.ports == (65535, 1)
    assert parse_time("596523h") == 596523 * 3600
