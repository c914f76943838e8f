"""Every parser of outside text under hypothesis: nothing escapes but the error its caller catches.

The parsers and what each caller catches are tests/fuzz/targets.py's TARGETS (the same table `make fuzz`
runs under atheris). Inputs are arbitrary bytes, and the target's fixtures cut and spliced with bytes
that mean something to one format or another (separators, quotes, continuations, brackets), so the
examples reach past the first check. The auth-log target `authlog_fastpaths` also asserts that both
chunk scanners agree with framing + classify on whatever text it gets (tests/unit/test_authlog_fastscan.py
generates sshd-shaped lines for that; here the text is anything, control characters and all).

derandomize: the same examples on every run, so CI is reproducible; the budget per target keeps this file
near 30 s on a loaded 2-core machine.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS, seed_inputs

pytestmark = pytest.mark.unit

SEED_BYTES = 4096  # fixtures are cut to this: the examples stay fast, the framing stays real
MEANINGFUL = st.sampled_from([
    b"\n", b"\r", b"\0", b"\\\n", b" ", b"\t", b":", b",", b"=", b"#", b'"', b"'", b"[", b"]", b"{", b"}",
    b"/", b"@", b".", b"*", b"?", b"-", b"0", b"4294967296", b"-1", b"\xff", b"\xc3", b"&a", b"*a",
    b"EXCEPT", b"ALL", b"Include ", b"Match ", b"[preauth]", b"port ", b"192.0.2.7", b"2001:db8::",
    b"null", b"true", b"1e999", b"\x80", b"(", b".", b"q", b"\x94",
])  # fmt: skip


@st.composite
def spliced(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A fixture with a span replaced by a few meaningful or arbitrary bytes."""
    seed = draw(st.sampled_from(seeds))[:SEED_BYTES]
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, min(len(seed), start + 64)))
    pieces = draw(st.lists(MEANINGFUL | st.binary(max_size=8), max_size=6))
    return seed[:start] + b"".join(pieces) + seed[end:]


def inputs(name: str) -> st.SearchStrategy[bytes]:
    seeds = seed_inputs(name)
    arbitrary = st.binary(max_size=600) | st.lists(MEANINGFUL, max_size=40).map(b"".join)
    return (spliced(seeds) | arbitrary) if seeds else arbitrary


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_no_exception_escapes_but_the_documented_one(name: str) -> None:
    target = TARGETS[name]

    @given(inputs(name))
    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def property_holds(data: bytes) -> None:
        target(data)

    property_holds()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_parses(name: str) -> None:
    """The corpus atheris starts from is itself clean (a broken seed would hide the first finding)."""
    for data in seed_inputs(name):
        TARGETS[name](data)
