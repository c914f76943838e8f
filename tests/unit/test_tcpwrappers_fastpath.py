"""parse_table's fast path (one regex for the simple lines) against parse_lines, the general parser.

Both must give the same Table: rules (line numbers, text, daemons, clients, options, DenyHosts and
sshguard marks), errors, where libwrap stops (last line without newline, a line of 2047+ bytes) and the
state an append goes on from.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.tcpwrappers.syntax import ParseState, extend_table, parse_lines, parse_table

FILE = "/etc/hosts.deny"
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
