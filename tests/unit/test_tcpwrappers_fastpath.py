"""parse_table's fast path (one regex for the simple lines, kept compact) against parse_lines.

Both must give the same Table: rules (line numbers, text, daemons, clients, options, DenyHosts and
sshguard marks), errors, where libwrap stops (last line without newline, a line of 2047+ bytes) and the
state an append goes on from; and, from compact tables, the same summary and verdicts (rule evidence
included) as from the general parser's.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate
from exporter.sources.tcpwrappers.reader import summarize
from exporter.sources.tcpwrappers.syntax import (
    ParseState,
    SimpleRun,
    extend_table,
    parse_lines,
    parse_table,
)

FILE = "/etc/hosts.deny"
ALLOW = "/etc/hosts.allow"
STAMP = "Tue Nov 14 22:13:20 2023"

ADDRESSES = st.sampled_from(
    [
        "192.0.2.1",
        "198.51.100.255",
        "10.",
        "[2001:db8::1]",
        "[::ffff:192.0.2.1]",
        "[2001:DB8::A:1]",
        "2001:db8::1",  # not in brackets: the second `:` starts options
        "[2001:db8::1",  # an unbalanced bracket
        "ALL",
        "192.0.2.0/24",
        "192.0.2.1 EXCEPT 192.0.2.2",
        "host.example",
    ]
)
DAEMONS = st.sampled_from(
    ["sshd", "sshd ", "sshd\t", " sshd", "sshd,ALL", "sshd, other", "ss?d", "ALL EXCEPT other", "", "#sshd"]
)
SPACE = st.sampled_from(["", " ", "\t", "  \t", "\r", " \r", "\x0b", "\xa0", ","])
ENDINGS = st.sampled_from(["\n", "\r\n", " \n", "\t\n", "\\\n"])


@st.composite
def rule_lines(draw: st.DrawFn) -> str:
    daemons, address = draw(DAEMONS), draw(ADDRESSES)
    line = f"{daemons}{draw(SPACE)}:{draw(SPACE)}{address}{draw(SPACE)}"
    if draw(st.integers(0, 9)) == 0:
        line += draw(st.sampled_from([": allow", ": deny", ":", ": bogus", ": severity auth.info"]))
    if draw(st.booleans()):  # the `# DenyHosts:` line above it, matching or not
        entry = draw(st.sampled_from([line.strip(), f"sshd: {address}", "sshd: 192.0.2.99", ""]))
        tail = draw(st.sampled_from(["", " ", "\r"]))
        line = f"# DenyHosts: {STAMP} | {entry}{tail}\n{line}"
    return line + draw(st.sampled_from(["\n"] * 6 + ["\r\n", "\\\n"]))


OTHER_LINES = st.sampled_from(
    [
        "\n",
        "   \n",
        "\t\r\n",
        "\x0c\n",
        "# a comment\n",
        "#\n",
        " # not in column 0: sshd: 192.0.2.1\n",
        "# a comment that goes on \\\n",
        "###sshguard###\n",
        f"# DenyHosts: {STAMP} | sshd: 192.0.2.1\n",
        "sshd: ALL EXCEPT 192.0.2.1\n",
        "sshd: 192.0.2.1 : spawn /bin/true\n",
        "sshd: [2001:db8::1]: allow\n",
        "no separator\n",
        "sshd: 192.0.2.1, 192.0.2.2\n",
        "sshd: 192.0.2.1\\\n",
        "sshd : 192.0.2.7\n",
        "sshd,ALL: 192.0.2.8\n",
        "sshd: [2001:db8::2]\n",
        "sshd\t:\t192.0.2.9\t\r\n",
        "sshd" + " " * 2040 + ": 192.0.2.1\n",  # a logical line of 2047+ bytes
        "#" + "x" * 2050 + "\n",
        "sshd: " + "1" * 2044 + "\n",
    ]
)


@st.composite
def files(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(rule_lines(), rule_lines(), OTHER_LINES), max_size=30))
    text = "".join(parts)
    if text and draw(st.integers(0, 4)) == 0:
        text = text[: -1 if text.endswith("\n") else len(text)]  # the last line without its newline
    return text


@settings(max_examples=600, deadline=None)
@given(files())
def test_fast_path_is_the_general_parser(text: str) -> None:
    assert parse_table(text, FILE) == parse_lines(text, FILE)


@settings(max_examples=300, deadline=None)
@given(files(), files(), st.booleans())
def test_fast_path_goes_on_from_a_state(first: str, appended: str, sshguard: bool) -> None:
    """Appended text (extend_table) parses as the general parser would from the same state."""
    state = parse_lines(first, FILE).end or ParseState()
    state = ParseState(state.lines, state.mark, state.in_sshguard != sshguard)
    assert parse_table(appended, FILE, state) == parse_lines(appended, FILE, state)
    table = parse_table(first, FILE)
    if table.end is not None:
        assert extend_table(table, appended) == parse_lines(first + appended, FILE)


def test_denyhosts_file() -> None:
    entries = ["192.0.2.1", "[2001:db8::1]", "198.51.100.7"]
    text = "".join(f"# DenyHosts: {STAMP} | sshd: {a}\nsshd: {a}\n" for a in entries)
    table = parse_table(text, FILE)
    assert table == parse_lines(text, FILE)
    assert [(r.line, r.clients, r.marked_by) for r in table.rules] == [
        (2, ("192.0.2.1",), "denyhosts"),
        (4, ("[2001:db8::1]",), "denyhosts"),
        (6, ("198.51.100.7",), "denyhosts"),
    ]
    assert table.end == ParseState(6, None, False)


def test_tricky_lines() -> None:
    text = (
        "sshd: 192.0.2.1 \n"
        "sshd\t:\t192.0.2.2\t\r\n"
        " # not a comment: 192.0.2.3\n"
        "sshd : 192.0.2.4\n"
        "sshd,ALL: 192.0.2.5\n"
        "sshd: [2001:db8::5]\n"
        "###sshguard###\n"
        "sshd: 192.0.2.6\n"
        "###sshguard###\n"
        "sshd: 192.0.2.7"
    )
    table = parse_table(text, FILE)
    assert table == parse_lines(text, FILE)
    assert [r.line for r in table.rules] == [1, 2, 3, 4, 5, 6, 8]
    assert table.rules[6].marked_by == "sshguard"
    assert table.stop is not None and table.stop.line == 10 and table.end is None


# DenyHosts' pairs (runs of them are kept as text) and lines that look almost like them.
PAIR_ADDRESSES = st.sampled_from(
    [
        *("192.0.2.1", "192.0.2.2", "198.51.100.7", "010.0.0.1", "192.0.2", "[2001:db8::1]"),
        *("[2001:DB8::2]", "[::ffff:192.0.2.1]", "[2001:db8::1", "ALL", "192.0.2.0/24"),
    ]
)
PAIR_DAEMONS = st.sampled_from(["sshd"] * 8 + ["ALL", "other", "ss?d", "sshd,ALL", "sshd "])
STAMPS = st.sampled_from([STAMP] * 6 + ["", "a | b", "x\\", " ", "\t"])


@st.composite
def denyhosts_pairs(draw: st.DrawFn) -> str:
    daemons, address = draw(PAIR_DAEMONS), draw(PAIR_ADDRESSES)
    rule = f"{daemons}: {address}"
    entry = draw(st.sampled_from([rule] * 8 + [f"sshd: {address}", rule + " ", "sshd: 192.0.2.99"]))
    return f"# DenyHosts: {draw(STAMPS)} | {entry}\n{rule}\n"


@st.composite
def denyhosts_files(draw: st.DrawFn) -> str:
    run = draw(st.lists(denyhosts_pairs(), max_size=8))
    parts = draw(st.lists(st.one_of(denyhosts_pairs(), rule_lines(), OTHER_LINES), max_size=12))
    text = "".join(run + parts + draw(st.lists(denyhosts_pairs(), max_size=8)))
    if text and draw(st.integers(0, 6)) == 0:
        text = text[:-1]
    return text


PROBES = [
    "192.0.2.1", "192.0.2.2", "198.51.100.7", "198.51.100.255", "10.0.0.1", "192.0.2.99",
    "2001:db8::1", "2001:db8::2", "2001:db8::a:1", "::ffff:192.0.2.1", "203.0.113.1",
]  # fmt: skip


def _same_meaning(allow: str, deny: str, appended: str = "") -> None:
    """Compact tables (parse_table, extend_table) and the general parser: same rules, summary, verdicts."""
    general = AccessRules(parse_lines(allow, ALLOW), parse_lines(deny + appended, FILE))
    compact = AccessRules(parse_table(allow, ALLOW), parse_table(deny, FILE))
    if appended and compact.deny.end is not None:
        for probe in PROBES[:2]:
            evaluate(compact, client=ClientInfo(probe))  # an index that with_deny extends
        since = summarize(compact)
        compact = compact.with_deny(extend_table(compact.deny, appended))
        assert summarize(compact, since=since) == summarize(general)
    elif appended:
        compact = AccessRules(compact.allow, parse_table(deny + appended, FILE))
    assert compact.deny.rule_count == len(general.deny.rules)
    for daemon in ("sshd", "other"):
        assert summarize(compact, daemon) == summarize(general, daemon)
        for probe in PROBES:
            client = ClientInfo(probe)
            assert evaluate(compact, daemon, client=client) == evaluate(general, daemon, client=client)
    assert compact.deny == general.deny and compact.allow == general.allow


@settings(max_examples=400, deadline=None)
@given(denyhosts_files())
def test_denyhosts_runs_are_the_general_parser(text: str) -> None:
    assert parse_table(text, FILE) == parse_lines(text, FILE)
    table = parse_table(text, FILE)
    assert table.rule_count == len(table.rules)
    assert [r.line for r in table.rules] == sorted(r.line for r in table.rules)


@settings(max_examples=300, deadline=None)
@given(st.one_of(files(), denyhosts_files()), st.one_of(files(), denyhosts_files()))
def test_compact_tables_give_the_same_verdicts_and_summary(allow: str, deny: str) -> None:
    _same_meaning(allow, deny)


@settings(max_examples=200, deadline=None)
@given(st.one_of(files(), denyhosts_files()), denyhosts_files(), denyhosts_files())
def test_compact_tables_grow_as_the_whole_file(allow: str, deny: str, appended: str) -> None:
    _same_meaning(allow, deny, appended)


def test_a_denyhosts_run_is_kept_as_text() -> None:
    text = "".join(f"# DenyHosts: {STAMP} | sshd: 192.0.2.{n}\nsshd: 192.0.2.{n}\n" for n in range(1, 6))
    table = parse_table("sshd: 192.0.2.3, 192.0.2.9\n" + text, FILE)
    assert table.general and len(table.compact) == 1 and isinstance(table.compact[0], SimpleRun)
    assert table.simple_count == 5 and table.simple_daemons() == {("sshd",): 5}
    assert "simple" not in vars(table) and "rules" not in vars(table)  # nothing built yet
    rules = AccessRules(parse_table("sshd: 192.0.2.4\n", ALLOW), table)
    assert summarize(rules).rules == {
        (ALLOW, "allow"): 1,
        (ALLOW, "deny"): 0,
        (FILE, "allow"): 0,
        (FILE, "deny"): 6,
    }
    assert "simple" not in vars(table)
    found = evaluate(rules, client=ClientInfo("192.0.2.5"))
    assert (found.verdict, found.line, found.rule_text) == ("deny", 11, "sshd: 192.0.2.5")
    assert found.rule is not None and found.rule.marked_by == "denyhosts"
    assert evaluate(rules, client=ClientInfo("192.0.2.3")).line == 1  # the earlier general rule wins
    assert evaluate(rules, client=ClientInfo("192.0.2.4")).verdict == "allow"  # hosts.allow first


@settings(max_examples=60, deadline=None)
@given(st.lists(denyhosts_files(), min_size=2, max_size=40))
def test_many_appends_give_the_verdicts_of_the_whole_file(parts: list[str]) -> None:
    """DenyHosts appends ban after ban: the index grows by stretches, merged as they pile up, and
    answers as one built from the whole file."""
    allow = parse_table("sshd: 192.0.2.2\n", ALLOW)
    grown = AccessRules(allow, parse_table(parts[0], FILE))
    evaluate(grown, client=ClientInfo(PROBES[0]))  # the index that with_deny extends
    text = parts[0]
    for part in parts[1:]:
        if grown.deny.end is None:
            break
        grown = grown.with_deny(extend_table(grown.deny, part))
        text += part
    whole = AccessRules(allow, parse_lines(text, FILE))
    for probe in PROBES:
        client = ClientInfo(probe)
        assert evaluate(grown, client=client) == evaluate(whole, client=client)


def test_appended_bans_are_found_among_few_stretches() -> None:
    """One ban appended at a time, 300 times: every ban is found, in O(log n) stretches of the index."""
    pair = "# DenyHosts: {0} | sshd: {1}\nsshd: {1}\n"
    rules = AccessRules(parse_table("", ALLOW), parse_table(pair.format(STAMP, "192.0.2.1"), FILE))
    evaluate(rules, client=ClientInfo("192.0.2.1"))
    addresses = [f"[2001:db8::{n:x}]" for n in range(150)] + [f"198.51.100.{n}" for n in range(150)]
    for address in addresses:
        rules = rules.with_deny(extend_table(rules.deny, pair.format(STAMP, address)))
    assert len(rules.index("sshd").simple) <= 12
    for line, address in enumerate(addresses, 2):
        found = evaluate(rules, client=ClientInfo(address.strip("[]")))
        assert (found.verdict, found.line, found.rule_text) == ("deny", 2 * line, f"sshd: {address}")
    assert evaluate(rules, client=ClientInfo("192.0.2.1")).line == 2
    assert evaluate(rules, client=ClientInfo("203.0.113.1")).rule is None
