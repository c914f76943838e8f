"""sshd's messages -> at most one Event each, across OpenSSH 5.9 to 10.5.

Dispatch is on the message's first word (after an `error: ` / `fatal: ` prefix and a ` [preauth]`
suffix are taken off): one dict lookup picks the one or two regexes that can apply, so a line costs
a single regex match. The wordings are OpenSSH's own, one per line with what each must give in
tests/fixtures/authlog/wordings.tsv.

Addresses are anchored on structure sshd wrote, never on text a client controls:
- user names come before the address (`Invalid user USER from ADDR port N`): the LAST ` from ADDR`
  that is followed by the rest of sshd's format wins, so `x from 10.0.0.1 from 192.0.2.7 port 22` is
  from 192.0.2.7;
- logins (`Failed|Accepted ... for USER from ADDR port N ssh2[: EXTRA]`) have client text on both sides
  (the user; hostbased's client user and host, ssh1's ruser, a certificate's key ID in EXTRA):
  rules.sshd_from blames an address only when exactly one ` from ADDR port N` can be sshd's own;
- client text comes after the address (`Received disconnect from ADDR port N:11: TEXT`,
  `Unable to negotiate with ADDR port N: ... Their offer: TEXT`): the FIRST token after `from`/`with`.
- client text on both sides (`Disconnecting authenticating user USER ADDR port N: REASON`, where a reason
  may quote the client; `ssh_dispatch_run_fatal: Connection from ...` alike): the address is taken only
  when the line has one way to read it. When the shape around the address occurs again in client text,
  the line names no address (its event still counts, and the connection's earlier lines give the address
  through the pid map): no client can choose it.
`::ffff:192.0.2.1` is reported as 192.0.2.1. What a line's parts mean once found (that clean-up, the
client of a TCP-wrappers refusal, a disconnect before or after login, ...) is rules.py's: the fast paths
(fast/) apply the same functions to what their own grammars find.

Besides Events, two other outcomes: a DropSummary (the MaxStartups episode and rate-limit lines, which
are not events but carry drop counts) and a Note (a known line that is no event, perhaps with the
connection's address for the pid map). None means the line is sshd's but matched no known wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from exporter.sources.authlog.records import Event, SyslogRecord
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

# Syslog idents of sshd's processes (9.8+ splits per-connection work into sshd-session, 10.0+ sshd-auth).
SSHD_IDENTS: Final = frozenset({"sshd", "sshd-session", "sshd-auth"})


@dataclass(frozen=True, slots=True)
class DropSummary:
    """A line that counts dropped connections without being one drop.

    kind: `episode` (8.4-9.7 `in MaxStartups throttling for X, N connections dropped`: N is the
    episode's total so far), `maxstartups_rate_limited` / `penalty_rate_limited` (10.0+ `... logging
    rate-limited: additional N connections dropped`: N drops that got no line of their own).
    """

    kind: str
    count: int
    time: float | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """A known sshd line that is no event; address (if any) feeds the pid -> address map."""

    address: str | None = None
    pid: int | None = None


IGNORED: Final = Note()

Classified = Event | DropSummary | Note


def is_sshd(record: SyslogRecord) -> bool:
    """Bare lines (no ident) are taken to be sshd's: `sshd -E` output and pasted messages."""
    return record.ident is None or record.ident in SSHD_IDENTS


# Handlers take (message without prefix/suffix, record, preauth, had `error:`/`fatal:`).
Handler = Callable[[str, SyslogRecord, bool, bool], "Classified | None"]

_S = re.DOTALL
_AUTH = re.compile(
    r"(Failed|Accepted|Postponed|Partial) (\S+) for (invalid user )?(.*) from (\S+)(?: port \d+)?"
    r"(?: ssh[12])?(?:: .*)?$",
    _S,
)
_INVALID_USER = re.compile(r"Invalid user (.*) from (\S+)(?: port \d+)?$", _S)
_USER_HOST = re.compile(
    r"User (.*) from (\S+) not allowed because (?:not listed in AllowUsers|listed in DenyUsers|"
    r"not in any group|a group is listed in DenyGroups|none of user's groups are listed in AllowGroups)$",
    _S,
)
_USER_HOSTLESS = re.compile(r"User (.*?) not allowed because ", _S)
_ROOT = re.compile(r"ROOT LOGIN REFUSED FROM (\S+)", _S)
_MAX_AUTH = re.compile(
    r"maximum authentication attempts exceeded for (invalid user )?(.*) from (\S+)(?: port \d+)?"
    r"(?: ssh[12])?$",
    _S,
)
# `PAM: ... for (?:illegal user )?USER from HOST`, taken apart by _pam_sshd_parts: as one regex (`PAM: .* for
# (.*) from (\S+)$`) two greedy runs made its work quadratic in the number of ` for ` a line holds.
_PAM_FROM = re.compile(r" from (\S+) *$", _S)  # pam_strerror's text may end with a space
_PAM_MODULE = re.compile(
    r"pam_\w+\(sshd:auth\): (?:authentication failure|\d+ more authentication failures);.*? rhost=(\S*)"
    r"(?:\s+user=(.*?))?\s*$",  # pam_unix ends with a space when it names no user (invalid users)
    _S,
)
# `[authenticating user X |invalid user X |user X ]ADDR port N`, anchored on the right (user first).
_CONN_ID = re.compile(r"(?:(authenticating user|invalid user|user) (.*?) )?(\S+)(?: port \d+)?$", _S)
_CONN_FROM = re.compile(r"Connection from (\S+) port \d+(?: on |$)", _S)  # before 5.x: no ` on LOCAL`
_TOO_MANY = "Disconnecting: Too many authentication failures for "  # before 6.8; 6.8+ log `maximum ...` first
_DISPATCH = re.compile(
    r"ssh_dispatch_run_fatal: Connection from "
    r"(?:(authenticating user|invalid user|user) (.*) )?(\S+) port \d+: ",
    _S,
)
_READ_ERROR = re.compile(r"Read error from remote host (\S+?)(?: port \d+)?: ", _S)
_DISCONNECTING = re.compile(
    r"Disconnecting (?:(authenticating user|invalid user|user) (.*) )?(\S+) port \d+: ", _S
)
# Another reading of a _DISCONNECTING line with a user: an earlier (or later) ` ADDR port N: `.
_ADDRESS_PORT = re.compile(r" \S+ port \d+: ", _S)
_RECEIVED_DISCONNECT = re.compile(r"Received disconnect from (\S+?)(?: port \d+:|: )", _S)
_NEGOTIATE = re.compile(r"Unable to negotiate with (\S+) port \d+: ", _S)
_BANNER = re.compile(
    r"banner exchange: (?:Connection (?:from|closed by|reset by|to)|Disconnected from) (\S+) port \d+", _S
)
_NO_IDENT = re.compile(r"Did not receive identification string from (\S+)", _S)
_BAD_VERSION = re.compile(r"Bad protocol version identification .* from (\S+?)(?: port \d+)?$", _S)
_MAJOR_DIFFER = re.compile(r"Protocol major versions differ for (\S+?)(?: port \d+)?: ", _S)
_TIMEOUT_OLD = re.compile(r"Timeout before authentication for (\S+?)(?: port \d+)?$", _S)
_TIMEOUT_LISTENER = re.compile(
    r"Timeout before authentication for connection from (\S+) to \S+, pid = (\d+)(?: \(.*\))?$", _S
)
_WRAPPER = re.compile(r"refused connect from (.*?)(?: \(([^()]*)\))?$", _S)
_DROP = re.compile(r"drop connection #\d+ from \[([^\]]*)\]:\d+ on \[[^\]]*\]:\d+ (.*)$", _S)
_EPISODE = re.compile(
    r"(?:in MaxStartups throttling for|exited MaxStartups throttling after) .*, (\d+) conn", _S
)
_RATE_LIMITED = re.compile(r"(\S+) logging rate-limited: additional (\d+) connections dropped", _S)
_PENALISE_NEW = re.compile(
    r"srclimit_penalise: ipv[46]: new (\S+) (active|deferred) penalty of [\d.]+ seconds for (.*)$", _S
)
_PENALISE_ACTIVATING = re.compile(
    r"srclimit_penalise: (\S+): activating ipv[46] penalty of [\d.]+ seconds for (.*)$", _S
)


def _event(name: str, record: SyslogRecord, addr: str | None = None, user: str | None = None) -> Event:
    return Event(name, None if addr is None else address(addr), user, None, record.pid, record.time)


def _auth(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _AUTH.match(msg)
    if match is None:
        return None
    verdict, method, _invalid, user, _given = match.groups()
    # The user name and the EXTRA after `ssh2: ` are the client's: rules.sshd_from picks sshd's own
    # ` from ADDR port N`, or none when the client wrote a second one that could be it.
    start, end = sshd_from(msg, match.end(2) + 5, len(msg))
    addr = None
    if start >= 0:
        addr = address(msg[start:end])
        named = match.start(4) if match.start(4) <= start - 6 else match.end(2) + 5  # past `invalid user `
        user = msg[named : start - 6]
    if verdict == "Failed":
        name = "auth_failed"
    elif verdict == "Accepted":
        name = "auth_accepted"
    else:  # Postponed / Partial: one step of a multi-step login, no verdict yet
        return Note(addr, record.pid)
    return Event(name, addr, user, auth_method(method), record.pid, record.time)


def _invalid_user(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _INVALID_USER.match(msg)
    return None if match is None else _event("invalid_user", record, match[2], match[1])


def _user(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _USER_HOST.match(msg)
    if match is not None:
        return _event("user_not_allowed", record, match[2], match[1])
    match = _USER_HOSTLESS.match(msg)
    return None if match is None else _event("user_not_allowed", record, None, match[1])


def _root(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _ROOT.match(msg)
    return None if match is None else _event("root_login_refused", record, match[1], "root")


def _max_auth(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _MAX_AUTH.match(msg)
    return None if match is None else _event("max_auth_tries_exceeded", record, match[3], match[2])


def _pam_sshd(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if not error:  # only sshd's `error: PAM: ...` reports a failure
        return IGNORED
    parts = _pam_sshd_parts(msg)
    if parts is None:
        return _event("pam_auth_failure", record)
    return _event("pam_auth_failure", record, parts[1], parts[0])


def _pam_sshd_parts(msg: str) -> tuple[str, str] | None:
    """(user, host) of `PAM: .* for (?:illegal user )?(.*) from (\\S+)$` as that regex reads it, in linear
    time: the host is the last token, after the only ` from ` it can follow; the user starts after the
    last ` for ` before that ` from ` (the greedy `.*`), past `illegal user ` when that leaves room."""
    if not msg.startswith("PAM: "):
        return None
    found = _PAM_FROM.search(msg, 5)
    if found is None:
        return None
    end = found.start()
    start = msg.rfind(" for ", 5, end)
    if start < 0:
        return None
    start += 5
    if msg.startswith("illegal user ", start) and start + 13 <= end:
        start += 13
    return msg[start:end], found[1]


def _pam_module(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if "(sshd:auth): " not in msg:
        return IGNORED  # session / account / password stacks
    match = _PAM_MODULE.match(msg)
    if match is None:
        return IGNORED  # `check pass; user unknown` and other module chatter
    return _event("pam_auth_failure", record, pam_rhost(match[1]), match[2])


def _disconnect_event(
    kind: str | None, user: str | None, addr: str | None, record: SyslogRecord, preauth: bool
) -> Classified:
    """Closed before a login (marked or naming a user not yet authenticated): an event; after: a Note."""
    if disconnect_is_event(preauth, kind):
        return _event("preauth_disconnect", record, addr, user)
    return Note(None if addr is None else address(addr), record.pid)


def _connection(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    for lead in ("Connection closed by ", "Connection reset by "):
        if msg.startswith(lead):
            match = _CONN_ID.match(msg, len(lead))
            if match is None:
                return None
            return _disconnect_event(match[1], match[2], match[3], record, preauth)
    match = _CONN_FROM.match(msg)
    if match is not None:
        return Note(address(match[1]), record.pid)
    return IGNORED  # `Connection from ... timed out`, `Connection refused by tcp wrapper` (debug)


def _disconnected(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if not msg.startswith("Disconnected from "):
        return None
    match = _CONN_ID.match(msg, len("Disconnected from "))
    return None if match is None else _disconnect_event(match[1], match[2], match[3], record, preauth)


def _disconnecting(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _DISCONNECTING.match(msg)
    if match is not None:
        return _disconnect_event(match[1], match[2], _disconnecting_address(match), record, preauth)
    if msg.startswith(_TOO_MANY):  # before 6.8: MaxAuthTries reached; no address, the pid map gives it
        return _event("max_auth_tries_exceeded", record, None, msg[len(_TOO_MANY) :])
    if msg.startswith("Disconnecting: ") and preauth:  # before 7.5: no address, the pid map gives it
        return _event("preauth_disconnect", record)
    return IGNORED if msg.startswith("Disconnecting") else None


def _disconnecting_address(match: re.Match[str]) -> str | None:
    """The address of a _DISCONNECTING match, unless the user name or the reason holds ` ADDR port N: ` too
    (the greedy user then ends at the last one): no way to tell which one is sshd's."""
    if match[1] is None:
        return match[3]  # no user: the address follows `Disconnecting ` directly
    first = _ADDRESS_PORT.search(match.string, match.start(2))
    return match[3] if first is not None and first.start() == match.start(3) - 1 else None


def _dispatch(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    """A protocol error (`ssh_dispatch_run_fatal: Connection from [KIND USER ]ADDR port N: REASON`): before a
    login the client broke the protocol, a preauth_disconnect; before 7.x the line names no address."""
    match = _DISPATCH.match(msg)
    if match is not None:
        return _disconnect_event(match[1], match[2], _disconnecting_address(match), record, preauth)
    return _event("preauth_disconnect", record) if preauth else IGNORED


def _read(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    """`fatal: Read from socket failed: REASON` (before 7.x: no address) and `Read error from remote host ADDR
    port N: REASON`: the connection broke, a preauth_disconnect before a login."""
    match = _READ_ERROR.match(msg)
    if match is not None:
        return _disconnect_event(None, None, match[1], record, preauth)
    if msg.startswith("Read from socket failed: "):
        return _event("preauth_disconnect", record) if preauth else IGNORED
    return None


def _received(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if not msg.startswith("Received disconnect from "):
        return IGNORED  # `Received signal 15; terminating.`
    match = _RECEIVED_DISCONNECT.match(msg)
    if match is None:
        return None
    if preauth:
        return _event("preauth_disconnect", record, match[1])
    return Note(address(match[1]), record.pid)


def _negotiate(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _NEGOTIATE.match(msg)
    if match is not None:
        return _event("negotiation_failed", record, match[1])
    if msg.startswith("Unable to negotiate"):  # older: `Unable to negotiate a key exchange method`
        return _event("negotiation_failed", record)
    return None


def _no_matching(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    """Before 7.2: `fatal: no matching cipher found: client ... server ...`."""
    if msg.startswith("no matching ") and " found" in msg:
        return _event("negotiation_failed", record)
    return None


def _banner(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if not msg.startswith("banner exchange: "):
        return None
    match = _BANNER.match(msg)
    return _event("banner_error", record, match[1] if match is not None else None)


def _kex_ident(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    return _event("banner_error", record)


def _did_not(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _NO_IDENT.match(msg)
    return None if match is None else _event("banner_error", record, match[1])


def _bad(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    if msg.startswith("Bad remote protocol version identification"):
        return _event("banner_error", record)
    match = _BAD_VERSION.match(msg)
    return None if match is None else _event("banner_error", record, match[1])


def _protocol(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _MAJOR_DIFFER.match(msg)
    return None if match is None else _event("banner_error", record, match[1])


def _timeout(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _TIMEOUT_LISTENER.match(msg)
    if match is not None:
        # 9.8+: logged by the listener; the connection is the child pid the line names. 9.8.0 swapped
        # the two addresses: Stats prefers the address that pid's own lines gave.
        return Event("login_grace_timeout", address(match[1]), None, None, int(match[2]), record.time)
    match = _TIMEOUT_OLD.match(msg)
    return None if match is None else _event("login_grace_timeout", record, match[1])


def _refused(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _WRAPPER.match(msg)
    if match is None:
        return None
    return _event("wrapper_refused", record, wrapper_client(match[1], match[2]))


def _drop(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _DROP.match(msg)
    if match is None:
        return None
    addr, why = match.groups()
    name, reason = drop_event(why)
    return Event(name, address(addr), None, None, record.pid, record.time, reason)


def _beginning(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    return (
        _event("maxstartups_throttling_begin", record) if msg == "beginning MaxStartups throttling" else None
    )


def _episode(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _EPISODE.match(msg)
    if match is None:
        return None
    count = int(match[1])
    if msg[0] == "e":
        return Event("maxstartups_throttling_end", None, None, None, record.pid, record.time, None, count)
    return DropSummary("episode", count, record.time)


def _rate_limited(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _RATE_LIMITED.match(msg)
    if match is None:
        return None
    return DropSummary(rate_limited_kind(match[1]), int(match[2]), record.time)


def _penalise(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    match = _PENALISE_NEW.match(msg)
    if match is not None:
        addr, state, why = match.groups()
        active = penalty_in_force(state)
    else:
        match = _PENALISE_ACTIVATING.match(msg)
        if match is None:
            return IGNORED if "penalty table full" in msg else None
        addr, why = match.groups()
        active = 1
    reason = penalty_reason(why)
    return Event("penalty_applied", addr, None, None, record.pid, record.time, reason, active)


def _ignored(msg: str, record: SyslogRecord, preauth: bool, error: bool) -> Classified | None:
    return IGNORED


_HANDLERS: dict[str, Handler] = {
    "Failed": _auth,
    "Accepted": _auth,
    "Postponed": _auth,
    "Partial": _auth,
    "Invalid": _invalid_user,
    "User": _user,
    "ROOT": _root,
    "maximum": _max_auth,
    "PAM:": _pam_sshd,
    "Connection": _connection,
    "Disconnected": _disconnected,
    "Disconnecting": _disconnecting,
    "Disconnecting:": _disconnecting,
    "Received": _received,
    "ssh_dispatch_run_fatal:": _dispatch,
    "Read": _read,
    "Unable": _negotiate,
    "no": _no_matching,
    "banner": _banner,
    "kex_exchange_identification:": _kex_ident,
    "Did": _did_not,
    "Bad": _bad,
    "Protocol": _protocol,
    "Timeout": _timeout,
    "refused": _refused,
    "drop": _drop,
    "beginning": _beginning,
    "in": _episode,
    "exited": _episode,
    "Maxstartups": _rate_limited,
    "PerSourcePenalties": _rate_limited,
    "srclimit_penalise:": _penalise,
    # Known chatter: no event, not a wording drift either.
    "Server": _ignored,
    "Starting": _ignored,
    "Close": _ignored,
    "Transferred:": _ignored,
    "Changed": _ignored,
    "subsystem": _ignored,
    "session": _ignored,
    "pam_unix(sshd:session):": _ignored,
    "pam_systemd(sshd:session):": _ignored,
    "Exiting": _ignored,
}

_PREAUTH = " [preauth]"


def classify(record: SyslogRecord) -> Classified | None:
    """One sshd record -> Event, DropSummary or Note; None when no known wording matched.

    Call only for is_sshd(record). The Event's address is what the line says; filling it in from
    earlier lines of the same pid is Stats' job (classification is stateless).
    """
    msg = record.message
    preauth = msg.endswith(_PREAUTH)
    if preauth:
        msg = msg[: -len(_PREAUTH)]
    error = msg.startswith(("error: ", "fatal: "))
    if error:
        msg = msg[7:]
    space = msg.find(" ")
    head = msg[:space] if space > 0 else msg
    handler = _HANDLERS.get(head)
    if handler is None:
        if head.startswith("pam_"):
            return _pam_module(msg, record, preauth, error)
        return None
    return handler(msg, record, preauth, error)
