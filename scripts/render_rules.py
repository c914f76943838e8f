"""Render deploy/prometheus/ssh-access-rules.yml and its Kubernetes twin, the PrometheusRule of
deploy/kubernetes/, from the mixin (mixin/mixin.libsonnet), the one source.

`make rules` runs it; tests/unit/test_mixin.py fails when a committed file differs from its render, so the
rules Prometheus loads from a file and those the Prometheus Operator loads cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import _jsonnet  # the `jsonnet` package of the dev extras
import yaml

ROOT = Path(__file__).resolve().parents[1]
MIXIN = ROOT / "mixin"
RULES = ROOT / "deploy/prometheus/ssh-access-rules.yml"
PROMETHEUS_RULE = ROOT / "deploy/kubernetes/prometheusrule.yaml"

HEADER = """\
# Alerting and recording rules for ssh-access-exporter. GENERATED from mixin/ by `make rules`: edit the
# mixin (mixin/config.libsonnet holds the job selector, fleet labels, runbook URL and every threshold),
# not this file. Runbooks: docs/runbook.md, one section per alert (its runbook_url).
#
# severity: critical = someone is locked out of sshd now (page); warning = a lockout is coming or a
# protection is broken (ticket); info = what the defences do every day, against the host's own baseline.
# Alerts keep the target's labels (job, instance, cluster, team...) and aggregate away only the exporter's
# own labels. Alerts on collectors you do not run produce nothing: no rule uses absent().
#
# Test with: promtool test rules deploy/prometheus/ssh-access-rules.test.yml
"""

PROMETHEUS_RULE_HEADER = """\
# The alerting and recording rules of deploy/prometheus/ssh-access-rules.yml as a Prometheus Operator
# PrometheusRule: spec.groups are that file's groups. GENERATED from mixin/ by `make rules`: edit the
# mixin, not this file. The operator loads it when its Prometheus's ruleSelector matches the labels
# (kustomization.yaml adds the common ones; add the label your Prometheus selects there).
"""


def evaluate(expression: str) -> Any:
    """A jsonnet expression evaluated with mixin/ as its import path (`m` is the mixin)."""
    snippet = f"local m = import 'mixin.libsonnet'; {expression}"
    return json.loads(_jsonnet.evaluate_snippet("render", snippet, jpathdir=[str(MIXIN)]))


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as people write them


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


# jsonnet sorts keys; a rule reads best in the order Prometheus' documentation writes it.
_ORDER = ("name", "interval", "rules", "record", "alert", "expr", "for", "labels", "annotations")
_ANNOTATIONS = ("summary", "description", "runbook_url")


def _ordered(mapping: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(order)}
    return dict(sorted(mapping.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _rule(rule: dict[str, Any]) -> dict[str, Any]:
    if "annotations" in rule:
        rule = {**rule, "annotations": _ordered(rule["annotations"], _ANNOTATIONS)}
    return _ordered(rule, _ORDER)


def groups() -> list[dict[str, Any]]:
    """Recording rule groups first, then the alert groups, each rule's keys in reading order."""
    evaluated: list[dict[str, Any]] = evaluate("m.prometheusRules.groups + m.prometheusAlerts.groups")
    return [
        _ordered({**group, "rules": [_rule(rule) for rule in group["rules"]]}, _ORDER) for group in evaluated
    ]


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def render() -> str:
    """The rules file as Prometheus loads it."""
    return HEADER + _dump({"groups": groups()})


def render_prometheus_rule() -> str:
    """The same groups as a PrometheusRule (monitoring.coreos.com/v1) for deploy/kubernetes/."""
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "ssh-access-exporter",
            "labels": {"app.kubernetes.io/name": "ssh-access-exporter"},
        },
        "spec": {"groups": groups()},
    }
    return PROMETHEUS_RULE_HEADER + _dump(resource)


# Every file `make rules` writes, with its renderer (the drift test walks the same table).
OUTPUTS = {RULES: render, PROMETHEUS_RULE: render_prometheus_rule}


def main() -> int:
    for path, renderer in OUTPUTS.items():
        path.write_text(renderer())
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
