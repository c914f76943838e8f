"""Deployment files: alert rules and their promtool tests, Prometheus/Alertmanager examples and the systemd
unit, checked against the metric names the exporter really exposes (the Grafana dashboards:
test_dashboards.py, which reuses the PromQL name parser below).

The known names are: what the sshd collector and the scrape layer render from a fully populated
snapshot (so every family appears, even those a fixture host would leave out), plus the contract
families of collectors still being written (auth log, bans, firewall, watchlist), plus `up`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.authlog import authlog_families
from exporter.collectors.sshd import snapshot_families
from exporter.scrape import ScrapeCollector
from exporter.sources.authlog.stats import Stats
from exporter.sources.sshd.binary import SshdVersion
from exporter.sources.sshd.config import EffectiveConfig, MaxStartups
from exporter.sources.sshd.processes import Listener, ListenerTitle
from exporter.sources.sshd.reader import ConfigState, ListenerState, SshdSnapshot
from exporter.sources.sshd.sockets import CONNECTION_STATES
from tests.exposition import render

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/ssh-access-rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
UNIT = ROOT / "deploy/systemd/ssh-access-exporter.service"
DEFAULTS = ROOT / "deploy/systemd/ssh-access-exporter.default"

# Contract families (the project's metric contract) of collectors other issues add (bans, firewall,
# watchlist). The implemented ones must come out of the real code (checked below).
CONTRACT_PENDING = frozenset(
    {
        "ssh_access_banned_addresses",
        "ssh_access_ban_source_up",
        "ssh_access_fail2ban_jail_guards_sshd",
        "ssh_access_unenforced_bans",
        "ssh_access_watched_address_blocked",
    }
)
CONTRACT_IMPLEMENTED = frozenset(
    {
        "ssh_access_collector_success",
        "ssh_access_collector_duration_seconds",
        "ssh_access_build_info",
        "ssh_access_sshd_startups",
        "ssh_access_sshd_maxstartups_start",
        "ssh_access_sshd_maxstartups_rate",
        "ssh_access_sshd_maxstartups_full",
        "ssh_access_sshd_events_total",
        "ssh_access_sshd_auth_failures_total",
        "ssh_access_sshd_maxstartups_dropped_connections_total",
        "ssh_access_sshd_maxstartups_throttling",
        "ssh_access_sshd_penalties_total",
        "ssh_access_sshd_top_offender_failures",
        "ssh_access_sshd_socket_activated",
        "ssh_access_authlog_source_up",
    }
)
STANDARD = frozenset({"up"})

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


def _full_snapshot() -> SshdSnapshot:
    """Every optional part present, so every family the sshd collector can emit has a sample."""
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


class _Static:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def exposed_names() -> set[str]:
    """Metric names (as PromQL sees them) of a scrape with the sshd collector on a full snapshot and the
    authlog collector on a fresh pipeline (families without samples count: their TYPE line names them)."""
    stats = Stats()
    stats.source("/var/log/auth.log")
    scraper = ScrapeCollector(
        {
            "sshd": _Static(snapshot_families(_full_snapshot())),
            "authlog": _Static(authlog_families(stats.snapshot())),
        }
    )
    try:
        text = render(scraper.collect())
    finally:
        scraper.close()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        names.update(sample.name for sample in family.samples)
    return names


def named_in_collectors() -> set[str]:
    """Family names the other collectors spell out (`"ssh_access_..."` literals in exporter/collectors):
    their expositions need daemons, so the name is checked against the code that emits it."""
    collectors = Path(__file__).resolve().parents[2] / "exporter" / "collectors"
    found: set[str] = set()
    for source in collectors.glob("*.py"):
        text = source.read_text()
        found.update(re.findall(r'"(ssh_access_[a-z0-9_]+)"', text))
        # Families whose names are built from a prefix appear whole in the module's sample exposition.
        found.update(re.findall(r"# TYPE (ssh_access_[a-z0-9_]+) ", text))
    return found


@pytest.fixture(scope="module")
def known_names(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    # Every collector rendered on full snapshots (test_dashboards builds them; imported here, not at the
    # top, because that module imports this one).
    from tests.unit.test_dashboards import exported_families  # noqa: PLC0415

    exported = exported_families(tmp_path_factory.mktemp("rootfs"))
    return frozenset(exposed_names()) | exported | named_in_collectors() | CONTRACT_PENDING | STANDARD


# --- PromQL metric names ----------------------------------------------------------------------------

_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # string literals (label values, regexes)
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\boffset\s+-?[0-9a-z]+"),
    re.compile(r"\$\{?\w+\}?"),  # Grafana variables
)
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (function and aggregation names left out)."""
    for pattern in _STRIP:
        expr = pattern.sub(" ", expr)
    return {
        m.group(1)
        for m in _IDENTIFIER.finditer(expr)
        if m.group(2) is None and m.group(1).lower() not in _KEYWORDS
    }


def test_metric_names_parser() -> None:
    expr = (
        'sum by (instance, listener) (rate(ssh_access_sshd_events_total{event="x", instance=~"$instance"}'
        "[$__rate_interval])) / on (instance) group_left (listener) max without (job) (up offset 5m) > 1e3"
        " unless time() - foo:bar_seconds"
    )
    assert metric_names(expr) == {"ssh_access_sshd_events_total", "up", "foo:bar_seconds"}


def test_exposed_names_cover_the_implemented_contract() -> None:
    assert exposed_names() >= CONTRACT_IMPLEMENTED


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
        "ExecStart": "/usr/local/bin/ssh-access-exporter $ARGS",
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
    assert "~ptrace process_vm_readv process_vm_writev" in settings["SystemCallFilter"]
    capabilities = set(settings["CapabilityBoundingSet"][0].split())
    assert capabilities == {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_NET_RAW"}
    defaults = DEFAULTS.read_text()
    assert re.search(r"^ARGS=\"[^\"]*\"$", defaults, re.MULTILINE)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as systemd reads it; ExecStart points at this venv's command, the one thing not installed."""
    analyze = _tool("systemd-analyze")
    command = Path(sys.executable).with_name("ssh-access-exporter")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/ssh-access-exporter", str(command)))
    proc = _run(analyze, "verify", str(unit))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys and bad values are only warnings
