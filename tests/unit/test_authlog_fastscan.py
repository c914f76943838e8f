"""fastscan against the general path: the same lines must give exactly the same counters.

fastscan's chunk regex recognises the common wordings itself and hands everything else to framing and
classify; wherever it matches, it must agree with them. Each case feeds the same text through
Stats.feed_batch(Framer.parse_many(lines)) (the general path) and Stats.feed_text (fastscan) and
compares everything Stats holds: the snapshot, the pid map, the newest event time.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.authlog_gen import generate
from exporter.sources.authlog import stats
from exporter.sources.authlog.classify import classify
from exporter.sources.authlog.fast import fastscan, linescan
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.records import Event, SyslogRecord
from exporter.sources.authlog.stats import Stats

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"
NOW = 1795500000.0


@pytest.fixture(autouse=True, params=["fastscan", "linescan"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case runs with both chunk scanners (linescan is compiled where a C compiler is)."""
    monkeypatch.setattr(stats, "scan", fastscan.scan if request.param == "fastscan" else linescan.scan)
    return str(request.param)


def _clock() -> float:
    return NOW


def _state(stats: Stats) -> object:
    return stats.snapshot(now=NOW), list(stats.pid_map().items()), stats.latest_time


def _general(text: str) -> object:
    stats, framer = Stats(clock=_clock), Framer(clock=_clock)
    stats.feed_batch(framer.parse_many(text.splitlines(keepends=True)), "f")
    return _state(stats)


def _fast(text: str) -> object:
    stats, framer = Stats(clock=_clock), Framer(clock=_clock)
    stats.feed_text(text, "f", framer)
    return _state(stats)


def _messages() -> list[str]:
    rows = FIXTURES.joinpath("wordings.tsv").read_text().splitlines()
    return [row.split("\t")[4] for row in rows if row and not row.startswith("#")]


MESSAGES = _messages()
# A line before each message gives its pid an address, so carry-over shows in the pid map.
PRIMER = "Nov 23 19:04:30 host sshd[4242]: Connection closed by 198.51.100.99 port 1 [preauth]\n"
FRAMINGS = (
    "Nov 23 19:04:34 host {ident}[4242]: {msg}\n",
    "Nov  3 19:04:34 host {ident}[4242]: {msg}\n",
    "Nov 23 19:04:34.123 host {ident}[4242]: {msg}\n",
    "Nov 23 19:04:34 {ident}[4242]: {msg}\n",
    "Nov 23 19:04:34 host {ident}: {msg}\n",
    "Foo 23 19:04:34 host {ident}[4242]: {msg}\n",
    "2023-07-29T04:15:01.889064+02:00 host {ident}[4242]: {msg}\n",
    "{msg}\n",
)
VARIANTS = (
    "{msg}",
    "error: {msg}",
    "fatal: {msg}",
    "{msg} [preauth]",
    "error: {msg} [preauth]",
    "{msg} [preauth] [preauth]",
    "{msg}\r",
    "{msg} \u00e9",
    "{msg}\t",
)


@pytest.mark.parametrize("message", MESSAGES)
def test_every_wording_and_its_variants(message: str) -> None:
    for framing, variant, ident in itertools.product(FRAMINGS, VARIANTS, ("sshd", "sshd-session", "CRON")):
        text = PRIMER + framing.format(ident=ident, msg=variant.format(msg=message))
        assert _fast(text) == _general(text), text


