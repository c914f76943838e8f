"""replies: the bounds every decoded reply of another program goes through."""

from __future__ import annotations

import json
import time

import pytest

from exporter.sources.host.replies import MAX_DEPTH, ReplyError, check_int, clean_text, json_depth, loads_json


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("null", 0),
        ('{"a": "[[[[", "b": ["\\"]", 1]}', 2),  # brackets and escaped quotes inside strings do not count
        ('["\\\\", "[["]', 1),  # an escaped backslash ends before the quote
        ("[[], {}, [[{}]]]", 4),
        ('"[', 1),  # an unterminated string is counted as structure: refused sooner, never later
    ],
)
def test_json_depth_counts_structure_only(text: str, depth: int) -> None:
    assert json_depth(text) == depth


def test_json_depth_is_linear_on_text_built_to_backtrack() -> None:
    started = time.monotonic()
    for text in ('"' + '\\"' * 4_000_000, '"a' * 4_000_000, "[" * 8_000_000):
        json_depth(text)
    assert time.monotonic() - started < 4.0


def test_loads_json_takes_what_nft_and_crowdsec_answer() -> None:
    document = {"nftables": [{"counter": {"packets": (1 << 64) - 1, "bytes": -1}}], "f": 1.5, "n": None}
    assert loads_json(json.dumps(document), "nft") == document
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_json(nested, "x") is not None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"cscli: nested {MAX_DEPTH + 1} levels deep"),
        ("[" * 1_000_000, "cscli: nested 1000000 levels deep"),
        ("[1e999]", "cscli: number out of range"),
        ("[-Infinity]", "cscli: -Infinity is not a JSON number"),
        ("[NaN]", "cscli: NaN is not a JSON number"),
        (f"[{1 << 64}]", "cscli: number: integer out of range"),
        ("[" + "9" * 5000 + "]", "cscli: integer of 5000 digits"),
        ("[1,", "cscli: not JSON"),
    ],
)
def test_loads_json_refuses_what_would_overflow_a_walker_or_a_float(text: str, error: str) -> None:
    with pytest.raises(ReplyError, match=error):
        loads_json(text, "cscli")


def test_strings_come_out_as_valid_text() -> None:
    document = loads_json('{"a\\ud800": ["\\udfff", "\\ud83d\\ude00", "ok"]}', "x")
    assert document == {"a\ufffd": ["\ufffd", "\U0001f600", "ok"]}
    assert clean_text("jail\ud800x\udcff") == "jail\ufffdx\ufffd"
    assert clean_text("ascii") == "ascii"


def test_check_int_keeps_to_64_bits() -> None:
    assert check_int(-(1 << 63), "x") == -(1 << 63)
    with pytest.raises(ReplyError, match="bantime: integer out of range"):
        check_int(10**400, "bantime")
