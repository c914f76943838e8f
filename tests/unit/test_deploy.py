"""Deployment files: alert rules and their promtool tests, Prometheus/Alertmanager examples and the systemd
unit, checked against the metric contract (tests/e2e/contract.py: the golden scrape's families, the few
only daemons produce, and `up`); the README's Metrics section too. The Grafana dashboards:
test_dashboards.py, which reuses the PromQL name parser below.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from exporter.collectors import fail2ban
from exporter.collectors.sshd import snapshot_families
from exporter.sources.fail2ban.configcheck import ConfigCheck
from exporter.sources.fail2ban.reader import Fail2banSnapshot, Jail
from exporter.sources.sshd.binary import SshdVersion
from exporter.sources.sshd.config import EffectiveConfig, MaxStartups
from exporter.sources.sshd.processes import Listener, ListenerTitle
from exporter.sources.sshd.reader import ConfigState, ListenerState, SshdSnapshot
from exporter.sources.sshd.sockets import CONNECTION_STATES
from tests.e2e.contract import (
    DAEMON_ONLY,
    exposition_families,
    golden_families,
    known_families,
    known_names,
    metric_names,
)
from tests.exposition import render

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/ssh-access-rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
UNIT = ROOT / "deploy/systemd/ssh-access-exporter.service"
DEFAULTS = ROOT / "deploy/systemd/ssh-access-exporter.default"
README = ROOT / "README.md"

# The alert contract (issue 12): every name the shipped rules must keep. critical: someone is locked out
# now; warning: a lockout is coming or a protection is broken; info: the defences' daily work.
REQUIRED_ALERTS = frozenset(
    {
        # critical
        "SshAccessSshdDown",
        "SshAccessMaxStartupsFull",
        "SshAccessTcpWrappersDenyAll",
        "SshAccessWatchedAddressBlocked",
        "SshAccessWatchedAddressBlockedOnHosts",
        # warning
        "SshAccessMaxStartupsNearStart",
        "SshAccessMaxStartupsDropping",
        "SshAccessSshdConfigInvalid",
        "SshAccessSshdConfigReloadPending",
        "SshAccessUnenforcedBans",
        "SshAccessNoBanToolGuardsSshd",
        "SshAccessFail2banJailMissesSshdPort",
        "SshAccessFail2banJailLogMissing",
        "SshAccessBanSourceDown",
        "SshAccessCollectorFailed",
        "SshAccessExporterDown",
        "SshAccessAuthLogSilent",
        "SshAccessDistributedBruteForce",
        "SshAccessFleetMaxStartupsAtStart",
        # info
        "SshAccessWrapperRefusals",
        "SshAccessPenaltyDrops",
        "SshAccessAuthFailureSurge",
    }
)
SEVERITIES = ("critical", "warning", "info")


@pytest.fixture(scope="module", name="known_names")
def known_names_fixture() -> frozenset[str]:
    return known_names()


# --- the contract's daemon-only families --------------------------------------------------------------


def _full_sshd_snapshot() -> SshdSnapshot:
    """Every optional part present, `sshd -t` included (valid), as on a host running sshd as root."""
    config = EffectiveConfig(
        source="sshd_t",
        max_startups=MaxStartups(3, 0.5, 6),
        per_source_max_startups=2,
        per_source_netblock_v4=32,
        per_source_netblock_v6=128,
        login_grace_time=60.0,
        max_auth_tries=6,
        per_source_penalties=True,
        ports=(22,),
        listen_addresses=("0.0.0.0",),
        pid_file="/run/sshd.pid",
    )
    title = ListenerTitle(argv="/usr/sbin/sshd -D", startups=2, start=3, full=6)
    listener = Listener(pid=100, config="/etc/ssh/sshd_config", create_time=1.7e9, title=title)
    state = ListenerState(
        listener=listener,
        started=1.7e9,
        reload_pending=False,
        ports=(22,),
        ports_from_sockets=True,
        tables=("tcp", "tcp6"),
        tcp_states=dict.fromkeys(CONNECTION_STATES, 0),
    )
    return SshdSnapshot(
        version=SshdVersion(version="9.2p1", release="OpenSSH_9.2p1 Debian-2+deb12u3"),
        config=ConfigState(effective=config, valid=True, sshd_t_error="", parse_errors=()),
        listeners=(state,),
    )


def _daemon_families() -> list[Metric]:
    """What the collectors whose families need daemons render with them: sshd with `sshd -t`, fail2ban
    answering on its socket (a jail with every attribute), fail2ban down with its config parsed."""
    jail = Jail(
        name="sshd",
        banned=1,
        permanent_bans=0,
        bans_total=3,
        failing=2,
        failures_total=9,
        bantime=600.0,
        findtime=600.0,
        maxretry=5,
        backend="file",
        log_paths=("/var/log/auth.log",),
        missing_log_paths=("/var/log/auth.log",),
        guards_sshd=True,
        covers_sshd_port=True,
    )
    socket = Fail2banSnapshot(True, True, "socket", version="1.1.0", server_started=1.7e9, jails=(jail,))
    config = ConfigCheck(jails=("sshd",), without_logs=frozenset({"sshd"}))
    down = Fail2banSnapshot(True, False, None, "down", config=config)
    return [
        *snapshot_families(_full_sshd_snapshot()),
        *fail2ban.snapshot_families(socket),
        *fail2ban.snapshot_families(down),
    ]


def test_daemon_only_families_are_exposed_with_daemons_and_not_by_the_fixture() -> None:
    """Each DAEMON_ONLY family comes out of its collector when the daemon is there; none is in the golden
    file (else it belongs to the golden contract, not here); and whatever these collectors render with
    daemons is in the contract, so a new family cannot skip both the golden file and this list."""
    rendered = exposition_families(render(_daemon_families()))
    assert DAEMON_ONLY.keys() <= rendered, sorted(DAEMON_ONLY.keys() - rendered)
    assert not DAEMON_ONLY.keys() & golden_families(), sorted(DAEMON_ONLY.keys() & golden_families())
    assert rendered <= known_families(), sorted(rendered - known_families())


# --- the README's Metrics section ---------------------------------------------------------------------


def readme_metric_families(text: str) -> tuple[set[str], list[str]]:
    """The families named in the first column of the tables of the README's `## Metrics` section, and
    the shorthands it cannot resolve. A row may name several: `ssh_access_x_start` / `_rate` / `_full`,
    where each suffix replaces a tail of the first name (the contract's family it then names)."""
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    known = known_families()
    found: set[str] = set()
    unresolved: list[str] = []
    for line in section.splitlines():
        cells = line.split("|")
        if not line.startswith("| `") or len(cells) < 3:
            continue
        first, *suffixes = re.findall(r"`([^`]+)`", cells[1])
        found.add(first)
        words = first.split("_")
        for suffix in suffixes:
            tails = ["_".join(words[:keep]) + suffix for keep in range(len(words) - 1, 0, -1)]
            named = [name for name in tails if name in known]
            if named:
                found.add(named[0])
            else:
                unresolved.append(f"{first} / {suffix}")
    return found, unresolved


def test_readme_shorthand_rows() -> None:
    text = (
        "# x\n\n## Metrics\n\n| metric | labels |\n|---|---|\n"
        "| `ssh_access_authlog_lines_read_total` / `_lines_unmatched_total` / `_rotations_total` | source |\n"
        "| `ssh_access_sshd_maxstartups_start` / `_nosuch` | |\n"
        "\n## diagnose\n\n| `ssh_access_elsewhere` | |\n"
    )
    found, unresolved = readme_metric_families(text)
    assert found == {
        "ssh_access_authlog_lines_read_total",
        "ssh_access_authlog_lines_unmatched_total",
        "ssh_access_authlog_rotations_total",
        "ssh_access_sshd_maxstartups_start",
    }
    assert unresolved == ["ssh_access_sshd_maxstartups_start / _nosuch"]


def test_readme_metrics_section_lists_exactly_the_contract() -> None:
    """The README's Metrics tables are the users' contract list: exactly the golden file's families and
    the daemon-only ones. README.md is edited by hand: this says what to add or remove there."""
    found, unresolved = readme_metric_families(README.read_text())
    known = known_families()
    assert not unresolved, f"README.md's Metrics section: shorthands naming no exposed family: {unresolved}"
    assert not found - known, (
        f"README.md's Metrics section lists families the exporter does not expose: {sorted(found - known)}"
    )
    assert not known - found, (
        f"README.md's Metrics section is missing exposed families (add a row each): {sorted(known - found)}"
    )


# --- PromQL metric names ----------------------------------------------------------------------------


def test_metric_names_parser() -> None:
    expr = (
        'sum by (instance, listener) (rate(ssh_access_sshd_events_total{event="x", instance=~"$instance"}'
        "[$__rate_interval])) / on (instance) group_left (listener) max without (job) (up offset 5m) > 1e3"
        " unless time() - foo:bar_seconds"
    )
    assert metric_names(expr) == {"ssh_access_sshd_events_total", "up", "foo:bar_seconds"}


# --- Alert rules ------------------------------------------------------------------------------------


def _all_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _rules() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in _all_rules() if "alert" in rule]


