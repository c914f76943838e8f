"""TCP wrappers: every element of hosts_access(5)/hosts_options(5) as Debian's libwrap reads it.

The hand-written cases are in tests/tcpwrappers_cases.py, which the tcpdmatch oracle test runs too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from exporter.sources.tcpwrappers.evaluate import canonical_address, wildcard_match
from exporter.sources.tcpwrappers.libwrap import links_libwrap, needed_libraries
from exporter.sources.tcpwrappers.reader import TcpWrappersReader, summarize
from exporter.sources.tcpwrappers.syntax import logical_lines, parse_options
from tests.builders import elf
from tests.exposition import render, samples, value
from tests.tcpwrappers_cases import CASES


def _rules(allow: str, deny: str) -> AccessRules:
    return AccessRules(parse_table(allow, "/etc/hosts.allow"), parse_table(deny, "/etc/hosts.deny"))


@pytest.mark.parametrize(
    ("allow", "deny", "address", "verdict", "unresolved"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_case(allow: str, deny: str, address: str, verdict: str, unresolved: str) -> None:
    found = evaluate(_rules(allow, deny), "sshd", client=ClientInfo(address))
    assert (found.verdict, found.if_unresolved) == (verdict, unresolved)


def test_verdict_names_the_rule() -> None:
    found = evaluate(
        _rules("", "# DenyHosts: x | sshd: 192.0.2.1\nsshd: 192.0.2.1\n"), client=ClientInfo("192.0.2.1")
    )
    assert (found.file, found.line, found.rule_text) == ("/etc/hosts.deny", 2, "sshd: 192.0.2.1")
    assert found.rule is not None and found.rule.marked_by == "denyhosts"


def test_dns_verdict_names_the_rule_that_may_match() -> None:
    found = evaluate(
        _rules(".example.com: ALL\nsshd: .example.com\n", "sshd: ALL\n"), client=ClientInfo("192.0.2.1")
    )
    assert found.verdict == "depends_on_dns" and found.line == 2 and found.file == "/etc/hosts.allow"
    assert found.if_unresolved == "deny"


def test_twist_is_flagged() -> None:
    found = evaluate(_rules("sshd: ALL: twist /bin/echo no\n", ""), client=ClientInfo("192.0.2.1"))
    assert found.verdict == "deny" and found.twist


def test_server_address_decides_daemon_at_host() -> None:
    rules = _rules("", "sshd@192.0.2.9: ALL\n")
    assert evaluate(rules, client=ClientInfo("198.51.100.1", "192.0.2.9")).verdict == "deny"
    assert evaluate(rules, client=ClientInfo("198.51.100.1", "192.0.2.8")).verdict == "allow"


def test_sshguard_block_is_marked() -> None:
    table = parse_table(
        "###sshguard###\nALL : 192.0.2.7 : DENY\n###sshguard###\nsshd: ALL\n", "/etc/hosts.allow"
    )
    assert [r.marked_by for r in table.rules] == ["sshguard", None]
    assert (
        evaluate(AccessRules(table, parse_table("", "d")), client=ClientInfo("192.0.2.7")).verdict == "deny"
    )


def test_logical_lines() -> None:
    assert list(logical_lines("a \\\nb\n#c\n")) == [(1, "a b", True), (3, "#c", True)]
    assert list(logical_lines("a\nb")) == [(1, "a", True), (2, "b", False)]
    assert list(logical_lines("")) == []


def test_parse_errors_and_stop() -> None:
    table = parse_table("sshd\nsshd: ALL: bogus\nsshd: 192.0.2.1", "f")
    assert [(e.line, e.message[:15]) for e in table.errors] == [
        (1, 'missing ":" sep'), (2, "bad option name"), (3, "missing newline")
    ]  # fmt: skip
    assert table.stop is not None and table.stop.line == 3 and len(table.rules) == 1


def test_options() -> None:
    options = parse_options(" spawn (echo %a\\: hi) &: severity auth.notice: DENY")
    assert [(o.name, o.value, o.error) for o in options] == [
        ("spawn", "(echo %a: hi) &", None), ("severity", "auth.notice", None), ("deny", None, None)
    ]  # fmt: skip


def test_wildcards_and_addresses() -> None:
    assert wildcard_match("192.0.2.1", "192.0.2.?") and not wildcard_match("192.0.2.11", "192.0.2.?")
    assert wildcard_match("sshd", "s*d") and not wildcard_match("sshd", "S*")
    assert canonical_address("2001:DB8:0::1") == "2001:db8::1"
    assert canonical_address("::ffff:192.0.2.1") == "::ffff:192.0.2.1"


def test_pattern_file_through_rootfs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/blocked").write_text("192.0.2.0/24\n")
    (tmp_path / "etc/hosts.deny").write_text("sshd: /etc/blocked\n")
    snapshot = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=()).read()
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.5")).verdict == "deny"
    assert evaluate(snapshot.rules, client=ClientInfo("198.51.100.5")).verdict == "allow"


def test_summary() -> None:
    summary = summarize(
        _rules("sshd: 192.0.2.1\nother: ALL\n", "sshd: .example.com\nALL: ALL\nsshd: ALL: allow\n")
    )
    assert summary.rules == {
        ("/etc/hosts.allow", "allow"): 1, ("/etc/hosts.allow", "deny"): 0,
        ("/etc/hosts.deny", "allow"): 1, ("/etc/hosts.deny", "deny"): 2,
    }  # fmt: skip
    assert summary.lookup_rules == {"/etc/hosts.allow": 0, "/etc/hosts.deny": 1}
    assert not summary.denies_everyone
    assert summarize(_rules("", "sshd: ALL\n")).denies_everyone
    assert summarize(_rules("", "sshd: x")).denies_everyone  # broken hosts.deny
    assert not summarize(_rules("sshd: 192.0.2.1\n", "ALL: ALL\n")).denies_everyone
    assert summarize(_rules("other: ALL\n", "ALL: ALL EXCEPT 192.0.2.1: deny\nsshd: ALL\n")).denies_everyone


def test_elf_needed() -> None:
    assert needed_libraries(elf(["libwrap.so.0", "libc.so.6"])) == ("libwrap.so.0", "libc.so.6")
    assert links_libwrap(elf(["libwrap.so.0"])) and not links_libwrap(elf(["libc.so.6"]))
    assert links_libwrap(b"static build ... Connection refused by tcp wrapper ...")
    assert needed_libraries(b"#!/bin/sh\n") is None


def test_collector_families(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/sshd").write_bytes(elf(["libwrap.so.0"]))
    (tmp_path / "etc/hosts.deny").write_text("# DenyHosts: x | sshd: 192.0.2.1\nsshd: 192.0.2.1\nsshd: ALL\n")
    os.utime(tmp_path / "etc/hosts.deny", (1_700_000_000, 1_700_000_000))
    found = samples(render(TcpWrappersCollector(TcpWrappersReader(HostPaths(rootfs=tmp_path))).collect()))
    assert value(found, "ssh_access_tcpwrappers_rules", file="/etc/hosts.deny", verdict="deny") == 2
    assert value(found, "ssh_access_tcpwrappers_rules", file="/etc/hosts.allow", verdict="allow") == 0
    assert value(found, "ssh_access_tcpwrappers_sshd_denies_everyone") == 1
    assert value(found, "ssh_access_tcpwrappers_sshd_honoured") == 1
    assert value(found, "ssh_access_tcpwrappers_sshd_binary_libwrap", binary="/usr/sbin/sshd") == 1
    assert (
        value(found, "ssh_access_tcpwrappers_file_modification_timestamp_seconds", file="/etc/hosts.deny")
        == 1.7e9
    )
    assert (
        value(found, "ssh_access_tcpwrappers_file_modification_timestamp_seconds", file="/etc/hosts.allow")
        is None
    )
    assert value(found, "ssh_access_tcpwrappers_parse_errors", file="/etc/hosts.deny") == 0


def test_unreadable_file_fails_the_scrape(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts.deny").mkdir()  # reading a directory fails for root too
    reader = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())
    with pytest.raises(OSError, match=r"hosts\.deny"):
        list(TcpWrappersCollector(reader).collect())
    assert evaluate(reader.read().rules, client=ClientInfo("192.0.2.1")).verdict == "deny"


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    deny = tmp_path / "etc/hosts.deny"
    deny.write_text("sshd: 192.0.2.1\n")
    reader = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())
    first = reader.read()
    assert reader.read().rules is first.rules
    deny.write_text("sshd: 192.0.2.1\nsshd: 192.0.2.2\n")
    assert reader.read().files[1].rules == 2


@pytest.mark.parametrize(
    ("first", "appended"),
    [
        ("sshd: 192.0.2.1\n", "# DenyHosts: x | sshd: 192.0.2.2\nsshd: 192.0.2.2\n"),
        ("# DenyHosts: x | sshd: 192.0.2.2\n", "sshd: 192.0.2.2\nsshd: ALL EXCEPT 192.0.2.9\n"),
        ("sshd: 192.0.2.1\n", "sshd: 192.0.2.3"),  # the appended part breaks the file: deny everyone
        ("sshd: 192.0.2.1", "\nsshd: 192.0.2.3\n"),  # the first read was broken: parsed again in full
    ],
)
def test_appended_lines_parse_as_the_whole_file(tmp_path: Path, first: str, appended: str) -> None:
    """DenyHosts appends: the reader parses only the new part, with the same result as a fresh reader."""
    (tmp_path / "etc").mkdir()
    deny = tmp_path / "etc/hosts.deny"
    (tmp_path / "etc/hosts.allow").write_text("sshd: 192.0.2.7\n")
    deny.write_text(first)
    reader = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())
    evaluate(reader.read().rules, client=ClientInfo("192.0.2.1"))  # an index exists and must be extended
    with deny.open("a") as out:
        out.write(appended)
    grown = reader.read()
    fresh = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=()).read()
    assert grown.rules.deny.rules == fresh.rules.deny.rules and grown.summary == fresh.summary
    assert grown.rules.deny.errors == fresh.rules.deny.errors
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.7", "192.0.2.9", "2001:db8::1"):
        assert evaluate(grown.rules, client=ClientInfo(address)) == evaluate(
            fresh.rules, client=ClientInfo(address)
        )


def test_fifo_and_devices_do_not_hang(tmp_path: Path) -> None:
    """A pattern file or hosts.deny that is a FIFO or a device is unreadable, not a hung scrape."""
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc/fifo")
    (tmp_path / "etc/hosts.allow").write_text("sshd: /etc/fifo /dev/zero\n")
    os.mkfifo(tmp_path / "etc/hosts.deny")
    reader = TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())
    snapshot = reader.read()
    assert "not a regular file" in snapshot.error
    assert reader.pattern_file("/etc/fifo") is None
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.1")).verdict == "deny"  # hosts.deny failed


def test_a_verdict_hanging_on_a_lookup_names_what_would_turn_it() -> None:
    """No lookup answering, hosts.deny line 2 decides; a name in .example.org (hosts.allow line 1) would
    let the client in instead: that rule is the turn, the deny line the rule deciding without a name."""
    rules = _rules("sshd: .example.org\n", "# comment\nsshd: ALL\n")
    found = evaluate(rules, "sshd", client=ClientInfo("192.0.2.7"))
    assert (found.verdict, found.if_unresolved) == ("depends_on_dns", "deny")
    assert found.unresolved_rule is not None and found.unresolved_rule.line == 2
    assert [(t.rule.line, t.verdict, t.tokens, t.matches) for t in found.turns] == [
        (1, "allow", (".example.org",), True)
    ]
    sure = evaluate(_rules("sshd: 192.0.2.7\n", "sshd: ALL\n"), "sshd", client=ClientInfo("192.0.2.7"))
    assert (sure.verdict, sure.turns) == ("allow", ())
    unknown = evaluate(_rules("", "sshd: UNKNOWN\n"), "sshd", client=ClientInfo("192.0.2.7"))
    assert unknown.if_unresolved == "deny"  # no name: libwrap calls it `unknown`
    assert [(t.verdict, t.matches) for t in unknown.turns] == [("allow", False)]  # a name unmatches it
