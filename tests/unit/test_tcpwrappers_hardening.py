"""TCP wrappers under hostile or broken input: bounded time and memory, libwrap's verdicts all the same.

Issue 11: wildcard patterns backtracked (`**********X` against an IPv6 address: 24 s), pattern files were
followed once per reference (a file naming itself 8 times: > 110 s).
"""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from exporter.sources.tcpwrappers.evaluate import (
    YES,
    PatternExpander,
    _Context,
    address_span,
    address_value,
    canonical_address,
    masked_match,
    rule_match,
    rule_verdict,
    wildcard_match,
)
from exporter.sources.tcpwrappers.reader import TcpWrappersReader, summarize
from exporter.sources.tcpwrappers.syntax import MAX_RULES, Table, pattern_tokens
from tests.exposition import render, samples, value


def _regex_wildcard_match(text: str, pattern: str) -> bool:
    """The matcher before issue 11 (a backtracking regex): right, and exponential in the `*`s."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@settings(max_examples=3000, deadline=None)
@given(text=st.text("ab.:", max_size=10), pattern=st.text("ab.:*?", max_size=8))
def test_wildcard_verdicts_are_the_regex_verdicts(text: str, pattern: str) -> None:
    assert wildcard_match(text, pattern) == _regex_wildcard_match(text, pattern)


def test_wildcard_with_many_stars_is_fast() -> None:
    address = "2001:db8:1234:5678:9abc:def0:1234:5678"
    rules = AccessRules(
        parse_table("", "/etc/hosts.allow"), parse_table("sshd: **********X\n", "/etc/hosts.deny")
    )
    started = time.monotonic()
    found = evaluate(rules, client=ClientInfo(address))
    assert not wildcard_match(address, "*" * 2000 + "X") and wildcard_match(address, "*?" * 30 + "8")
    assert time.monotonic() - started < 2.0  # 32 s before
    assert (found.verdict, found.if_unresolved) == ("depends_on_dns", "allow")  # a host name could match


def _rootfs(tmp_path: Path, files: dict[str, str]) -> TcpWrappersReader:
    for name, text in files.items():
        path = tmp_path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return TcpWrappersReader(HostPaths(rootfs=tmp_path), binaries=())


def test_pattern_file_naming_itself_is_read_once(tmp_path: Path) -> None:
    """Each reference was followed again down to depth 8: 8^8 matches per client."""
    reader = _rootfs(
        tmp_path,
        {
            "/etc/hosts.deny": "sshd: /etc/self\nsshd: /etc/self@/etc/self\n",
            "/etc/self": "/etc/self " * 8 + "192.0.2.1 .example.org\n",
        },
    )
    started = time.monotonic()
    snapshot = reader.read()
    verdicts = [evaluate(snapshot.rules, client=ClientInfo(a)) for a in ("192.0.2.1", "192.0.2.2")]
    assert time.monotonic() - started < 2.0  # > 110 s before
    assert [v.verdict for v in verdicts] == ["deny", "depends_on_dns"]
    assert snapshot.summary.lookup_rules["/etc/hosts.deny"] == 2


def test_pattern_files_chain_deeper_than_eight(tmp_path: Path) -> None:
    """libwrap follows a chain of 12 files (tcpdmatch: denied); the old depth cap of 8 said allow."""
    files = {f"/etc/p{i}": f"/etc/p{i + 1}\n" for i in range(12)}
    files |= {"/etc/p12": "192.0.2.0/24\n", "/etc/hosts.deny": "sshd: /etc/p0\n"}
    snapshot = _rootfs(tmp_path, files).read()
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.7")).verdict == "deny"
    assert evaluate(snapshot.rules, client=ClientInfo("198.51.100.7")).verdict == "allow"


def test_pattern_file_shared_by_many_rules_is_expanded_once(tmp_path: Path) -> None:
    deny = "".join(f"sshd: 198.51.100.{i % 250} /etc/big\n" for i in range(2000))
    big = " ".join(f"203.0.113.{i % 250}" for i in range(20_000)) + "\n"
    reader = _rootfs(tmp_path, {"/etc/hosts.deny": deny, "/etc/big": big})
    started = time.monotonic()
    snapshot = reader.read()
    assert summarize(snapshot.rules).lookup_rules["/etc/hosts.deny"] == 0
    assert time.monotonic() - started < 4.0


def test_pattern_tokens_are_c_strings_split_at_c_whitespace() -> None:
    """fscanf("%s"): \\x1c and U+00A0 are no separators, a NUL ends the token; no ValueError later."""
    assert pattern_tokens(" a\x1cb\tc\0d \0e \xa0f\n\v192.0.2.1\f") == ("a\x1cb", "c", "\xa0f", "192.0.2.1")


def test_long_numbers_in_pattern_files(tmp_path: Path) -> None:
    """int() of 5,000 digits raises; libwrap's atoi reads a number nothing matches."""
    reader = _rootfs(
        tmp_path,
        {
            "/etc/hosts.deny": "sshd: /etc/long\n",
            "/etc/long": f"192.0.2.0/{'9' * 5000} {'1' * 5000}.0.0.0/8 [2001:db8::]/{'0' * 5000}32\n",
        },
    )
    snapshot = reader.read()
    assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.1")).verdict == "allow"
    assert evaluate(snapshot.rules, client=ClientInfo("2001:db8::1")).verdict == "deny"