@pytest.mark.parametrize(
    "line",
    [
        "Nov 23 19:04:34 h sshd[1]: Failed password for invalid user a from 10.0.0.1 from 192.0.2.7 port 2",
        "Nov 23 19:04:34 host sshd[1]: Invalid user x from from port 22",
        "Nov 23 19:04:34 host sshd[1]: Accepted publickey for a from 192.0.2.1 port 2 ssh2: RSA from x",
        "Nov 23 19:04:34 host sshd[1]: Received disconnect from x: [preauth]",
        "Nov 23 19:04:34 host sshd[1]: Unable to negotiate with x port 5: [preauth]",
        "Nov 23 19:04:34 host sshd[1]: Disconnected from user a b \u00e9 port 5",
        "Nov 23 19:04:34 host sshd[1]: Failed password for root from ::ffff:192.0.2.7 port 2 ssh2",
        "Nov 23 19:04:34 host sshd[1]: Connection closed by [2001:db8::1] port 2 [preauth]",
        "Nov 23 19:04:34 host sshd[1]: pam_unix(sshd:session): session opened for user a",
        "Nov 23 19:04:34 host sshd[1]: pam_unix(sshd:auth): check pass; user unknown",
        "Nov 23 19:04:34 sshd:x CRON[1]: Failed password for root from 192.0.2.7 port 2 ssh2",
        "Nov 23 19:04:34 host sshd[1]: Failed password for root from 192.0.2.7 port 2 ssh2" + " " * 3000,
        "Nov 23 19:04:34 host sshd[1]: Invalid user " + "A" * 3000 + " from 192.0.2.2 port 1",
        "",
        "# a comment",
        "   ",
        # the edges of linescan's grammars (each must agree with the regex, or leave the line to it)
        "Nov 23 19:04:34 host sshd[1]: ",
        "Nov 23 19:04:34 host sshd[1]:",
        "Nov 23 19:04:34 host sshd[1]: error: ",
        "Nov 23 19:04:34 host sshd[1]: U",
        "Nov 23 19:04:34 host sshd[1]: [preauth]",
        "Nov 23 19:04:34 host sshd[1]: Received disconnect from : port 22:11: x",
        "Nov 23 19:04:34 host sshd[1]: Received disconnect from :: x [preauth]",
        "Nov 23 19:04:34 host sshd[1]: Received disconnect from x port 2x:11: y",
        "Nov 23 19:04:34 host sshd[1]: Disconnecting user 192.0.2.1 port 22: x",
        "Nov 23 19:04:34 host sshd[1]: Disconnecting user  192.0.2.1 port 22: x",
        "Nov 23 19:04:34 host sshd[1]: Disconnecting invalid user a b 192.0.2.1 port 22: x port 1: y",
        "Nov 23 19:04:34 host sshd[1]: Connection closed by user 192.0.2.1 port 22",
        "Nov 23 19:04:34 host sshd[1]: Connection closed by user  192.0.2.1 port 22",
        "Nov 23 19:04:34 host sshd[1]: Connection closed by invalid user port 22 [preauth]",
        "Nov 23 19:04:34 host sshd[1]: Connection reset by authenticating user a 192.0.2.1",
        "Nov 23 19:04:34 host sshd[1]: Disconnected from user port 22",
        "Nov 23 19:04:34 host sshd[1]: Disconnected from user a port 22 port 23",
        "Nov 23 19:04:34 host sshd[1]: Accepted password for from 192.0.2.1 port 22 ssh2",
        "Nov 23 19:04:34 host sshd[1]: Accepted password for a  from 192.0.2.1 port 22 ssh1",
        "Nov 23 19:04:34 host sshd[1]: Accepted password for a from 192.0.2.1 port 22 ssh2:",
        "Nov 23 19:04:34 host sshd[1]: Accepted password for a from x: port 22",
        "Nov 23 19:04:34 host sshd[1]: pam_unix(sshd:auth): authentication failure; rhost=x y",
        "Nov 23 19:04:34 host sshd[1]: pam_unix(sshd:auth): authentication failure; rhost= user=root",
        "Nov 23 19:04:34 host sshd[1]: pam_unix(sshd:auth): 3 more authentication failures; rhost=[]  ",
        "Nov 23 19:04:34 host sshd[1]: pam_x(sshd:auth): authentication failure; a rhost=b rhost=c user=d",
        "Nov 23 19:04:34 host sshd[1]: refused connect from a (b) (c)",
        "Nov 23 19:04:34 host sshd[1]: refused connect from (x)",
        "Nov 23 19:04:34 host sshd[1]: refused connect from x ()",
        "Nov 23 19:04:34 host sshd[1]: refused connect from a@b (c@[2001:db8::1])",
        "Nov 23 19:04:34 host sshd[1]: drop connection #1 from [a]b]:1 on [c]:2 past MaxStartups",
        "Nov 23 19:04:34 host sshd[1]: drop connection #1 from [::ffff:192.0.2.1]:1 on [c]:2 penalty: x",
        "Nov 23 19:04:34 host sshd[1]: drop connection #1 from [[x]]:1 on [c]:2 past Maxstartups",
        "Nov 23 19:04:34 host sshd[1]: User a from b from 192.0.2.1 not allowed because listed in DenyUsers",
        "Nov 23 19:04:34 host sshd[1]: User from 192.0.2.1 not allowed because not in any group",
        "Nov 23 19:04:34 host sshd[1]: in MaxStartups throttling for 10s, 5 connections, 3 conn",
        "Nov 23 19:04:34 host sshd[1]: exited MaxStartups throttling after 00:01:02, 5x conn dropped",
        "Nov 23 19:04:34 h sshd[1]: srclimit_penalise: ipv4: new 192.0.2.1 active penalty of 1.5 seconds for",
        "Nov 23 19:04:34 h sshd[1]: srclimit_penalise: ipv5: new 192.0.2.1 active penalty of 1 seconds for x",
        "Nov 23 19:04:34 host sshd[1]: Maxstartups logging rate-limited: additional 12 connections dropped",
        "Nov 23 19:04:34 host CRON[1]x: Failed password for root from 192.0.2.7 port 2 ssh2",
        "Nov 23 19:04:34 host a]b: Failed password for root from 192.0.2.7 port 2 ssh2",
        "Nov 23 19:04:34 host sshd[01]: Failed password for root from 192.0.2.7 port 2 ssh2",
        # addresses that are none, and client text that repeats the address's shape (issue 11)
        "Nov 23 19:04:34 host sshd[4242]: refused connect from x (::ffff:::ffff:192.0.2.1)",
        "Nov 23 19:04:34 host sshd[4242]: Invalid user a from 192.0.2.\ufffd(9 port 22",
        "Nov 23 19:04:34 host sshd[4242]: Failed password for a from 192.0.2.999 port 22 ssh2",
        "Nov 23 19:04:34 host sshd[4242]: Connection closed by fe80::1%eth0 port 22 [preauth]",
        "Nov 23 19:04:34 h sshd[4242]: Disconnecting authenticating user root 192.0.2.7 port 4444: Change of "
        "username or service not allowed: (root,ssh-connection) -> (x 203.0.113.66 port 22: y,z) [preauth]",
        "Nov 23 19:04:34 h sshd[4242]: Disconnecting invalid user x 203.0.113.66 port 2: "
        "y 192.0.2.7 port 1: z",
        "Nov 23 19:04:34 h sshd[4242]: Accepted publickey for root from 192.0.2.7 port 1 ssh2: "
        "ID from 192.0.2.8",
        "Nov 23 19:04:34 h sshd[4242]: Failed publickey for x from 192.0.2.8 port 2 ssh2: "
        "from 192.0.2.7 port 1 ssh2",
        # the marker again right after the `: ` that ends sshd's part (found by the client-text property)
        "Nov 23 19:04:34 host sshd[1]: Accepted password for  from ::ffff: from 192.0.2.7 port 22 ssh2",
        "Nov 23 19:04:34 host sshd[1]: Disconnecting invalid user a 192.0.2.1 port 22: port 5: x",
        # the client's ` from ADDR port N` in a user name or after `ssh2: ` (issue 14)
        "Nov 23 19:04:34 h sshd[1]: Failed password for user from 192.0.2.1 port 20000 ssh2: ruser from "
        "198.51.100.2",
        "Nov 23 19:04:34 h sshd[1]: Failed password for invalid user test from 192.0.2.1 port 1 ssh2: from "
        "198.51.100.2 port 2 ssh2",
        "Nov 23 19:04:34 h sshd[1]: Failed none for a from 198.51.100.2 port 2 ssh2 from 192.0.2.1 port 1",
        "Nov 23 19:04:34 h sshd[1]: Accepted password for a from 198.51.100.2 port 2: from 192.0.2.1 port 1",
        "Nov 23 19:04:34 h sshd[1]: Failed none for  from 192.0.2.1 port 1 ssh2: ",
        "Nov 23 19:04:34 h sshd[1]: Failed none for from 192.0.2.1 port 1 ssh2",
        "Nov 23 19:04:34 h sshd[1]: Failed password for a from 192.0.2.1 port 1 ssh2: x [preauth] [preauth]",
    ],
)
def test_edge_lines(line: str) -> None:
    for text in (PRIMER + line + "\n", PRIMER + line, line + "\n" + PRIMER):
        assert _fast(text) == _general(text), text


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.log")))
def test_fixture_logs(name: str) -> None:
    text = FIXTURES.joinpath(name).read_text()
    assert _fast(text) == _general(text)


