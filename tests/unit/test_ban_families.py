"""The shared ban families: every ban collector emits them, the exposition carries each name once."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.metrics_core import Metric

from exporter.collectors.families.bans import BanCollector, BanState, ban_source
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


@dataclass(frozen=True)
class _Seen:
    installed: bool
    up: bool
    error: str = ""


class _Script:
    def __init__(self, *snapshots: _Seen) -> None:
        self.snapshots = iter(snapshots)

    def read(self) -> _Seen:
        return next(self.snapshots)


def _render(snapshot: _Seen) -> Iterator[Metric]:
    return ban_source("sshguard", snapshot.up, {})


def test_each_change_of_state_is_logged_once_with_its_whole_reason(caplog: pytest.LogCaptureFixture) -> None:
    why = "nft list set ip sshguard attackers: Operation not permitted (you must be root); netlink: Error: x"
    script = _Script(
        _Seen(False, False, "socket: No such file"),  # absent: its error is no reason to warn
        _Seen(False, False),
        _Seen(True, False, why),
        _Seen(True, False, why),
        _Seen(True, False),  # down with nothing said: still a reason on the page
        _Seen(True, True),
        _Seen(False, False),
        _Seen(True, True),
    )
    collector = BanCollector("sshguard", script, _render)
    caplog.set_level(logging.INFO)
    assert collector.state is None  # not scraped yet
    states: list[tuple[str, str, int]] = []
    for _ in range(8):
        rendered = list(collector.collect())
        assert collector.state is not None
        states.append((collector.state.status, collector.state.reason, len(rendered)))
    assert states == [
        ("absent", "", 0),
        ("absent", "", 0),
        ("down", why, 2),
        ("down", why, 2),
        ("down", "no reason given", 2),
        ("up", "", 2),
        ("absent", "", 0),
        ("up", "", 2),
    ]
    logged = [(r.levelname, r.msg, getattr(r, "err", None)) for r in caplog.records]
    assert logged == [
        ("INFO", "ban source absent", None),
        ("WARNING", "ban source unreachable", why),
        ("WARNING", "ban source unreachable", "no reason given"),
        ("INFO", "ban source reachable again", None),
        ("INFO", "ban source absent", None),
        ("INFO", "ban source present", None),
    ]
    assert all(getattr(r, "source", "") == "sshguard" for r in caplog.records)
    assert BanState("sshguard", True, False, why).status == "down"
