"""The host status model (exporter.status): what a person reads about the host, from one scrape's families.

Families are written as /metrics shows them, so each case reads like the scrape it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.families.bans import BanCollector
from exporter.scrape import CollectorStatus
from exporter.status import Finding, HostStatus, Severity, down_reasons, host_status, reason, utc

NOW = 1_796_000_000.0  # 2026-11-30T00:53:20Z
OK = CollectorStatus(True, 0.004, "", NOW - 1)

BROKEN = """
ssh_access_sshd_listeners 0
ssh_access_sshd_socket_activated 0
ssh_access_tcpwrappers_sshd_denies_everyone 1
ssh_access_tcpwrappers_sshd_honoured 1
ssh_access_ban_source_up{source="fail2ban"} 0
ssh_access_ban_source_up{source="crowdsec"} 0
ssh_access_authlog_source_up{source="/var/log/auth.log"} 0
"""
AUTHLOG_DOWN = CollectorStatus(
    False,
    0.001,
    "SourceUnavailableError: no auth log source can be read, sshd's lines reach none: "
    "/var/log/auth.log: No such file or directory",
    NOW - 1,
)
BROKEN_STATUS = {
    "authlog": AUTHLOG_DOWN,
    "crowdsec": OK,
    "fail2ban": OK,
    "sshd": OK,
    "tcpwrappers": OK,
}

HEALTHY = f"""
ssh_access_sshd_listeners 1
ssh_access_sshd_socket_activated 0
ssh_access_sshd_listener_startups{{listener="/etc/ssh/sshd_config"}} 3
ssh_access_sshd_listener_maxstartups_start{{listener="/etc/ssh/sshd_config"}} 10
ssh_access_sshd_listener_maxstartups_full{{listener="/etc/ssh/sshd_config"}} 60
ssh_access_tcpwrappers_sshd_denies_everyone 0
ssh_access_tcpwrappers_sshd_honoured 1
ssh_access_ban_source_up{{source="fail2ban"}} 1
ssh_access_banned_addresses{{jail="sshd",source="fail2ban"}} 2
ssh_access_banned_addresses{{jail="recidive",source="fail2ban"}} 1
ssh_access_unenforced_bans{{jail="sshd",source="fail2ban"}} 0
ssh_access_watched_address_blocked{{address="198.51.100.0/24",layer="fail2ban"}} 0
ssh_access_authlog_source_up{{source="/var/log/auth.log"}} 1
ssh_access_authlog_last_event_timestamp_seconds{{source="/var/log/auth.log"}} {NOW - 120}
"""
HEALTHY_STATUS = {
    name: OK for name in ("authlog", "fail2ban", "firewall", "sshd", "tcpwrappers", "watchlist")
}


def families(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text.lstrip()))


def status_of(text: str, status: dict[str, CollectorStatus], **kwargs: object) -> HostStatus:
    return host_status(families(text), status, NOW - 1, now=NOW, **kwargs)  # type: ignore[arg-type]


def finding(status: HostStatus, topic: str) -> Finding:
    (found,) = [f for f in status.findings if f.topic == topic]
    return found


def test_broken_host_problems_in_order_and_nothing_ok_about_a_broken_layer() -> None:
    status = status_of(BROKEN, BROKEN_STATUS, down_reasons={"crowdsec": "connect: connection refused"})
    problems = [(f.topic, f.text) for f in status.findings if f.severity is Severity.PROBLEM]
    assert [topic for topic, _ in problems] == ["sshd", "TCP wrappers", "CrowdSec", "fail2ban", "Auth log"]
    assert problems[0][1].startswith("sshd is not running")
    assert "connect: connection refused" in finding(status, "CrowdSec").text
    assert "no reason given" in finding(status, "fail2ban").text
    auth = finding(status, "Auth log").text
    assert auth.startswith("No auth log source can be read, sshd's lines reach none: /var/log/auth.log: No")
    assert "SourceUnavailableError" not in auth and "uncounted" in auth
    assert finding(status, "MaxStartups").severity is Severity.UNKNOWN  # no listener to count
    assert not any(f.severity is Severity.OK for f in status.findings)
    (authlog,) = [c for c in status.collectors if c.topic == "authlog"]
    assert authlog.severity is Severity.PROBLEM and "No such file" in authlog.text
    assert status.worst is Severity.PROBLEM
    assert status.summary() == "Host: 5 problems, 2 unknown. Collectors: 1 of 5 failed."


def test_healthy_host_is_ok_throughout() -> None:
    status = status_of(HEALTHY, HEALTHY_STATUS)
    assert [(f.topic, f.severity) for f in status.findings] == [
        ("sshd", Severity.OK),
        ("MaxStartups (/etc/ssh/sshd_config)", Severity.OK),
        ("TCP wrappers", Severity.OK),
        ("fail2ban", Severity.OK),
        ("Ban enforcement", Severity.OK),
        ("Watched addresses", Severity.OK),
        ("Auth log", Severity.OK),
        ("Last sshd event", Severity.OK),
    ]
    assert finding(status, "fail2ban").text == "fail2ban is up: 3 addresses banned now."
    assert finding(status, "Last sshd event").text.endswith(f"is from {utc(NOW - 120)}, 2 min ago.")
    assert status.count(Severity.PROBLEM) == 0 and status.worst is Severity.OK
    assert status.summary() == "Host: 8 ok. Collectors: all 6 ok."


def test_socket_activated_sshd_is_no_outage() -> None:
    text = "ssh_access_sshd_listeners 0\nssh_access_sshd_socket_activated 1\n"
    found = finding(status_of(text, {"sshd": OK}), "sshd")
    assert found.severity is Severity.OK and "socket-activated" in found.text


def test_maxstartups_start_warns_full_is_a_problem() -> None:
    text = (
        'ssh_access_sshd_listeners 2\nssh_access_sshd_listener_startups{listener="/a"} 10\n'
        'ssh_access_sshd_listener_startups{listener="/b"} 60\n'
        'ssh_access_sshd_listener_maxstartups_start{listener="/a"} 10\n'
        'ssh_access_sshd_listener_maxstartups_full{listener="/a"} 60\n'
        'ssh_access_sshd_listener_maxstartups_start{listener="/b"} 10\n'
        'ssh_access_sshd_listener_maxstartups_full{listener="/b"} 60\n'
    )
    status = status_of(text, {"sshd": OK})
    assert finding(status, "MaxStartups (/a)").severity is Severity.WARNING
    full = finding(status, "MaxStartups (/b)")
    assert full.severity is Severity.PROBLEM and "drops every new connection" in full.text


def test_wrappers_deny_all_ignored_by_sshd_is_a_warning() -> None:
    text = "ssh_access_tcpwrappers_sshd_denies_everyone 1\nssh_access_tcpwrappers_sshd_honoured 0\n"
    found = finding(status_of(text, {"tcpwrappers": OK}), "TCP wrappers")
    assert found.severity is Severity.WARNING and "ignores TCP wrappers" in found.text


def test_unread_layers_are_unknown_with_the_collectors_error() -> None:
    failed = CollectorStatus(False, 8.0, "timed out after 8s", NOW - 1)
    status = status_of("", {"sshd": failed, "tcpwrappers": OK})
    sshd = finding(status, "sshd")
    assert sshd.severity is Severity.UNKNOWN and "timed out after 8s" in sshd.text
    assert finding(status, "TCP wrappers").severity is Severity.UNKNOWN
    off = finding(status, "Auth log")
    assert off.severity is Severity.UNKNOWN and "collector is off" in off.text


def test_ban_collector_failed_without_families_is_unknown_absent_tool_says_nothing() -> None:
    failed = CollectorStatus(False, 0.1, "OSError: boom", NOW - 1)
    status = status_of("", {"fail2ban": failed, "sshguard": OK})
    assert finding(status, "fail2ban").severity is Severity.UNKNOWN
    assert not [f for f in status.findings if f.topic in ("sshguard", "Ban tools")]


def test_no_ban_tool_installed_is_said() -> None:
    status = status_of("", {"fail2ban": OK, "sshguard": OK})
    assert "No ban tool is installed" in finding(status, "Ban tools").text


def test_unenforced_bans_and_watched_addresses_blocked() -> None:
    text = (
        'ssh_access_ban_source_up{source="fail2ban"} 1\n'
        'ssh_access_unenforced_bans{jail="sshd",source="fail2ban"} 2\n'
        'ssh_access_unenforced_bans{jail="recidive",source="fail2ban"} 1\n'
        'ssh_access_watched_address_blocked{address="192.0.2.1",layer="tcp_wrappers"} 1\n'
        'ssh_access_watched_address_blocked{address="192.0.2.1",layer="fail2ban"} 1\n'
        'ssh_access_watched_address_blocked{address="192.0.2.1",layer="sshguard"} 0\n'
        'ssh_access_watched_address_blocked{address="2001:db8::10",layer="fail2ban"} 0\n'
    )
    status = status_of(text, {"fail2ban": OK, "firewall": OK, "watchlist": OK})
    enforcement = finding(status, "Ban enforcement (fail2ban)")
    assert enforcement.severity is Severity.PROBLEM and "3 addresses banned by fail2ban" in enforcement.text
    watched = finding(status, "Watched 192.0.2.1")
    assert watched.severity is Severity.PROBLEM and "tcp_wrappers, fail2ban" in watched.text
    assert "diagnose 192.0.2.1" in watched.text
    assert (
        finding(status, "Watched addresses").text
        == "No layer that could be read keeps out 1 watched address."
    )


def test_firewall_collector_off_leaves_enforcement_unknown() -> None:
    text = 'ssh_access_ban_source_up{source="fail2ban"} 1\n'
    assert finding(status_of(text, {"fail2ban": OK}), "Ban enforcement").severity is Severity.UNKNOWN


def test_authlog_some_sources_down_warns_and_no_family_is_no_source() -> None:
    text = (
        'ssh_access_authlog_source_up{source="/var/log/auth.log"} 1\n'
        'ssh_access_authlog_source_up{source="journal"} 0\n'
    )
    status = status_of(
        text, {"authlog": CollectorStatus(False, 0, "SourceUnavailableError: journal: no", NOW)}
    )
    assert finding(status, "Auth log").severity is Severity.WARNING
    assert finding(status, "Last sshd event").severity is Severity.UNKNOWN
    nothing = finding(status_of("", {"authlog": OK}), "Auth log")
    assert nothing.severity is Severity.PROBLEM and "reach no source" in nothing.text


def test_last_event_old_or_in_the_future_warns() -> None:
    def last(stamp: float) -> Finding:
        text = (
            'ssh_access_authlog_source_up{source="/var/log/auth.log"} 1\n'
            f'ssh_access_authlog_last_event_timestamp_seconds{{source="/var/log/auth.log"}} {stamp}\n'
        )
        return finding(status_of(text, {"authlog": OK}), "Last sshd event")

    old = last(NOW - 3 * 86400)
    assert old.severity is Severity.WARNING and "72 hours ago" in old.text
    future = last(4_071_290_701.0)
    assert future.severity is Severity.WARNING and "2099-01-05T" in future.text and "future" in future.text


def test_collectors_health_and_utc_times() -> None:
    status = status_of("", {"sshd": CollectorStatus(True, 0.0042, "", 1_796_000_000.0)})
    assert status.collectors == (Finding("sshd", Severity.OK, "ok, took 4 ms at 2026-11-30T00:53:20Z."),)
    assert utc(0) == "1970-01-01T00:00:00Z"
    assert reason("PartialFailureError: x: y") == "x: y"


def test_down_reasons_from_ban_collectors() -> None:
    @dataclass
    class Snapshot:
        installed: bool
        up: bool
        error: str

    @dataclass
    class Reader:
        snapshot: Snapshot

        def read(self) -> Snapshot:
            return self.snapshot

    def collector(snapshot: Snapshot) -> BanCollector[Snapshot]:
        made = BanCollector(snapshot.error or "up", Reader(snapshot), lambda _: [])
        list(made.collect())
        return made

    down = collector(Snapshot(True, False, "local API: connect to 127.0.0.1:8080: Connection refused"))
    assert down_reasons(
        {"crowdsec": down, "fail2ban": collector(Snapshot(True, True, "")), "sshd": object()}
    ) == {"crowdsec": "local API: connect to 127.0.0.1:8080: Connection refused"}
