"""diagnose and the watchlist on large rule sets: the TCP wrappers layer in near-linear time (issue 11)."""

from __future__ import annotations

import ipaddress
import time

from exporter.sources.access.layers import HostFacts, tcp_wrappers
from exporter.sources.tcpwrappers import AccessRules, parse_table
from exporter.sources.tcpwrappers.reader import TcpWrappersSnapshot, summarize


def _facts(allow: str, deny: str) -> HostFacts:
    rules = AccessRules(parse_table(allow, "/etc/hosts.allow"), parse_table(deny, "/etc/hosts.deny"))
    return HostFacts(wrappers=TcpWrappersSnapshot(rules, (), summarize(rules), {}))


def test_network_against_thousands_of_prefix_rules() -> None:
    """`diagnose 2001:db8::/32` against 4,000 /48 allow rules: > 100 s, each address against each rule."""
    allow = "".join(f"sshd: [2001:db8:{i:x}::]/48\n" for i in range(4000))
    facts = _facts(allow, "sshd: ALL\n")
    started = time.monotonic()
    found = tcp_wrappers(facts, ipaddress.ip_network("2001:db8::/32"))
    assert time.monotonic() - started < 3.0
    assert found is not None and found.verdict == "deny"
    assert found.detail == "2001:db8:fa0:: matches line 1 of /etc/hosts.deny"  # the first address denied


def test_the_gap_between_allowed_networks_is_seen() -> None:
    """Allowed at both ends, denied between: the address after a named network is a candidate too."""
    facts = _facts("sshd: 198.51.100.0/25 198.51.101.128/25\n", "sshd: ALL\n")
    found = tcp_wrappers(facts, ipaddress.ip_network("198.51.100.0/23"))
    assert found is not None and found.verdict == "deny"
    assert found.detail == "198.51.100.128 matches line 1 of /etc/hosts.deny"
