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
from exporter.sources.sshd.keywords import Keywords, Kind


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
                "MaxStartups 10:30:100\n"  # the last MaxStartups wins (LAST_WINS), the drop-ins' too
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
    assert config.max_startups == MaxStartups(10, 0.3, 100)
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


def test_sshd_keeps_the_last_of_some_keywords_and_the_first_of_the_rest(tmp_path: Path) -> None:
    """As `sshd -T` shows: MaxStartups, PerSourceMaxStartups and PerSourceNetBlockSize are assigned on
    every line, the others keep their first value; one PerSourceNetBlockSize value leaves IPv6's at 0."""
    paths = _tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": (
                "MaxStartups 5:30:10\nMaxStartups 7:30:12\nPerSourceMaxStartups 3\nPerSourceMaxStartups 5\n"
                "PerSourceNetBlockSize 16:64\nPerSourceNetBlockSize 24\n"
                "MaxAuthTries 3\nMaxAuthTries 5\nLoginGraceTime 30\nLoginGraceTime 40\n"
            )
        },
    )
    config = EffectiveConfig.from_options(read_config_files(paths, "/etc/ssh/sshd_config").options, "file")
    assert config.max_startups == MaxStartups(7, 0.3, 12)
    assert config.per_source_max_startups == 5
    assert (config.per_source_netblock_v4, config.per_source_netblock_v6) == (24, 0)
    assert (config.max_auth_tries, config.login_grace_time) == (3, 30)


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
    assert any("too deep" in str(e) for e in looped.errors)
    garbage = read_config_files(paths, "/etc/ssh/garbage")
    assert garbage.errors  # the lines that are not `Keyword value` are reported
    missing = read_config_files(paths, "/etc/ssh/none")
    assert missing.files == [] and missing.errors


def test_parse_config_files_takes_callbacks() -> None:
    files = {"/a": "Include /b\nPort 1\n", "/b": 'Port 2\nBanner="quoted value"\n'}

    def read(path: str) -> str:
        return files[path]

    parsed = parse_config_files("/a", read, lambda p: [p] if p in files else [])
    assert parsed.options["port"] == ["2", "1"]
    assert parsed.options["banner"] == ["quoted value"]


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
    assert any(
        error.file == f"/etc/ssh/{fifo_name}" and "not a regular file" in error.reason
        for error in parsed.errors
    )


# Run apart: before the fix `Include /dev/zero` read until MemoryError; the child's address space is capped.
_DEV_ZERO = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.config import read_config_files
print([str(error) for error in read_config_files(HostPaths(), sys.argv[1]).errors])
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
    assert any(error.file == "/etc/ssh/big.conf" and "larger than" in error.reason for error in parsed.errors)
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
    assert sum("too deep" in error.reason for error in parsed.errors) == 1
    assert parsed.aborted


def test_include_fan_out_is_bounded(tmp_path: Path) -> None:
    """No cycle, but each file includes the next one twice, 15 levels: 2^15 inclusions."""
    files = {f"/etc/ssh/l{level}.conf": f"Include /etc/ssh/l{level + 1}.conf\n" * 2 for level in range(15)}
    files["/etc/ssh/l15.conf"] = "MaxAuthTries 3\n" + "# a comment line\n" * 200
    paths = _tree(tmp_path, files)
    started = time.monotonic()
    parsed = read_config_files(paths, "/etc/ssh/l0.conf")
    assert time.monotonic() - started < 2
    assert parsed.aborted and any("budget" in error.reason for error in parsed.errors)
    assert parsed.refusals == []  # the exporter's own budget, not something sshd refuses


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
def test_values_sshd_refuses_are_refused_lines(tmp_path: Path, line: str, key: str) -> None:
    """The line is refused where it is (file, line), skipped, and sshd's default takes its place."""
    paths = _tree(tmp_path, {"/etc/ssh/sshd_config": "MaxSessions 4\n" + line + "\n"})
    parsed = read_config_files(paths, "/etc/ssh/sshd_config")
    assert [(e.file, e.line) for e in parsed.refusals] == [("/etc/ssh/sshd_config", 2)]
    assert key not in parsed.options
    defaults = EffectiveConfig.from_options({}, "file", "9.2p1")
    assert EffectiveConfig.from_options(parsed.options, "file", "9.2p1") == defaults


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


