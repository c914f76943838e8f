"""The authlog families: contract names and types, closed sets from 0, health per source."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collectors.authlog import AuthlogCollector, authlog_families
from exporter.sources.authlog.records import SyslogRecord
from exporter.sources.authlog.stats import Stats

CONTRACT = {
    "ssh_access_sshd_events": "counter",
    "ssh_access_sshd_auth_failures": "counter",
    "ssh_access_sshd_maxstartups_dropped_connections": "counter",
    "ssh_access_sshd_maxstartups_throttling": "gauge",
    "ssh_access_sshd_penalties": "counter",
    "ssh_access_sshd_top_offender_failures": "gauge",
}


def test_contract_families_present_with_types() -> None:
    families = {f.name: f.type for f in authlog_families(Stats().snapshot())}
    assert CONTRACT.items() <= families.items()
    assert {
        "ssh_access_authlog_lines_read",
        "ssh_access_authlog_lines_unmatched",
        "ssh_access_authlog_rotations",
        "ssh_access_authlog_last_event_timestamp_seconds",
    } <= families.keys()


def test_exposition() -> None:
    stats = Stats()
    stats.source("/var/log/auth.log")
    stats.feed(
        SyslogRecord("Failed password for u from ::ffff:192.0.2.1 port 1 ssh2", "sshd", 1, None, 50.0),
        "journal",
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuthlogCollector(lambda: stats.snapshot(now=50.0)))
    text = generate_latest(registry).decode()
    assert 'ssh_access_sshd_events_total{event="auth_failed"} 1.0' in text
    assert 'ssh_access_sshd_events_total{event="maxstartups_drop"} 0.0' in text
    assert 'ssh_access_sshd_top_offender_failures{address="192.0.2.1"} 1.0' in text
    assert 'ssh_access_authlog_lines_read_total{source="/var/log/auth.log"} 0.0' in text
    assert 'ssh_access_authlog_last_event_timestamp_seconds{source="journal"} 50.0' in text
    assert 'ssh_access_authlog_last_event_timestamp_seconds{source="/var/log/auth.log"}' not in text
