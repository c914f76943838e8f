"""The shared vocabulary of the auth-log pipeline: one log record in, at most one event out.

Files give raw lines that `framing` turns into a SyslogRecord; the journal gives SyslogRecords
directly. `classify` turns a record into an Event. Nothing here knows of Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass

# The closed set of event names (contract: ssh_access_sshd_events_total{event}).
EVENTS: tuple[str, ...] = (
    "auth_failed",
    "auth_accepted",
    "invalid_user",
    "user_not_allowed",
    "root_login_refused",
    "max_auth_tries_exceeded",
    "pam_auth_failure",
    "preauth_disconnect",
    "negotiation_failed",
    "banner_error",
    "login_grace_timeout",
    "wrapper_refused",
    "maxstartups_drop",
    "maxstartups_throttling_begin",
    "maxstartups_throttling_end",
    "penalty_drop",
    "penalty_applied",
)

# The closed set of PerSourcePenalties reasons (contract: ssh_access_sshd_penalties_total{reason}).
PENALTY_REASONS: tuple[str, ...] = (
    "crash",
    "authfail",
    "noauth",
    "grace_exceeded",
    "refuseconnection",
    "invaliduser",
    "table_full",
    "other",
)

# The closed set of auth methods (contract: ssh_access_sshd_auth_failures_total{method}).
AUTH_METHODS: tuple[str, ...] = (
    "password",
    "publickey",
    "keyboard-interactive",
    "hostbased",
    "gssapi-with-mic",
    "none",
    "other",
)

# Cap on the message text kept from one line: sshd itself cuts messages at 500 characters.
MAX_MESSAGE_CHARS = 2048


# Records and events are values: treat them as immutable. They are not `frozen` because a frozen
# dataclass costs four times as much to build (object.__setattr__ per field), and one of each is built
# per line on the hot path; unsafe_hash keeps them hashable as values.
@dataclass(slots=True, unsafe_hash=True)
class SyslogRecord:
    """One log line with its framing removed. Fields the line does not carry are None."""

    message: str
    ident: str | None = None
    pid: int | None = None
    host: str | None = None
    time: float | None = None  # seconds since the epoch, UTC


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """One classified sshd event (contract: the fields of `replay --format json`)."""

    event: str
    address: str | None = None
    user: str | None = None
    method: str | None = None
    pid: int | None = None
    time: float | None = None
    # Not part of the replay JSON. reason: the penalty reason (PENALTY_REASONS) of penalty_drop and
    # penalty_applied. count: the episode's dropped-connection total of maxstartups_throttling_end; for
    # penalty_applied 1 when the penalty is in force (`new ... active`, `activating`), 0 when deferred.
    reason: str | None = None
    count: int | None = None
