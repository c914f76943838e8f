"""Replies of other programs (nft and cscli JSON, CrowdSec's local API, fail2ban's socket), decoded so
that nothing walks them before they are known to be bounded.

Another program's reply is input the exporter does not control: a tool that is broken, replaced or
hostile can answer with nesting deep enough to overflow a recursive decoder or walker, numbers too large
for a float, or strings that are not valid text (a lone surrogate cannot be encoded as UTF-8, so it
would break the whole exposition). The rules live here, once:

- nesting is measured before decoding, in linear time, and refused past `MAX_DEPTH`;
- numbers are finite and fit in 64 bits (`check_int`), so every later `int()`/`float()` succeeds;
- strings handed on are valid text (`clean_text`: a lone surrogate becomes U+FFFD);
- the exchange that brings a reply has one `Deadline` for all of it, not a timeout per read (a peer
  sending a byte a second would renew that for ever).

Anything else is a `ReplyError`, a ValueError, with a message saying what was wrong.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time

MAX_DEPTH = 32  # nft's ruleset nests about 10 levels, CrowdSec's alerts fewer
INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1  # nft's packet and byte counters are unsigned 64-bit
_MAX_INT_DIGITS = 21  # enough for INT_MIN and INT_MAX; longer is refused before int() parses it

_ESCAPE = re.compile(r"\\.", re.DOTALL)
# Once escapes are gone a JSON string is a quote, non-quotes, a quote: strings and everything else that
# is not a bracket go in one pass. Possessive, so nothing backtracks (a last, unpaired quote is scanned
# past once, and stays).
_NOT_STRUCTURE = re.compile(r'(?:"[^"]*+"|[^\[\]{}"]++)++')
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class ReplyError(ValueError):
    """A reply that is too deep, holds a number out of range, or is not what the program answers."""


class Deadline:
    """The end of one whole exchange with another program: connecting, sending, every read, decoding."""

    def __init__(self, seconds: float, message: str) -> None:
        self.end = time.monotonic() + seconds
        self.message = message

    def remaining(self) -> float:
        """Seconds left, for the next blocking call's timeout; TimeoutError(message) when none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.message)
        return left


def clean_text(text: str) -> str:
    """The text with each lone surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def check_int(value: int, what: str) -> int:
    """value, when it fits in 64 bits; ReplyError otherwise (it would overflow a float or a counter)."""
    if not INT_MIN <= value <= INT_MAX:
        raise ReplyError(f"{what}: integer out of range ({value.bit_length()} bits)")
    return value


def json_depth(text: str) -> int:
    """How deeply a JSON text nests, in linear time and without decoding it.

    Escapes are dropped first, then strings, so only the structure's brackets are left to count. For
    a valid document this is its depth; a malformed one may count deeper than a decoder would get
    before failing, which only refuses it earlier.
    """
    structure = _NOT_STRUCTURE.sub("", _ESCAPE.sub("", text))
    return max(itertools.accumulate(map(_NESTING.get, structure, itertools.repeat(0))), default=0)


def _json_int(digits: str) -> int:
    if len(digits) > _MAX_INT_DIGITS:
        raise ReplyError(f"integer of {len(digits)} digits")
    return check_int(int(digits), "number")


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ReplyError(f"number out of range: {text[:40]}")
    return value


def _json_constant(name: str) -> object:
    raise ReplyError(f"{name} is not a JSON number")


def _cleaned(value: object) -> object:
    """The decoded document with every string (keys too) made valid text; depth is already bounded."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): _cleaned(item) for key, item in value.items()}
    return value


def loads_json(text: str, what: str, max_depth: int = MAX_DEPTH) -> object:
    """Decode another program's JSON once it is known to nest at most max_depth levels.

    The caller has already capped the text's size. Numbers are finite and fit in 64 bits; strings are
    valid text. ReplyError (a ValueError) names `what` for anything else.
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise ReplyError(f"{what}: nested {depth} levels deep, more than {max_depth}")
    try:
        document = json.loads(
            text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
        )
    except ReplyError as exc:
        raise ReplyError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise ReplyError(f"{what}: not JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) or (not text.isascii() and _SURROGATE.search(text)):
        return _cleaned(document)
    return document
