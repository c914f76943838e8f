"""The monitoring mixin (mixin/mixin.libsonnet) is the one source of the shipped rules: the committed
deploy/prometheus/ssh-access-rules.yml and deploy/kubernetes/prometheusrule.yaml are its render
(`make rules`), its _config reaches every rule, and grafanaDashboards serves the generated dashboards.
Evaluated with the `jsonnet` package (dev extras)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import _jsonnet
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MIXIN = ROOT / "mixin"
DASHBOARDS = ROOT / "grafana/dashboards"
DEFAULT_SELECTOR = 'job="ssh-access-exporter"'
SEVEN_AND_NINE = "{ _config+:: { thresholds+: { surgeFactor: 7, distributedBruteForceHosts: 9 } } }"


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_rules", ROOT / "scripts/render_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(expression: str, overrides: str = "{}") -> Any:
    """`expression` over the mixin `m`, with `overrides` (a jsonnet object) mixed in."""
    snippet = f"local m = (import 'mixin.libsonnet') + {overrides}; {expression}"
    return json.loads(_jsonnet.evaluate_snippet("test", snippet, jpathdir=[str(MIXIN)]))


def _rules(overrides: str = "{}") -> list[dict[str, Any]]:
    groups = evaluate("m.prometheusRules.groups + m.prometheusAlerts.groups", overrides)
    return [rule for group in groups for rule in group["rules"]]


def test_committed_rules_are_the_mixin_render() -> None:
    renderer = _renderer()
    outputs = {path.relative_to(ROOT).as_posix(): render for path, render in renderer.OUTPUTS.items()}
    assert set(outputs) == {"deploy/prometheus/ssh-access-rules.yml", "deploy/kubernetes/prometheusrule.yaml"}
    for name, render in outputs.items():
        assert (ROOT / name).read_text() == render(), f"{name}: run `make rules` and commit the result"


def test_mixin_fields() -> None:
    fields = evaluate("std.objectFieldsAll(m)")
    assert {"_config", "prometheusAlerts", "prometheusRules", "grafanaDashboards"} <= set(fields)
    config = evaluate("m._config")
    assert {"exporterSelector", "groupLabels", "runbookURL", "thresholds"} <= set(config)
    alerts = evaluate("m.prometheusAlerts.groups")
    assert all("alert" in rule for group in alerts for rule in group["rules"])
    records = evaluate("m.prometheusRules.groups")
    assert all("record" in rule for group in records for rule in group["rules"])


def test_selector_is_set_in_one_place() -> None:
    """Every selection of the exporter's series carries _config.exporterSelector, and overriding it
    leaves no trace of the default."""
    overrides = """{ _config+:: {
        exporterSelector: 'job="ssh", cluster="eu-1"',
        groupLabels: ['cluster', 'team'],
        runbookURL: 'https://wiki.example.org/ssh-runbook',
    } }"""
    rules = _rules(overrides)
    for rule in rules:
        expr = rule["expr"]
        assert DEFAULT_SELECTOR not in expr, rule
        for selection in re.findall(r"\b(?:ssh_access_[a-z0-9_]+|up)\{[^}]*\}", expr):
            assert 'job="ssh", cluster="eu-1"' in selection, (rule, selection)
        for plain in re.findall(r"\b(ssh_access_[a-z0-9_]+|up)\b(?![{:])", expr):
            pytest.fail(f"{plain} selected without the selector in {expr}")
        if "alert" in rule:
            assert rule["annotations"]["runbook_url"].startswith("https://wiki.example.org/ssh-runbook#")
    fleet = [rule for rule in rules if re.search(r"\bby \(", rule["expr"])]
    assert fleet
    for rule in fleet:
        assert re.search(r"\bby \(cluster, team(, address)?\)", rule["expr"]), rule


def test_thresholds_live_in_config() -> None:
    default = {rule.get("alert", rule.get("record")): rule["expr"] for rule in _rules()}
    changed = {rule.get("alert", rule.get("record")): rule["expr"] for rule in _rules(SEVEN_AND_NINE)}
    assert "> 4 * instance:ssh_access_sshd_auth_failures" in default["SshAccessAuthFailureSurge"]
    assert "> 7 * instance:ssh_access_sshd_auth_failures" in changed["SshAccessAuthFailureSurge"]
    assert changed["SshAccessDistributedBruteForce"].endswith(">= 9")
    # No number in an alert's expression is written outside _config.thresholds: with every threshold
    # moved, no number of the default expressions is left (0 and 1 are states, not thresholds).
    thresholds = evaluate("m._config.thresholds")
    bumped = ", ".join(
        f"{key}: {value * 3 + 1}" for key, value in thresholds.items() if isinstance(value, int | float)
    )
    moved = {
        rule["alert"]: rule["expr"]
        for rule in _rules(f"{{ _config+:: {{ thresholds+: {{ {bumped} }} }} }}")
        if "alert" in rule
    }
    for name, expr in moved.items():
        fixed = (_numbers(default[name]) & _numbers(expr)) - {"0", "1"}
        assert not fixed, f"{name} has numbers outside _config.thresholds: {sorted(fixed)}"


def _numbers(expr: str) -> set[str]:
    """Numeric literals outside range selectors and label matchers."""
    expr = re.sub(r"\[[^\]]*\]|\{[^}]*\}|\"[^\"]*\"", " ", expr)
    return set(re.findall(r"(?<![\w.:])(\d+(?:\.\d+)?)(?![\w:])", expr))


def test_grafana_dashboards_are_the_generated_files() -> None:
    dashboards = evaluate("m.grafanaDashboards")
    files = sorted(path.name for path in DASHBOARDS.glob("*.json"))
    assert files, "grafana/dashboards/ holds the generated dashboards"
    assert sorted(dashboards) == files
    for name in files:
        assert dashboards[name] == json.loads((DASHBOARDS / name).read_text())


def test_overridden_config_renders_valid_rules(tmp_path: Path) -> None:
    """Another selector, fleet labels and thresholds still give rules promtool accepts, lint included."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps)")
    overrides = """{ _config+:: {
        exporterSelector: 'job=~"ssh|bastion", env="prod"',
        groupLabels: ['cluster', 'region'],
        thresholds+: { baselineWindow: '7d', surgeFactor: 2.5, unmatchedShareJump: 0.35 },
    } }"""
    groups = evaluate("m.prometheusRules.groups + m.prometheusAlerts.groups", overrides)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    proc = subprocess.run(
        [promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exprs = " ".join(rule["expr"] for group in groups for rule in group["rules"])
    assert "[7d]" in exprs and "rate5m_avg7d" in exprs and "> 2.5 *" in exprs and "> 0.35 +" in exprs
