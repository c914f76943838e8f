"""Every query of the shipped dashboards (grafana/dashboards/*.json), and what Grafana puts in for their
variables before it sends them to Prometheus: shared by the end-to-end tests that evaluate them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "grafana/dashboards").glob("*.json"))

# What Grafana puts in for the variables with "All" selected, and its interval macros.
GRAFANA_SUBSTITUTIONS = {
    'job=~"$job"': 'job=~".+"',
    'cluster=~"$cluster"': 'cluster=~".*"',
    'instance=~"$instance"': 'instance=~".+"',
    "$__rate_interval": "1m",
    "$__range": "1h",
}


def dashboard_queries() -> Iterator[tuple[str, str, str, str, bool]]:
    """(dashboard uid, row, panel title, expr, instant) of every query, annotations too (instant: Grafana
    evaluates it at the end of the time range only, not over it)."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        current_row = ""
        for panel in board["panels"]:
            if panel["type"] == "row":
                current_row = panel["title"]
                continue
            for target in panel["targets"]:
                yield board["uid"], current_row, panel["title"], target["expr"], bool(target.get("instant"))
        for annotation in board["annotations"]["list"]:
            yield board["uid"], "annotations", annotation["name"], annotation["expr"], False
