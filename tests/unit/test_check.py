"""`check`: one line per collector (works, absent, fails, disabled, and why), exit 0/1/2, on fixture hosts."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.__main__ import SUBCOMMANDS, main
from exporter.check import ABSENT, DISABLED, FAILS, WORKS, Finding, classify, exit_code, render
from exporter.collectors.families.bans import BanCollector
from exporter.config import FileConfig
from exporter.options import CHECK, DIAGNOSE, Options, add_host_flags
from exporter.registry import registrations
from exporter.scrape import CollectorStatus
from exporter.sources.host.paths import HostPaths
from tests.e2e import fixture
from tests.procfs_tree import make_procfs

NAMES = [r.name for r in registrations()]
LINE = re.compile(r"^(?P<name>\S+) +(?P<word>works|absent|fails|disabled)(?: +(?P<reason>.+))?$")
# The fixture host without what needs a network namespace (the firewall reads the exporter's own) or a
# server (CrowdSec's local API stand-in): those run in tests/integration/test_check_live.py.
FIXTURE_FLAGS = [
    f"--config.file={fixture.CONFIG}",
    "--collector.authlog.files=/var/log/auth.log",
    "--collector.authlog.journal=off",
    "--collector.fail2ban.socket=",
    "--no-collector.firewall",
    "--no-collector.crowdsec",
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    rootfs, procfs = fixture.build(tmp_path_factory.mktemp("check"))
    return [f"--path.rootfs={rootfs}", f"--path.procfs={procfs}"]


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, f"not NAME WORD REASON: {line!r}"
        lines[match["name"]] = (match["word"], match["reason"] or "")
    return code, lines, err


def test_check_is_a_subcommand() -> None:
    assert "check" in SUBCOMMANDS and "textfile" in SUBCOMMANDS


def test_fixture_host_every_collector_works_or_is_disabled(
    host: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, _ = _check(capsys, *host, *FIXTURE_FLAGS)
    assert list(lines) == NAMES  # one line each, in the registry's order
    assert {name: word for name, (word, _) in lines.items()} == {
        "authlog": WORKS,
        "crowdsec": DISABLED,
        "denyhosts": WORKS,
        "fail2ban": WORKS,
        "firewall": DISABLED,
        "sshd": WORKS,
        "sshguard": WORKS,
        "tcpwrappers": WORKS,
        "watchlist": WORKS,
    }
    assert lines["authlog"][1] == "reads /var/log/auth.log"
    assert lines["sshd"][1] == "1 listener(s)"
    assert code == 0


def test_empty_host_absent_tools_and_an_authlog_that_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing installed: the ban tools, sshd, TCP wrappers and the watchlist are absent (no fault), but
    the auth log fails (sshd's lines would reach nothing), so the exit is 1."""
    procfs = make_procfs(tmp_path / "proc")  # a kernel's, with no process of interest
    code, lines, _ = _check(
        capsys,
        f"--path.rootfs={tmp_path}",
        f"--path.procfs={procfs}",
        "--collector.authlog.journal=off",
        "--no-collector.firewall",
    )
    words = {name: word for name, (word, _) in lines.items()}
    assert words == {
        "authlog": FAILS,
        "crowdsec": ABSENT,
        "denyhosts": ABSENT,
        "fail2ban": ABSENT,
        "firewall": DISABLED,
        "sshd": ABSENT,
        "sshguard": ABSENT,
        "tcpwrappers": ABSENT,
        "watchlist": ABSENT,
    }
    assert lines["fail2ban"][1] == (
        "none of /etc/fail2ban, /usr/bin/fail2ban-server, /var/run/fail2ban/fail2ban.sock, "
        f"/var/lib/fail2ban/fail2ban.sqlite3 under {tmp_path}"
    )
    assert lines["sshd"][1] == f"no /usr/sbin/sshd under {tmp_path} and no sshd listener process"
    assert lines["authlog"][1].startswith("no auth log source: /var/log/auth.log and /var/log/secure absent")
    assert "Error:" not in lines["authlog"][1]  # the exception's type is no reason
    assert code == 1


def test_json(host: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--json", *host, *FIXTURE_FLAGS])
    answer = json.loads(capsys.readouterr().out)
    assert [row["collector"] for row in answer["collectors"]] == NAMES
    assert all(set(row) == {"collector", "status", "reason"} for row in answer["collectors"])
    assert {row["collector"]: row["status"] for row in answer["collectors"]}["firewall"] == DISABLED
    assert code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--collector.authlog.state-dir=/tmp"],  # check writes no state
        ["--log.level=debug"],  # nor a log
        ["--web.listen-address=:1"],
        ["--scrape.timeout=0"],
    ],
)
def test_bad_flags_exit_2_with_one_usage_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: ssh-access-exporter check [flags]") and len(err) == 2


