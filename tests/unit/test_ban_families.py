"""The shared ban families: every ban collector emits them, the exposition carries each name once."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

from exporter.collectors.families.bans import ban_source
from exporter.scrape import ScrapeCollector
from tests.exposition import promtool_check, render, samples, value


class _Static:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def test_two_ban_sources_share_one_family_per_name() -> None:
    scrape = ScrapeCollector(
        {
            "fail2ban": _Static(ban_source("fail2ban", True, {"sshd": 3, "recidive": 1})),
            "sshguard": _Static(ban_source("sshguard", False, {"ip sshguard attackers": 2})),
        }
    )
    try:
        render(scrape.collect())  # the collectors hand out the same objects every time:
        text = render(scrape.collect())  # joining must not grow them scrape after scrape
    finally:
        scrape.close()
    assert promtool_check(text) is None
    assert text.count("# HELP ssh_access_banned_addresses ") == 1
    assert text.count("# TYPE ssh_access_ban_source_up ") == 1
    found = samples(text)
    assert value(found, "ssh_access_banned_addresses", source="fail2ban", jail="sshd") == 3
    assert value(found, "ssh_access_banned_addresses", source="sshguard", jail="ip sshguard attackers") == 2
    assert value(found, "ssh_access_ban_source_up", source="sshguard") == 0
    # a second scrape of the same results does not double them
    again = samples(
        render(ScrapeCollector({"a": _Static(ban_source("fail2ban", True, {"sshd": 3}))}).collect())
    )
    assert value(again, "ssh_access_banned_addresses", source="fail2ban", jail="sshd") == 3
