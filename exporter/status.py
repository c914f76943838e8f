"""The host's status as a person reads it: findings derived from one scrape, host first, then collectors.

The landing page is a view of the same model of the host as /metrics: this module reads the families of
the last scrape (and each collector's status) and says, in a fixed order, what holds on the host: is sshd
running, how full MaxStartups is, whether TCP wrappers deny everyone, whether each ban tool is up (and why
not), whether bans are enforced, whether watched addresses are kept out, which auth log sources are read
and how old the last sshd event is; then how each collector fared. Each finding has a severity and a
sentence a person can act on. Nothing here knows HTML: exporter.web.app renders it.

A layer nobody could read is `unknown`, never `ok`: a missing family is not good news.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.families.bans import BanCollector
from exporter.scrape import CollectorStatus

# The collectors that report a ban tool, each under its own `source` label value.
BAN_TOOLS = {"fail2ban": "fail2ban", "sshguard": "sshguard", "crowdsec": "CrowdSec", "denyhosts": "DenyHosts"}
# sshd events older than this are worth a look: a host reachable from anywhere logs sshd lines daily.
QUIET_AFTER = 24 * 3600.0
# "SourceUnavailableError: reason" -> "reason": the exception's class name says nothing to a person.
_EXCEPTION_PREFIX = re.compile(r"^[A-Z][A-Za-z]*(?:Error|Exception): ")


class Severity(Enum):
    """Most pressing first: the page's headline takes the first one present."""

    PROBLEM = "problem"
    WARNING = "warning"
    UNKNOWN = "unknown"
    OK = "ok"


_COUNTABLE = (Severity.PROBLEM, Severity.WARNING)  # "2 problems" but "2 ok", "2 unknown"


@dataclass(frozen=True)
class Finding:
    """What holds for one part of the host: `topic` names it (`sshd`, `fail2ban`), `text` says what
    holds and, unless all is well, what to do."""

    topic: str
    severity: Severity
    text: str


@dataclass(frozen=True)
class HostStatus:
    """Host findings in their fixed order, then one finding per collector; `collected` is when the scrape
    they come from ended (None: no scrape yet)."""

    collected: float | None
    findings: tuple[Finding, ...]
    collectors: tuple[Finding, ...]

    def count(self, severity: Severity) -> int:
        """How many host findings (collectors aside) have that severity."""
        return sum(finding.severity is severity for finding in self.findings)

    @property
    def worst(self) -> Severity:
        """The most pressing severity of the host findings and collectors (OK when there is nothing)."""
        found = {finding.severity for finding in (*self.findings, *self.collectors)}
        return next((severity for severity in Severity if severity in found), Severity.OK)

    def summary(self) -> str:
        """One line for the top of the page: `Host: 2 problems, 1 warning, 5 ok. Collectors: 1 of 9
        failed.`"""
        counts = [
            f"{count} {severity.value}{'s' if count != 1 and severity in _COUNTABLE else ''}"
            for severity in Severity
            if (count := self.count(severity))
        ]
        failed = sum(finding.severity is not Severity.OK for finding in self.collectors)
        total = len(self.collectors)
        health = f"{failed} of {total} failed" if failed else f"all {total} ok"
        return f"Host: {', '.join(counts) or 'nothing read'}. Collectors: {health}."