def _peak_parse(text: str) -> tuple[Table, int]:
    """The table of `text` as hosts.deny, and the most memory parsing it held at once (bytes)."""
    tracemalloc.start()
    try:
        table = parse_table(text, "/etc/hosts.deny")
        return table, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_lines_without_colon_are_counted_not_kept() -> None:
    """1 MB of lines without `:`: each was a ParseError and 10 regex strings (6 MB took 1.08 GB)."""
    table, peak = _peak_parse("x\n" * 500_000)
    assert table.error_count == 500_000 and len(table.errors) == 100
    assert peak < 16 << 20, peak  # 170 MB before


def test_long_continuation_line_is_read_in_place() -> None:
    """A 2 MB continuation line was split into a million strings (60 MB took 2.2 GB)."""
    table, peak = _peak_parse("sshd: " + "\\\n" * 1_000_000 + "192.0.2.1\n")
    assert [r.clients for r in table.rules] == [("192.0.2.1",)]
    assert peak < 16 << 20, peak  # 400 MB before


def test_too_many_rules_make_the_file_unreadable(tmp_path: Path) -> None:
    """Past MAX_RULES objects a hosts file is an error the collector reports, not gigabytes held."""
    reader = _rootfs(tmp_path, {"/etc/hosts.deny": "a:b\n" * (MAX_RULES + 1), "/etc/hosts.allow": ""})
    snapshot = reader.read()
    assert f"more than {MAX_RULES} rules" in snapshot.error
    with pytest.raises(OSError, match="more than"):  # collector_success 0, with this message
        list(TcpWrappersCollector(reader).collect())


def test_parse_errors_counts_every_bad_line(tmp_path: Path) -> None:
    reader = _rootfs(tmp_path, {"/etc/hosts.deny": "x\n" * 3000 + "sshd: 192.0.2.1\n" + "y\n" * 3000})
    found = samples(render(TcpWrappersCollector(reader).collect()))
    assert value(found, "ssh_access_tcpwrappers_parse_errors", file="/etc/hosts.deny") == 6000
    assert value(found, "ssh_access_tcpwrappers_rules", file="/etc/hosts.deny", verdict="deny") == 1


def test_appended_errors_keep_the_first_and_count_all(tmp_path: Path) -> None:
    deny = tmp_path / "etc/hosts.deny"
    reader = _rootfs(tmp_path, {"/etc/hosts.deny": "x\n" * 150})
    reader.read()
    with deny.open("a") as out:
        out.write("sshd: 192.0.2.1\n" + "y\n" * 150)
    grown = reader.read().rules.deny
    fresh = parse_table(deny.read_text(), "/etc/hosts.deny")
    assert grown == fresh and grown.error_count == 300 and grown.errors == fresh.errors