def test_generator_output() -> None:
    text = "".join(generate(30_000, 5_000, seed=7, start=NOW - 86400))
    assert _fast(text) == _general(text)
    chunks = Stats(clock=_clock), Framer(clock=_clock)
    lines = text.splitlines(keepends=True)
    for i in range(0, len(lines), 997):  # fed in chunks, as replay and the follower do
        chunks[0].feed_text("".join(lines[i : i + 997]), "f", chunks[1])
    assert _state(chunks[0]) == _general(text)


def test_fast_alternatives_are_used() -> None:
    """The benchmark generator's sshd lines are recognised by the regex, not left to the general path."""
    text = "\n" + "".join(generate(5_000, 1_000, seed=3))
    kinds = {m.lastgroup for m in fastscan._CHUNK.finditer(text)}
    assert "slow" not in kinds and "other" not in kinds
    assert {"failed", "pam", "received", "disconnected", "invalid", "kex", "drop", "skip"} <= kinds


def test_linescan_recognises_the_generator_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """linescan takes every line of the benchmark's mix itself: none goes to fastscan's regex."""
    fallbacks: list[str] = []
    monkeypatch.setattr(fastscan, "scan_line", lambda line, *rest: fallbacks.append(line))
    framer = Framer(clock=_clock)
    text = "".join(generate(5_000, 1_000, seed=3))
    assert len(linescan.scan(text, framer, _clock)) > 3_000
    assert fallbacks == []


