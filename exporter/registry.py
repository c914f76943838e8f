"""Collector registration: one line at the bottom of each collector's module, as in node_exporter.

`register_collector("sshd", SshdCollector, enabled=True, help=...)` makes the collector known to the
flags (exporter.options derives `--collector.sshd` / `--no-collector.sshd` from it) and to the scrape
loop. A collector's factory gets the `Context`: the typed options, and what the process shares.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.metrics_core import Metric

from exporter.config import FileConfig
from exporter.options import Options
from exporter.sources.access import AccessOptions, AccessReader
from exporter.sources.denyhosts import DenyhostsReader
from exporter.sources.firewall.reader import FirewallReader
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.reader import CachedPorts, SshdReader
from exporter.sources.tcpwrappers.libwrap import BINARIES as WRAPPED_BINARIES
from exporter.sources.tcpwrappers.reader import TcpWrappersReader

# sshd's ports change when sshd restarts, not per scrape: asked again this often.
SSHD_PORTS_TTL = 30.0


class Context:
    """What a collector is built from: the typed options, and the process's one SshdReader and one
    FirewallReader.

    The sshd collector, the collectors that need sshd's ports (fail2ban, firewall, watchlist) and
    `diagnose` share one sshd reader, built on first use: its caches (the listener scan, `sshd -T`, the
    trusted listeners) are then paid for once per process, not once per user of it. The firewall
    collector and the watchlist share the firewall reader the same way: one `nft` listing for both when
    they run in the same scrape, one listing of set elements while the ruleset does not change, one
    lookup index per set; and the tcpwrappers and denyhosts collectors share with the watchlist their
    parses of hosts.deny."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._sshd: SshdReader | None = None
        self._ports: CachedPorts | None = None
        self._firewall: FirewallReader | None = None
        self._wrappers: TcpWrappersReader | None = None
        self._denyhosts: DenyhostsReader | None = None

    @property
    def paths(self) -> HostPaths:
        return self.options.paths

    @property
    def config(self) -> FileConfig:
        return self.options.config

    def sshd(self) -> SshdReader:
        """The shared reader of the configured sshd (binary and config from the options)."""
        with self._lock:
            if self._sshd is None:
                self._sshd = SshdReader(self.paths, self.options.sshd.binary, self.options.sshd.config)
            return self._sshd

    def firewall(self) -> FirewallReader:
        """The shared reader of this network namespace's packet filter."""
        with self._lock:
            if self._firewall is None:
                options = self.options.firewall
                self._firewall = FirewallReader(self.paths, options.timeout, use_iptc=options.use_iptc)
            return self._firewall

    def tcp_wrappers(self) -> TcpWrappersReader:
        """The shared reader of hosts.allow and hosts.deny (the tcpwrappers collector's, the watchlist's and
        diagnose's): a 50,000-line hosts.deny is parsed and indexed once (about 17 MB), not once each."""
        with self._lock:
            if self._wrappers is None:
                sshd = self.options.sshd.binary or WRAPPED_BINARIES[0]
                binaries = (sshd, *(b for b in WRAPPED_BINARIES if b != sshd))
                self._wrappers = TcpWrappersReader(self.paths, binaries)
            return self._wrappers

    def denyhosts(self) -> DenyhostsReader:
        """The shared reader of DenyHosts' entries in hosts.deny (the denyhosts collector's, the
        watchlist's and diagnose's): 50,000 entries parsed once, not once each."""
        with self._lock:
            if self._denyhosts is None:
                self._denyhosts = DenyhostsReader(self.paths, self.options.denyhosts.work_dir)
            return self._denyhosts

    def access(self, options: AccessOptions) -> AccessReader:
        """A reader of every layer for the watchlist or diagnose, on the shared readers."""
        return AccessReader(
            self.paths, options, self.sshd_ports, self.firewall(), self.tcp_wrappers(), self.denyhosts()
        )

    def sshd_ports(self) -> frozenset[int]:
        """sshd's ports through the shared reader, asked again every SSHD_PORTS_TTL seconds."""
        reader = self.sshd()
        with self._lock:
            if self._ports is None:
                self._ports = CachedPorts(reader, SSHD_PORTS_TTL)
            ports = self._ports
        return ports()

    def close(self) -> None:
        """Stops the shared reader's worker, when it was built."""
        with self._lock:
            reader, self._sshd, self._ports = self._sshd, None, None
        if reader is not None:
            reader.close()


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
    help: str


_REGISTRY: dict[str, Registration] = {}


def register_collector(name: str, factory: Factory, *, enabled: bool = True, help: str = "") -> None:
    if name in _REGISTRY:
        raise ValueError(f"collector {name!r} registered twice")
    _REGISTRY[name] = Registration(name, factory, enabled, help)


def registrations() -> list[Registration]:
    """All collectors, importing every module of this package once so each registers itself."""
    package = importlib.import_module("exporter.collectors")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:  # families/ holds shared renderers, not collectors
            importlib.import_module(f"exporter.collectors.{module.name}")
    return sorted(_REGISTRY.values(), key=lambda r: r.name)


def build_collectors(context: Context) -> dict[str, Collector]:
    """The enabled collectors, built from the context (a factory's ConfigError names its flag)."""
    return {reg.name: reg.factory(context) for reg in registrations() if context.options.enabled(reg.name)}
