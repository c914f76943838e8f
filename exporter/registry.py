"""Collector registration: one line at the bottom of each collector's module, as in node_exporter.

`register_collector("sshd", SshdCollector, enabled=True, add_flags=...)` makes the collector known to
the CLI (which derives `--collector.sshd` / `--no-collector.sshd` from it) and to the scrape loop.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.metrics_core import Metric

from exporter.config import FileConfig
from exporter.sources.host.paths import HostPaths


@dataclass(frozen=True)
class Context:
    """What a collector is built from: host paths, parsed flags, and the config file."""

    paths: HostPaths
    args: argparse.Namespace
    config: FileConfig


class Collector(Protocol):
    """Reads its source and yields metric families; raises when it cannot (never half-truths)."""

    def collect(self) -> Iterable[Metric]: ...


class PartialFailureError(Exception):
    """A collector failed (`ssh_access_collector_success` 0, the message logged) but knows families
    that say why and hold all the same (which of its sources are down): those, and only those, are
    exposed with the failure."""

    def __init__(self, message: str, families: Iterable[Metric]) -> None:
        super().__init__(message)
        self.families = list(families)


Factory = Callable[[Context], Collector]


@dataclass(frozen=True)
class Registration:
    name: str
    factory: Factory
    enabled: bool
    add_flags: Callable[[argparse._ArgumentGroup], None] | None
    help: str


_REGISTRY: dict[str, Registration] = {}


def register_collector(
    name: str,
    factory: Factory,
    *,
    enabled: bool = True,
    add_flags: Callable[[argparse._ArgumentGroup], None] | None = None,
    help: str = "",
) -> None:
    if name in _REGISTRY:
        raise ValueError(f"collector {name!r} registered twice")
    _REGISTRY[name] = Registration(name, factory, enabled, add_flags, help)


def registrations() -> list[Registration]:
    """All collectors, importing every module of this package once so each registers itself."""
    package = importlib.import_module("exporter.collectors")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:  # families/ holds shared renderers, not collectors
            importlib.import_module(f"exporter.collectors.{module.name}")
    return sorted(_REGISTRY.values(), key=lambda r: r.name)