def _recorded() -> frozenset[str]:
    return frozenset(rule["record"] for rule in _all_rules() if "record" in rule)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make system-deps)")
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def test_every_required_alert_exists_once() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_for_severity_and_annotations(rule: dict[str, Any], known_names: frozenset[str]) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "every alert needs a for: duration"
    assert rule["alert"].startswith("SshAccess")
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "the summary is a static sentence"
    assert annotations["summary"].endswith(".")
    assert "{{" in annotations["description"], "the description carries the values"
    assert annotations["runbook_url"].endswith(f"/docs/runbook.md#{rule['alert'].lower()}")
    assert "absent(" not in rule["expr"], "alerts must not fire on absent data"
    unknown = metric_names(rule["expr"]) - known_names - _recorded()
    assert not unknown, f"unknown metric names {sorted(unknown)}"


@pytest.mark.parametrize("rule", [r for r in _all_rules() if "record" in r], ids=lambda r: str(r["record"]))
def test_recording_rule_names_and_metrics(rule: dict[str, Any], known_names: frozenset[str]) -> None:
    level, metric, operations = rule["record"].split(":")
    assert level and metric.startswith("ssh_access_") and operations, "level:metric:operations"
    unknown = metric_names(rule["expr"]) - known_names - _recorded()
    assert not unknown, f"unknown metric names {sorted(unknown)}"


