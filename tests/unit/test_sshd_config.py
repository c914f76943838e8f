from __future__ import annotations

import math
from pathlib import Path

import pytest

from exporter.paths import HostPaths
from exporter.sources.sshd_config import (
    EffectiveConfig,
    MaxStartups,
    parse_config_files,
    parse_sshd_t,
    parse_time,
    read_config_files,
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
