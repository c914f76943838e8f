"""The command line and HTTP view: flags, exit codes, landing page, clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import exporter.web.app
import exporter.web.server
from exporter.__main__ import main
from exporter.cli import serve_parser
from exporter.registry import registrations
from exporter.web.app import make_http_server
from exporter.web.server import parse_listen_address
from tests.exposition import samples, value
from tests.net import free_port, wait_for_port


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-flag"], "--no-such-flag"),
        (["--web.listen-address", "nonsense"], "web.listen-address"),
        (["--web.telemetry-path", "metrics"], "web.telemetry-path"),
        (["--path.procfs", "/nonexistent"], "path.procfs"),
        (["--scrape.timeout", "-1"], "scrape.timeout"),
        (["--log.format", "xml"], "log.format"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_file_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text("watchlist:\n  - 192.0.2.1\nwatchlst: []\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config.file", str(config)])
    assert exit_info.value.code == 2
    assert "watchlst" in capsys.readouterr().err


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    """The lines a flag error prints (asserting it exits 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (["--scrape.timeout=x"], "ssh-access-exporter", "--scrape.timeout: must be a positive number"),
        (["--no-such-flag"], "ssh-access-exporter", "unrecognized arguments: --no-such-flag"),
        (["replay", "--top-offenders=-1", "a.log"], "ssh-access-exporter replay", "--top-offenders: must be"),
        (["replay"], "ssh-access-exporter replay", "required: FILE"),
    ],
)
def test_a_flag_error_is_a_short_usage_line_and_the_error(
    argv: list[str], prog: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse printed every flag's usage (38 lines for the server) before the one line that matters."""
    usage, error = _error(capsys, argv)
    assert usage.startswith(f"usage: {prog} [flags]") and usage.endswith(f"(see {prog} --help)")
    assert error.startswith(f"{prog}: error: ") and message in error


def test_diagnose_help_and_errors_are_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    """diagnose's parser takes the flags that change what it reads, and says so in one usage line."""
    usage, error = _error(capsys, ["diagnose", "--collector.authlog.from-start", "192.0.2.1"])
    assert (
        usage
        == "usage: ssh-access-exporter diagnose [flags] ADDRESS (see ssh-access-exporter diagnose --help)"
    )
    assert "--collector.authlog.from-start" in error
    with pytest.raises(SystemExit):
        main(["diagnose", "--help"])
    shown = capsys.readouterr().out
    assert "--collector.fail2ban.socket" in shown and "--web." not in shown and "state-dir" not in shown
    assert (
        "--log.level" not in shown
        and "--collector.sshd " not in shown
        and "--collector.watchlist " not in shown
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9822", ("", 9822)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]:9822", ("::1", 9822)),
        ("[2001:db8::1]:0", ("2001:db8::1", 0)),
        ("localhost:9822", ("127.0.0.1", 9822)),  # never looked up
    ],
)
def test_listen_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


BAD_LISTEN_ADDRESSES = [
    "nohost.invalid:9822",  # a name: Go exporters resolve it through DNS; refused here
    "999.1.1.1:9822",
    "192.0.2:9822",
    "[::1:9822",
    "::1:9822",  # an IPv6 address without brackets: where does the port begin?
    "[192.0.2.1]:9822",
    "192.0.2.1:65536",
    "192.0.2.1:http",
    "9822",
]