def test_bad_rootfs_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", f"--path.rootfs={tmp_path / 'none'}"])
    assert exit_.value.code == 2
    assert "path.rootfs" in capsys.readouterr().err


def test_every_collector_can_be_switched_off(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines, _ = _check(capsys, f"--path.rootfs={tmp_path}", *(f"--no-collector.{n}" for n in NAMES))
    assert {word for word, _ in lines.values()} == {DISABLED} and code == 0


# --- the rules, one by one ---------------------------------------------------------------------------


def _options(root: Path) -> Options:
    return Options(HostPaths(root, root), FileConfig(), frozenset(NAMES))


class _Snapshot:
    def __init__(self, installed: bool, up: bool, error: str = "") -> None:
        self.installed, self.up, self.error = installed, up, error


class _Reader:
    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def read(self) -> _Snapshot:
        return self.snapshot


def _ban(snapshot: _Snapshot) -> BanCollector[_Snapshot]:
    collector = BanCollector("fail2ban", _Reader(snapshot), lambda _: [])
    list(collector.collect())
    return collector


def _gauge(name: str, **labels_value: float) -> Metric:
    family = GaugeMetricFamily(name, "doc", labels=["binary"] if labels_value else None)
    for label, value in labels_value.items():
        family.add_metric([label], value)
    return family


class _Nothing:
    def collect(self) -> Iterator[Metric]:
        return iter(())


OK = CollectorStatus(True)


def test_a_ban_tool_down_fails_with_its_reason_and_up_works(tmp_path: Path) -> None:
    options = _options(tmp_path)
    down = _ban(_Snapshot(True, False, "socket /run/fail2ban/fail2ban.sock: Permission denied"))
    assert classify("fail2ban", down, OK, [], options) == Finding(
        "fail2ban",
        FAILS,
        "socket /run/fail2ban/fail2ban.sock: Permission denied (needs root: fail2ban's socket (0700) and "
        "database (0600) are root's)",
    )
    assert classify("fail2ban", _ban(_Snapshot(True, True)), OK, [], options) == Finding("fail2ban", WORKS)
    assert classify("fail2ban", _ban(_Snapshot(False, False)), OK, [], options).status == ABSENT


def test_a_failed_run_fails_with_the_collectors_message_and_what_it_needs(tmp_path: Path) -> None:
    failed = CollectorStatus(False, error="FirewallError: nft: Operation not permitted\n(netlink)")
    assert classify("firewall", _Nothing(), failed, [], _options(tmp_path)) == Finding(
        "firewall",
        FAILS,
        "nft: Operation not permitted (netlink) (needs CAP_NET_ADMIN, and CAP_NET_RAW for legacy iptables "
        "tables)",
    )
    timed_out = CollectorStatus(False, error="timed out after 8s")
    assert classify("sshd", _Nothing(), timed_out, [], _options(tmp_path)).reason == "timed out after 8s"


def test_tcpwrappers_absent_only_without_files_and_without_libwrap(tmp_path: Path) -> None:
    options = _options(tmp_path)
    unlinked = [_gauge("ssh_access_tcpwrappers_sshd_binary_libwrap", **{"/usr/sbin/sshd": 0.0})]
    assert classify("tcpwrappers", _Nothing(), OK, unlinked, options).status == ABSENT
    linked = [_gauge("ssh_access_tcpwrappers_sshd_binary_libwrap", **{"/usr/sbin/sshd": 1.0})]
    assert classify("tcpwrappers", _Nothing(), OK, linked, options) == Finding("tcpwrappers", WORKS)


def test_an_installed_sshd_that_is_not_running_works_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/sshd").write_bytes(b"")
    finding = classify("sshd", _Nothing(), OK, [_gauge("ssh_access_sshd_listeners")], _options(tmp_path))
    assert finding == Finding("sshd", WORKS, "sshd is not running (no listener process)")


def test_lines_are_aligned_and_exit_1_only_for_fails() -> None:
    findings = [
        Finding("authlog", WORKS, "reads journal"),
        Finding("tcpwrappers", ABSENT, "why"),
        Finding("sshd", DISABLED),
    ]
    assert render(findings) == (
        "authlog      works     reads journal\ntcpwrappers  absent    why\nsshd         disabled\n"
    )
    assert exit_code(findings) == 0
    assert exit_code([*findings, Finding("firewall", FAILS, "x")]) == 1


def test_check_takes_diagnoses_host_flags_and_every_collector_switch() -> None:
    def flags(view: str) -> set[str]:
        parser = argparse.ArgumentParser()
        add_host_flags(parser, registrations(), view=view)
        return {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}

    extra = {f"--{no}collector.{name}" for name in ("sshd", "watchlist") for no in ("", "no-")}
    assert flags(CHECK) == flags(DIAGNOSE) | extra