def utc(timestamp: float) -> str:
    """`2026-12-06T04:55:05Z`: every time the page shows, in one zone whatever the host's."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def reason(error: str) -> str:
    """A collector's error as a sentence part: without the exception's class name."""
    return _EXCEPTION_PREFIX.sub("", error.strip())


@dataclass
class _Families:
    """The scrape's samples by family name (a counter's under its name without `_total`)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @classmethod
    def of(cls, families: Iterable[Metric]) -> _Families:
        index: dict[str, list[Sample]] = {}
        for family in families:
            index.setdefault(family.name, []).extend(family.samples)
        return cls(index)

    def has(self, name: str) -> bool:
        return name in self.samples

    def value(self, name: str, **labels: str) -> float | None:
        """The first sample of `name` whose labels include `labels`; None when there is none."""
        for sample in self.samples.get(name, ()):
            if all(sample.labels.get(key) == text for key, text in labels.items()):
                return float(sample.value)
        return None

    def by(self, name: str, label: str) -> dict[str, float]:
        """`name`'s values keyed by one label (the last sample wins for a label value seen twice)."""
        return {s.labels.get(label, ""): float(s.value) for s in self.samples.get(name, ())}

    def summed(self, name: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for sample in self.samples.get(name, ()):
            totals[sample.labels.get(label, "")] += float(sample.value)
        return dict(totals)


@dataclass(frozen=True)
class _Inputs:
    families: _Families
    status: Mapping[str, CollectorStatus]
    down_reasons: Mapping[str, str]
    now: float

    def unread(self, collector: str, what: str) -> Finding:
        """The `unknown` finding for a layer whose collector is off, failed or gave nothing."""
        status = self.status.get(collector)
        if status is None:
            text = f"{what} is not read: the {collector} collector is off (--collector.{collector})."
        elif status.success is False:
            text = f"{what} could not be read: the {collector} collector failed: {reason(status.error)}."
        else:
            text = f"{what} could not be read: the {collector} collector reported nothing about it."
        return Finding(what, Severity.UNKNOWN, text)


def _plural(count: float, word: str) -> str:
    number = int(count)
    if number == 1:
        return f"1 {word}"
    return f"{number} {word}{'es' if word.endswith('ss') else 's'}"


def _sshd(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    listeners = families.value("ssh_access_sshd_listeners")
    if listeners is None:
        yield inputs.unread("sshd", "sshd")
    elif listeners > 0:
        yield Finding("sshd", Severity.OK, f"sshd is running ({_plural(listeners, 'listener')}).")
    elif families.value("ssh_access_sshd_socket_activated") == 1:
        yield Finding(
            "sshd",
            Severity.OK,
            "sshd is socket-activated: systemd listens on its port and starts it on the first connection.",
        )
    else:
        yield Finding(
            "sshd",
            Severity.PROBLEM,
            "sshd is not running: no listener process, so nobody can log in. Start it (systemctl start "
            "ssh) and read why it stopped in its journal; `sshd -t` names a config error.",
        )


def _maxstartups(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    startups = families.by("ssh_access_sshd_listener_startups", "listener")
    if not startups:
        if families.value("ssh_access_sshd_listeners") == 0:
            yield Finding("MaxStartups", Severity.UNKNOWN, "MaxStartups: no sshd listener runs to count.")
        else:
            yield inputs.unread("sshd", "MaxStartups")
        return
    starts = families.by("ssh_access_sshd_listener_maxstartups_start", "listener")
    fulls = families.by("ssh_access_sshd_listener_maxstartups_full", "listener")
    for listener, used in sorted(startups.items()):
        start, full = starts.get(listener), fulls.get(listener)
        topic = f"MaxStartups ({listener})"
        if start is None or full is None:
            text = f"{_plural(used, 'unauthenticated connection')}; its MaxStartups limits are not known."
            yield Finding(topic, Severity.UNKNOWN, text)
        elif used >= full:
            yield Finding(
                topic,
                Severity.PROBLEM,
                f"MaxStartups is full: {int(used)} unauthenticated connections of {int(full)}, so sshd "
                "drops every new connection. Find the flooding addresses (top offenders on /metrics) "
                "and block them, or raise MaxStartups.",
            )
        elif used >= start:
            yield Finding(
                topic,
                Severity.WARNING,
                f"MaxStartups is dropping at random: {int(used)} unauthenticated connections, past start "
                f"{int(start)} (full at {int(full)}). Look for a scan or flood in the top offenders.",
            )
        else:
            yield Finding(
                topic,
                Severity.OK,
                f"{_plural(used, 'unauthenticated connection')}, below MaxStartups start {int(start)} "
                f"(full at {int(full)}).",
            )


def _wrappers(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    everyone = families.value("ssh_access_tcpwrappers_sshd_denies_everyone")
    if everyone is None:
        yield inputs.unread("tcpwrappers", "TCP wrappers")
    elif everyone == 0:
        yield Finding("TCP wrappers", Severity.OK, "hosts.allow and hosts.deny let clients reach sshd.")
    elif families.value("ssh_access_tcpwrappers_sshd_honoured") == 0:
        yield Finding(
            "TCP wrappers",
            Severity.WARNING,
            "hosts.deny denies every client of sshd, but this sshd ignores TCP wrappers (no libwrap): the "
            "rule keeps nobody out. Remove it, or use a firewall rule if it was meant.",
        )
    else:
        yield Finding(
            "TCP wrappers",
            Severity.PROBLEM,
            "TCP wrappers deny every client of sshd (a rule like `sshd: ALL` in /etc/hosts.deny, nothing "
            "for sshd in /etc/hosts.allow). Allow your clients in hosts.allow or remove the rule; "
            "`ssh-access-exporter diagnose ADDRESS` names the line.",
        )


def _ban_tools(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    up = families.by("ssh_access_ban_source_up", "source")
    banned = families.summed("ssh_access_banned_addresses", "source")
    for source, name in sorted(BAN_TOOLS.items()):
        status = inputs.status.get(source)
        if status is None:
            continue  # collector off: the tool is not looked for
        state = up.get(source)
        if state is None:
            if status.success is False:
                yield inputs.unread(source, name)
            continue  # not installed on this host
        if state == 1:
            known = families.has("ssh_access_banned_addresses")
            bans = f": {_plural(banned.get(source, 0.0), 'address')} banned now" if known else ""
            yield Finding(name, Severity.OK, f"{name} is up{bans}.")
            continue
        why = inputs.down_reasons.get(source) or (reason(status.error) if status.error else "")
        yield Finding(
            name,
            Severity.PROBLEM,
            f"{name} is installed but unreachable{': ' + why if why else ' (no reason given)'}. It bans "
            f"no new attacker until it runs again: start it and read its log.",
        )
    looked = [inputs.status[source] for source in BAN_TOOLS if source in inputs.status]
    if looked and not up and all(state.success is not False for state in looked):
        yield Finding(
            "Ban tools",
            Severity.OK,
            "No ban tool is installed (fail2ban, sshguard, CrowdSec, DenyHosts): repeated failed logins "
            "ban nobody.",
        )


def _unenforced(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    if not families.has("ssh_access_unenforced_bans"):
        if families.has("ssh_access_ban_source_up"):
            yield inputs.unread("firewall", "Ban enforcement")
        return
    totals = families.summed("ssh_access_unenforced_bans", "source")
    loose = {source: count for source, count in totals.items() if count > 0}
    if not loose:
        yield Finding("Ban enforcement", Severity.OK, "Every current ban is enforced by a firewall rule.")
        return
    for source, count in sorted(loose.items()):
        name = BAN_TOOLS.get(source, source)
        yield Finding(
            f"Ban enforcement ({name})",
            Severity.PROBLEM,
            f"{_plural(count, 'address')} banned by {name} reach sshd all the same: no drop or reject rule "
            f"on sshd's ports uses its bans. Check {name}'s ban action and the firewall.",
        )


def _watchlist(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    if "watchlist" not in inputs.status:
        return
    blocked: dict[str, list[str]] = {}
    for sample in families.samples.get("ssh_access_watched_address_blocked", ()):
        layers = blocked.setdefault(sample.labels.get("address", ""), [])
        if sample.value == 1:
            layers.append(sample.labels.get("layer", ""))
    if not blocked:
        if inputs.status["watchlist"].success is False:
            yield inputs.unread("watchlist", "Watched addresses")
        return  # no watchlist in --config.file
    kept_out = {address: layers for address, layers in blocked.items() if layers}
    for address, layers in kept_out.items():
        yield Finding(
            f"Watched {address}",
            Severity.PROBLEM,
            f"{address} is kept out by {', '.join(layers)}. `ssh-access-exporter diagnose {address}` says "
            "which rule or ban, and how to lift it.",
        )
    free = len(blocked) - len(kept_out)
    if free:
        yield Finding(
            "Watched addresses",
            Severity.OK,
            f"No layer that could be read keeps out {_plural(free, 'watched address')}.",
        )


def _authlog(inputs: _Inputs) -> Iterator[Finding]:
    families = inputs.families
    status = inputs.status.get("authlog")
    if status is None:
        yield inputs.unread("authlog", "Auth log")
        return
    sources = families.by("ssh_access_authlog_source_up", "source")
    read = sorted(source for source, up in sources.items() if up == 1)
    unread = sorted(source for source, up in sources.items() if up != 1)
    why = reason(status.error)
    if not read:
        if not why:  # the collector's own words say which sources and why; else, say it here
            named = f" ({', '.join(unread)} cannot be read)" if unread else ""
            why = f"sshd's log lines reach no source the exporter reads{named}"
        yield Finding(
            "Auth log",
            Severity.PROBLEM,
            f"{why[:1].upper()}{why[1:]}. Failed logins, drops and penalties go uncounted: point "
            "--collector.authlog.files at sshd's log, or run journald.",
        )
        return
    if unread:
        yield Finding(
            "Auth log",
            Severity.WARNING,
            f"Reading {', '.join(read)}; {', '.join(unread)} cannot be read{': ' + why if why else ''}.",
        )
    else:
        yield Finding("Auth log", Severity.OK, f"sshd's log lines are read from {', '.join(read)}.")
    yield from _last_event(inputs)


def _last_event(inputs: _Inputs) -> Iterator[Finding]:
    stamps = inputs.families.by("ssh_access_authlog_last_event_timestamp_seconds", "source")
    if not stamps:
        yield Finding(
            "Last sshd event",
            Severity.UNKNOWN,
            "No sshd event read yet: none was logged since the exporter started reading.",
        )
        return
    source, last = max(stamps.items(), key=lambda item: item[1])
    age = inputs.now - last
    if age < -300:
        yield Finding(
            "Last sshd event",
            Severity.WARNING,
            f"The last sshd event ({source}) is dated {utc(last)}, in the future: check the host's "
            "clock and the log's time zone.",
        )
    elif age > QUIET_AFTER:
        yield Finding(
            "Last sshd event",
            Severity.WARNING,
            f"The last sshd event ({source}) is from {utc(last)}, {age / 3600:.0f} hours ago: check that "
            "sshd still logs there.",
        )
    else:
        text = f"The last sshd event ({source}) is from {utc(last)}, {_ago(age)}."
        yield Finding("Last sshd event", Severity.OK, text)


def _ago(seconds: float) -> str:
    """`45 s ago`, `12 min ago`, `3 h ago`: how long, as a person says it."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def _collectors(status: Mapping[str, CollectorStatus]) -> Iterator[Finding]:
    for name, state in sorted(status.items()):
        took = f"took {state.duration * 1000:.0f} ms at {utc(state.last_scrape)}" if state.last_scrape else ""
        if state.success is True:
            yield Finding(name, Severity.OK, f"ok, {took}.")
        elif state.success is False:
            yield Finding(name, Severity.PROBLEM, f"failed ({took}): {reason(state.error)}.")
        else:
            yield Finding(name, Severity.UNKNOWN, "has not finished a scrape yet.")


_HOST_FINDINGS = (_sshd, _maxstartups, _wrappers, _ban_tools, _unenforced, _watchlist, _authlog)


def host_status(
    families: Iterable[Metric],
    status: Mapping[str, CollectorStatus],
    collected: float | None,
    down_reasons: Mapping[str, str] | None = None,
    now: float | None = None,
) -> HostStatus:
    """The findings of one scrape: its families and each enabled collector's status (a collector missing
    from `status` is off). `down_reasons`: why each unreachable ban tool is down, by source."""
    inputs = _Inputs(_Families.of(families), status, down_reasons or {}, time.time() if now is None else now)
    findings = tuple(finding for derive in _HOST_FINDINGS for finding in derive(inputs))
    return HostStatus(collected, findings, tuple(_collectors(status)))


def down_reasons(collectors: Mapping[str, object]) -> dict[str, str]:
    """Why each unreachable ban tool is down, by source: the reason its BanCollector kept from its last
    read (the same words the log carries)."""
    found: dict[str, str] = {}
    for source in BAN_TOOLS:
        collector = collectors.get(source)
        if isinstance(collector, BanCollector) and collector.state is not None and collector.state.reason:
            found[source] = collector.state.reason
    return found
