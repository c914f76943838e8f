"""Classification: every wording in docs/sshd-log-lines.md (fixtures/authlog/wordings.tsv), edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.sources.authlog.classify import IGNORED, DropSummary, Note, classify, is_sshd
from exporter.sources.authlog.records import AUTH_METHODS, EVENTS, Event, SyslogRecord
from exporter.sources.authlog.rules import auth_method

FIXTURES = Path(__file__).parent.parent / "fixtures" / "authlog"
NEW4 = "srclimit_penalise: ipv4: new 192.0.2.0/24"


def _wordings() -> list[tuple[str, str | None, str | None, str | None, str]]:
    rows = []
    for line in FIXTURES.joinpath("wordings.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            event, addr, user, method, message = line.split("\t")
            rows.append(
                (
                    event,
                    None if addr == "-" else addr,
                    None if user == "-" else user,
                    None if method == "-" else method,
                    message,
                )
            )
    return rows


WORDINGS = _wordings()


def _outcome(message: str, ident: str | None = "sshd") -> tuple[str, str | None, str | None, str | None]:
    result = classify(SyslogRecord(message, ident, 4242, "host", 1000.0))
    if isinstance(result, Event):
        return result.event, result.address, result.user, result.method
    if isinstance(result, Note):
        return "NOTE", result.address, None, None
    if isinstance(result, DropSummary):
        return "DROPS", None, None, None
    return "NONE", None, None, None


@pytest.mark.parametrize(
    ("event", "addr", "user", "method", "message"), WORDINGS, ids=[w[4][:60] for w in WORDINGS]
)
def test_wording(event: str, addr: str | None, user: str | None, method: str | None, message: str) -> None:
    assert _outcome(message) == (event, addr, user, method)


def test_fixture_covers_every_event() -> None:
    assert {w[0] for w in WORDINGS} >= set(EVENTS)


def test_user_name_cannot_inject_an_address() -> None:
    line = "Failed password for invalid user x from 10.0.0.1 from 192.0.2.7 port 22 ssh2"
    assert _outcome(line) == ("auth_failed", "192.0.2.7", "x from 10.0.0.1", "password")
    line = "Failed password for invalid user a from 10.0.0.1 port 22 ssh2 from 192.0.2.7 port 22 ssh2"
    assert _outcome(line)[1] == "192.0.2.7"
    line = "Connection closed by invalid user a 10.0.0.1 port 1 192.0.2.7 port 22 [preauth]"
    assert _outcome(line)[1] == "192.0.2.7"


def test_event_carries_pid_and_time() -> None:
    event = classify(SyslogRecord("Invalid user a from 192.0.2.1 port 2", "sshd-session", 77, None, 12.5))
    assert event == Event("invalid_user", "192.0.2.1", "a", None, 77, 12.5)


def test_grace_timeout_of_the_listener_names_the_child_pid() -> None:
    line = "Timeout before authentication for connection from 192.0.2.56 to 198.51.100.200, pid = 4321"
    event = classify(SyslogRecord(line, "sshd", 900))
    assert isinstance(event, Event) and event.pid == 4321


@pytest.mark.parametrize(
    ("message", "reason", "in_force"),
    [
        (
            f"{NEW4} active penalty of 30 seconds for penalty: caused crash",
            "crash",
            1,
        ),
        (
            "srclimit_penalise: ipv6: new 2001:db8::/64 deferred penalty of 1 seconds for "
            "penalty: failed authentication",
            "authfail",
            0,
        ),
        (
            "srclimit_penalise: 192.0.2.0/24: activating ipv4 penalty of 15.500 seconds for "
            "penalty: exceeded LoginGraceTime",
            "grace_exceeded",
            1,
        ),
        (
            f"{NEW4} active penalty of 10 seconds for penalty: connection prohibited by RefuseConnection",
            "refuseconnection",
            1,
        ),
        (
            f"{NEW4} active penalty of 10 seconds for penalty: something new",
            "other",
            1,
        ),
    ],
)
def test_penalty_applied_reason_and_state(message: str, reason: str, in_force: int) -> None:
    event = classify(SyslogRecord(message, "sshd", 900))
    assert isinstance(event, Event) and (event.event, event.reason, event.count) == (
        "penalty_applied",
        reason,
        in_force,
    )


def test_penalty_drop_reasons_are_a_closed_set() -> None:
    reasons = {
        event.reason
        for event in (classify(SyslogRecord(w[4], "sshd")) for w in WORDINGS if w[0] == "penalty_drop")
        if isinstance(event, Event)
    }
    assert reasons == {
        "crash",
        "authfail",
        "noauth",
        "invaliduser",
        "refuseconnection",
        "grace_exceeded",
        "table_full",
    }


def test_drop_summaries() -> None:
    assert classify(
        SyslogRecord(
            "error: in MaxStartups throttling for 00:05:00, 57 connections dropped", "sshd", 1, None, 5.0
        )
    ) == DropSummary("episode", 57, 5.0)
    end = classify(
        SyslogRecord("exited MaxStartups throttling after 01:02:03, 80 connections dropped", "sshd")
    )
    assert isinstance(end, Event) and (end.event, end.count) == ("maxstartups_throttling_end", 80)
    assert classify(
        SyslogRecord("Maxstartups logging rate-limited: additional 12 connections dropped")
    ) == DropSummary("maxstartups_rate_limited", 12)
    assert classify(
        SyslogRecord("PerSourcePenalties logging rate-limited: additional 3 connections dropped")
    ) == DropSummary("penalty_rate_limited", 3)


def test_auth_methods_closed_set() -> None:
    assert [auth_method(m) for m in ("keyboard-interactive/pam", "publickey", "password", "x-custom")] == [
        "keyboard-interactive",
        "publickey",
        "password",
        "other",
    ]
    assert set(AUTH_METHODS) >= {auth_method(w[3] or "none") for w in WORDINGS}


def test_only_sshd_idents() -> None:
    assert (
        is_sshd(SyslogRecord("x", "sshd"))
        and is_sshd(SyslogRecord("x", "sshd-session"))
        and is_sshd(SyslogRecord("x"))
    )
    assert not is_sshd(SyslogRecord("x", "CRON"))


def test_ignored_is_a_note_without_address() -> None:
    assert classify(SyslogRecord("Server listening on :: port 22.", "sshd")) is IGNORED


def test_garbage_never_raises() -> None:
    for message in (
        "",
        " ",
        "[preauth]",
        " [preauth]",
        "error: ",
        "fatal: ",
        "Failed",
        "drop connection #",
        "\x00\ufffd" * 100,
        "User",
        "in",
    ):
        classify(SyslogRecord(message, "sshd"))
