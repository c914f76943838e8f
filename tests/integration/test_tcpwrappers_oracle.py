"""The evaluator against the real `tcpdmatch` (Debian's libwrap): generated rule sets, every verdict agrees.

Hypothesis writes hosts.allow and hosts.deny from documentation addresses and the pattern kinds of
hosts_access(5); tcpdmatch judges each address inside an empty network namespace (so a hostname
pattern's lookup fails at once, as `if_unresolved` assumes). A definite verdict of ours must also be
what tcpdmatch says; a `depends_on_dns` one must come from a rule a lookup could change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from tests.integration.harness import NetNs, require_root_and
from tests.integration.tcpdmatch import tcpdmatch_verdicts
from tests.tcpwrappers_cases import CASES

V4 = ["192.0.2.1", "192.0.2.2", "192.0.2.130", "198.51.100.7", "198.51.101.9", "203.0.113.255"]
V6 = ["2001:db8::1", "2001:db8::2", "2001:db8:1::5", "2001:db8:ffff::1", "::ffff:192.0.2.1"]
CLIENT_PATTERNS = [
    *V4, "[2001:db8::1]", "[2001:DB8::2]",
    "192.0.2.", "198.51.", "203.0.113.", "19.",
    "192.0.2.0/255.255.255.0", "192.0.2.128/255.255.255.128", "198.51.100.0/255.255.254.0",
    "192.0.2.0/255.0.255.0", "192.0.2.1/255.255.255.255", "10.0.0.0/255.0.0.0", "0300.0.2.0/255.255.255.0",
    "192.0.2.0/24", "192.0.2.128/25", "192.0.2.1/32", "198.51.100.0/23", "192.0.2.1/24", "0.0.0.0/0",
    "[2001:db8::]/32", "[2001:db8::]/48", "[2001:db8:1::]/48", "[2001:db8::1]/128", "[2001:db8::]/0",
    "ALL", "LOCAL", "KNOWN", "UNKNOWN", "PARANOID", ".example.com", "host.example.org",
    "192.0.2.*", "192.0.2.?", "198.51.100.?", "*", "2001:db8::*", "u*", "ALL@ALL", "KNOWN@192.0.2.1",
]  # fmt: skip
DAEMONS = [
    "sshd",
    "ALL",
    "other",
    "SSHD",
    "ss*",
    "sshd,other",
    "ALL EXCEPT other",
    "ALL EXCEPT sshd",
    "sshd@ALL",
    "sshd@192.0.2.1",
    "sshd@unknown",
]
OPTIONS = [
    "",
    "",
    "",
    ": allow",
    ": deny",
    ": spawn echo %a: deny",
    ": severity auth.info",
    ": bogus",
    ": twist echo no",
    ": allow: deny",
    ":",
]


@st.composite
def client_lists(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.sampled_from(CLIENT_PATTERNS), min_size=1, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        items += ["EXCEPT", *draw(st.lists(st.sampled_from(CLIENT_PATTERNS), min_size=1, max_size=2))]
        if draw(st.booleans()):
            items += ["EXCEPT", draw(st.sampled_from(CLIENT_PATTERNS))]
    return draw(st.sampled_from([" ", ", ", ","])).join(items)


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        line = f"{draw(st.sampled_from(DAEMONS))}: {draw(client_lists())}{draw(st.sampled_from(OPTIONS))}"
        lines.append(line)
        if draw(st.integers(0, 6)) == 0:
            lines.append("# a comment: sshd: ALL")
    text = "\n".join(lines)
    if draw(st.integers(0, 5)) == 0:
        text = text.replace(": ", ": \\\n  ", 1)  # a continuation line
    return text + ("\n" if draw(st.integers(0, 4)) else "")  # sometimes no newline at the end


@pytest.fixture(scope="module")
def netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetNs]:
    require_root_and("tcpdmatch", "ip")
    with NetNs(tmp_path_factory.mktemp("tcpdmatch-ns")) as namespace:
        yield namespace


COMPARED: list[int] = [0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    allow=rule_files(),
    deny=rule_files(),
    addresses=st.lists(st.sampled_from(V4 + V6), min_size=3, max_size=6),
)
def test_every_verdict_agrees_with_tcpdmatch(
    netns: NetNs, tmp_path_factory: pytest.TempPathFactory, allow: str, deny: str, addresses: list[str]
) -> None:
    directory = tmp_path_factory.mktemp("rules")
    (directory / "hosts.allow").write_text(allow)
    (directory / "hosts.deny").write_text(deny)
    expected = tcpdmatch_verdicts(netns, directory, addresses)
    rules = AccessRules(parse_table(allow, "hosts.allow"), parse_table(deny, "hosts.deny"))
    for address, reference in zip(addresses, expected, strict=True):
        verdict = evaluate(rules, "sshd", client=ClientInfo(address))
        context = f"{address}\n--- hosts.allow\n{allow}\n--- hosts.deny\n{deny}\n{verdict}"
        assert verdict.if_unresolved == reference, context
        if verdict.verdict in ("allow", "deny"):
            assert verdict.verdict == reference, context
        else:
            assert verdict.maybe, context
    COMPARED[0] += len(addresses)


def test_unit_cases_are_what_libwrap_says(netns: NetNs, tmp_path: Path) -> None:
    """Every hand-written case of the unit tests: its `if_unresolved` is tcpdmatch's verdict."""
    for name, allow, deny, address, _, unresolved in CASES:
        (tmp_path / "hosts.allow").write_text(allow)
        (tmp_path / "hosts.deny").write_text(deny)
        assert tcpdmatch_verdicts(netns, tmp_path, [address]) == [unresolved], name
    COMPARED[0] += len(CASES)


def test_report_comparisons(netns: NetNs) -> None:
    """Runs after the property test (file order): it compared hundreds of verdicts, not a handful."""
    assert COMPARED[0] >= 500, COMPARED[0]


def test_pattern_file_under_rootfs_agrees(netns: NetNs, tmp_path: Path) -> None:
    """A `/path` pattern file: tcpdmatch reads the host path, we read it through pattern_files."""
    patterns = tmp_path / "blocked"
    patterns.write_text("192.0.2.0/24  # not a comment\n[2001:db8::]/32\n")
    deny = f"sshd: {patterns}\n"
    (tmp_path / "hosts.deny").write_text(deny)
    (tmp_path / "hosts.allow").write_text("")
    addresses = ["192.0.2.9", "198.51.100.1", "2001:db8::5"]
    expected = tcpdmatch_verdicts(netns, tmp_path, addresses)
    rules = AccessRules(
        parse_table("", "hosts.allow"), parse_table(deny, "hosts.deny"), lambda p: Path(p).read_text().split()
    )
    verdicts = [evaluate(rules, client=ClientInfo(a)) for a in addresses]
    assert [v.if_unresolved for v in verdicts] == expected == ["deny", "allow", "deny"]
    # `#`, `not`, `a`, `comment` are host name patterns in a pattern file: a lookup could match them
    assert [v.verdict for v in verdicts] == ["deny", "depends_on_dns", "deny"]
