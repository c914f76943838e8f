"""A real Prometheus scraping the real exporter, with the example config and the alert rules loaded.

sshd runs on loopback with MaxStartups 3:50:6; Prometheus scrapes and evaluates every second. Checked:
the target is up, sshd's limits and the collector status arrive through the HTTP API, every rule loads
and evaluates with health ok, SshAccessMaxStartupsNearStart goes pending while 3 connections are held, and
every query of every dashboard (grafana/dashboards/*.json) evaluates without error, and the host
dashboard's sshd row and the fleet table return data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.exposition import value
from tests.integration.dashboard_queries import DASHBOARDS, GRAFANA_SUBSTITUTIONS, dashboard_queries
from tests.integration.harness import SSHD, Exporter, Sshd, require_root_and
from tests.integration.services import RULES, Held, Prometheus, eventually


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Exporter, Prometheus]]:
    require_root_and(SSHD, "ssh-keygen", "prometheus")
    base = tmp_path_factory.mktemp("e2e")
    with (
        Sshd(base / "sshd", "MaxStartups 3:50:6\n") as sshd,
        Exporter(f"--collector.sshd.config={sshd.config}") as exporter,
    ):
        prometheus = Prometheus(base / "prometheus", exporter.port)
        try:
            yield sshd, exporter, prometheus
        finally:
            prometheus.stop()


def _target_up(prometheus: Prometheus) -> bool:
    targets = prometheus.api("targets")["activeTargets"]
    return len(targets) == 1 and targets[0]["health"] == "up"


def _value(prometheus: Prometheus, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_target_up_and_sshd_limits_queryable(stack: tuple[Sshd, Exporter, Prometheus]) -> None:
    sshd, _, prometheus = stack
    eventually(lambda: _target_up(prometheus), what="the exporter target to be up")
    (target,) = prometheus.api("targets")["activeTargets"]
    assert target["labels"]["job"] == "ssh-access-exporter"
    eventually(lambda: prometheus.query("ssh_access_sshd_maxstartups_start"), what="first samples")
    assert _value(prometheus, "ssh_access_sshd_maxstartups_start") == 3
    assert _value(prometheus, "ssh_access_sshd_maxstartups_full") == 6
    assert _value(prometheus, "ssh_access_sshd_maxstartups_rate") == 0.5
    assert _value(prometheus, 'ssh_access_collector_success{collector="sshd"}') == 1
    assert _value(prometheus, 'up{job="ssh-access-exporter"}') == 1
    listener = f'listener="{sshd.config}"'
    assert _value(prometheus, f"ssh_access_sshd_listener_maxstartups_start{{{listener}}}") == 3


def _ours(sshd: Sshd, labels: dict[str, str]) -> bool:
    """Alerts about this test's sshd or the host: other tests may run their own sshd at the same time."""
    return labels.get("listener", str(sshd.config)) == str(sshd.config)


def test_rules_loaded_and_healthy(stack: tuple[Sshd, Exporter, Prometheus]) -> None:
    sshd, _, prometheus = stack
    expected = {  # the alert groups and their alerts (the recording groups hold no alert)
        group["name"]: [rule["alert"] for rule in group["rules"] if "alert" in rule]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        if any("alert" in rule for rule in group["rules"])
    }

    def evaluated() -> list[dict[str, Any]] | None:
        groups: list[dict[str, Any]] = prometheus.api("rules", type="alert")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return groups if rules and all(rule["health"] != "unknown" for rule in rules) else None

    groups = eventually(evaluated, what="every rule to be evaluated")
    assert {
        group["name"]: [rule["name"] for rule in group["rules"]] for group in groups if group["rules"]
    } == expected
    recorded = prometheus.api("rules", type="record")["groups"]
    for rule in (rule for group in recorded for rule in group["rules"]):
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
            # A healthy sshd fires nothing. Other groups may be pending here: ban tools and collectors
            # this machine does not run are down by design.
            if group["name"] == "ssh-access-sshd":
                mine = [alert for alert in rule["alerts"] if _ours(sshd, alert["labels"])]
                assert not mine, (rule["name"], mine)