@pytest.mark.parametrize("address", BAD_LISTEN_ADDRESSES)
def test_a_bad_listen_address_exits_2_before_anything_binds_or_resolves(
    address: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("bound or resolved")

    for module, name in [
        (socket, "getaddrinfo"),
        (socket, "gethostbyname"),
        (exporter.web.server, "bind"),
        (exporter.web.app, "bind"),
    ]:
        monkeypatch.setattr(module, name, refuse, raising=False)  # app.py may stop importing bind
    _, error = _error(capsys, [f"--web.listen-address={address}"])
    assert error.startswith("ssh-access-exporter: error: --web.listen-address: ")
    with pytest.raises(ValueError):
        parse_listen_address(address)


def _typed_flags() -> list[tuple[list[str], str]]:
    """Every flag of serve and replay that converts its value, with the argv that gives it a bad one."""
    serve = [
        ([f"{action.option_strings[0]}=x"], action.option_strings[0])
        for action in serve_parser(registrations())._actions
        if action.type is not None and action.option_strings
    ]
    return [*serve, (["replay", "--top-offenders=x", "a.log"], "--top-offenders")]


def test_every_typed_flag_is_listed() -> None:
    flags = {flag for _, flag in _typed_flags()}
    assert {
        "--web.listen-address",
        "--scrape.timeout",
        "--collector.authlog.top-offenders",
        "--collector.fail2ban.socket-owner",
        "--collector.fail2ban.timeout",
        "--collector.firewall.timeout",
        "--collector.watchlist.penalty-window",
        "--top-offenders",
    } == flags


@pytest.mark.parametrize(("argv", "flag"), _typed_flags(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_value_of_a_typed_flag_is_a_sentence_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse named the type function when it raised ValueError: "invalid _positive_seconds value"."""
    _, error = _error(capsys, argv)
    message = error.split(": error: ", 1)[1]
    assert message.startswith(f"{flag}: ") and "'x'" in message
    assert not re.search(r"(?<![\w.-])_\w+", message), message  # no _identifier of ours
    assert "invalid" not in message


@pytest.mark.parametrize(
    "argv",
    [
        ["--scrape.timeout=0"],
        ["--scrape.timeout=nan"],
        ["--scrape.timeout=inf"],
        ["--collector.fail2ban.timeout=-1"],
        ["--collector.firewall.timeout=0"],
        ["--collector.watchlist.penalty-window=-1"],
        ["--collector.fail2ban.socket-owner=-1"],
        ["--collector.authlog.top-offenders=1.5"],
    ],
)
def test_out_of_range_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _, error = _error(capsys, argv)
    assert argv[0].split("=")[0] + ": must be" in error


def test_good_typed_values_are_kept() -> None:
    args = serve_parser(registrations()).parse_args(
        [
            "--scrape.timeout=0.5",
            "--collector.watchlist.penalty-window=0",
            "--collector.fail2ban.socket-owner=7",
        ]
    )
    assert vars(args)["scrape.timeout"] == 0.5
    assert vars(args)["collector.watchlist.penalty_window"] == 0
    assert vars(args)["collector.fail2ban.socket_owner"] == 7


def test_config_file_help_says_what_it_holds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--config.file CONFIG.FILE YAML file with the watchlist" in shown


@pytest.mark.parametrize("flag", ["--config.file", "--web.config.file"])
def test_a_yaml_syntax_error_names_the_file_line_and_column(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.yml"
    path.write_text("watchlist:\n  - 192.0.2.1\n    bad: [\n")
    _, error = _error(capsys, [f"{flag}={path}", f"--path.rootfs={tmp_path}"])
    assert error.endswith(f"{path}: not valid YAML: line 3, column 8: mapping values are not allowed here")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_landing_metrics_404_and_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "exporter",
            f"--web.listen-address=127.0.0.1:{port}", "--web.telemetry-path=/m",
            f"--path.rootfs={tmp_path}", "--no-collector.sshd", "--log.format=json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                status, body = _get(f"http://127.0.0.1:{port}/m")
                break
            except OSError:
                time.sleep(0.05)
        assert status == 200
        found = samples(body)
        assert value(found, "ssh_access_collector_success", collector="sshd") is None  # disabled
        assert value(found, "process_resident_memory_bytes") is not None
        status, landing = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "ssh-access-exporter" in landing and "href='/m'" in landing
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert '"msg": "shutting down"' in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_binding_resolves_no_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPServer.server_bind would call socket.getfqdn(): a reverse lookup of this host."""

    def no_dns(*_args: object) -> str:
        raise AssertionError("name resolution attempted")

    for name in ("getfqdn", "gethostbyaddr", "gethostbyname"):
        monkeypatch.setattr(socket, name, no_dns)
    for address in (":0", "127.0.0.1:0"):
        server = make_http_server(address, lambda environ, start: [])
        server.server_close()


# The exporter with one more collector that never returns (a read stuck on a dead peer, say).
STUCK_EXPORTER = """
import sys, threading
from exporter.registry import register_collector

class Stuck:
    def __init__(self, context):
        pass

    def collect(self):
        threading.Event().wait()
        yield from ()

register_collector("stuck", Stuck, help="never returns")
from exporter.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("mid_scrape", [False, True], ids=["stuck-collector", "stuck-collector-mid-scrape"])
def test_sigterm_exits_promptly_while_a_collector_is_stuck(tmp_path: Path, mid_scrape: bool) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-c", STUCK_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
            f"--path.rootfs={tmp_path}", "--no-collector.sshd", "--log.format=json",
            f"--scrape.timeout={60 if mid_scrape else 0.5}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        scraper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/metrics')",
            ]
        )
        if mid_scrape:
            time.sleep(1)  # the scrape now waits on the stuck collector
        else:
            assert scraper.wait(timeout=10) == 0  # answered; the collector thread stays stuck
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 8
        assert proc.stderr is not None
        assert '"msg": "shutting down"' in proc.stderr.read()
    finally:
        for process in (proc, scraper):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
