"""Whole chunks of traditional syslog text -> Stats, with one regex: the auth-log hot path.

Why: per line, Python costs microseconds (a framing match, a SyslogRecord, a classify match, an Event,
the counting calls), and a busy auth log has millions of lines. Here one compiled regex runs over a
whole chunk with `finditer`: it frames the lines (`Mmm dd HH:MM:SS host sshd[pid]: `) and recognises the
common wordings in the same pass, so Python code runs once per sshd event, dispatching on `lastgroup`,
and counts straight into Stats. Lines of other daemons and known chatter (`pam_unix(sshd:session)`)
never reach Python one by one: `text.count("\\n")` counts them.

Every other line (other framings, host-less lines, wordings without a fast alternative, anything odd)
is framed and classified one by one by framing.Framer and classify.classify, the general path, in
order. So the fast alternatives never need to cover everything, only to agree with the general path
wherever they match; tests/unit/test_authlog_fastscan.py runs both paths over every fixture wording,
variants of them and the benchmark generator's output and asserts identical counters.

Where mypyc compiled it, linescan (string searches, no regex) takes the common lines instead and hands
this module the rest one line at a time (scan_line); this module is the whole fast path otherwise.

How each alternative keeps classify's semantics:
- classify takes ` [preauth]` off the end first, then `error: ` / `fatal: ` off the start, and
  dispatches on the first word. Alternatives start with a literal first word (their classify handler's)
  after an optional `error: |fatal: `, and end in `_SUFFIX`: either ` [preauth]` right at the end of
  the line or a line end not preceded by it, so the body always ends where classify's message ends.
- The bodies are classify's own regexes (`.` never crossing a newline), except where classify's
  greedy `(.*) from ADDR` backtracks over user names: there the fast body takes the user as one token
  (`\\S*`) and the rest of sshd's format exactly, which leaves only one way to match, the one classify's
  greedy match finds too; a user name with spaces (the injection case) falls to the general path.
- Where client text can stand on both sides of the address (`Disconnecting ... user USER ADDR port N:
  REASON`), the text around it may not hold the address's marker (` port `) again, not even starting at
  the space of the `: ` before REASON (`port 22: port 5: x`): such lines go to classify, which gives them
  no address.
- Logins (`Failed` / `Accepted METHOD for USER from ADDR port N ssh2[: EXTRA]`, client text on both
  sides) take what follows `for ` whole, and rules.sshd_from, which classify calls too, finds sshd's own
  address in it; where it finds none (or two) the line goes to classify.
- A line longer than MAX_MESSAGE_CHARS (whose message classify sees cut) and a line holding anything but
  printable ASCII after its frame (a `\\r\\n` line end is stripped by framing) go to the general path;
  the alternatives are not even tried there, so the regex's work stays linear in the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from exporter.sources.authlog.classify import SSHD_IDENTS, classify
from exporter.sources.authlog.ops import NOTE, Op, op_of
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

# Character classes on printable ASCII, where they equal classify's: a message with any other character
# (non-ASCII, control characters, a `\r` before the newline) matches no fast alternative.
_S = "[!-~]"  # \S
_ANY = "[ -~]"  # .
_D = "[0-9]"  # \d
_HOST = r"[!-Z\\-~]+(?<!:)"  # framing.HOST: no whitespace, no `[`, not ending in `:`
_IDENT = r"[!-9;-Z\\^-~]+"  # framing.IDENT: no whitespace, `[`, `]` or `:`
_SSHD = "(?:sshd|sshd-session|sshd-auth)"
_MONTHS = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"

# The fast framing, a subset of framing's traditional one (one space, 2-character day, no fraction);
# `error: ` / `fatal: ` is taken off as classify does (possessive: no alternative starts with it).
_STAMP_PATTERN = rf"{_MONTHS} [ 0-9]{_D} {_D}{_D}:{_D}{_D}:{_D}{_D}"
STAMP: Final = re.compile(_STAMP_PATTERN)  # the fast framing's stamp, for linescan
_FRAME = (
    rf"(?P<stamp>{_STAMP_PATTERN}) {_HOST} {_SSHD}\[(?P<pid>{_D}+)\]: "
    "(?:error: |fatal: )?+"
)
# framing's traditional framing with an ident that is not sshd's: the lines that are safe to skip.
_FOREIGN = (
    rf"{_MONTHS} +{_D}{_D}? {_D}{_D}:{_D}{_D}:{_D}{_D}(?:\.{_D}+)? +{_HOST} (?!{_SSHD}[\[:]){_IDENT}"
    rf"(?:\[{_D}+\])?:"
)
# classify's message ends before a final ` [preauth]`; disconnects capture it (group `<kind>_pa`),
# which decides between an event and a note.
_SUFFIX = r"(?: \[preauth\]|(?<! \[preauth\]))$"
_SUFFIX_PA = r"(?: (?P<{0}_pa>\[preauth\])|(?<! \[preauth\]))$"
_DISCONNECT_KINDS = ("disconnected", "received", "disconnecting", "closed")
_CONN_ID = (
    rf"(?:(?P<{{0}}_kind>authenticating user|invalid user|user) {_ANY}*? )?(?P<{{0}}_addr>{_S}+)"
    rf"(?: port {_D}+)?"
)

# `.` where client text on both sides of the address (a user name, a disconnect reason, a key ID) could hold
# the address's shape again: lines where it does are left to classify, which gives them no address.
_NO_PORT = rf"(?:(?! port ){_ANY})"

# kind -> body. Kinds name what scan() does with a match; `{0}` is the kind. Each body is classify's
# regex for that wording with the classes above, except the two `{_S}* from` ones and the logins (see the
# docstring).
_ALTERNATIVES: Final = {
    "failed": rf"Failed (?P<{{0}}_method>{_S}+) for (?P<{{0}}_rest>{_ANY}*)",
    "disconnected": "Disconnected from " + _CONN_ID,
    "received": rf"Received disconnect from (?P<{{0}}_addr>{_S}+?)(?: port {_D}+:|: ){_ANY}*",
    "pam": rf"pam_[0-9A-Za-z_]+\(sshd:auth\): (?:authentication failure|{_D}+ more authentication failures);"
    rf"{_ANY}*? rhost=(?P<{{0}}_addr>{_S}*)(?: +user={_ANY}*?)? *",
    "invalid": rf"Invalid user {_S}* from (?P<{{0}}_addr>{_S}+) port {_D}+",
    "maxauth": rf"maximum authentication attempts exceeded for (?:invalid user )?{_S}* from "
    rf"(?P<{{0}}_addr>{_S}+) port {_D}+ ssh2",
    "disconnecting": rf"Disconnecting (?:(?P<{{0}}_kind>authenticating user|invalid user|user) {_NO_PORT}* )?"
    rf"(?P<{{0}}_addr>{_S}+) port {_D}+:(?! port ) {_NO_PORT}*",
    "closed": "Connection (?:closed|reset) by " + _CONN_ID,
    "negotiate": rf"Unable to negotiate with (?P<{{0}}_addr>{_S}+) port {_D}+: {_ANY}*",
    "banner": rf"banner exchange: (?:Connection (?:from|closed by|reset by|to)|Disconnected from) "
    rf"(?P<{{0}}_addr>{_S}+) port {_D}+{_ANY}*",
    "kex": rf"kex_exchange_identification: {_ANY}*",
    "accepted": rf"Accepted (?P<{{0}}_method>{_S}+) for (?P<{{0}}_rest>{_ANY}*)",
    "timeout": rf"Timeout before authentication for (?P<{{0}}_addr>{_S}+?)(?: port {_D}+)?",
    "refused": rf"refused connect from (?P<{{0}}_addr>{_ANY}*?)(?: \((?P<{{0}}_paren>[ -'*-~]*)\))?",
    "not_allowed": rf"User {_ANY}* from (?P<{{0}}_addr>{_S}+) not allowed because "
    r"(?:not listed in AllowUsers|listed in DenyUsers|not in any group|a group is listed in DenyGroups|"
    r"none of user's groups are listed in AllowGroups)",
    "drop": rf"drop connection #{_D}+ from \[(?P<{{0}}_addr>[ -\\^-~]*)\]:{_D}+ on \[[ -\\^-~]*\]:{_D}+ "
    rf"(?P<{{0}}_why>{_ANY}*)",
    "begin": r"beginning MaxStartups throttling",
    "episode": rf"in MaxStartups throttling for {_ANY}*, (?P<{{0}}_count>{_D}+) conn{_ANY}*",
    "exited": rf"exited MaxStartups throttling after {_ANY}*, (?P<{{0}}_count>{_D}+) conn{_ANY}*",
    "rate_limited": rf"(?P<{{0}}_who>Maxstartups|PerSourcePenalties) logging rate-limited: "
    rf"additional (?P<{{0}}_count>{_D}+) connections dropped{_ANY}*",
    "penalise": rf"srclimit_penalise: ipv[46]: new (?P<{{0}}_addr>{_S}+) (?P<{{0}}_state>active|deferred) "
    rf"penalty of [0-9.]+ seconds for (?P<{{0}}_why>{_ANY}*)",
}
# Known chatter classify ignores (IGNORED: no event, no address): matched only to be passed over.
_SKIP = r"pam_unix\(sshd:session\): |pam_unix\(sshd:auth\): check pass; user unknown$"

# The alternatives are tried only on a message of printable ASCII to the line's end (one possessive pass):
# on any other they can only fail, and a failure found only at the last character of a 16 KiB line cost
# a retry per repetition of `{_ANY}*` bodies (quadratic: 290 ms a line). Such lines take the general path.
_PRINTABLE_TO_END = r"(?=[ -~]*+$)"

# Each alternative ends in an empty group named after its kind, so `lastgroup` names it and the
# alternative starts with a literal (sre skips an alternative whose first literal does not match).
# `none` never matches: the address group of kinds without one.
CHUNK_PATTERN: Final = (
    rf"\n(?:{_FRAME}(?:{_PRINTABLE_TO_END}(?:"
    + "|".join(
        body.format(kind)
        + (_SUFFIX_PA if kind in _DISCONNECT_KINDS else _SUFFIX).format(kind)
        + f"(?P<{kind}>)"
        for kind, body in _ALTERNATIVES.items()
    )
    + rf")|(?:{_SKIP})(?P<skip>)|(?P<slow>))|(?=[^\n])(?!{_FOREIGN})(?P<other>)|(?P<none>(?!)))"
)
_CHUNK = re.compile(CHUNK_PATTERN, re.MULTILINE)

# Kinds that are one event whatever else the line says.
_SIMPLE: Final = {
    "invalid": "invalid_user",
    "maxauth": "max_auth_tries_exceeded",
    "negotiate": "negotiation_failed",
    "banner": "banner_error",
    "timeout": "login_grace_timeout",
    "not_allowed": "user_not_allowed",
    "kex": "banner_error",
    "begin": "maxstartups_throttling_begin",
}
# Each kind's address group (`none` when it has none).
_G = _CHUNK.groupindex
_STAMP, _PID, _FAILED_METHOD = _G["stamp"], _G["pid"], _G["failed_method"]
_ADDR = {kind: _G.get(f"{kind}_addr", _G["none"]) for kind in _ALTERNATIVES}
# Logins: the group of what follows `for `, where rules.sshd_from finds sshd's own address.
_LOGINS = {kind: _G[f"{kind}_rest"] for kind in ("failed", "accepted")}
# Disconnects: their ` [preauth]` group and their user-kind group (0: none).
_DISCONNECTS = {kind: (_G[f"{kind}_pa"], _G.get(f"{kind}_kind", 0)) for kind in _DISCONNECT_KINDS}


def _line_at(text: str, start: int) -> str:
    """The line starting at `start`, with its newline."""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start : end + 1]


def general(line: str, framer: Framer, clock: Callable[[], float]) -> Op | None:
    """The general path for one line: framing and classify, as Stats.feed_batch does."""
    record = framer.parse(line)
    if record is None or (record.ident is not None and record.ident not in SSHD_IDENTS):
        return None
    return op_of(classify(record), clock)


def scan(text: str, framer: Framer, clock: Callable[[], float]) -> list[Op]:
    """The ops (see ops.py) of the sshd lines of `text` (whole lines, `\\n`-separated), in order.

    `clock` gives the time of lines that have none (general path only).
    """
    ops: list[Op] = []
    for m in _CHUNK.finditer("\n" + text):  # every line, the first too, starts after a newline
        add_match(m, ops, framer, clock)
    return ops


def scan_line(line: str, ops: list[Op], framer: Framer, clock: Callable[[], float]) -> None:
    """scan() for one line (with its newline, if it had one): its op, if any, goes to `ops`."""
    m = _CHUNK.match("\n" + line)
    if m is not None:  # None: another program's line, or an empty one
        add_match(m, ops, framer, clock)


def _general_at(m: re.Match[str], ops: list[Op], framer: Framer, clock: Callable[[], float]) -> None:
    """The general path for the line of match `m`: its op, if any, goes to `ops`."""
    if (op := general(_line_at(m.string, m.start() + 1), framer, clock)) is not None:
        ops.append(op)


def add_match(m: re.Match[str], ops: list[Op], framer: Framer, clock: Callable[[], float]) -> None:
    """The op of one match of the chunk regex, appended to `ops` (skipped lines have none)."""
    kind = cast(str, m.lastgroup)  # every alternative ends in a named group
    if kind == "skip":
        return
    add = ops.append
    start = m.start()
    if kind in {"slow", "other"} or m.end() - start > MAX_MESSAGE_CHARS:
        _general_at(m, ops, framer, clock)
        return
    stamp, pid_text, addr = m.group(_STAMP, _PID, _ADDR[kind])
    if kind in _LOGINS:
        rest = _LOGINS[kind]
        found, stop = sshd_from(m.string, m.start(rest), m.end(rest))
        if found < 0:  # none or two: classify gives no address, or no event
            _general_at(m, ops, framer, clock)
            return
        addr = m.string[found:stop]
    when = framer.stamps.get(stamp)
    if when is None:
        when = framer.stamp_time(stamp)
    pid = int(pid_text)
    if kind == "pam":
        addr = pam_rhost(addr)
    elif kind == "refused":
        addr = wrapper_client(addr, m.group("refused_paren"))
    if addr is not None:
        addr = address(addr)
    if kind == "failed":
        add(("auth_failed", addr, auth_method(m.group(_FAILED_METHOD)), pid, when, None, None))
    elif kind == "pam":
        add(("pam_auth_failure", addr, None, pid, when, None, None))
    elif kind in _DISCONNECTS:
        preauth, user_kind = _DISCONNECTS[kind]
        if disconnect_is_event(m.group(preauth) is not None, m.group(user_kind) if user_kind else None):
            add(("preauth_disconnect", addr, None, pid, when, None, None))
        else:
            add((NOTE, addr, None, pid, when, None, None))
    elif kind in _SIMPLE:
        add((_SIMPLE[kind], addr, None, pid, when, None, None))
    else:
        add(_other(m, kind, addr, pid, when))


def _other(m: re.Match[str], kind: str, addr: str | None, pid: int, when: float) -> Op:
    """The rarer kinds: logins, TCP wrappers, the listener's lines."""
    if kind == "accepted":
        return ("auth_accepted", addr, auth_method(m.group("accepted_method")), pid, when, None, None)
    if kind == "refused":
        return ("wrapper_refused", addr, None, pid, when, None, None)
    if kind == "drop":
        name, reason = drop_event(m.group("drop_why"))
        return (name, addr, None, pid, when, reason, None)
    if kind == "episode":
        return ("episode", None, None, None, when, None, int(m.group("episode_count")))
    if kind == "exited":
        return ("maxstartups_throttling_end", None, None, pid, when, None, int(m.group("exited_count")))
    if kind == "rate_limited":
        name = rate_limited_kind(m.group("rate_limited_who"))
        return (name, None, None, None, when, None, int(m.group("rate_limited_count")))
    # penalise: the address as sshd wrote it (classify does not clean it up either)
    why, in_force = m.group("penalise_why"), penalty_in_force(m.group("penalise_state"))
    return ("penalty_applied", m.group("penalise_addr"), None, pid, when, penalty_reason(why), in_force)
