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

from benchmarks.authlog_gen import generate
from exporter.sources.authlog import fastscan
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.stats import Stats

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"
NOW = 1795500000.0


def _clock() -> float:
    return NOW


def _state(stats: Stats) -> object:
    return stats.snapshot(now=NOW), list(stats._pids.items()), stats.latest_time


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


def test_lines_read_count_partial_last_line() -> None:
    stats = Stats(clock=_clock)
    stats.feed_text("a\nb\nc", "f", Framer(clock=_clock))
    stats.feed_text("", "f", Framer(clock=_clock))
    assert stats.snapshot(now=NOW).sources["f"].lines_read == 3
