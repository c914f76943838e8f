"""What a recognised sshd line means once its parts are found: the rules every auth-log path applies.

Why one module: three paths take sshd lines apart (classify's regexes, fastscan's chunk regex, linescan's
string searches), and each must turn the parts it found into the same event. Written once per path, a
rule drifts: one path took the host of `refused connect from a@b@192.0.2.7` after the first `@`, the
others after the last. Here each rule is one named function the three paths call; how a path finds the
parts (its grammar) stays in that path.

mypyc compiles this module with linescan (setup.py): from compiled code a call here is a C call, so the
string path keeps its speed; classify and fastscan call the same functions from Python.
"""

from __future__ import annotations

from typing import Final

from exporter.sources.authlog.records import AUTH_METHODS

_METHODS: Final = frozenset(AUTH_METHODS)
# Connection kinds sshd names before a login has succeeded (`Connection closed by invalid user x ...`).
_BEFORE_LOGIN: Final = frozenset({"authenticating user", "invalid user"})
_PENALTY_REASONS: Final = (
    ("caused crash", "crash"),
    ("failed authentication", "authfail"),
    ("connections without attempting authentication", "noauth"),
    ("attempted authentication by invalid user", "invaliduser"),
    ("connection prohibited by RefuseConnection", "refuseconnection"),
    ("exceeded LoginGraceTime", "grace_exceeded"),
    ("too many penalised addresses", "table_full"),
)


def address(token: str) -> str:
    """sshd's address token as reported: `::ffff:` mapped IPv4 as plain IPv4, `[v6]` unbracketed.

    Most tokens need neither: the first character decides that before any other test.
    """
    if not token:
        return token
    first = token[0]
    if first == ":":
        return token[7:] if token.startswith("::ffff:") and "." in token else token
    if first == "[" and token.endswith("]"):
        return token[1:-1]
    return token


# The two rules below pick an address token out of a line's parts; like every address token, the path
# then passes it through address() once (twice would strip `::ffff:` from `::ffff:::ffff:192.0.2.1`
# twice).


def sshd_from(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) of the address in a login line's `USER from ADDR port N ssh2[: EXTRA]`, text[start:end]
    being what follows `for `; (-1, -1) when no ` from ADDR port N` or more than one can be sshd's own.

    Both sides of sshd's ` from ADDR port N` are the client's: the user name before it, and after `ssh2: `
    sshd's EXTRA (hostbased's client user and host, ssh1's ruser). Either may hold ` from X port N` itself.
    One can be sshd's own only where the rest of sshd's format follows it (the message ends, or ` ssh1` /
    ` ssh2` and then the end or `: `, or `: `); when exactly one can, it is, since sshd's own always can.
    When two can, the client wrote one of them and nothing tells which: no address, so no client can pick
    the address blamed. Lines without ` port N` (releases before 3.x) end in ` from ADDR`.
    ADDR is the run of characters up to the next space.
    """
    found_start = -1
    found_end = -1
    at = text.find(" from ", start, end)
    while at >= 0:
        addr = at + 6
        space = text.find(" ", addr, end)
        tail = _sshd_tail(text, space, end) if space > addr else _NO_TAIL
        if tail != _NO_TAIL:
            if found_start >= 0:
                return -1, -1  # two readings: the client wrote one
            if tail == _TO_END:
                return addr, space  # sshd's format ran to the end: nothing after it to read again
            found_start, found_end = addr, space
        at = text.find(" from ", at + 1, end)
    if found_start >= 0:
        return found_start, found_end
    at = text.rfind(" from ", start, end)
    if at >= 0 and at + 6 < end and text.find(" ", at + 6, end) < 0:
        return at + 6, end  # no port: sshd's address ends the line
    return -1, -1


_NO_TAIL: Final = 0
_TO_END: Final = 1  # ` port N[ sshV]` and nothing after it
_EXTRA: Final = 2  # ` port N[ sshV]: ...`


def _sshd_tail(text: str, at: int, end: int) -> int:
    """Whether text[at:end] is ` port N`, then nothing, ` ssh1`/` ssh2` (then nothing or `: ...`), or
    `: ...`: _NO_TAIL, _TO_END or _EXTRA.

    Compared character by character (`ord(text[i])`): compiled, that is a load, where a str method call
    with bounds costs a call (this runs on every failed login).
    """
    if not _literal_at(text, at, end, " port "):
        return _NO_TAIL
    digits = at + 6
    pos = digits
    while pos < end and 48 <= ord(text[pos]) <= 57:
        pos += 1
    if pos == digits:
        return _NO_TAIL
    if pos == end:
        return _TO_END
    if _literal_at(text, pos, end, " ssh") and pos + 5 <= end and 49 <= ord(text[pos + 4]) <= 50:
        pos += 5
        if pos == end:
            return _TO_END
    return _EXTRA if _literal_at(text, pos, end, ": ") else _NO_TAIL


def _literal_at(text: str, pos: int, end: int, literal: str) -> bool:
    """text.startswith(literal, pos, end) for a short literal, without a method call."""
    size = len(literal)
    if pos + size > end:
        return False
    for index in range(size):  # noqa: SIM110 (a plain loop compiles to a plain C loop)
        if ord(text[pos + index]) != ord(literal[index]):
            return False
    return True


def pam_rhost(token: str) -> str | None:
    """A PAM module's `rhost=` value: empty when PAM had no remote host, which names no address."""
    return token or None