# -- what sshd refuses (issue 14): each problem names file, line and reason; the rest still applies --

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sshd_config"
DEBIAN_9_2 = Keywords.of("9.2p1", "OpenSSH_9.2p1 Debian-2+deb12u10")
MAIN = "/etc/ssh/sshd_config"

# fixture -> the lines sshd 9.2 refuses: (file, line, words of the reason)
REFUSED: dict[str, list[tuple[str, int, str]]] = {
    "valid": [],
    "maxstartups-four-fields": [],
    "deprecated-keywords": [],
    "maxstartups-two-fields": [(MAIN, 2, "MaxStartups: invalid MaxStartups spec")],
    "logingracetime-2x": [(MAIN, 2, "LoginGraceTime: '2x' is not an sshd time value")],
    "unknown-keyword": [(MAIN, 2, "bad configuration option MaxStartupz: unknown to OpenSSH 9.2")],
    "no-value": [(MAIN, 2, "no argument after keyword PidFile")],
    "include-error": [("/etc/ssh/sshd_config.d/20-bad.conf", 3, "MaxAuthTries: 'three' is not an integer")],
    "bad-values": [
        (MAIN, 1, "Port: '0' is not an integer from 1 to 65535"),
        (MAIN, 2, "ListenAddress: '99999' is not an integer from 1 to 65535"),
        (MAIN, 3, "MaxAuthTries: '-1'"),
        (MAIN, 4, "PerSourceNetBlockSize: invalid"),
        (MAIN, 5, "PerSourceMaxStartups: 'many'"),
        (MAIN, 6, "MaxStartups: invalid MaxStartups spec"),
    ],
    "extra-arguments": [(MAIN, 1, "Port: extra arguments at end of line")],
    "invalid-quotes": [(MAIN, 1, "invalid quotes")],
    "unknown-keyword-in-match": [(MAIN, 3, "bad configuration option PasswordAuthenticaton")],
    "newer-keyword": [(MAIN, 2, "bad configuration option PerSourcePenalties: unknown to OpenSSH 9.2")],
}


def _fixture(name: str, keywords: Keywords = DEBIAN_9_2) -> tuple[ParsedFiles, EffectiveConfig]:
    parsed = read_config_files(HostPaths(rootfs=FIXTURES / name), MAIN, keywords)
    return parsed, EffectiveConfig.from_options(parsed.options, "file", "9.2p1", tuple(parsed.files))


def test_every_fixture_has_its_expectation() -> None:
    assert sorted(REFUSED) == sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_lines_name_file_line_and_reason(name: str) -> None:
    parsed, _ = _fixture(name)
    found = [(problem.file, problem.line, problem.reason) for problem in parsed.refusals]
    assert [(file, line) for file, line, _ in found] == [(file, line) for file, line, _ in REFUSED[name]]
    for (_, _, reason), (_, _, words) in zip(found, REFUSED[name], strict=True):
        assert reason.startswith(words)
    assert parsed.errors == parsed.refusals  # every file was readable: nothing but refusals
    for problem in parsed.refusals:
        assert str(problem) == f"{problem.file}:{problem.line}: {problem.reason}"


def test_maxstartups_with_four_fields_is_read_as_sshd_reads_it() -> None:
    """sshd's sscanf("%d:%d:%d") stops after three numbers: sshd -t accepts the line, sshd -T prints
    10:30:60. It used to make every effective-config metric disappear."""
    _, config = _fixture("maxstartups-four-fields")
    assert config.max_startups == MaxStartups(10, 0.3, 60)
    assert config.login_grace_time == 30


