"""Counting ops: what both auth-log paths hand to Stats.count_many, one small tuple per sshd line.

Why tuples: a busy log has hundreds of thousands of events a second; building an Event (a dataclass)
and calling a method per event costs more than the counting itself. fastscan builds ops straight from
its regex matches; the general path (framing, classify) turns its outcomes into the same ops with
op_of(), so Stats counts both with one loop and one set of rules.

An op is `(name, address, method, pid, time, reason, count)`. `name` is an event name (records.EVENTS,
the fields as in Event, time never None), or one of:
- NOTE: a known line that is no event but names its connection's address (pid, address);
- UNMATCHED: an sshd line that matched no known wording;
- a DropSummary kind (`episode`, `maxstartups_rate_limited`, `penalty_rate_limited`): count, time.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.sources.authlog.classify import Classified, DropSummary, Note
from exporter.sources.authlog.records import Event

Op = tuple[str, str | None, str | None, int | None, float, str | None, int | None]

NOTE = "note"
UNMATCHED = "unmatched"
SUMMARIES = frozenset({"episode", "maxstartups_rate_limited", "penalty_rate_limited"})
NOT_EVENTS = SUMMARIES | {NOTE, UNMATCHED}

UNMATCHED_OP: Op = (UNMATCHED, None, None, None, 0.0, None, None)


def op_of(outcome: Classified | None, clock: Callable[[], float]) -> Op | None:
    """classify's outcome as an op (None: nothing to count); a line without a time takes `clock`."""
    if isinstance(outcome, Event):
        when = outcome.time if outcome.time is not None else clock()
        return (
            outcome.event,
            outcome.address,
            outcome.method,
            outcome.pid,
            when,
            outcome.reason,
            outcome.count,
        )
    if outcome is None:
        return UNMATCHED_OP
    if isinstance(outcome, Note):
        if outcome.address is None or outcome.pid is None:
            return None
        return (NOTE, outcome.address, None, outcome.pid, 0.0, None, None)
    if isinstance(outcome, DropSummary):
        when = outcome.time if outcome.time is not None else clock()
        return (outcome.kind, None, None, None, when, None, outcome.count)
    return None