def wrapper_client(host: str, paren: str | None) -> str:
    """The client's token in a TCP-wrappers refusal `refused connect from HOST (PAREN)` (PAREN optional).

    The parenthesised address, when there is one (not empty), is the numeric one; either may be
    `user@host` (an rfc931 ident lookup), whose user is client text that may hold `@` itself: the host is
    after the LAST `@`.
    """
    return (paren or host).rsplit("@", 1)[-1]


def auth_method(token: str) -> str:
    """`keyboard-interactive/pam` -> `keyboard-interactive`; unknown methods -> `other` (closed set).

    The common tokens are methods as they are: returned without a split (once per failed login).
    """
    if token in _METHODS:
        return token
    method = token.split("/", 1)[0]
    return method if method in _METHODS else "other"


def disconnect_is_event(preauth: bool, kind: str | None) -> bool:
    """Whether a disconnect (`Connection closed by [KIND USER] ADDR ...`) counts as preauth_disconnect.

    It does before a login: marked ` [preauth]`, or naming a user not yet authenticated (KIND
    `authenticating user` / `invalid user`); after a login (KIND `user`, or none) it only names its
    connection's address.
    """
    return preauth or kind in _BEFORE_LOGIN


def penalty_reason(text: str) -> str:
    """sshd's penalty wording (`penalty: failed authentication`) -> the closed PENALTY_REASONS set."""
    for wording, reason in _PENALTY_REASONS:
        if wording in text:
            return reason
    return "other"


def drop_event(why: str) -> tuple[str, str | None]:
    """(event, penalty reason) of `drop connection #N from [ADDR]:P on [ADDR]:P WHY`.

    MaxStartups drops end in `MaxStartups` (or 8.x's `Maxstartups`); any other WHY is a penalty's.
    """
    if why.endswith(("MaxStartups", "Maxstartups")):
        return "maxstartups_drop", None
    return "penalty_drop", penalty_reason(why)


def rate_limited_kind(who: str) -> str:
    """The summary kind of `WHO logging rate-limited: additional N connections dropped`."""
    return "penalty_rate_limited" if who == "PerSourcePenalties" else "maxstartups_rate_limited"


def penalty_in_force(state: str) -> int:
    """`new ADDR active penalty ...` is in force (1) at once; `deferred` (0) only once it activates."""
    return 1 if state == "active" else 0