def _alert_states(prometheus: Prometheus, sshd: Sshd, name: str) -> list[tuple[str, dict[str, str]]]:
    alerts = prometheus.api("alerts")["alerts"]
    return [
        (alert["state"], alert["labels"])
        for alert in alerts
        if alert["labels"]["alertname"] == name and _ours(sshd, alert["labels"])
    ]


def test_near_start_alert_goes_pending_while_sshd_is_at_start(
    stack: tuple[Sshd, Exporter, Prometheus],
) -> None:
    sshd, exporter, prometheus = stack
    eventually(lambda: _target_up(prometheus), what="the exporter target to be up")
    listener = str(sshd.config)
    held = Held(sshd.port)
    try:
        held.hold(3)  # MaxStartups 3:50:6: below start until the third, so all three are accepted
        found = exporter.wait_until(
            lambda found: value(found, "ssh_access_sshd_listener_startups", listener=listener) == 3
        )
        assert value(found, "ssh_access_sshd_listener_startups", listener=listener) == 3
        alerts = eventually(
            lambda: _alert_states(prometheus, sshd, "SshAccessMaxStartupsNearStart"),
            what="SshAccessMaxStartupsNearStart",
        )
        ((state, labels),) = alerts
        assert state == "pending"  # for: 2m
        assert labels["listener"] == listener
        assert labels["severity"] == "warning"
        assert labels["instance"] == f"127.0.0.1:{exporter.port}"
        assert not _alert_states(prometheus, sshd, "SshAccessMaxStartupsFull")
    finally:
        held.close()
    eventually(
        lambda: not _alert_states(prometheus, sshd, "SshAccessMaxStartupsNearStart"),
        what="the alert to clear",
    )


# Panels that may be empty on this stack: only states with connections are shown; the per-listener
# branch's host-wide fallback exists only for sshd without a listener title.
EMPTY_OK = {"TCP connections on sshd ports by state"}
# Fleet columns of layers this stack does not have: no ban tool runs, no watchlist is configured.
ABSENT_LAYERS = (
    "ssh_access_banned_addresses",
    "ssh_access_unenforced_bans",
    "ssh_access_watched_address_blocked",
)


def test_every_dashboard_query_evaluates(stack: tuple[Sshd, Exporter, Prometheus]) -> None:
    """Grafana's variables substituted the way Grafana would; the host dashboard's sshd row and the fleet
    table must show data already (no ban tool, firewall or watchlist on this stack: those may be empty)."""
    _, _, prometheus = stack
    assert {path.name for path in DASHBOARDS} == {"ssh-access-fleet.json", "ssh-access-host.json"}
    eventually(lambda: prometheus.query("ssh_access_sshd_listeners"), what="first samples")
    time.sleep(2)  # two scrapes more, so rate() and increase() have samples to work on
    for uid, row, title, expr, _ in dashboard_queries():
        grafana = expr
        for variable, replacement in GRAFANA_SUBSTITUTIONS.items():
            grafana = grafana.replace(variable, replacement)
        assert "$" not in grafana, f"unsubstituted variable in {title}: {expr}"
        result = prometheus.query(grafana)  # a parse or evaluation error fails inside api()
        fallback = "unless on (instance)" in expr  # the branch for sshd without a listener title
        must = (uid == "ssh-access-host" and row == "Is sshd near its limits") or (
            uid == "ssh-access-fleet" and row == "Hosts"
        )
        absent = any(name in expr for name in ABSENT_LAYERS)
        if must and title not in EMPTY_OK and not fallback and not absent:
            assert result, f"{uid} {title}: no data for {grafana}"
        if uid == "ssh-access-fleet" and row == "Hosts":  # Grafana merges the columns on these labels
            assert [set(series["metric"]) for series in result] == [{"job", "instance"}] * len(result), (
                grafana
            )