def test_a_bad_value_keeps_the_other_values() -> None:
    _, config = _fixture("logingracetime-2x")
    assert config.max_startups == MaxStartups(3, 0.5, 6)
    assert config.login_grace_time == 120  # sshd's default where the refused line was
    assert config.max_auth_tries == 4


def test_an_error_in_an_include_keeps_the_rest() -> None:
    parsed, config = _fixture("include-error")
    assert parsed.files == [MAIN, "/etc/ssh/sshd_config.d/10-ok.conf", "/etc/ssh/sshd_config.d/20-bad.conf"]
    assert (config.max_startups, config.login_grace_time, config.max_auth_tries) == (
        MaxStartups(3, 0.5, 6),
        45,
        6,
    )
    assert config.ports == (2222,)


def test_every_refused_value_falls_back_to_the_default() -> None:
    _, config = _fixture("bad-values")
    defaults = EffectiveConfig.from_options({}, "file", "9.2p1")
    assert config.ports == defaults.ports == (22,)
    assert config.listen_addresses == ()
    assert (config.max_startups, config.max_auth_tries) == (defaults.max_startups, defaults.max_auth_tries)
    assert config.login_grace_time == 90


def test_valid_config_is_read_whole() -> None:
    parsed, config = _fixture("valid")
    assert parsed.errors == []
    assert config.ports == (2222,)
    assert config.listen_addresses == ("192.0.2.10", "[2001:db8::10]:2222")
    assert config.max_startups == MaxStartups(5, 0.4, 20)
    assert config.login_grace_time == 3723
    assert config.max_auth_tries == 3  # from the drop-in, first value wins; the Match block's stays inside
    assert (config.per_source_netblock_v4, config.per_source_netblock_v6) == (24, 64)
    assert config.pid_file == "/run/sshd.pid"


def test_keywords_follow_the_openssh_release() -> None:
    parsed, _ = _fixture("newer-keyword", Keywords.of("9.8p1"))
    assert parsed.errors == []
    assert parsed.options["persourcepenalties"] == ["authfail:10s max:5m"]
    assert Keywords.of("8.1p1").kind("Include") is Kind.UNKNOWN  # sshd_config's Include came in 8.2
    assert Keywords.of("8.2p1").kind("include") is Kind.OPTION
    assert Keywords.of("10.4p1").kind("GSSAPIAuthentication") is Kind.UNKNOWN  # 10.4's renaming slip
    assert Keywords.of("10.5p1").kind("GSSAPIAuthentication") is Kind.OPTION
    assert Keywords.of("10.4p1").kind("PAMAuthenticationViaKbdInt") is Kind.UNKNOWN
    assert Keywords.of("9.2p1").kind("pamauthenticationviakbdint") is Kind.DEPRECATED


def test_deprecated_and_unsupported_keywords_are_accepted() -> None:
    for version in ("7.4p1", "9.2p1", "10.5p1", None):
        keywords = Keywords.of(version)
        assert keywords.kind("RSAAuthentication") is Kind.DEPRECATED
        assert keywords.kind("Protocol") is Kind.DEPRECATED
        assert keywords.kind("UsePrivilegeSeparation") is not Kind.UNKNOWN
        assert keywords.kind("KerberosTgtPassing") in (Kind.UNSUPPORTED, Kind.DEPRECATED)
    parsed, _ = _fixture("deprecated-keywords", Keywords.of("10.5p1"))
    assert parsed.errors == []
    assert "protocol" not in parsed.options  # sshd ignores them: no value is kept


def test_without_a_version_a_keyword_of_any_release_is_known() -> None:
    """Under a fixture rootfs without the binary: a typo is caught, a keyword of some release is not."""
    unknown = Keywords()
    assert unknown.kind("PerSourcePenalties") is Kind.OPTION
    assert unknown.kind("GSSAPIAuthentication") is Kind.OPTION
    assert unknown.kind("MaxStartupz") is Kind.UNKNOWN
    assert Keywords.of("10.9p1").kind("RefuseConnection") is Kind.OPTION  # newer than the table
    assert "10.9" in Keywords.of("10.9p1").describe()


