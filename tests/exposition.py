"""Helpers to read an exposition the way Prometheus would."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """{(name, sorted labels): value} for every sample."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


class _Static:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def render(metrics: Iterable[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(metrics))
    return generate_latest(registry).decode()


def promtool_check(text: str) -> str | None:
    """promtool's complaints about an exposition, None when clean; requires promtool."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not installed (make system-deps)"
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    return None if proc.returncode == 0 else proc.stdout + proc.stderr
