"""The tcpwrappers collector: what hosts.allow and hosts.deny do to sshd, and whether sshd reads them.

# HELP ssh_access_tcpwrappers_rules Rules whose daemon list takes in sshd, by file and the verdict they give.
# TYPE ssh_access_tcpwrappers_rules gauge
ssh_access_tcpwrappers_rules{file="/etc/hosts.deny",verdict="deny"} 50000.0
# HELP ssh_access_tcpwrappers_sshd_denies_everyone 1 when hosts.allow/hosts.deny leave no client a way in.
# TYPE ssh_access_tcpwrappers_sshd_denies_everyone gauge
ssh_access_tcpwrappers_sshd_denies_everyone 0.0
# HELP ssh_access_tcpwrappers_sshd_honoured 1 when sshd is linked with libwrap and so applies these files.
# TYPE ssh_access_tcpwrappers_sshd_honoured gauge
ssh_access_tcpwrappers_sshd_honoured 1.0

DenyHosts' marked entries are `ssh_access_banned_addresses{source="denyhosts"}` (denyhosts collector)
and sshguard's block `{source="sshguard",jail="hosts.allow"}`: counted there, not again here.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.registry import Context, register_collector
from exporter.sources.tcpwrappers.reader import VERDICTS, TcpWrappersReader, TcpWrappersSnapshot


def _gauge(
    name: str, doc: str, labels: list[str] | None = None, value: float | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"ssh_access_tcpwrappers_{name}", doc, value=value, labels=labels)


def snapshot_families(snapshot: TcpWrappersSnapshot) -> Iterator[Metric]:
    summary = snapshot.summary
    rules = _gauge(
        "rules",
        "Rules whose daemon list takes in sshd, by file and the verdict they give.",
        ["file", "verdict"],
    )
    lookups = _gauge(
        "dns_dependent_rules",
        "Rules for sshd whose outcome may depend on a host name, ident or netgroup lookup.",
        ["file"],
    )
    errors = _gauge("parse_errors", "Lines libwrap rejects, skips or stops at.", ["file"])
    mtime = _gauge(
        "file_modification_timestamp_seconds", "When the file last changed (absent: missing).", ["file"]
    )
    for state in snapshot.files:
        for verdict in VERDICTS:
            rules.add_metric([state.path, verdict], summary.rules.get((state.path, verdict), 0))
        lookups.add_metric([state.path], summary.lookup_rules.get(state.path, 0))
        errors.add_metric([state.path], state.error_count)
        if state.mtime is not None:
            mtime.add_metric([state.path], state.mtime)
    yield from (rules, lookups, errors, mtime)
    yield _gauge(
        "sshd_denies_everyone",
        "1 when hosts.allow/hosts.deny leave no client a way in to sshd (e.g. `sshd: ALL` in hosts.deny).",
        value=1.0 if summary.denies_everyone else 0.0,
    )
    binaries = _gauge("sshd_binary_libwrap", "1 when this sshd binary is linked with libwrap.", ["binary"])
    for binary, linked in sorted(snapshot.libwrap.items()):
        binaries.add_metric([binary], 1.0 if linked else 0.0)
    yield binaries
    yield _gauge(
        "sshd_honoured",
        "1 when sshd is linked with libwrap and so applies hosts.allow/hosts.deny.",
        value=1.0 if snapshot.honoured else 0.0,
    )


class TcpWrappersCollector:
    """Renders one TcpWrappersReader snapshot per scrape; an unreadable file fails the scrape."""

    def __init__(self, reader: TcpWrappersReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        snapshot = self.reader.read()
        if snapshot.error:
            raise OSError(snapshot.error)
        yield from snapshot_families(snapshot)


def _factory(context: Context) -> TcpWrappersCollector:
    return TcpWrappersCollector(context.tcp_wrappers())


register_collector(
    "tcpwrappers", _factory, enabled=True, help="hosts.allow/hosts.deny for sshd, and whether sshd reads them"
)
