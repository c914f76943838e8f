"""Families every ban-source collector shares (fail2ban, sshguard, denyhosts, crowdsec); no collector here.

Each collector emits them with its own `source` value, so the label sets never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily


def source_up(source: str, up: bool) -> GaugeMetricFamily:
    """`ssh_access_ban_source_up{source}`: 1 reached, 0 installed but unreachable."""
    family = GaugeMetricFamily(
        "ssh_access_ban_source_up",
        "1 when the ban tool was reached, 0 when installed but unreachable.",
        labels=["source"],
    )
    family.add_metric([source], 1.0 if up else 0.0)
    return family


def banned_addresses(source: str, counts: dict[str, int]) -> GaugeMetricFamily:
    """`ssh_access_banned_addresses{source, jail}`: addresses banned now per jail, set or scenario."""
    family = GaugeMetricFamily(
        "ssh_access_banned_addresses",
        "Addresses the tool bans now, per jail, set or scenario.",
        labels=["source", "jail"],
    )
    for jail, count in sorted(counts.items()):
        family.add_metric([source, jail], count)
    return family


def ban_source(source: str, up: bool, counts: dict[str, int]) -> Iterator[GaugeMetricFamily]:
    """Both shared families for a tool that is installed."""
    yield source_up(source, up)
    yield banned_addresses(source, counts)