def test_nul_byte_in_hosts_deny(tmp_path: Path) -> None:
    """libwrap reads a line up to its NUL and joins the next one on (tcpdmatch: both denied); a NUL in
    an address raised ValueError in inet_pton."""
    reader = _rootfs(
        tmp_path, {"/etc/hosts.deny": "sshd: 192.0.2.1\0junk\n 198.51.100.1\nsshd: 203.0.113.9\0\n"}
    )
    snapshot = reader.read()
    verdicts = [evaluate(snapshot.rules, client=ClientInfo(a)).verdict for a in ("192.0.2.1", "198.51.100.1")]
    assert verdicts == ["deny", "deny"]
    assert [e.message[:8] for e in snapshot.files[1].errors] == ["NUL byte", "NUL byte", "missing "]


def test_nul_byte_in_a_pattern_file_path(tmp_path: Path) -> None:
    reader = _rootfs(
        tmp_path, {"/etc/hosts.deny": "sshd: /etc/list\n", "/etc/list": "/etc/other\0x 192.0.2.1\n"}
    )
    reader.pattern_file("/etc/a\0b")  # a path that cannot be opened: no ValueError
    assert evaluate(reader.read().rules, client=ClientInfo("192.0.2.1")).verdict == "deny"


NETS = [
    "192.0.2.0",
    "192.0.2.128",
    "192.0.2.1",
    "198.51.100.0",
    "0.0.0.0",
    "0300.0.2.0",
    "0xc0.0.2.0",
    "255.255.255.255",
]
MASKS = [
    "24",
    "25",
    "32",
    "0",
    "33",
    "8x",
    "-1",
    "255.255.255.0",
    "255.255.254.0",
    "255.0.255.0",
    "255.255.255.255",
]
V6_NETS = ["[2001:db8::]", "[2001:db8:1::]", "[2001:db8::1]", "[::ffff:192.0.2.0]", "[::]"]
V6_MASKS = ["32", "48", "64", "128", "0", "129", "abc", "120"]
CLIENTS = [
    "192.0.2.1", "192.0.2.130", "192.0.3.1", "198.51.100.7", "198.51.101.9", "255.255.255.255", "0.0.0.0",
    "2001:db8::1", "2001:db8:1::5", "2001:db9::1", "::ffff:192.0.2.1", "::",
]  # fmt: skip
masked_tokens = st.one_of(
    st.tuples(st.sampled_from(NETS), st.sampled_from(MASKS)),
    st.tuples(st.sampled_from(V6_NETS), st.sampled_from(V6_MASKS)),
)


@settings(max_examples=2000, deadline=None)
@given(token=masked_tokens, client=st.sampled_from(CLIENTS))
def test_address_span_is_masked_match(token: tuple[str, str], client: str) -> None:
    net, mask = token
    span, value = address_span(f"{net}/{mask}"), address_value(client)
    if span is not None:  # None: not one range (a mask with holes), matched rule by rule
        inside = value is not None and value[0] == span[0] and span[1] <= value[1] <= span[2]
        assert inside == masked_match(net, mask, client)


def _in_order(rules: AccessRules, client: str) -> tuple[str, int | None]:
    """libwrap's order without any index: the first rule that matches, hosts.allow then hosts.deny."""
    for table, allow_file in ((rules.allow, True), (rules.deny, False)):
        for rule in table.rules:
            context = _Context(client, None, "sshd", True, PatternExpander(lambda _: None))
            if rule_match(rule, context) == YES:
                return rule_verdict(rule, allow_file)[0], rule.line
    return "allow", None


rule_lines = st.lists(
    st.tuples(
        st.sampled_from(["sshd", "ALL", "other"]),
        st.lists(
            st.one_of(masked_tokens.map("/".join), st.sampled_from([*CLIENTS[:5], "ALL"])),
            min_size=1,
            max_size=3,
        ),
    ).map(lambda rule: f"{rule[0]}: {' '.join(rule[1])}\n"),
    max_size=8,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(allow=rule_lines, deny=rule_lines, client=st.sampled_from(CLIENTS))
def test_range_index_gives_the_rule_libwrap_takes(allow: str, deny: str, client: str) -> None:
    rules = AccessRules(parse_table(allow, "/etc/hosts.allow"), parse_table(deny, "/etc/hosts.deny"))
    found = evaluate(rules, client=ClientInfo(client))
    assert (found.if_unresolved, found.line) == _in_order(rules, canonical_address(client))