def test_distribution_keywords() -> None:
    debian = Keywords.of("9.2p1", "OpenSSH_9.2p1 Debian-2+deb12u10")
    vanilla = Keywords.of("9.2p1", "OpenSSH_9.2p1")
    assert debian.kind("DebianBanner") is Kind.OPTION
    assert vanilla.kind("DebianBanner") is Kind.UNKNOWN
    assert vanilla.kind("GSSAPIKeyExchange") is Kind.OPTION  # carried by most distributions' builds


@pytest.mark.parametrize(
    ("version", "refused"),
    [("8.6p1", []), ("8.7p1", [1, 2, 3]), (None, [1, 2, 3])],
)
def test_a_keyword_without_a_value(version: str | None, refused: list[int]) -> None:
    """From 8.7 sshd refuses any keyword without a value; before, each keyword decided (the ones the
    exporter reads always refused it)."""
    files = {MAIN: "Ciphers\nBanner=\nUseDNS # no value, a comment\nPort\n"}
    parsed = parse_config_files(MAIN, files.__getitem__, lambda p: [], Keywords.of(version))
    assert [problem.line for problem in parsed.refusals] == [*refused, 4]
    assert all("no argument after keyword" in problem.reason for problem in parsed.refusals)


@pytest.mark.parametrize(
    "line",
    [
        "MaxStartups 10:30:60x",  # sscanf stops at the x: 10:30:60
        "MaxStartups 10x",  # one number: 10:30:10
        "PerSourceNetBlockSize 24:64:1",
        "PerSourceNetBlockSize 24x",
        "LoginGraceTime 1H",
        "MaxAuthTries 0",
        "PerSourceMaxStartups 0",
        "Port ssh",
        "ListenAddress 192.0.2.1",
        "ListenAddress [2001:db8::1]:2222",
        "ListenAddress 2001:db8::1",
        "ListenAddress 192.0.2.1:2222 rdomain red",
        "ListenAddress host.example.org",  # sshd resolves names: not looked up here
        "PidFile none",
        "PerSourcePenalties no",
        "PerSourcePenalties crash:90 authfail:1.5 max:10m overflow:permissive max-sources4:64",
    ],
)
def test_values_sshd_accepts(line: str) -> None:
    files = {MAIN: line + "\n"}
    parsed = parse_config_files(MAIN, files.__getitem__, lambda p: [], Keywords.of("10.0p1"))
    assert parsed.errors == []
    EffectiveConfig.from_options(parsed.options, "file", "10.0p1")


@pytest.mark.parametrize(
    "line",
    [
        "ListenAddress 192.0.2.300",
        "ListenAddress [2001:db8::zz]:22",
        "ListenAddress 192.0.2.1 red",
        "PerSourcePenalties yes authfail:5",
        "PerSourcePenalties authfail:5x",
        "PerSourcePenalties authfail:1.5m",
        "PerSourcePenalties often:5",
        "Port 22x",
        "LoginGraceTime -1",
        "MaxStartups 10 20",
    ],
)
def test_values_sshd_refuses(line: str) -> None:
    files = {MAIN: line + "\n"}
    parsed = parse_config_files(MAIN, files.__getitem__, lambda p: [], Keywords.of("10.0p1"))
    assert [(problem.line, problem.refused) for problem in parsed.errors] == [(1, True)]


def test_unreadable_include_is_a_problem_sshd_does_not_refuse(tmp_path: Path) -> None:
    """A drop-in the exporter (not root) cannot read is its blind spot, not a broken config."""
    paths = _tree(tmp_path, {MAIN: "Include /etc/ssh/sshd_config.d/*.conf\n"})
    (tmp_path / "etc/ssh/sshd_config.d").mkdir()
    os.mkfifo(tmp_path / "etc/ssh/sshd_config.d/50-cloud-init.conf")
    parsed = read_config_files(paths, MAIN)
    assert len(parsed.errors) == 1 and parsed.refusals == []
    assert parsed.errors[0].line is None