# Tokens of every wording, and the shapes around them that the fast grammars must tell apart.
_TOKENS = sorted(
    {token for message in MESSAGES for token in message.split(" ")}
    | {"", "user", "invalid", "authenticating", "from", "port", "22", "22:", "22:11:", "ssh2", "ssh2:", "x:"}
    | {":", "[", "]", "(", ")", "(x)", "a@192.0.2.9", "[2001:db8::1]", "::ffff:192.0.2.7", "[]", "#5", "1.5"}
    | {"rhost=", "rhost=192.0.2.3", "user=root", "[preauth]", "error:", "for", "by", "with", "seconds,"}
    # tokens where an address goes that are none (or barely one): only valid ones may be counted as one
    | {"192.0.2.\ufffd(9", "::ffff:::ffff:192.0.2.7", "(::ffff:::ffff:192.0.2.7)", "192.0.2.999", "01.2.3.4"}
    | {"fe80::1%eth0", "2001:db8::1%", "[::ffff:192.0.2.7]", "(x@::ffff:192.0.2.8)", "ID", "22:", "ssh2:"}
)
_IDENTS = ("sshd[4242]", "sshd-session[4242]", "sshd-auth[7]", "sshd", "CRON[1]", "sshd[x]", "su")
_message = st.lists(st.sampled_from(_TOKENS), max_size=16).map(" ".join)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A real wording with a token inserted, replaced or removed."""
    tokens = draw(st.sampled_from(MESSAGES)).split(" ")
    at = draw(st.integers(0, len(tokens)))
    token = draw(st.sampled_from(_TOKENS))
    edit = draw(st.sampled_from(("insert", "replace", "delete")))
    if edit == "insert":
        tokens.insert(at, token)
    elif at < len(tokens):
        tokens[at : at + 1] = [token] if edit == "replace" else []
    return " ".join(tokens)


# Client text where sshd writes a user name, a TCP-wrappers token or a reason (issue 13): pieces a client
# can choose, among them the marks the grammars and the rules split on (`@`, brackets, parentheses,
# spaces, colons) and shapes of sshd's own format.
_CLIENT_PIECES: tuple[str, ...] = ("a", "@", "[", "]", "(", ")", ":", "::", "x:", "()", " ", "from", "port")
_CLIENT_PIECES += (" from ", " port 22", " port 5:", " ssh2", " (a@b)", "@192.0.2.8", "(192.0.2.9)")
_CLIENT_PIECES += ("192.0.2.7", "::ffff:", "2001:db8::1", "@[2001:db8::2]")
# sshd's ` from ADDR port N[ sshV][: ]` shape, written by the client in a user name or sshd's EXTRA (issue 14)
_INJECTED: tuple[str, ...] = (
    " from 198.51.100.2 port 2 ssh2",
    " from 198.51.100.3 port 3",
    " from 198.51.100.4 port 4: x",
)
_INJECTED += (" from [2001:db8::5] port 5 ssh1: ", " from 198.51.100.6", " ssh2: ", " port 7 ssh2", "ssh2:")
_CLIENT_PIECES += _INJECTED
_client_text = st.lists(st.sampled_from(_CLIENT_PIECES), max_size=6).map("".join)
_CLIENT_ADDRESSES = ("192.0.2.7", "::ffff:192.0.2.8", "[2001:db8::9]", "2001:db8::a", "x", "a@192.0.2.7", "")
_CLIENT_SHAPES = (
    "Failed password for {user} from {addr} port 22 ssh2",
    "Failed publickey for invalid user {user} from {addr} port 22 ssh2: RSA SHA256:{text}",
    "Accepted password for {user} from {addr} port 22 ssh2",
    "Accepted publickey for {user} from {addr} port 22 ssh2: RSA SHA256:{text}",
    "Failed password for {user} from {addr} port 22 ssh2: {text}",
    "Failed password for invalid user {user} from {addr} port 22 ssh1: ruser {text}",
    'Failed hostbased for {user} from {addr} port 22 ssh2: RSA x, client user "{text}", client host "a"',
    "Failed password for {user} from {addr}",
    "Invalid user {user} from {addr} port 22",
    "User {user} from {addr} not allowed because listed in DenyUsers",
    "User {user} not allowed because account is locked",
    "maximum authentication attempts exceeded for invalid user {user} from {addr} port 22 ssh2",
    "PAM: Authentication failure for illegal user {user} from {addr}",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser={user} rhost={addr}  "
    "user={user}",
    "Disconnecting authenticating user {user} {addr} port 22: {text}",
    "Connection closed by invalid user {user} {addr} port 22",
    "Disconnected from user {user} {addr} port 22",
    "Connection reset by authenticating user {user} {addr}",
    "Received disconnect from {addr} port 22:11: {text}",
    "refused connect from {user}",
    "refused connect from {user}@{addr}",
    "refused connect from {user} ({text})",
    "refused connect from {user} ({text}@{addr})",
    "refused connect from {user}@{addr} ({text})",
)


@st.composite
def _client_text_line(draw: st.DrawFn) -> str:
    """A wording with client-chosen text in its user name, wrapper token or reason."""
    return draw(st.sampled_from(_CLIENT_SHAPES)).format(
        user=draw(_client_text), text=draw(_client_text), addr=draw(st.sampled_from(_CLIENT_ADDRESSES))
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("", "error: ", "fatal: ")),
            st.one_of(_message, _mutated(), st.sampled_from(MESSAGES), _client_text_line()),
            st.sampled_from(("", " [preauth]")),
            st.sampled_from(_IDENTS),
            st.sampled_from(("Nov 23 19:04:34 host ", "Nov  3 19:04:34 h:x ", "Nov 23 19:04:34 h[ ")),
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_shape_of_line(lines: list[tuple[str, str, str, str, str]], partial: bool) -> None:
    """Whatever the line, the fast path (either scanner) counts what the general path counts."""
    text = PRIMER + "".join(
        f"{frame}{ident}: {error}{message}{suffix}\n" for error, message, suffix, ident, frame in lines
    )
    if partial:
        text = text[:-1]
    assert _fast(text) == _general(text), text


@given(st.lists(st.tuples(_client_text_line(), st.sampled_from(("", " [preauth]"))), min_size=1, max_size=3))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_client_text_in_user_names_and_wrapper_tokens(lines: list[tuple[str, str]]) -> None:
    """User names and TCP-wrappers tokens holding `@`, brackets, parentheses, spaces and colons: every path
    reads the same address from them (or none), so the pid map and the counters agree."""
    text = PRIMER + "".join(
        f"Nov 23 19:04:34 host sshd[4242]: {message}{suffix}\n" for message, suffix in lines
    )
    assert _fast(text) == _general(text), text


@pytest.mark.parametrize(
    ("message", "client"),
    [
        ("refused connect from a@b@192.0.2.7", "192.0.2.7"),
        ("refused connect from host.example (a@b@192.0.2.8)", "192.0.2.8"),
        ("refused connect from a@b@::ffff:192.0.2.9", "192.0.2.9"),
        ("refused connect from a@b (c@d@[2001:db8::7])", "2001:db8::7"),
        ("refused connect from a (b)@c@192.0.2.10", "192.0.2.10"),
        ("refused connect from x@y (@@192.0.2.11)", "192.0.2.11"),
    ],
)
def test_wrapper_client_is_after_the_last_at(message: str, client: str) -> None:
    """A TCP-wrappers refusal names `user@host`, and the user (an ident reply) is the client's text: it may
    hold `@` too. Every path counts the refusal against the host after the LAST `@`."""
    line = f"Nov 23 19:04:34 host sshd[7]: {message}\n"
    event = classify(SyslogRecord(message, "sshd", 7, "host", NOW))
    assert isinstance(event, Event) and (event.event, event.address) == ("wrapper_refused", client)
    for scan in (fastscan.scan, linescan.scan):
        assert [op[:2] for op in scan(line, Framer(clock=_clock), _clock)] == [("wrapper_refused", client)]
    fed, batched, framer = Stats(clock=_clock), Stats(clock=_clock), Framer(clock=_clock)
    fed.feed_text(line, "f", framer)  # the scanner of this run (fixture `scanner`)
    batched.feed_batch(framer.parse_many([line]), "f")  # framing and classify
    for counted in (fed, batched):  # the connection's address, as the pid map keeps it
        assert counted.pid_map() == {7: client}
        assert counted.snapshot(now=NOW).events["wrapper_refused"] == 1


def test_lines_read_count_partial_last_line() -> None:
    stats = Stats(clock=_clock)
    stats.feed_text("a\nb\nc", "f", Framer(clock=_clock))
    stats.feed_text("", "f", Framer(clock=_clock))
    assert stats.snapshot(now=NOW).sources["f"].lines_read == 3


_SSHD_ADDRESSES = ("192.0.2.1", "::ffff:192.0.2.2", "2001:db8::3", "x")
_LOGIN_SHAPES = (
    "Failed password for {user} from {addr} port 22 ssh2",
    "Failed publickey for invalid user {user} from {addr} port 22 ssh2: {extra}",
    "Accepted password for {user} from {addr} port 22 ssh2: {extra}",
    "Failed password for {user} from {addr} port 22 ssh1: ruser {extra}",
    'Failed hostbased for {user} from {addr} port 22 ssh2: RSA x, client user "{extra}", client host "h"',
)


@given(
    st.sampled_from(_LOGIN_SHAPES),
    _client_text,
    _client_text,
    st.sampled_from(_SSHD_ADDRESSES),
    st.sampled_from(("", " [preauth]")),
)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_login_never_blames_an_address_the_client_wrote(
    shape: str, user: str, extra: str, addr: str, suffix: str
) -> None:
    """Whatever the user name and sshd's EXTRA hold, a login line is counted against sshd's own address or
    none: never one the client wrote (198.51.100.0/24 and [2001:db8::5] here), on every path."""
    message = shape.format(user=user, addr=addr, extra=extra) + suffix
    line = f"Nov 23 19:04:34 host sshd[4242]: {message}\n"
    written = {"198.51.100.2", "198.51.100.3", "198.51.100.4", "2001:db8::5", "198.51.100.6", "192.0.2.7"}
    written |= {"192.0.2.8", "192.0.2.9", "2001:db8::1", "2001:db8::2"} - {addr}
    event = classify(SyslogRecord(message, "sshd", 4242, "host", NOW))
    assert isinstance(event, Event) and event.address not in written, message
    for scan in (fastscan.scan, linescan.scan):
        assert [op[1] for op in scan(line, Framer(clock=_clock), _clock)] == [event.address], message
