"""The shared flags and the typed options: README's Flags table is what every view accepts, flags and
dataclasses agree on every default, and one process reads sshd through one reader."""

from __future__ import annotations

import argparse
import re
import threading
from pathlib import Path

import pytest

from exporter.cli import serve_parser
from exporter.collectors.families.bans import BanCollector
from exporter.collectors.firewall import FirewallCollector
from exporter.collectors.sshd import SshdCollector
from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.collectors.watchlist import WatchlistCollector
from exporter.config import ConfigError, FileConfig
from exporter.diagnose import parser as diagnose_parser
from exporter.flagparse import FlagParser
from exporter.options import DIAGNOSE, Options, add_host_flags
from exporter.registry import Context, build_collectors, registrations
from exporter.sources.fail2ban.reader import Fail2banReader
from exporter.sources.host.paths import HostPaths

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("--web.", "--scrape.")
# How the server's follower reads, what it exports and logs, and the collectors that are no layer:
# nothing a layer decides, so not diagnose's.
AUTHLOG_SERVER_ONLY = (
    "--collector.authlog.from-start",
    "--collector.authlog.state-dir",
    "--collector.authlog.top-offenders",
    "--log.level",
    "--log.format",
)
NOT_LAYERS = ("--collector.sshd", "--collector.watchlist")


def readme_flags() -> dict[str, str]:
    """README's Flags table: flag -> default column (a literal value is in backticks: `3`, not none)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Flags", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `(--[\w.-]+)`(?: / `--no-[\w.-]+`)? \| ([^|]+) \|", table, re.MULTILINE)
    return {flag: default.strip() for flag, default in rows}


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def _shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def _diagnose_view() -> dict[str, argparse.Action]:
    parser = FlagParser(prog="diagnose")
    add_host_flags(parser, registrations(), view=DIAGNOSE)
    return _actions(parser)


def test_every_flag_of_the_readme_is_accepted_with_its_default() -> None:
    flags = readme_flags()
    assert len(flags) > 25 and "--collector.fail2ban.socket-owner" in flags
    switches = registrations()
    serve = _actions(serve_parser(switches))
    diagnose = _diagnose_view()
    assert diagnose.keys() <= _actions(diagnose_parser(switches)).keys()
    for flag, default in flags.items():
        if flag == "--collector.NAME":
            assert {f"--collector.{s.name}" for s in switches} <= serve.keys()
            assert {f"--collector.{s.name}" for s in switches} - diagnose.keys() == set(NOT_LAYERS)
            continue
        assert flag in serve, flag
        assert (flag in diagnose) != flag.startswith((*SERVER_ONLY, *AUTHLOG_SERVER_ONLY)), flag
        if default.startswith("`"):
            assert f"`{_shown(serve[flag].default)}`" == default, flag


def test_the_readme_says_which_flags_diagnose_leaves_out() -> None:
    text = (ROOT / "README.md").read_text().split("## Flags", 1)[1].split("\n## ", 1)[0]
    said = text.split("`diagnose` takes", 1)[1]
    assert all(f"`{flag}`" in said for flag in (*AUTHLOG_SERVER_ONLY, *NOT_LAYERS))


def test_a_flag_outside_the_view_is_refused_and_keeps_its_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    switches = registrations()
    parser = FlagParser(prog="diagnose")
    add_host_flags(parser, switches, view=DIAGNOSE)
    with pytest.raises(SystemExit):
        parser.parse_args(["--collector.authlog.state-dir=/var/lib/x"])
    assert "unrecognized arguments: --collector.authlog.state-dir" in capsys.readouterr().err
    args = parser.parse_args(
        [f"--path.rootfs={tmp_path}", f"--path.procfs={tmp_path}", "--no-collector.crowdsec"]
    )
    options = Options.from_namespace(args, switches)
    assert options == _options(tmp_path, "--no-collector.crowdsec")  # the server's defaults, hidden or not


def test_an_unknown_view_is_refused() -> None:
    with pytest.raises(ValueError, match="no view 'replays'"):
        add_host_flags(FlagParser(), registrations(), view="replays")


def _options(tmp_path: Path, *argv: str) -> Options:
    switches = registrations()
    args = serve_parser(switches).parse_args(
        [f"--path.rootfs={tmp_path}", f"--path.procfs={tmp_path}", *argv]
    )
    return Options.from_namespace(args, switches)


def test_the_flags_defaults_are_the_options_defaults(tmp_path: Path) -> None:
    """Without flags, every typed option is its dataclass's default: one default, in one place."""
    options = _options(tmp_path)
    names = frozenset(s.name for s in registrations() if s.enabled)
    assert options == Options(HostPaths(tmp_path, tmp_path), FileConfig(), names)


