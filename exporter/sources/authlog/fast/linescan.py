"""The auth-log hot path with string searches instead of a regex, compiled to C by mypyc where it can be.

Why: fastscan's chunk regex costs about 1.3 us a line in CPython's regex engine before any Python runs,
which caps replay near 15x fail2ban-regex. The common wordings have fixed shapes that `str.find` and
slices check for a fraction of that once mypyc compiles this module (setup.py does it when a C compiler
is there; COMPILED says whether it did). Uncompiled it is slower than fastscan, and Stats uses fastscan.

The rule that keeps it exact: a line is recognised here only where fastscan's regex would match it with
the same alternative and the same groups; each check below is that alternative's grammar, walked with
`find` over the line's span of the block (`\\S` is "no space" on printable ASCII). Any other line (a rarer
wording, another program's, an odd shape) goes to fastscan.scan_line, so the ops are always fastscan's;
tests/unit/test_authlog_fastscan.py checks both scanners against the general path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from exporter.sources.authlog.fast import fastscan
from exporter.sources.authlog.ops import NOTE, Op
from exporter.sources.authlog.records import MAX_MESSAGE_CHARS
from exporter.sources.authlog.rules import (
    address,
    auth_method,
    disconnect_is_event,
    drop_event,
    pam_rhost,
    penalty_in_force,
    penalty_reason,
    rate_limited_kind,
    sshd_from,
    wrapper_client,
)

if TYPE_CHECKING:
    from exporter.sources.authlog.framing import Framer

# mypyc builds an extension module. The type is spelled out: mypyc's type check of the compiled modules
# could not infer it when rules.py comes first in COMPILED_MODULES (`Cannot determine type`).
COMPILED: Final[bool] = __file__.endswith((".so", ".pyd"))

_PRINTABLE_BYTES: Final = bytes(range(0x20, 0x7F))
_USER_UNKNOWN: Final = "pam_unix(sshd:auth): check pass; user unknown"
_SHORTEST: Final = 26  # `Mmm dd HH:MM:SS h sshd[1]: ` and one character
_PREAUTH: Final = " [preauth]"
_BANNER_HEADS: Final = (
    "Connection from ",
    "Connection closed by ",
    "Connection reset by ",
    "Connection to ",
    "Disconnected from ",
)
_SSHD_IDENTS: Final = frozenset({"sshd", "sshd-session", "sshd-auth"})
_KINDS: Final = ("authenticating user", "invalid user", "user")  # the regex's order

# What _message returns: (event or NOTE, address, method), or None when the line is not recognised.
Found = tuple[str, str | None, str | None] | None


def scan(text: str, framer: Framer, clock: Callable[[], float]) -> list[Op]:
    """fastscan.scan(text, framer, clock), the common lines recognised without the regex."""
    ops: list[Op] = []
    clean = _printable(text)
    size = len(text)
    start = 0
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            end = size
        if end > start and not _line(text, start, end, clean, framer, ops):
            fastscan.scan_line(text[start : end + 1], ops, framer, clock)
        start = end + 1
    return ops


def _number(text: str, start: int, end: int) -> int:
    """int(text[start:end]) if that is `\\d+` (ASCII digits), else -1: no slice, no parse."""
    if end <= start:
        return -1
    value = 0
    for index in range(start, end):
        digit = ord(text[index]) - 48
        if not 0 <= digit <= 9:
            return -1
        value = value * 10 + digit
    return value


def _printable(text: str) -> bool:
    """Whether every character of `text` but its newlines is printable ASCII (fastscan's classes).

    One pass in C over the block (bytes.translate) instead of str.isprintable on each line, which
    looks every character up in the Unicode database.
    """
    return text.isascii() and not text.encode("ascii").translate(None, _PRINTABLE_BYTES).strip(b"\n")


def _at(text: str, pos: int, end: int, literal: str) -> bool:
    """text.startswith(literal, pos) within text[:end].

    Short literals are compared character by character (compiled, `ord(s[i])` is a load, where a
    call costs a search setup); long ones with one find, whose setup is then the smaller cost.
    """
    size = len(literal)
    if pos < 0 or pos + size > end:
        return False
    if size > 8:
        return text.find(literal, pos, pos + size) == pos
    for index in range(size):  # noqa: SIM110 (a plain loop compiles to a plain C loop)
        if ord(text[pos + index]) != ord(literal[index]):
            return False
    return True


def _line(text: str, start: int, end: int, clean: bool, framer: Framer, ops: list[Op]) -> bool:
    """Recognise the line text[start:end]: True when done (its op, if any, appended), else False.

    Only printable ASCII (`clean`: the whole block is), like fastscan's classes. The frame is
    fastscan's `_FRAME`: a traditional stamp (`Mmm dd HH:MM:SS`), one space, a host without `[` not
    ending in `:`, one space, `sshd[PID]: ` (or sshd-session, sshd-auth), an optional `error: ` /
    `fatal: `. The stamp's minute comes from the framer's cache, which only holds minutes it parsed.
    """
    if end - start < _SHORTEST or end - start >= MAX_MESSAGE_CHARS:  # fastscan: a longer match is general
        return False
    if not clean:
        line = text[start:end]
        if not line.isascii() or not line.isprintable():
            return False
    if text[start + 3] != " " or text[start + 6] != " " or text[start + 12] != ":" or text[start + 15] != " ":
        return False
    tens, ones = ord(text[start + 13]) - 48, ord(text[start + 14]) - 48
    if not (0 <= tens <= 9 and 0 <= ones <= 9):
        return False
    minute = text[start : start + 12]
    base = framer.minutes.get(minute)
    if base is None and fastscan.STAMP.fullmatch(text, start, start + 15) is None:
        return False
    host = start + 16
    ident = text.find(" ", host, end) + 1
    if ident <= host + 1 or text[ident - 2] == ":" or text.find("[", host, ident) >= 0:
        return False
    if _at(text, ident, end, "sshd["):
        pid_start = ident + 5
    elif _at(text, ident, end, "sshd-session["):
        pid_start = ident + 13
    elif _at(text, ident, end, "sshd-auth["):
        pid_start = ident + 10
    else:
        return _foreign(text, ident, end)
    if base is None:
        base = framer.minute_time(minute)
    pid_end = text.find("]", pid_start, end)  # the pid is digits: its `]` is the first
    if pid_end <= pid_start or not _at(text, pid_end, end, "]: "):
        return False
    pid = _number(text, pid_start, pid_end)
    if pid < 0:
        return False
    body = pid_end + 3
    if body >= end:
        return False
    # Each literal is looked for only where its first character is (a find per line is the cost here).
    first = text[body]
    if (first == "e" and _at(text, body, end, "error: ")) or (
        first == "f" and _at(text, body, end, "fatal: ")
    ):
        body += 7
        if body >= end:
            return False
        first = text[body]
    if first == "p" and (
        _at(text, body, end, "pam_unix(sshd:session): ")
        or (end - body == len(_USER_UNKNOWN) and _at(text, body, end, _USER_UNKNOWN))
    ):
        return True  # fastscan's `skip`: known chatter
    preauth = text[end - 1] == "]" and end - 10 >= body and _at(text, end - 10, end, _PREAUTH)
    message_end = end - 10 if preauth else end
    when = base + (tens * 10 + ones)
    found = _message(text, body, message_end, preauth)
    if found is None:
        op = _listener(text, body, message_end, pid, when)
        if op is None:
            return False
        ops.append(op)
        return True
    name, addr, method = found
    if addr is not None:
        addr = address(addr)
    ops.append((name, addr, method, pid, when, None, None))
    return True


def _foreign(text: str, at: int, end: int) -> bool:
    """Whether the ident at `at` is another program's (`CRON[12]:`, `su:`): fastscan's `_FOREIGN`,
    `IDENT(?:[PID])?:` with an ident other than sshd's. Such lines are passed over (True)."""
    space = text.find(" ", at, end)
    token = text[at : end if space < 0 else space]  # the ident has no whitespace, nor its `[PID]:`
    colon = token.find(":")
    bracket = token.find("[")
    if bracket >= 0 and (colon < 0 or bracket < colon):
        close = token.find("]", bracket)
        if (
            close <= bracket + 1
            or not token[bracket + 1 : close].isdigit()
            or token[close + 1 : close + 2] != ":"
        ):
            return False
        name = token[:bracket]
    elif colon >= 0:
        name = token[:colon]
    else:
        return False
    return bool(name) and "]" not in name and name not in _SSHD_IDENTS


def _message(text: str, at: int, end: int, preauth: bool) -> Found:
    """The message text[at:end] (before ` [preauth]`) in one of the common shapes, else None."""
    if at >= end:
        return None
    first = text[at]
    if first == "F":
        return _failed(text, at, end)
    if first == "p":
        return _pam(text, at, end)
    if first == "I":
        return _invalid(text, at, end)
    if first == "R":
        return _received(text, at, end, preauth)
    if first == "D":
        if _at(text, at, end, "Disconnected from "):
            return _connection(text, at + 18, end, preauth)
        return _disconnecting(text, at, end, preauth)
    if first == "C":
        if _at(text, at, end, "Connection closed by "):
            return _connection(text, at + 21, end, preauth)
        return (
            _connection(text, at + 20, end, preauth) if _at(text, at, end, "Connection reset by ") else None
        )
    if first == "m":
        return _maxauth(text, at, end)
    return _rarer(text, at, end)


def _rarer(text: str, at: int, end: int) -> Found:
    """The wordings after the first eight in the benchmark's mix."""
    first = text[at]
    if first == "U":
        return _negotiate(text, at, end) if _at(text, at, end, "Un") else _not_allowed(text, at, end)
    if first == "r":
        return _refused(text, at, end)
    if first == "b":
        return _banner(text, at, end)
    if first == "k":
        return ("banner_error", None, None) if _at(text, at, end, "kex_exchange_identification: ") else None
    if first == "A":
        return _accepted(text, at, end)
    if first == "T":
        return _timeout(text, at, end)
    return None


def _addr_port(text: str, at: int, end: int, tail: str) -> str | None:
    """text[at:end] is `(\\S+) port \\d+` and then `tail`: the address."""
    space = text.find(" ", at, end)
    digits = end - len(tail)
    if space <= at or not _at(text, space, end, " port ") or digits <= space + 6:
        return None
    if (tail and not _at(text, digits, end, tail)) or _number(text, space + 6, digits) < 0:
        return None
    return text[at:space]


def _addr_tail(text: str, at: int, end: int) -> str | None:
    """text[at:end] is `(\\S+)(?: port \\d+)?`: the address."""
    if text.find(" ", at, end) < 0:
        return text[at:end] if end > at else None
    return _addr_port(text, at, end, "")


def _user_from(text: str, at: int, end: int) -> int:
    """Where the address starts after `(?:invalid user )?\\S* from ` at `at` (-1: no match).

    With the option, the user is the token after it; if ` from ` does not follow, the regex's other
    way (the user `invalid`) cannot match either, since `user` follows it, not ` from `.
    """
    if _at(text, at, end, "invalid user "):
        space = text.find(" ", at + 13, end)
        return space + 6 if space >= 0 and _at(text, space, end, " from ") else -1
    space = text.find(" ", at, end)
    return space + 6 if space >= 0 and _at(text, space, end, " from ") else -1


def _login(text: str, at: int, end: int, verdict: str) -> Found:
    """`VERDICT METHOD for USER from ADDR port N ssh2[: EXTRA]` (VERDICT `Failed` or `Accepted`), taken when
    rules.sshd_from finds sshd's own address (then classify's regex matches too, and takes the same)."""
    method = at + len(verdict) + 1
    space = text.find(" ", method, end)
    if space <= method or not _at(text, space, end, " for "):
        return None
    start, stop = sshd_from(text, space + 5, end)
    if start < 0:
        return None  # none or two: classify gives no address, or no event
    name = "auth_failed" if verdict == "Failed" else "auth_accepted"
    return (name, text[start:stop], auth_method(text[method:space]))


def _failed(text: str, at: int, end: int) -> Found:
    """`Failed METHOD for (?:invalid user )?USER from ADDR port N ssh2[: EXTRA]`."""
    return _login(text, at, end, "Failed") if _at(text, at, end, "Failed ") else None


def _invalid(text: str, at: int, end: int) -> Found:
    """`Invalid user USER from ADDR port N`."""
    space = text.find(" ", at + 13, end)
    if not _at(text, at, end, "Invalid user ") or space < 0 or not _at(text, space, end, " from "):
        return None
    addr = _addr_port(text, space + 6, end, "")
    return None if addr is None else ("invalid_user", addr, None)


def _maxauth(text: str, at: int, end: int) -> Found:
    """`maximum authentication attempts exceeded for (?:invalid user )?USER from ADDR port N ssh2`."""
    head = "maximum authentication attempts exceeded for "
    addr_at = _user_from(text, at + len(head), end) if _at(text, at, end, head) else -1
    addr = None if addr_at < 0 else _addr_port(text, addr_at, end, " ssh2")
    return None if addr is None else ("max_auth_tries_exceeded", addr, None)


def _disconnect(addr: str | None, preauth: bool, kind: str | None) -> Found:
    """A disconnect wording: an event before authentication, else a note naming the address."""
    if addr is None:
        return None
    return ("preauth_disconnect" if disconnect_is_event(preauth, kind) else NOTE, addr, None)


def _kind(text: str, at: int, end: int) -> str | None:
    """fastscan's user kind (`authenticating user` ...) at `at`, followed by a space; None if none."""
    for kind in _KINDS:
        if _at(text, at, end, kind) and _at(text, at + len(kind), end, " "):
            return kind
    return None


def _connection(text: str, at: int, end: int, preauth: bool) -> Found:
    """`(?:(KIND) .*? )?(\\S+)(?: port \\d+)?` over text[at:end] (fastscan's `_CONN_ID`).

    With a kind, the lazy `.*?` ends at the earliest space from which the rest is ` ADDR port N` or
    ` ADDR`: the third-last space or the last one, and not before the kind's own space. Without a kind
    (or if that fails), the whole span is `ADDR( port N)?`.
    """
    kind = _kind(text, at, end)
    if kind is not None:
        lazy = at + len(kind) + 1  # the lazy part starts here; the space before the address comes after
        last = text.rfind(" ", lazy, end)
        port = text.rfind(" ", lazy, last) if last > lazy else -1
        before = text.rfind(" ", lazy, port) if port > lazy else -1
        port_form = before >= lazy and port > before + 1 and _at(text, port, end, " port ")
        if port_form and last + 1 < end and text[last + 1 : end].isdigit():
            return _disconnect(text[before + 1 : port], preauth, kind)
        if last >= lazy and last + 1 < end:
            return _disconnect(text[last + 1 : end], preauth, kind)
    return _disconnect(_addr_tail(text, at, end), preauth, None)


def _disconnecting(text: str, at: int, end: int, preauth: bool) -> Found:
    """`Disconnecting (?:(KIND) .* )?(\\S+) port \\d+: .*`, taken only when ` port ` occurs once in
    the message (then the greedy `.*` has one way to match)."""
    port = text.find(" port ", at, end)
    if not _at(text, at, end, "Disconnecting ") or port < 0 or text.find(" port ", port + 1, end) >= 0:
        return None
    colon = text.find(": ", port + 6, end)
    if colon <= port + 6 or not text[port + 6 : colon].isdigit():
        return None
    space = text.rfind(" ", at, port)  # the one before the address
    if space <= at + 12 or space + 1 >= port:
        return None
    if space == at + 13:
        return _disconnect(text[space + 1 : port], preauth, None)
    kind = _kind(text, at + 14, end)
    if kind is None or space < at + 15 + len(kind):  # KIND, a space, `.*`, a space
        return None
    return _disconnect(text[space + 1 : port], preauth, kind)


def _received(text: str, at: int, end: int, preauth: bool) -> Found:
    """`Received disconnect from (\\S+?)(?: port \\d+:|: ).*`: the lazy address stops at the first
    place either follows, which can only be at its token's end (both hold a space)."""
    addr_at = at + 25
    space = text.find(" ", addr_at, end)
    if not _at(text, at, end, "Received disconnect from ") or space <= addr_at:
        return None
    if space - addr_at > 1 and text[space - 1] == ":":
        return _disconnect(text[addr_at : space - 1], preauth, None)
    colon = text.find(":", space + 6, end)
    if not _at(text, space, end, " port ") or colon <= space + 6 or not text[space + 6 : colon].isdigit():
        return None
    return _disconnect(text[addr_at:space], preauth, None)


def _pam(text: str, at: int, end: int) -> Found:
    """`pam_MODULE(sshd:auth): (?:authentication failure|N more authentication failures);.*? rhost=(\\S*)
    (?: +user=.*?)? *`, taken only when the first ` rhost=` fits (the lazy `.*?` stops there)."""
    paren = text.find("(sshd:auth): ", at, end)
    if (
        paren <= at + 4
        or not _at(text, at, end, "pam_")
        or not text[at + 4 : paren].replace("_", "a").isalnum()
    ):
        return None
    after = paren + 13
    if _at(text, after, end, "authentication failure;"):
        rest = after + 23
    else:
        more = text.find(" more authentication failures;", after, end)
        if more <= after or not text[after:more].isdigit():
            return None
        rest = more + 30
    rhost = text.find(" rhost=", rest, end)
    if rhost < 0:
        return None
    space = text.find(" ", rhost + 7, end)
    if space < 0:
        return ("pam_auth_failure", pam_rhost(text[rhost + 7 : end]), None)
    tail = space
    while tail < end and text[tail] == " ":
        tail += 1
    if tail < end and not _at(text, tail, end, "user="):
        return None
    return ("pam_auth_failure", pam_rhost(text[rhost + 7 : space]), None)


def _negotiate(text: str, at: int, end: int) -> Found:
    """`Unable to negotiate with ADDR port N: .*`."""
    addr_at = at + 25
    colon = text.find(": ", addr_at, end)
    if not _at(text, at, end, "Unable to negotiate with ") or colon < 0:
        return None
    addr = _addr_port(text, addr_at, colon, "")
    return None if addr is None else ("negotiation_failed", addr, None)


def _banner(text: str, at: int, end: int) -> Found:
    """`banner exchange: (?:Connection (?:from|closed by|reset by|to)|Disconnected from) ADDR port N.*`."""
    if not _at(text, at, end, "banner exchange: "):
        return None
    for head in _BANNER_HEADS:
        if _at(text, at + 17, end, head):
            addr_at = at + 17 + len(head)
            space = text.find(" ", addr_at, end)
            digit = space + 6
            if (
                space <= addr_at
                or not _at(text, space, end, " port ")
                or digit >= end
                or not text[digit].isdigit()
            ):
                return None
            return ("banner_error", text[addr_at:space], None)
    return None


def _accepted(text: str, at: int, end: int) -> Found:
    """`Accepted METHOD for (?:invalid user )?USER from ADDR port N ssh2[: EXTRA]`."""
    return _login(text, at, end, "Accepted") if _at(text, at, end, "Accepted ") else None


def _timeout(text: str, at: int, end: int) -> Found:
    """`Timeout before authentication for (\\S+?)(?: port \\d+)?`."""
    head = "Timeout before authentication for "
    addr = _addr_tail(text, at + len(head), end) if _at(text, at, end, head) else None
    return None if addr is None else ("login_grace_timeout", addr, None)


_NOT_ALLOWED_REASONS: Final = frozenset(
    {
        "not listed in AllowUsers",
        "listed in DenyUsers",
        "not in any group",
        "a group is listed in DenyGroups",
        "none of user's groups are listed in AllowGroups",
    }
)


def _not_allowed(text: str, at: int, end: int) -> Found:
    """`User .* from (\\S+) not allowed because REASON`: the greedy `.*` leaves ` from ` right before
    the address, the token before ` not allowed because `."""
    because = text.find(" not allowed because ", at, end)
    if not _at(text, at, end, "User ") or because < 0 or text[because + 21 : end] not in _NOT_ALLOWED_REASONS:
        return None
    space = text.rfind(" ", at, because)
    if space + 1 >= because or space - 5 < at + 5 or not _at(text, space - 5, end, " from "):
        return None
    return ("user_not_allowed", text[space + 1 : because], None)


def _refused(text: str, at: int, end: int) -> Found:
    """`refused connect from (.*?)(?: \\((PAREN)\\))?`: the lazy address stops before a last ` (...)`
    with no parenthesis inside; the name or address after any `@` is the client (as fastscan)."""
    if not _at(text, at, end, "refused connect from "):
        return None
    rest = text[at + 21 : end]
    opening = rest.rfind("(")
    if rest.endswith(")") and opening >= 1 and rest[opening - 1] == " " and ")" not in rest[opening + 1 : -1]:
        return ("wrapper_refused", wrapper_client(rest[: opening - 1], rest[opening + 1 : -1]), None)
    return ("wrapper_refused", wrapper_client(rest, None), None)  # _line cleans it up, once


def _listener(text: str, at: int, end: int, pid: int, when: float) -> Op | None:
    """The listener's MaxStartups and penalty lines, as fastscan's ops (these carry a reason or count)."""
    if at >= end:
        return None
    first = text[at]
    if first == "d":
        return _drop(text, at, end, pid, when)
    if first == "b":
        if end - at == 32 and _at(text, at, end, "beginning MaxStartups throttling"):
            return ("maxstartups_throttling_begin", None, None, pid, when, None, None)
        return None
    if first in {"i", "e"}:
        head = "in MaxStartups throttling for " if first == "i" else "exited MaxStartups throttling after "
        count = _dropped_count(text, at + len(head), end) if _at(text, at, end, head) else -1
        if count < 0:
            return None
        if first == "i":
            return ("episode", None, None, None, when, None, count)
        return ("maxstartups_throttling_end", None, None, pid, when, None, count)
    if first in {"M", "P"}:
        return _rate_limited(text, at, end, when)
    if first == "s":
        return _penalise(text, at, end, pid, when)
    return None


def _dropped_count(text: str, at: int, end: int) -> int:
    """N of `.*, (\\d+) conn.*` from `at`, taken only at the last `, ` (-1: not there)."""
    comma = text.rfind(", ", at, end)
    conn = text.find(" conn", comma + 2, end) if comma >= 0 else -1
    if conn <= comma + 2 or not text[comma + 2 : conn].isdigit():
        return -1
    return int(text[comma + 2 : conn])


def _rate_limited(text: str, at: int, end: int, when: float) -> Op | None:
    """`(Maxstartups|PerSourcePenalties) logging rate-limited: additional N connections dropped.*`."""
    if _at(text, at, end, "Maxstartups"):
        who, after = "Maxstartups", at + 11
    elif _at(text, at, end, "PerSourcePenalties"):
        who, after = "PerSourcePenalties", at + 18
    else:
        return None
    if not _at(text, after, end, " logging rate-limited: additional "):
        return None
    digits = after + 34
    space = text.find(" connections dropped", digits, end)
    if space <= digits or not text[digits:space].isdigit():
        return None
    return (rate_limited_kind(who), None, None, None, when, None, int(text[digits:space]))


def _penalise(text: str, at: int, end: int, pid: int, when: float) -> Op | None:
    """`srclimit_penalise: ipv[46]: new ADDR (active|deferred) penalty of [0-9.]+ seconds for WHY`."""
    if not (
        _at(text, at, end, "srclimit_penalise: ipv4: new ")
        or _at(text, at, end, "srclimit_penalise: ipv6: new ")
    ):
        return None
    addr_at = at + 29
    space = text.find(" ", addr_at, end)
    if space <= addr_at:
        return None
    if _at(text, space, end, " active penalty of "):
        seconds, state = space + 19, "active"
    elif _at(text, space, end, " deferred penalty of "):
        seconds, state = space + 21, "deferred"
    else:
        return None
    unit = text.find(" seconds for ", seconds, end)
    if unit <= seconds or text[seconds:unit].strip("0123456789."):
        return None
    why = penalty_reason(text[unit + 13 : end])
    return ("penalty_applied", text[addr_at:space], None, pid, when, why, penalty_in_force(state))


def _drop(text: str, at: int, end: int, pid: int, when: float) -> Op | None:
    """`drop connection #N from [ADDR]:P on [ADDR]:P WHY`: MaxStartups's, or a penalty's."""
    head = text.find(" from [", at + 17, end)
    if not _at(text, at, end, "drop connection #") or head <= at + 17 or not text[at + 17 : head].isdigit():
        return None
    addr_at = head + 7
    close = text.find("]:", addr_at, end)
    on = text.find(" on [", close, end) if close >= 0 else -1
    if on < 0 or not text[close + 2 : on].isdigit() or "]" in text[addr_at:close]:
        return None
    local_close = text.find("]:", on + 5, end)
    space = text.find(" ", local_close, end) if local_close >= 0 else -1
    if space < 0 or "]" in text[on + 5 : local_close] or not text[local_close + 2 : space].isdigit():
        return None
    name, reason = drop_event(text[space + 1 : end])
    return (name, address(text[addr_at:close]), None, pid, when, reason, None)
