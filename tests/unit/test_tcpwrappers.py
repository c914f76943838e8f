"""TCP wrappers: every element of hosts_access(5)/hosts_options(5) as Debian's libwrap reads it.

CASES is also run through the real tcpdmatch by tests/integration/test_tcpwrappers_oracle.py: each
expectation here (`if_unresolved`) is what Debian's libwrap said, not what the man page suggests.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from exporter.sources.tcpwrappers.evaluate import canonical_address, wildcard_match
from exporter.sources.tcpwrappers.libwrap import links_libwrap, needed_libraries
from exporter.sources.tcpwrappers.reader import TcpWrappersReader, summarize
from exporter.sources.tcpwrappers.syntax import logical_lines, parse_options
from tests.exposition import render, samples, value

# (id, hosts.allow, hosts.deny, address, our verdict, libwrap's verdict when no lookup answers)
CASES = [
    ("empty files allow", "", "", "192.0.2.1", "allow", "allow"),
    ("deny exact", "", "sshd: 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("allow before deny", "sshd: 192.0.2.1\n", "sshd: ALL\n", "192.0.2.1", "allow", "allow"),
    ("first match wins", "", "sshd: 192.0.2.1: allow\nsshd: ALL\n", "192.0.2.1", "allow", "allow"),
    ("case-insensitive", "", "SSHD: all\n", "192.0.2.1", "deny", "deny"),
    ("commas and blanks", "", "sshd:192.0.2.9,192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("tabs and CRLF", "", "sshd\t:\t192.0.2.1\r\n", "192.0.2.1", "deny", "deny"),
    ("other daemon", "", "other: ALL\n", "192.0.2.1", "allow", "allow"),
    ("daemon list", "", "other,sshd: 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("daemon wildcard", "", "ss?d: 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("daemon EXCEPT", "", "ALL EXCEPT sshd: ALL\n", "192.0.2.1", "allow", "allow"),
    ("EXCEPT nests right", "", "ALL EXCEPT other EXCEPT sshd: ALL\n", "192.0.2.1", "deny", "deny"),
    ("client EXCEPT", "", "sshd: ALL EXCEPT 192.0.2.0/24 EXCEPT 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("EXCEPT 2", "", "sshd: ALL EXCEPT 192.0.2.0/24 EXCEPT 192.0.2.1\n", "192.0.2.2", "allow", "allow"),
    ("leading EXCEPT", "", "sshd: EXCEPT ALL\n", "192.0.2.1", "allow", "allow"),
    ("missing colon", "", "sshd\n", "192.0.2.1", "allow", "allow"),
    ("empty client list", "", "sshd : \n", "192.0.2.1", "allow", "allow"),
    ("prefix", "", "sshd: 192.0.\n", "192.0.2.1", "deny", "deny"),
    ("prefix is text", "", "sshd: 19.\n", "192.0.2.1", "allow", "allow"),
    ("no dot no prefix", "", "sshd: 192.0\n", "192.0.2.1", "allow", "allow"),
    ("net/mask", "", "sshd: 192.0.2.0/255.255.255.0\n", "192.0.2.9", "deny", "deny"),
    ("net/mask odd", "", "sshd: 192.0.2.0/255.0.255.0\n", "192.1.2.1", "deny", "deny"),
    ("mask all ones", "", "sshd: 192.0.2.0/255.255.255.255\n", "192.0.2.0", "allow", "allow"),
    ("net/len", "", "sshd: 192.0.2.0/24\n", "192.0.2.9", "deny", "deny"),
    ("net/len host bits", "", "sshd: 192.0.2.1/24\n", "192.0.2.1", "allow", "allow"),
    ("net/32", "", "sshd: 192.0.2.1/32\n", "192.0.2.1", "deny", "deny"),
    ("net/0 never", "", "sshd: 0.0.0.0/0\n", "192.0.2.1", "allow", "allow"),
    ("net/33 never", "", "sshd: 192.0.2.1/33\n", "192.0.2.1", "allow", "allow"),
    ("len read as atoi", "", "sshd: 192.0.0.0/8x\n", "192.0.2.1", "deny", "deny"),
    ("net is inet_addr", "", "sshd: 010.0.0.0/255.0.0.0\n", "8.0.0.1", "deny", "deny"),
    ("exact is text", "", "sshd: 010.0.0.1\n", "8.0.0.1", "allow", "allow"),
    ("hex net", "", "sshd: 0xc0.0.2.0/24\n", "192.0.2.1", "deny", "deny"),
    ("v6 exact", "", "sshd: [2001:DB8::1]\n", "2001:db8::1", "deny", "deny"),
    ("v6 bare splits", "", "sshd: 2001:db8::1\n", "2001:db8::1", "allow", "allow"),
    ("v6 prefix", "", "sshd: [2001:db8::]/32\n", "2001:db8::1", "deny", "deny"),
    ("v6 host bits ok", "", "sshd: [2001:db8::1]/64\n", "2001:db8::2", "deny", "deny"),
    ("v6 /0", "", "sshd: [2001:db8::]/0\n", "2001:db8:ffff::1", "deny", "deny"),
    ("v6 /129 never", "", "sshd: [2001:db8::]/129\n", "2001:db8::1", "allow", "allow"),
    ("v6 mask atoi", "", "sshd: [2001:db9::]/abc\n", "2001:db8::1", "deny", "deny"),
    ("v4-mapped", "", "sshd: 192.0.2.0/24\n", "::ffff:192.0.2.1", "deny", "deny"),
    ("v4 not in [v6]", "", "sshd: [::ffff:192.0.2.1]\n", "192.0.2.1", "allow", "allow"),
    ("wildcard *", "", "sshd: 192.0.2.*\n", "192.0.2.1", "deny", "deny"),
    ("wildcard ?", "", "sshd: 192.0.2.?\n", "192.0.2.11", "depends_on_dns", "allow"),
    ("bare *", "", "sshd: *\n", "192.0.2.1", "deny", "deny"),
    ("ALL", "", "sshd: ALL\n", "2001:db8::1", "deny", "deny"),
    ("LOCAL", "", "sshd: LOCAL\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("KNOWN", "", "sshd: KNOWN\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("UNKNOWN", "", "sshd: UNKNOWN\n", "192.0.2.1", "depends_on_dns", "deny"),
    ("PARANOID", "", "sshd: PARANOID\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("domain", "", "sshd: .example.com\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("host name", "", "sshd: host.example.org\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("netgroup", "", "sshd: @trusted\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("user@host", "", "sshd: root@192.0.2.1\n", "192.0.2.1", "depends_on_dns", "allow"),
    ("ALL@host", "", "sshd: ALL@192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("unknown user", "", "sshd: unknown@192.0.2.1\n", "192.0.2.1", "depends_on_dns", "deny"),
    ("earlier rule decides", "", "sshd: 192.0.2.1\nsshd: .example.com\n", "192.0.2.1", "deny", "deny"),
    ("same verdict after", "", "sshd: .example.com\nsshd: ALL\n", "192.0.2.1", "deny", "deny"),
    ("daemon@ALL", "", "sshd@ALL: 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("daemon@host", "", "sshd@192.0.2.9: 192.0.2.1\n", "192.0.2.1", "unknown", "allow"),
    ("continuation", "", "sshd: 192.0.2.9 \\\n 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("continuation joins", "", "sshd: 192.0.2.2\\\n192.0.2.3\n", "192.0.2.3", "allow", "allow"),
    ("comment column 0", "", "#sshd: 192.0.2.1\n", "192.0.2.1", "allow", "allow"),
    ("comment continues", "", "#x \\\nsshd: 192.0.2.1\n", "192.0.2.1", "allow", "allow"),
    ("indented # is a rule", "", " #x: ALL\n", "192.0.2.1", "allow", "allow"),
    ("mid-line # is a token", "", "sshd: 192.0.2.9 # \\\n 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("deny without newline", "", "sshd: 192.0.2.9", "192.0.2.1", "deny", "deny"),
    ("allow without newline", "sshd: 192.0.2.1", "sshd: 192.0.2.1\n", "192.0.2.1", "deny", "deny"),
    ("matched before it", "", "sshd: 192.0.2.1: allow\nx", "192.0.2.1", "allow", "allow"),
    ("line too long", "", "other: " + " ".join(["192.0.2.9"] * 250) + "\n", "192.0.2.1", "deny", "deny"),
    ("deny option", "sshd: ALL: deny\n", "", "192.0.2.1", "deny", "deny"),
    ("allow option", "", "sshd: ALL: allow\n", "192.0.2.1", "allow", "allow"),
    ("allow not last", "sshd: ALL: allow: deny\n", "", "192.0.2.1", "deny", "deny"),
    ("empty option", "sshd: ALL:\n", "", "192.0.2.1", "deny", "deny"),
    ("bad option", "sshd: ALL: bogus\n", "", "192.0.2.1", "deny", "deny"),
    ("option needs no value", "sshd: ALL: keepalive 1: allow\n", "", "192.0.2.1", "deny", "deny"),
    ("spawn then deny", "sshd: ALL: spawn echo a\\:b: deny\n", "", "192.0.2.1", "deny", "deny"),
    ("severity", "sshd: ALL: severity auth.info: allow\n", "", "192.0.2.1", "allow", "allow"),
    ("bad severity", "sshd: ALL: severity bogus: allow\n", "", "192.0.2.1", "deny", "deny"),
    ("bad umask", "sshd: ALL: umask 999: allow\n", "", "192.0.2.1", "deny", "deny"),
    ("option =", "sshd: ALL: allow=\n", "", "192.0.2.1", "allow", "allow"),
    ("user option", "sshd: ALL: user nobody: allow\n", "", "192.0.2.1", "deny", "deny"),
    ("setenv", "sshd: ALL: setenv A b: banners /x: allow\n", "ALL: ALL\n", "192.0.2.1", "allow", "allow"),
    ("nice", "sshd: ALL: nice 5: linger 5: rfc931: keepalive: umask 22\n", "", "192.0.2.1", "allow", "allow"),
    ("twist", "sshd: ALL: twist echo no\n", "", "192.0.2.1", "deny", "deny"),
    ("twist not last", "sshd: ALL: twist echo no: allow\n", "", "192.0.2.1", "deny", "deny"),
]  # fmt: skip


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


def _elf(needed: list[str]) -> bytes:
    """A minimal 64-bit little-endian ELF: one PT_LOAD, one PT_DYNAMIC with DT_NEEDED and DT_STRTAB."""
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in needed)
    offsets = [1 + sum(len(n) + 1 for n in needed[:i]) for i in range(len(needed))]
    dynamic = b"".join(struct.pack("<qQ", 1, o) for o in offsets) + struct.pack(
        "<qQqQ", 5, 0x1000 + 64 + 112, 0, 0
    )
    header = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    )
    size = 64 + 112 + len(strtab) + len(dynamic)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x1000, 0x1000, size, size, 0x1000)
    dyn = struct.pack("<IIQQQQQQ", 2, 6, 64 + 112 + len(strtab), 0, 0, len(dynamic), len(dynamic), 8)
    return header + load + dyn + strtab + dynamic


def test_elf_needed() -> None:
    assert needed_libraries(_elf(["libwrap.so.0", "libc.so.6"])) == ("libwrap.so.0", "libc.so.6")
    assert links_libwrap(_elf(["libwrap.so.0"])) and not links_libwrap(_elf(["libc.so.6"]))
    assert links_libwrap(b"static build ... Connection refused by tcp wrapper ...")
    assert needed_libraries(b"#!/bin/sh\n") is None


def test_collector_families(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/sshd").write_bytes(_elf(["libwrap.so.0"]))
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
