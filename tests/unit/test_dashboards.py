"""The Grafana dashboards (grafana/generate.py -> grafana/dashboards/*.json): the committed JSON is what
the generator writes, the shape Grafana imports as is, no overlapping panels, every query's metric names
exist, and every family the exporter exports appears in a dashboard.

The exported families are the metric contract (tests/e2e/contract.py): the golden scrape's, so a family a
collector adds shows up here once expected.prom has it, plus the few only daemons produce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from grafana import generate
from tests.e2e.contract import exported_names, metric_names

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "grafana/dashboards"
PROVISIONING = ROOT / "grafana/provisioning/dashboards.yml"
UIDS = {"ssh-access-fleet.json": "ssh-access-fleet", "ssh-access-host.json": "ssh-access-host"}
HOST_ROWS = (
    "Is sshd near its limits",
    "Who is kept out",
    "Ban tools",
    "Firewall",
    "TCP wrappers",
    "Exporter health",
)
# Issue 12's families for socket activation and the auth log sources: the panels that need them.
ISSUE_12_FAMILIES = frozenset({"ssh_access_sshd_socket_activated", "ssh_access_authlog_source_up"})
STANDARD = frozenset({"up", "ALERTS"})  # Prometheus' own series


@pytest.fixture(scope="module")
def exported() -> frozenset[str]:
    return exported_names()


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((OUT / name).read_text())
    return loaded


def _panels(name: str) -> list[dict[str, Any]]:
    return [panel for panel in _load(name)["panels"] if panel["type"] != "row"]


def _all_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in UIDS:
        for panel in _panels(name):
            yield name, panel


def _exprs() -> list[str]:
    return [target["expr"] for _, panel in _all_panels() for target in panel["targets"]]


def test_committed_json_is_what_the_generator_writes() -> None:
    """Edit grafana/generate.py and run `make dashboards`; never the JSON."""
    rendered = generate.render()
    assert set(rendered) == {path.name for path in OUT.glob("*.json")} == set(UIDS)
    for name, text in rendered.items():
        assert (OUT / name).read_text() == text, f"{name} is stale: run `make dashboards`"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_shape(name: str) -> None:
    board = _load(name)
    assert board["uid"] == UIDS[name]
    assert 36 <= board["schemaVersion"] <= 41
    assert "__inputs" not in board and "__requires" not in board
    variables = {var["name"]: var for var in board["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "cluster", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for label in ("job", "cluster", "instance"):
        assert variables[label]["datasource"]["uid"] == "${datasource}"
        assert variables[label]["query"]["query"].endswith(f", {label})")
        assert variables[label]["includeAll"]
    assert variables["cluster"]["allValue"] == ".*", "All must match targets without a cluster label"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_no_datasource_uid_but_the_variable() -> None:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            source = node.get("datasource")
            if isinstance(source, dict) and source.get("type") != "grafana":
                yield str(source.get("uid"))
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for name in UIDS:
        uids = set(walk(_load(name)))
        assert uids == {"${datasource}"}, name


@pytest.mark.parametrize("name", sorted(UIDS))
def test_alerts_are_annotations(name: str) -> None:
    (alerts,) = _load(name)["annotations"]["list"]
    assert alerts["datasource"]["uid"] == "${datasource}"
    assert (
        alerts["expr"]
        == 'ALERTS{alertstate="firing", job=~"$job", cluster=~"$cluster", instance=~"$instance"}'
    )


def test_host_dashboard_rows() -> None:
    rows = [panel["title"] for panel in _load("ssh-access-host.json")["panels"] if panel["type"] == "row"]
    assert tuple(rows) == HOST_ROWS


@pytest.mark.parametrize("name", sorted(UIDS))
def test_panels_do_not_overlap(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _load(name)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.parametrize(
    ("name", "panel"), list(_all_panels()), ids=lambda v: v if isinstance(v, str) else v["title"]
)
def test_panel_queries(name: str, panel: dict[str, Any], exported: frozenset[str]) -> None:
    known = exported | STANDARD
    assert len(panel.get("description", "")) > 20, "every panel says what it shows"
    assert panel["fieldConfig"]["defaults"].get("unit"), "every panel has a unit"
    assert panel["datasource"]["uid"] == "${datasource}"
    assert panel["targets"], "panel without a query"
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids)
    for target in panel["targets"]:
        expr = target["expr"]
        assert target["datasource"]["uid"] == "${datasource}"
        for variable in ("job", "cluster", "instance"):
            assert f'{variable}=~"${variable}"' in expr, f"every query follows ${variable}: {expr}"
        names = metric_names(expr)
        assert names, expr
        assert not names - known, f"unknown metric names {sorted(names - known)} in {expr}"


def test_every_exported_family_is_on_a_dashboard(exported: frozenset[str]) -> None:
    used = set().union(*(metric_names(expr) for expr in _exprs()))
    # A counter is queried by its _total name, an info family by its _info name: either spelling counts.
    bare = {re.sub(r"_(total|created|info)$", "", name) for name in used}
    missing = {
        name
        for name in exported
        if name not in used and re.sub(r"_(total|created|info)$", "", name) not in bare
    }
    missing -= {name for name in missing if name.endswith("_created")}  # client_python's creation samples
    assert not missing, sorted(missing)
    assert used >= ISSUE_12_FAMILIES


def test_failed_attempts_are_counted_once() -> None:
    """auth_failed, invalid_user and pam_auth_failure overlap (one attempt writes two or three lines)."""
    (panel,) = (p for _, p in _all_panels() if p["title"] == "Failed attempts vs logins")
    failed = panel["targets"][0]["expr"]
    assert "ssh_access_sshd_auth_failures_total" in failed and 'method!="none"' in failed
    assert "invalid_user" not in failed and "pam_auth_failure" not in failed


def test_fleet_table_links_each_host_to_its_dashboard() -> None:
    (table,) = (panel for panel in _panels("ssh-access-fleet.json") if panel["type"] == "table")
    headers = {header for header, *_ in generate.FLEET_COLUMNS}
    assert headers >= {
        "sshd up",
        "startups / full",
        "MaxStartups drops",
        "banned",
        "unenforced bans",
        "wrappers deny all",
        "watched blocked",
        "alerts firing",
    }
    for target in table["targets"]:
        assert target["instant"] and target["format"] == "table"
        assert "by (job, instance)" in target["expr"], "one row per host"
    (link,) = (
        prop["value"][0]
        for override in table["fieldConfig"]["overrides"]
        if override["matcher"] == {"id": "byName", "options": "instance"}
        for prop in override["properties"]
        if prop["id"] == "links"
    )
    url = link["url"]
    assert url.startswith("/d/ssh-access-host/")
    for part in (
        "${datasource:queryparam}",
        "var-job=${__data.fields.job}",
        "${cluster:queryparam}",
        "var-instance=${__data.fields.instance}",
        "${__url_time_range}",
    ):
        assert part in url


def test_grafana_provisioning_example() -> None:
    provider = yaml.safe_load(PROVISIONING.read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"].startswith("/")


# --- what dashboard-linter would check (its Go binary is not installable here) ----------------------

# Ranges other than $__rate_interval, each for a reason: the fleet table's instant counts over the
# dashboard's time range, and log rotations per hour (rare events: a rate of them says nothing).
FIXED_RANGES = {"[$__range]": "ssh-access-fleet.json", "[1h]": "ssh-access-host.json"}


@pytest.mark.parametrize("name", sorted(UIDS))
def test_panel_titles_are_unique(name: str) -> None:
    titles = [panel["title"] for panel in _load(name)["panels"]]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)


def test_rates_use_the_rate_interval() -> None:
    for name, panel in _all_panels():
        for target in panel["targets"]:
            for window in re.findall(r"\b(?:rate|increase|irate)\([^\[]*(\[[^\]]*\])", target["expr"]):
                if window != "[$__rate_interval]":
                    assert FIXED_RANGES.get(window) == name, f"{panel['title']}: {window} in {target['expr']}"


def test_status_is_shown_as_state_timelines() -> None:
    timelines = {panel["title"] for _, panel in _all_panels() if panel["type"] == "state-timeline"}
    assert timelines >= {
        "sshd status",
        "Ban tools reachable",
        "fail2ban status",
        "TCP wrappers status",
        "Collectors",
        "Auth log sources",
    }
    for _, panel in _all_panels():
        if panel["type"] == "state-timeline":
            (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
            assert set(mapping["options"]) == {"0", "1"}, panel["title"]


def test_the_sdk_reads_the_dashboards_back() -> None:
    """The generated JSON is a valid dashboard for the SDK's own (Grafana 11.6) schema."""
    register_default_plugins()
    for name, uid in UIDS.items():
        board = Dashboard.from_json(_load(name))
        assert board.uid == uid
        assert len(board.panels or ()) == len(_load(name)["panels"])