def test_flags_become_typed_options(tmp_path: Path) -> None:
    options = _options(
        tmp_path,
        "--no-collector.firewall",
        "--collector.authlog.files= /var/log/a.log, ,/var/log/b.log",
        f"--collector.authlog.state-dir={tmp_path}",
        "--collector.firewall.legacy-reader=iptables-legacy-save",
        "--collector.fail2ban.socket-owner=7",
        "--collector.watchlist.penalty-window=60",
    )
    assert not options.enabled("firewall") and options.enabled("sshd")
    assert options.authlog.files == ("/var/log/a.log", "/var/log/b.log")
    assert options.authlog.state_dir == tmp_path
    assert not options.firewall.use_iptc
    access = options.access()
    assert (access.firewall, access.use_iptc, access.fail2ban_owner, access.penalty_window) == (
        False,
        False,
        7,
        60,
    )
    assert access.log_files == options.authlog.files


def test_a_bad_path_names_its_flag(tmp_path: Path) -> None:
    switches = registrations()
    args = serve_parser(switches).parse_args([f"--path.procfs={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match=r"^path\.procfs: "):
        Options.from_namespace(args, switches)


def test_one_sshd_reader_per_process(tmp_path: Path) -> None:
    """The sshd collector renders the context's reader, and fail2ban, firewall and watchlist ask the
    context's ports: one listener scan, one set of caches, not four. The firewall and TCP wrappers
    readers are shared the same way (two parses of a 50,000-line hosts.deny cost 17 MB more)."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/auth.log").write_text("")
    context = Context(_options(tmp_path, "--collector.authlog.files=/var/log/auth.log"))
    collectors = build_collectors(context)
    try:
        sshd = collectors["sshd"]
        assert isinstance(sshd, SshdCollector) and sshd.reader is context.sshd()
        fail2ban = collectors["fail2ban"]
        assert isinstance(fail2ban, BanCollector) and isinstance(fail2ban.reader, Fail2banReader)
        assert fail2ban.reader._sshd_ports == context.sshd_ports
        firewall = collectors["firewall"]
        assert isinstance(firewall, FirewallCollector) and firewall.sshd_ports == context.sshd_ports
        watchlist = collectors["watchlist"]
        assert isinstance(watchlist, WatchlistCollector) and watchlist.reader.sshd_ports == context.sshd_ports
        # the firewall and the wrappers are read once for the collectors and the watchlist, too
        assert firewall.reader is watchlist.reader.firewall_reader is context.firewall()
        wrappers = collectors["tcpwrappers"]
        assert isinstance(wrappers, TcpWrappersCollector)
        assert wrappers.reader is watchlist.reader.wrappers is context.tcp_wrappers()
        denyhosts = collectors["denyhosts"]
        assert isinstance(denyhosts, BanCollector)
        assert denyhosts.reader is watchlist.reader.denyhosts is context.denyhosts()
    finally:
        for collector in collectors.values():
            close = getattr(collector, "close", None)
            if callable(close):
                close()
        context.close()


def test_the_shared_reader_is_built_once_under_concurrent_first_use(tmp_path: Path) -> None:
    context = Context(_options(tmp_path))
    start = threading.Barrier(8)
    readers = []

    def first_use() -> None:
        start.wait()
        readers.append(context.sshd())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(readers) == 8 and all(reader is readers[0] for reader in readers)
    assert context.sshd_ports() == frozenset()  # nothing listens, no config: no port known
    context.close()
