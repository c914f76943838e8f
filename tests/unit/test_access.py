"""The per-address layer model on fixture trees: each layer's verdict and evidence, addresses and networks."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import pytest

from benchmarks.authlog_gen import generate
from exporter.collectors.watchlist import WatchlistCollector
from exporter.config import parse_config
from exporter.options import Options, add_host_flags
from exporter.registry import registrations
from exporter.sources import denyhosts
from exporter.sources.access import (
    AccessOptions,
    AccessReader,
    HostFacts,
    LayerVerdict,
    parse_target,
    verdicts,
)
from exporter.sources.access.layers import Fail2banFacts, LogLine, PenaltyLog
from exporter.sources.access.reader import journal_lines, read_log_tail
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.records import Event
from exporter.sources.authlog.stats import Stats
from exporter.sources.crowdsec import CrowdsecSnapshot, Decision
from exporter.sources.fail2ban.database import DbBan, current_bans
from exporter.sources.firewall.model import Ruleset
from exporter.sources.host.paths import HostPaths
from tests.builders import V4_SCHEMA, fixture_ruleset, journal_entry, make_db
from tests.exposition import promtool_check, render, samples, value

DENY = """# hand-written
sshd: 192.0.2.10
# DenyHosts: Mon Nov 23 10:00:00 2026 | sshd: 192.0.2.11
sshd: 192.0.2.11
ALL: 198.51.100.0/255.255.255.128
"""
ALLOW = "sshd: 192.0.2.12 : allow\n"
OFFLINE = AccessOptions(firewall=False, sshguard=False, crowdsec=False, authlog=False)


def _tree(tmp_path: Path, deny: str = DENY, allow: str = ALLOW) -> HostPaths:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "hosts.deny").write_text(deny)
    (tmp_path / "etc" / "hosts.allow").write_text(allow)
    return HostPaths(tmp_path, tmp_path / "proc")


def _layers(reader: AccessReader, target: str) -> dict[str, LayerVerdict]:
    network = parse_target(target)
    return {v.layer: v for v in reader.check([network])[network]}


@pytest.fixture
def reader(tmp_path: Path) -> AccessReader:
    (tmp_path / "proc").mkdir()
    return AccessReader(_tree(tmp_path), OFFLINE)


def test_tcp_wrappers_deny_names_file_and_line(reader: AccessReader) -> None:
    found = _layers(reader, "192.0.2.10")["tcp_wrappers"]
    assert (found.verdict, found.evidence) == ("deny", ("/etc/hosts.deny:2: sshd: 192.0.2.10",))
    assert "remove line 2 of /etc/hosts.deny" in found.remedy


def test_tcp_wrappers_allow_and_dns(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    reader = AccessReader(_tree(tmp_path, allow=ALLOW + "sshd: .example.org\n"), OFFLINE)
    assert _layers(reader, "192.0.2.12")["tcp_wrappers"].verdict == "allow"
    dns = _layers(reader, "192.0.2.10")["tcp_wrappers"]  # allowed if its name is in example.org
    assert dns.verdict == "deny"  # the verdict when it has no name: hosts.deny line 2
    assert dns.evidence == ("/etc/hosts.deny:2: sshd: 192.0.2.10", "/etc/hosts.allow:2: sshd: .example.org")
    assert dns.lookups == ("allowed if the address's name matches .example.org (/etc/hosts.allow line 2)",)
    assert not dns.blocks  # not sure: the watchlist reports 0, as for any verdict it cannot be sure of
    assert dns.unread == "depends on a name lookup: " + dns.lookups[0]


@pytest.mark.parametrize(
    ("deny", "verdict", "lookups"),
    [
        (
            "sshd: .example.org\n",
            "no_match",
            ("denied if the address's name matches .example.org (/etc/hosts.deny line 1)",),
        ),
        (
            "sshd: KNOWN\n",
            "no_match",
            ("denied if the address's name matches KNOWN (/etc/hosts.deny line 1)",),
        ),
        (
            "sshd: UNKNOWN\n",  # with no name libwrap calls it `unknown`: denied unless a name answers
            "deny",
            ("allowed if a name lookup makes `UNKNOWN` not match (/etc/hosts.deny line 1)",),
        ),
        (
            "sshd: ALL EXCEPT host.example.org\n",
            "deny",
            (
                "allowed if a name lookup makes `ALL EXCEPT host.example.org` not match "
                "(/etc/hosts.deny line 1)",
            ),
        ),
        (
            "sshd: admin@host.example.org\n",
            "no_match",
            (
                "denied if a name, ident or netgroup lookup matches admin@host.example.org "
                "(/etc/hosts.deny line 1)",
            ),
        ),
        (
            "sshd@192.0.2.1: ALL\n",  # sshd's own address is not known for a client that is not connected
            "no_match",
            ("denied if sshd's own address matches sshd@192.0.2.1 (/etc/hosts.deny line 1)",),
        ),
        (
            "sshd: ALL EXCEPT UNKNOWN\n",  # no name: UNKNOWN matches, so the rule does not
            "no_match",
            ("denied if a name lookup makes `ALL EXCEPT UNKNOWN` match (/etc/hosts.deny line 1)",),
        ),
    ],
)
def test_tcp_wrappers_lookup_gives_the_verdict_without_a_name(
    tmp_path: Path, deny: str, verdict: str, lookups: tuple[str, ...]
) -> None:
    """A rule that needs the address's name: the verdict when the address has no name, and what would
    change it (before, a bare `unknown`)."""
    (tmp_path / "proc").mkdir()
    found = _layers(AccessReader(_tree(tmp_path, deny=deny, allow=""), OFFLINE), "192.0.2.7")["tcp_wrappers"]
    assert (found.verdict, found.lookups) == (verdict, lookups), found
    assert "when it has no name (no lookup answers)" in found.detail
    assert not found.blocks and found.unread is not None


def test_no_match_without_names(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    reader = AccessReader(_tree(tmp_path, deny="sshd: 192.0.2.10\n", allow=""), OFFLINE)
    found = _layers(reader, "192.0.2.99")
    assert found["tcp_wrappers"].verdict == "no_match"
    assert set(found) == {"tcp_wrappers"}  # no fail2ban, denyhosts, ... on this host: left out


def test_network_counts_when_any_address_is_blocked(reader: AccessReader) -> None:
    assert _layers(reader, "192.0.2.0/28")["tcp_wrappers"].verdict == "deny"
    assert _layers(reader, "198.51.100.100/30")["tcp_wrappers"].verdict == "deny"
    big = _layers(reader, "198.51.0.0/16")["tcp_wrappers"]  # swept by the rules' own addresses
    assert big.verdict == "deny" and "198.51.100.0/255.255.255.128" in big.evidence[0]
    assert _layers(reader, "198.51.100.128/25")["tcp_wrappers"].verdict == "no_match"


def test_denyhosts_entry_is_its_own_layer(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "var/lib/denyhosts").mkdir(parents=True)
    reader = AccessReader(_tree(tmp_path, allow=""), OFFLINE)
    found = _layers(reader, "192.0.2.11")
    assert found["denyhosts"].verdict == "deny" and found["tcp_wrappers"].verdict == "deny"
    assert found["denyhosts"].evidence == ("/etc/hosts.deny:4: sshd: 192.0.2.11",)
    assert _layers(reader, "192.0.2.10")["denyhosts"].verdict == "no_match"  # a hand-written line


def test_fail2ban_from_the_database(tmp_path: Path) -> None:
    now = time.time()  # at the test, not at import: a whole suite runs before it
    (tmp_path / "proc").mkdir()
    db = tmp_path / "var/lib/fail2ban/fail2ban.sqlite3"
    db.parent.mkdir(parents=True)
    rows = [("192.0.2.1", "sshd", now - 100, 600), ("192.0.2.2", "sshd", now - 700, 600),
            ("192.0.2.3", "recidive", now - 100, -1)]  # fmt: skip
    make_db(db, V4_SCHEMA, [("sshd", 1), ("recidive", 1)], rows)
    options = AccessOptions(firewall=False, sshguard=False, crowdsec=False, authlog=False,
                            fail2ban_socket="")  # fmt: skip
    reader = AccessReader(_tree(tmp_path, "", ""), options)
    banned = _layers(reader, "192.0.2.1")["fail2ban"]
    assert banned.verdict == "deny" and banned.evidence[0].startswith("jail sshd: 192.0.2.1 banned, until ")
    assert "fail2ban-client set sshd unbanip 192.0.2.1" in banned.remedy
    assert _layers(reader, "192.0.2.2")["fail2ban"].verdict == "no_match"  # expired
    permanent = _layers(reader, "192.0.2.0/30")["fail2ban"]
    assert permanent.verdict == "deny" and "jail recidive: 192.0.2.3 banned, permanent" in permanent.evidence
    assert {b.ip for b in current_bans(db)} == {"192.0.2.1", "192.0.2.3"}


def test_fail2ban_server_answer_wins_over_the_database() -> None:
    now = time.time()  # at the test, not at import: a whole suite runs before it
    ban = DbBan("sshd", "192.0.2.1", now, now + 60)
    facts = HostFacts(fail2ban=Fail2banFacts((ban,), banned_in={"192.0.2.1": ()}))
    assert verdicts(facts, parse_target("192.0.2.1"))[0].verdict == "no_match"
    facts = HostFacts(fail2ban=Fail2banFacts(None, "db gone", {"192.0.2.1": ("sshd",)}))
    assert verdicts(facts, parse_target("192.0.2.1"))[0].verdict == "deny"
    unreadable = verdicts(HostFacts(fail2ban=Fail2banFacts(None, "db gone")), parse_target("192.0.2.1"))
    assert (unreadable[0].verdict, unreadable[0].detail) == ("unknown", "db gone")


def test_firewall_names_chain_and_set() -> None:
    facts = HostFacts(firewall=True, ruleset=fixture_ruleset(), sshd_ports=frozenset({2222}))
    legacy = verdicts(facts, parse_target("192.0.2.30"))[0]
    assert legacy.verdict == "deny"
    assert "legacy ipv4 table filter chain f2b-sshd: reject from source 192.0.2.30" in legacy.evidence
    in_set = verdicts(facts, parse_target("192.0.2.20"))[0]
    assert in_set.verdict == "deny" and any("set ipset f2b-sshd, which holds 192.0.2.20" in e
                                            for e in in_set.evidence)  # fmt: skip
    assert "ipset del f2b-sshd 192.0.2.20" in in_set.remedy
    assert verdicts(facts, parse_target("192.0.2.1"))[0].verdict == "no_match"
    assert verdicts(facts, parse_target("2001:db8::20"))[0].verdict == "no_match"  # its set has no rule
    assert verdicts(facts, parse_target("192.0.2.64/30"))[0].verdict == "deny"
    unread = HostFacts(firewall=True, firewall_error="nft not found")
    assert verdicts(unread, parse_target("192.0.2.1"))[0].verdict == "unknown"


def test_sshguard_sets_block_only_when_a_rule_uses_them() -> None:
    ruleset = fixture_ruleset()
    facts = HostFacts(sshguard=True, ruleset=ruleset, sshd_ports=frozenset({2222}))
    blocked = verdicts(facts, parse_target("203.0.113.7"))[0]
    assert blocked.verdict == "deny"
    assert blocked.evidence == ("set ip sshguard attackers holds 203.0.113.5-203.0.113.9",)
    assert "nft delete element ip sshguard attackers { 203.0.113.5-203.0.113.9 }" in blocked.remedy
    assert verdicts(facts, parse_target("192.0.2.1"))[0].verdict == "no_match"
    only_ipset = Ruleset(ruleset.chains, tuple(s for s in ruleset.sets if s.key == "ipset sshguard4"))
    facts = HostFacts(sshguard=True, ruleset=only_ipset, sshd_ports=frozenset({2222}))
    unused = verdicts(facts, parse_target("198.51.100.130"))[0]  # no rule matches against sshguard4
    assert (unused.verdict, unused.evidence) == ("no_match", ("set ipset sshguard4 holds 198.51.100.128/25",))


def test_crowdsec_decisions_for_addresses_and_ranges() -> None:
    decisions = (Decision("crowdsecurity/ssh-bf", "crowdsec", "ban", "Ip", "203.0.113.7"),
                 Decision("manual", "cscli", "ban", "Range", "198.51.100.0/24"),
                 Decision("crowdsecurity/ssh-bf", "crowdsec", "captcha", "Ip", "192.0.2.5"))  # fmt: skip
    facts = HostFacts(crowdsec=CrowdsecSnapshot(True, True, "api", decisions))
    found = verdicts(facts, parse_target("203.0.113.7"))[0]
    assert found.verdict == "deny" and found.evidence == (
        "Ip 203.0.113.7: ban by crowdsecurity/ssh-bf (crowdsec)",
    )
    assert verdicts(facts, parse_target("198.51.100.9"))[0].verdict == "deny"
    assert verdicts(facts, parse_target("192.0.2.5"))[0].verdict == "no_match"
    down = HostFacts(crowdsec=CrowdsecSnapshot(True, False, error="refused"))
    assert verdicts(down, parse_target("192.0.2.5"))[0].verdict == "unknown"
    assert verdicts(HostFacts(crowdsec=CrowdsecSnapshot(False, False)), parse_target("192.0.2.5")) == []


PENALTY_LOG = """Mar  1 10:00:01 bastion sshd[900]: srclimit_penalise: ipv4: new 192.0.2.9/32 active penalty \
of 30 seconds for penalty: failed authentication
Mar  1 10:00:02 bastion sshd[900]: drop connection #0 from [192.0.2.9]:50009 on [198.51.100.200]:22 \
penalty: failed authentication
Mar  1 10:00:03 bastion sshd[900]: Failed password for root from 192.0.2.8 port 50010 ssh2
"""


def test_penalties_from_the_auth_log(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(PENALTY_LOG)
    lines = read_log_tail(log, "/var/log/auth.log", since=0)
    assert [(line.line, line.event.event) for line in lines] == [(1, "penalty_applied"), (2, "penalty_drop")]
    facts = HostFacts(penalties=PenaltyLog(tuple(lines)))
    found = verdicts(facts, parse_target("192.0.2.9"))[0]
    assert found.verdict == "deny" and found.evidence[1].startswith("/var/log/auth.log:2: Mar  1 10:00:02")
    assert verdicts(facts, parse_target("192.0.2.0/24"))[0].verdict == "deny"
    assert verdicts(facts, parse_target("192.0.2.8"))[0].verdict == "no_match"
    assert read_log_tail(log, "auth.log", since=time.time()) == []  # older than the window
    old = LogLine("f", 1, "x", Event("penalty_drop", "192.0.2.9"))
    assert (
        verdicts(HostFacts(penalties=PenaltyLog((old,), error="EACCES")), parse_target("192.0.2.9"))[
            0
        ].verdict
        == "unknown"
    )


def test_options_follow_the_collector_flags(tmp_path: Path) -> None:
    switches = registrations()
    parser = argparse.ArgumentParser()
    add_host_flags(parser, switches)
    argv = [f"--path.rootfs={tmp_path}", f"--path.procfs={tmp_path}", "--collector.fail2ban.db=/x.db"]
    argv += [
        "--no-collector.firewall",
        "--collector.authlog.files=a, b",
        "--collector.watchlist.penalty-window=60",
    ]
    options = Options.from_namespace(parser.parse_args(argv), switches).access()
    assert (options.fail2ban_db, options.firewall, options.log_files) == ("/x.db", False, ("a", "b"))
    assert options.penalty_window == 60.0


def test_watchlist_collector_renders_each_entry_and_present_layer(reader: AccessReader) -> None:
    watchlist = [parse_target(t) for t in ("192.0.2.10", "198.51.100.0/24", "203.0.113.1")]
    text = render(WatchlistCollector(reader, watchlist).collect())
    found = samples(text)
    name = "ssh_access_watched_address_blocked"
    assert value(found, name, address="192.0.2.10", layer="tcp_wrappers") == 1
    assert value(found, name, address="198.51.100.0/24", layer="tcp_wrappers") == 1
    assert value(found, name, address="203.0.113.1", layer="tcp_wrappers") == 0
    assert value(found, name, address="203.0.113.1", layer="denyhosts") == 0  # its marked entry: installed
    assert value(found, name, address="203.0.113.1", layer="firewall") is None  # not asked: absent
    assert promtool_check(text) is None
    assert render(WatchlistCollector(reader, []).collect()) == ""


def test_ipv6_addresses_and_networks(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    reader = AccessReader(_tree(tmp_path, deny="sshd: [2001:db8:1::]/48\n", allow=""), OFFLINE)
    found = _layers(reader, "2001:db8:1::7")["tcp_wrappers"]
    assert found.verdict == "deny" and found.evidence == ("/etc/hosts.deny:1: sshd: [2001:db8:1::]/48",)
    assert _layers(reader, "2001:db8::/32")["tcp_wrappers"].verdict == "deny"  # holds the /48
    assert _layers(reader, "2001:db8:2::/48")["tcp_wrappers"].verdict == "no_match"
    assert _layers(reader, "[2001:db8:1::9]")["tcp_wrappers"].verdict == "deny"
    facts = HostFacts(firewall=True, ruleset=fixture_ruleset(), sshd_ports=frozenset({2222}))
    assert verdicts(facts, parse_target("2001:db8::10"))[0].verdict == "deny"  # inet f2b-table's addr6 set
    assert verdicts(facts, parse_target("2001:db8::/64"))[0].verdict == "deny"
    assert verdicts(facts, parse_target("2001:db8:ffff::1"))[0].verdict == "no_match"


def test_penalties_from_the_journal_when_there_is_no_log_file(tmp_path: Path) -> None:
    penalty = (
        "srclimit_penalise: ipv4: new 192.0.2.9/32 active penalty of 30 seconds for penalty: "
        + "failed login"
    )
    output = "\n".join(
        [
            journal_entry(MESSAGE=penalty),
            journal_entry(MESSAGE="Accepted publickey for a from 192.0.2.8 port 1 ssh2"),
        ]
    )
    lines = journal_lines(output, since=0)
    assert [(line.event.event, line.event.address, line.evidence) for line in lines] == [
        ("penalty_applied", "192.0.2.9/32", f"journal: {penalty}")
    ]
    assert journal_lines(output, since=2e9) == []  # the entry is from 2026
    (tmp_path / "proc").mkdir()
    off = AccessReader(
        _tree(tmp_path), AccessOptions(firewall=False, sshguard=False, crowdsec=False, journal="off")
    )
    assert "sshd_penalty" not in _layers(off, "192.0.2.9")  # no file, no journal: absent


def test_fail2ban_installed_but_stopped_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "etc/fail2ban").mkdir(parents=True)
    reader = AccessReader(_tree(tmp_path, "", ""), OFFLINE)
    found = _layers(reader, "192.0.2.1")["fail2ban"]
    assert found.verdict == "unknown"
    assert found.detail == (
        "fail2ban-server is not running (nothing answers on /var/run/fail2ban/fail2ban.sock); "
        "no database at /var/lib/fail2ban/fail2ban.sqlite3"
    )


def test_watchlist_labels_are_the_entries_as_written(reader: AccessReader) -> None:
    config = parse_config("watchlist:\n  - 2001:DB8::1\n  - 192.0.2.10/24\n  - 192.0.2.10\n")
    assert config.watchlist_entries == ("2001:DB8::1", "192.0.2.10/24", "192.0.2.10")
    found = samples(render(WatchlistCollector(reader, config.watchlist, config.watchlist_entries).collect()))
    name = "ssh_access_watched_address_blocked"
    assert value(found, name, address="2001:DB8::1", layer="tcp_wrappers") == 0
    assert value(found, name, address="192.0.2.10/24", layer="tcp_wrappers") == 1
    assert value(found, name, address="192.0.2.10", layer="tcp_wrappers") == 1


def test_the_tail_prefilter_finds_every_penalty_and_drop_line(tmp_path: Path) -> None:
    """Only lines that can hold a penalty or MaxStartups drop are framed and classified: on a mixed log
    (connections, listener bursts, penalties, other daemons) they are exactly the events that
    classifying every line finds, with their line numbers."""
    text = "".join(generate(20_000, 2_000, seed=11, start=time.time() - 86400))
    log = tmp_path / "auth.log"
    log.write_text(text)
    lines = text.splitlines()
    events = Stats(top_n=0).feed_batch(Framer().parse_many(lines), "auth.log")
    expected = [
        (number, event.event, event.address)
        for number, event in enumerate(events, 1)
        if event is not None and event.event in {"penalty_applied", "penalty_drop", "maxstartups_drop"}
    ]
    found = read_log_tail(log, "auth.log", since=0)
    assert [(line.line, line.event.event, line.event.address) for line in found] == expected
    assert {kind for _, kind, _ in expected} == {"penalty_applied", "penalty_drop", "maxstartups_drop"}


@pytest.mark.parametrize("kind", ["fifo", "link_out_of_rootfs"])
def test_the_penalty_log_is_read_only_as_a_regular_file_inside_rootfs(tmp_path: Path, kind: str) -> None:
    """The watchlist and `diagnose` read the end of the auth log for penalties: a FIFO there hung them
    (opened without O_NONBLOCK), and a link out of the rootfs was followed (its penalties were taken for
    the host's). Either is now a clear error of the sshd_penalty layer."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "proc").mkdir(parents=True)
    (rootfs / "var/log").mkdir(parents=True)
    outside = tmp_path / "outside.log"
    outside.write_text(PENALTY_LOG)
    if kind == "fifo":
        os.mkfifo(rootfs / "var/log/auth.log")
    else:
        os.symlink(str(outside), rootfs / "var/log/auth.log")
    options = dataclasses.replace(OFFLINE, authlog=True, log_files=("/var/log/auth.log",), journal="off")
    reader = AccessReader(_tree(rootfs), options)
    started = time.monotonic()
    found = _layers(reader, "192.0.2.9")["sshd_penalty"]
    assert time.monotonic() - started < 5
    assert found.verdict == "unknown", found
    reason = "not a regular file" if kind == "fifo" else "No such file or directory"  # ROOTFS/<outside path>
    assert reason in found.detail and not found.evidence, found


def test_fail2ban_from_the_database_says_the_server_did_not_answer(tmp_path: Path) -> None:
    """The server down, its database read: the verdict stands (a stopped server bans no one new, a
    crashed one's bans stay), and the detail says where it came from."""
    now = time.time()  # at the test, not at import: a whole suite runs before it
    (tmp_path / "proc").mkdir()
    db = tmp_path / "var/lib/fail2ban/fail2ban.sqlite3"
    db.parent.mkdir(parents=True)
    make_db(db, V4_SCHEMA, [("sshd", 1)], [("192.0.2.1", "sshd", now - 100, 600)])
    reader = AccessReader(_tree(tmp_path, "", ""), OFFLINE)
    down = "fail2ban-server is not running (nothing answers on /var/run/fail2ban/fail2ban.sock)"
    banned = _layers(reader, "192.0.2.1")["fail2ban"]
    assert (banned.verdict, banned.detail) == ("deny", f"banned in jail sshd (from its database: {down})")
    clear = _layers(reader, "192.0.2.9")["fail2ban"]
    assert (clear.verdict, clear.detail) == (
        "no_match",
        f"not banned in any jail (from its database: {down})",
    )
    assert clear.unread is None  # read: from the database


def test_the_watchlist_parses_denyhosts_entries_only_when_hosts_deny_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each check made a new DenyHosts reader, so a 50,000-entry hosts.deny was parsed at every scrape."""
    parses: list[str] = []
    parse = denyhosts.parse_hosts_deny

    def counted(text: str) -> object:
        parses.append(text)
        return parse(text)

    monkeypatch.setattr(denyhosts, "parse_hosts_deny", counted)
    deny = "# DenyHosts: Mon Nov 23 10:00:00 2026 | sshd: 192.0.2.11\nsshd: 192.0.2.11\n"
    reader = AccessReader(_tree(tmp_path, deny=deny, allow=""), OFFLINE)
    (tmp_path / "proc").mkdir()
    for _ in range(3):
        assert _layers(reader, "192.0.2.11")["denyhosts"].verdict == "deny"
    assert len(parses) == 1
    (tmp_path / "etc" / "hosts.deny").write_text(deny + "sshd: 192.0.2.12\n")
    assert _layers(reader, "192.0.2.11")["denyhosts"].verdict == "deny"
    assert len(parses) == 2


def test_the_watchlist_asks_fail2ban_server_only_when_the_database_cannot_answer(tmp_path: Path) -> None:
    """At every scrape, `banned ADDR` made a server holding 100,000 bans work 0.1-0.3 s for an answer
    its database already gave; diagnose still asks it (fail2ban_ask_server, the default)."""
    now = time.time()  # at the test, not at import: a whole suite runs before it
    (tmp_path / "proc").mkdir()
    db = tmp_path / "var/lib/fail2ban/fail2ban.sqlite3"
    db.parent.mkdir(parents=True)
    make_db(db, V4_SCHEMA, [("sshd", 1)], [("192.0.2.1", "sshd", now - 100, 600)])
    watchlist = dataclasses.replace(OFFLINE, fail2ban_ask_server=False)
    banned = _layers(AccessReader(_tree(tmp_path, "", ""), watchlist), "192.0.2.1")["fail2ban"]
    assert (banned.verdict, banned.detail) == ("deny", "banned in jail sshd")  # the server was not asked
    asked = _layers(AccessReader(_tree(tmp_path, "", ""), OFFLINE), "192.0.2.1")["fail2ban"]
    assert "fail2ban-server is not running" in asked.detail  # diagnose's way: asked, and says so
    db.write_bytes(b"not a database")
    unreadable = _layers(AccessReader(_tree(tmp_path, "", ""), watchlist), "192.0.2.1")["fail2ban"]
    assert unreadable.verdict == "unknown" and "fail2ban-server is not running" in unreadable.detail