def test_alerts_keep_the_target_labels() -> None:
    """Aggregations name what they drop (`without`) or group by fleet labels; never `by (instance)`, which
    loses job, cluster and team labels and merges two targets with the same instance."""
    for rule in _all_rules():
        assert not re.search(r"\bby\s*\(\s*instance\b", rule["expr"]), rule
        assert not re.search(r"\bon\s*\(", rule["expr"]), rule


def test_promtool_check_rules() -> None:
    proc = _run(_tool("promtool"), "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_all_rules())} rules found" in proc.stdout


def test_promtool_rule_unit_tests_pass_and_cover_every_alert() -> None:
    proc = _run(_tool("promtool"), "test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"no firing case for {rule['alert']}"
        assert any(not case["exp_alerts"] for case in mine), f"no silent case for {rule['alert']}"


def test_rule_tests_prove_that_alerts_keep_the_target_labels() -> None:
    """Every input series of the rule tests carries a target label `team`; every firing per-host alert
    must still have it (fleet alerts aggregate by the fleet labels: job)."""
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    series = [item["series"] for test in tests for item in test["input_series"]]
    assert all(
        'team="infra"' in one for one in series if one.startswith("ssh_access_") or one.startswith("up{")
    )
    fleet = {
        "SshAccessDistributedBruteForce",
        "SshAccessFleetMaxStartupsAtStart",
        "SshAccessWatchedAddressBlockedOnHosts",
    }
    for test in tests:
        for case in test["alert_rule_test"]:
            for alert in case["exp_alerts"]:
                labels = alert["exp_labels"]
                if case["alertname"] in fleet:
                    assert "instance" not in labels and labels["job"] == "ssh-access-exporter"
                else:
                    assert labels["team"] == "infra" and labels["job"] == "ssh-access-exporter", case


def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [RULES.name]
    assert [job["job_name"] for job in config["scrape_configs"]] == ["ssh-access-exporter"]
    proc = _run(_tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_exporter_down_alert_matches_the_example_job() -> None:
    (rule,) = (rule for rule in _rules() if rule["alert"] == "SshAccessExporterDown")
    assert 'job="ssh-access-exporter"' in rule["expr"]


def test_alertmanager_config_is_valid_and_routes_by_severity() -> None:
    amtool = _tool("amtool")
    proc = _run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {"critical": "ssh-access-pager", "warning": "ssh-access-tickets", "info": "ssh-access-chat"}
    for severity, receiver in expected.items():
        proc = _run(
            amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", f"severity={severity}"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == receiver
    severities = {rule["labels"]["severity"] for rule in _rules()}
    assert severities == expected.keys()


# --- systemd unit -----------------------------------------------------------------------------------


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_hardening() -> None:
    settings = _unit_settings()
    expected = {
        "ExecStart": "/usr/bin/ssh-access-exporter $ARGS",
        "EnvironmentFile": "-/etc/default/ssh-access-exporter",
        "Restart": "on-failure",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/ssh-access-exporter",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert "~@privileged @resources ptrace process_vm_readv process_vm_writev" in settings["SystemCallFilter"]
    # not uid 0: a dynamic user holding, as ambient capabilities, exactly the bounding set
    assert "User" not in settings and settings["DynamicUser"] == ["yes"]
    capabilities = set(settings["CapabilityBoundingSet"][0].split())
    assert capabilities == {"CAP_DAC_OVERRIDE", "CAP_SYS_PTRACE", "CAP_NET_ADMIN"}
    assert set(settings["AmbientCapabilities"][0].split()) == capabilities
    assert settings["ProtectProc"] == ["invisible"]
    defaults = DEFAULTS.read_text()
    assert re.search(r"^ARGS=\"[^\"]*\"$", defaults, re.MULTILINE)


def test_unit_runs_the_command_where_the_debian_package_puts_it() -> None:
    """ExecStart's path is the symlink debian/ssh-access-exporter.links installs, and the package's unit
    is this file (tests/integration/test_deb.py checks the installed package)."""
    command = _unit_settings()["ExecStart"][0].split()[0]
    links = [line.split() for line in (ROOT / "debian/ssh-access-exporter.links").read_text().splitlines()]
    assert [f"/{target}" for _, target in links] == [command]
    assert (ROOT / "debian/ssh-access-exporter.service").resolve() == UNIT.resolve()


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as systemd reads it; ExecStart points at this venv's command, the one thing not installed."""
    analyze = _tool("systemd-analyze")
    command = Path(sys.executable).with_name("ssh-access-exporter")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/ssh-access-exporter", str(command)))
    proc = _run(analyze, "verify", str(unit))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys and bad values are only warnings
