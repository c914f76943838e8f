"""The runbook (docs/runbook.md) against the alerts' runbook_url, and the Alertmanager example
(deploy/alertmanager/) as amtool reads it: routes for real alert label sets, inhibitions on labels the
alerts carry, templates that print each alert's own annotations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
RUNBOOK = ROOT / "docs/runbook.md"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"
TEMPLATE = ROOT / "deploy/alertmanager/ssh-access.tmpl"
SECTIONS = ["Meaning", "Impact", "Diagnosis", "Mitigation"]
TARGET = {"job": "ssh-access-exporter", "instance": "host-a:9822", "team": "infra"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _runbook() -> dict[str, dict[str, str]]:
    """`## Alert` sections, each `### Part` with its text."""
    sections: dict[str, dict[str, str]] = {}
    for block in re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]:
        title, _, body = block.partition("\n")
        parts = re.split(r"^### (.+)$", body, flags=re.MULTILINE)
        sections[title.strip()] = {
            name: text.strip() for name, text in zip(parts[1::2], parts[2::2], strict=True)
        }
    return sections


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading (our headings are alert names: letters and digits)."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_every_alert_has_a_runbook_section() -> None:
    runbook = _runbook()
    names = [rule["alert"] for rule in _alerts()]
    assert sorted(runbook) == sorted(names), "one `## Alert` section per alert, no others"
    for rule in _alerts():
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"].rpartition("#")[2] == _anchor(name)
        assert list(runbook[name]) == SECTIONS, name
        for part, text in runbook[name].items():
            assert len(text) > 40, f"{name}: {part} is empty"


def test_runbook_names_only_existing_alerts_and_no_shared_paths() -> None:
    text = RUNBOOK.read_text()
    names = {rule["alert"] for rule in _alerts()}
    mentioned = set(re.findall(r"\bSshAccess[A-Za-z0-9]+", text))
    assert mentioned <= names, sorted(mentioned - names)
    assert re.search(r"\.\./shared\b", text) is None  # the repo stands alone: nothing outside it


# --- Alertmanager -----------------------------------------------------------------------------------


def _amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip("amtool not installed (make system-deps)")
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def _labels(name: str, **extra: str) -> dict[str, str]:
    (rule,) = (rule for rule in _alerts() if rule["alert"] == name)
    return {"alertname": name, **TARGET, **rule["labels"], **extra}


def _route(labels: dict[str, str]) -> str:
    pairs = [f"{key}={value}" for key, value in labels.items()]
    proc = _run(_amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *pairs)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_alertmanager_config_is_valid() -> None:
    proc = _run(_amtool(), "check-config", str(ALERTMANAGER))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 templates" in proc.stdout


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_reaches_the_receiver_of_its_severity(rule: dict[str, Any]) -> None:
    receivers = {"critical": "ssh-access-pager", "warning": "ssh-access-tickets", "info": "ssh-access-chat"}
    extra = {"address": "192.0.2.10", "layer": "crowdsec"} if "Watched" in rule["alert"] else {}
    assert _route(_labels(rule["alert"], **extra)) == receivers[rule["labels"]["severity"]]


def _routes() -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = yaml.safe_load(ALERTMANAGER.read_text())["route"]["routes"]
    return routes


def test_watchlist_alerts_are_grouped_by_address_across_the_fleet() -> None:
    """A CrowdSec blocklist holding the office address on ten hosts: one notification, not ten."""
    (watch,) = (route for route in _routes() if "SshAccessWatchedAddressBlocked" in route["matchers"][0])
    assert watch["group_by"] == ["address"]
    matcher = re.fullmatch(r'alertname=~"(.+)"', watch["matchers"][0])
    assert matcher is not None
    assert set(matcher.group(1).split("|")) == {
        rule["alert"] for rule in _alerts() if rule["alert"].startswith("SshAccessWatchedAddress")
    }
    # The route comes before the severity routes, so the per-host alerts land in it too.
    assert _routes().index(watch) == 0


def test_inhibitions_name_alerts_and_labels_that_exist() -> None:
    """Every inhibition's alerts exist, and the labels it compares are labels both alerts carry: target
    labels, or exporter labels their annotations print (a label missing on both sides counts as equal,
    so a misspelt one would silence across hosts)."""
    names = {rule["alert"]: rule for rule in _alerts()}
    target_labels = set(TARGET) - {"team"}
    rules = yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]
    assert rules
    for inhibit in rules:
        sides = []
        for key in ("source_matchers", "target_matchers"):
            (name_matcher,) = (m for m in inhibit[key] if m.startswith("alertname"))
            pattern = re.fullmatch(r'alertname=~?"?([^"]+)"?', name_matcher)
            assert pattern is not None, name_matcher
            matched = [name for name in names if re.fullmatch(pattern.group(1), name)]
            assert matched, f"{name_matcher} matches no alert"
            sides.append(matched)
        for name in sides[0] + sides[1]:
            carried = target_labels | set(
                re.findall(r"\$labels\.(\w+)", json.dumps(names[name]["annotations"]))
            )
            for label in inhibit["equal"]:
                assert label in carried, f"{name} does not carry {label} (inhibition {inhibit})"


def test_maxstartups_full_inhibits_near_start_of_the_same_listener_only() -> None:
    (rule,) = (
        rule
        for rule in yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]
        if rule["target_matchers"] == ['alertname="SshAccessMaxStartupsNearStart"']
    )
    assert rule["source_matchers"] == ['alertname="SshAccessMaxStartupsFull"']
    assert rule["equal"] == ["job", "instance", "listener"]


def test_templates_print_each_alerts_own_annotations(tmp_path: Path) -> None:
    """One watched address blocked on two hosts by two layers, and resolved on a third: each alert's own
    description and runbook_url appear, nothing comes from .CommonAnnotations (empty for such a group)."""
    assert "CommonAnnotations" not in ALERTMANAGER.read_text()
    assert "CommonAnnotations" not in re.sub(r"\{\{/\*.*?\*/\}\}", "", TEMPLATE.read_text(), flags=re.DOTALL)
    (rule,) = (rule for rule in _alerts() if rule["alert"] == "SshAccessWatchedAddressBlocked")
    alerts = []
    for host, layer, status in (
        ("host-a", "crowdsec", "firing"),
        ("host-b", "fail2ban", "firing"),
        ("host-c", "firewall", "resolved"),
    ):
        labels = _labels(rule["alert"], instance=f"{host}:9822", address="192.0.2.10", layer=layer)
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": rule["annotations"]["summary"],
                    "description": f"192.0.2.10 is blocked by {layer} on {host}:9822.",
                    "runbook_url": rule["annotations"]["runbook_url"],
                },
                "startsAt": "2026-12-06T03:00:00Z",
                "endsAt": "2026-12-06T03:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            }
        )
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "receiver": "ssh-access-pager",
                "status": "firing",
                "alerts": alerts,
                "groupLabels": {"address": "192.0.2.10"},
                "commonLabels": {"alertname": rule["alert"], "address": "192.0.2.10"},
                "commonAnnotations": {},
                "externalURL": "http://alertmanager.example.org",
            }
        )
    )
    proc = _run(
        _amtool(),
        "template",
        "render",
        f"--template.glob={TEMPLATE}",
        f"--template.data={data}",
        '--template.text={{ template "ssh-access.title" . }}\n{{ template "ssh-access.text" . }}',
    )
    assert proc.returncode == 0, proc.stderr
    title, _, text = proc.stdout.partition("\n")
    assert title == "[FIRING:2] address=192.0.2.10"
    for host, layer in (("host-a", "crowdsec"), ("host-b", "fail2ban"), ("host-c", "firewall")):
        assert f"192.0.2.10 is blocked by {layer} on {host}:9822." in text
        assert f"on {host}:9822 address 192.0.2.10 layer {layer}" in text
    assert text.count(rule["annotations"]["runbook_url"]) == 3
    assert text.index("host-b") < text.index("Resolved:") < text.index("host-c")
