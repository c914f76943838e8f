"""`ssh-access-exporter diagnose ADDRESS [--json]`: does this address (or network) get into sshd? If not, why?

Every layer of the access model (TCP wrappers, the ban tools, the firewall, sshd's PerSourcePenalties)
gives its verdict with the evidence and, for people, what to do. Causes that hit every client come
after the layers: sshd not running (unless systemd listens for it: socket activation starts sshd on
the first connection), MaxStartups full now, TCP wrappers denying every client; and, named but keeping
no one out by themselves, MaxStartups saturated or drops in the log recently, a config change sshd
has not reloaded, each config line sshd would refuse (`sshd would refuse its config: FILE:LINE: REASON`,
in the first line too when sshd is not running: it is why), fail2ban-server unable to start.

The answer is one of three, never "fine" for what could not be seen:
  gets_in   exit 0: every layer that applies was read, none denies, and sshd serves;
  kept_out  exit 1: a layer denies, or a host-wide cause refuses every client;
  unknown   exit 3: nothing read denies, but a layer (or sshd's state) could not be read, or the TCP
            wrappers' verdict hangs on the address's name (never looked up);
and exit 2 on an error (bad address, bad flags or config).

--json prints one object, contract keys exactly:
  {"address", "blocked", "layers": [{"layer", "verdict", "evidence", "detail"}]}
then "outcome": "gets_in" | "kept_out" | "unknown", "unread": [{"layer", "reason"}] (each layer whose
answer is not known, `sshd` when its state could not be read; a tcp_wrappers verdict that hangs on a
name lookup is the one when the address has no name, listed here with the names that would change it), and
"host": {"sshd_running": true|false|null, "socket_activated": true|false|null, "causes": [...],
"keeps_everyone_out": [...], "evidence": [...]}; sshd_running is true for a socket-activated sshd with
no process yet (it answers); keeps_everyone_out holds the causes of `causes` that refuse every client.
"blocked" is true when a layer surely denies (not the host-wide causes: "outcome" says kept_out then).
"remedy": {LAYER: [step, ...]} holds what to do for each layer whose verdict is deny (the text's `to do`).

document() builds that object once: the CLI prints it, and the server's /diagnose (--web.enable-diagnose,
exporter.web.diagnose) sends it, read through the server's own Context. With --fleet=PROMETHEUS_URL the
question goes to every exporter Prometheus scrapes instead (exporter.fleet).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from exporter import fleet
from exporter.config import ConfigError
from exporter.flagparse import FlagParser
from exporter.options import DIAGNOSE, CollectorSwitch, Options, add_host_flags
from exporter.registry import Context, registrations
from exporter.sources.access import HostFacts, LayerVerdict, Network, parse_target, verdicts
from exporter.sources.access.layers import PenaltyLog
from exporter.sources.sshd.processes import ListenerTitle
from exporter.sources.sshd.reader import ConfigState, SshdSnapshot
from exporter.sources.tcpwrappers.reader import TcpWrappersSnapshot

EXIT_GETS_IN = 0
EXIT_KEPT_OUT = 1
EXIT_ERROR = 2
EXIT_UNKNOWN = 3
MAX_REFUSALS = 5  # config lines named one by one; the rest are counted
EXIT_CODES = {"gets_in": EXIT_GETS_IN, "kept_out": EXIT_KEPT_OUT, "unknown": EXIT_UNKNOWN}


@dataclass(frozen=True)
class HostCauses:
    """What keeps everyone out (`refusing`), and what else about the host bears on every client."""

    sshd_running: bool | None  # None: could not tell
    causes: tuple[str, ...] = ()  # every finding, refusing ones included
    evidence: tuple[str, ...] = field(default=())
    socket_activated: bool | None = None  # None: could not tell
    refusing: tuple[str, ...] = ()  # the causes that refuse every client now
    config_refusals: tuple[str, ...] = ()  # lines sshd would refuse: why a stopped sshd does not start
    error: str = ""  # why sshd's state could not be read


def _full(title: ListenerTitle | None) -> bool:
    return title is not None and bool(title.full) and title.startups >= title.full


def _sshd_causes(snapshot: SshdSnapshot, config: list[str]) -> tuple[list[str], list[str]]:
    """(every finding about sshd, `config`'s refusals after whether it runs; those refusing every client).
    A listener with MaxStartups full refuses every client only when no other listener accepts: a
    second sshd (another port or namespace, a test's) that is full keeps no one out of the first."""
    causes: list[str] = []
    refusing: list[str] = []
    if not snapshot.listeners and not snapshot.socket_activated:
        stopped = "sshd is not running: no listener process"
        causes.append(stopped)
        refusing.append(stopped)
    causes.extend(config)
    full = [state for state in snapshot.listeners if _full(state.listener.title)]
    everyone = bool(full) and len(full) == len(snapshot.listeners)  # another listener still accepts
    for state in snapshot.listeners:
        title = state.listener.title
        name = state.listener.config
        if title is not None and state in full:
            found = f"MaxStartups full ({name}): {title.startups} unauthenticated connections, "
            if everyone:
                found += "every new connection is refused"
                refusing.append(found)
            else:
                found += "every new connection to this listener is refused (another sshd listener accepts)"
            causes.append(found)
        elif title is not None and title.start and title.startups >= title.start:
            causes.append(f"MaxStartups saturated ({name}): {title.startups} unauthenticated connections "
                          f"from start {title.start}: new connections are dropped at random")  # fmt: skip
        if state.reload_pending:
            causes.append(f"config reload pending ({name}): its files changed after sshd started; "
                          "reload it (systemctl reload ssh) once `sshd -t` passes")  # fmt: skip
    return causes, refusing


def _config_refusals(config: ConfigState) -> list[str]:
    """The lines sshd would refuse (file, line, reason, from the snapshot); else `sshd -t`'s own summary
    when it refused the config. A running sshd keeps its old config: these stop the next start."""
    problems = config.refusals
    found = [f"sshd would refuse its config: {problem}" for problem in problems[:MAX_REFUSALS]]
    if len(problems) > MAX_REFUSALS:
        found.append(f"sshd would refuse {len(problems) - MAX_REFUSALS} more line(s) of its config")
    if not found and config.valid is False:
        found.append(f"sshd would refuse its config: {config.sshd_t_error or 'sshd -t fails'}")
    return found


def _wrappers_cause(wrappers: TcpWrappersSnapshot | None) -> str:
    """hosts.allow/hosts.deny leave no client a way in (the tcpwrappers collector's own summary)."""
    if wrappers is None or wrappers.error or (wrappers.libwrap and not wrappers.honoured):
        return ""  # unread, or sshd is not linked with libwrap (the tcp_wrappers layer's own rule)
    if not wrappers.summary.denies_everyone:
        return ""
    return "TCP wrappers deny every client: hosts.allow and hosts.deny leave no one a way in to sshd"


def host_causes(
    snapshot: SshdSnapshot | None,
    log: PenaltyLog | None,
    error: str = "",
    facts: HostFacts | None = None,
) -> HostCauses:
    """The host's causes for every client: from sshd's snapshot (None: unread, `error` says why), the
    MaxStartups drops of the log, and from the layers' facts what hits everyone (wrappers denying all)
    or explains a layer that could not be read (fail2ban-server unable to start)."""
    causes: list[str] = []
    refusing: list[str] = []
    running: bool | None = None
    activated: bool | None = None
    config: list[str] = []
    if snapshot is None:
        causes.append(f"sshd's state could not be read: {error}")
    else:
        activated = snapshot.socket_activated
        running = bool(snapshot.listeners) or activated  # socket-activated: systemd accepts for sshd
        config = _config_refusals(snapshot.config)
        causes, refusing = _sshd_causes(snapshot, config)
    if facts is not None:
        if wrapped := _wrappers_cause(facts.wrappers):
            causes.append(wrapped)
            refusing.append(wrapped)
        if facts.fail2ban is not None and facts.fail2ban.down_cause:
            causes.append(f"fail2ban cannot start: {facts.fail2ban.down_cause}")
    evidence: tuple[str, ...] = ()
    if log is not None:
        drops = [line for line in log.lines if line.event.event == "maxstartups_drop"]
        if drops:
            minutes = round(log.window / 60)
            causes.append(f"{len(drops)} connection(s) dropped for MaxStartups in the last {minutes} minutes")
            evidence = tuple(d.evidence for d in drops[-5:])
    return HostCauses(
        running,
        tuple(causes),
        evidence,
        activated,
        tuple(refusing),
        tuple(config),
        error if snapshot is None else "",
    )


def unread(layers: Sequence[LayerVerdict], host: HostCauses) -> list[tuple[str, str]]:
    """(layer, why) for each answer not known for sure; `sshd` when its state could not be read."""
    found = [(v.layer, reason) for v in layers if (reason := v.unread) is not None]
    if host.sshd_running is None:
        found.append(("sshd", host.error or "its state could not be read"))
    return found


def outcome(layers: Sequence[LayerVerdict], host: HostCauses) -> str:
    """kept_out when anything surely keeps it out; else unknown when anything could not be seen."""
    if any(v.blocks for v in layers) or host.refusing:
        return "kept_out"
    return "unknown" if unread(layers, host) else "gets_in"


def headline(address: str, layers: Sequence[LayerVerdict], host: HostCauses) -> str:
    """One line a person (or a log) can act on: the outcome, and what it rests on."""
    denying = [v.layer for v in layers if v.blocks]
    parts = []
    if denying:
        parts.append(f"BLOCKED by {', '.join(denying)}")
    if host.refusing:
        why = host.config_refusals if host.sshd_running is False else ()
        parts.append(f"KEPT OUT: {'; '.join((*host.refusing, *why))}")
    if not parts:
        missing = unread(layers, host)
        if not missing:
            return f"{address}: GETS IN: no layer blocks it and sshd serves"
        listed = ", ".join(f"{layer} ({reason})" for layer, reason in missing)
        parts.append(f"NOT BLOCKED by what could be read; could not read: {listed}")
    return f"{address}: {'; '.join(parts)}"


def document(address: str, layers: Sequence[LayerVerdict], host: HostCauses) -> dict[str, Any]:
    """The answer as one JSON-able object: what `--json` prints and what the server's /diagnose sends."""
    return {
        "address": address,
        "blocked": any(v.blocks for v in layers),
        "layers": [
            {"layer": v.layer, "verdict": v.verdict, "evidence": list(v.evidence), "detail": v.detail}
            for v in layers
        ],
        "outcome": outcome(layers, host),
        "unread": [{"layer": layer, "reason": reason} for layer, reason in unread(layers, host)],
        "host": {
            "sshd_running": host.sshd_running,
            "socket_activated": host.socket_activated,
            "causes": list(host.causes),
            "keeps_everyone_out": list(host.refusing),
            "evidence": list(host.evidence),
        },
        "remedy": {v.layer: list(v.remedy) for v in layers if v.verdict == "deny" and v.remedy},
    }


def to_json(answer: dict[str, Any]) -> str:
    return json.dumps(answer, indent=2)


def as_json(address: str, layers: Sequence[LayerVerdict], host: HostCauses) -> str:
    return to_json(document(address, layers, host))


def as_text(address: str, layers: Sequence[LayerVerdict], host: HostCauses, out: TextIO) -> None:
    out.write(headline(address, layers, host) + "\n\n")
    for verdict in layers:
        out.write(f"  {verdict.layer:<13} {verdict.verdict:<9} {verdict.detail}\n")
        for line in verdict.evidence:
            out.write(f"      evidence: {line}\n")
        for line in verdict.lookups:
            out.write(f"      but:      {line}\n")
        if verdict.verdict == "deny":
            for step in verdict.remedy:
                out.write(f"      to do:    {step}\n")
    if not layers:
        out.write("  (no layer present on this host)\n")
    running = {True: "running", False: "NOT running", None: "unknown"}[host.sshd_running]
    if host.socket_activated:
        running += " (socket-activated: systemd listens on its port and starts sshd per connection)"
    out.write(f"\nhost: sshd {running}\n")
    for cause in host.causes:
        out.write(f"  ! {cause}\n")
    for line in host.evidence:
        out.write(f"      evidence: {line}\n")


def parser(collectors: Iterable[CollectorSwitch]) -> argparse.ArgumentParser:
    result = FlagParser(
        prog="ssh-access-exporter diagnose",
        description="Does ADDRESS get into sshd? Each layer's verdict, its evidence and what to do, then the "
        "causes that keep every client out. Exit 0: gets in (every layer read, none denies, sshd serves); "
        "1: kept out (a layer denies, or sshd is not running, MaxStartups is full, TCP wrappers deny "
        "everyone); 3: nothing read denies, but a layer could not be read (the first line says which "
        "and why); 2: error. With --fleet, every exporter Prometheus scrapes is asked instead: exit 1 "
        "when a host keeps it out, 0 when none does, 3 when none does but a host could not be asked or "
        "is not sure.",
        allow_abbrev=False,
    )
    result.add_argument("address", metavar="ADDRESS", help="an IPv4/IPv6 address or CIDR network")
    result.add_argument("--json", action="store_true", help="print the verdicts as one JSON object")
    add_host_flags(result, collectors, DIAGNOSE)
    fleet.add_flags(result)
    return result


def diagnose(context: Context, network: Network) -> tuple[list[LayerVerdict], HostCauses]:
    """Every layer's verdict on `network` and the host's causes, read through `context` (the CLI's own,
    or the server's: its one SshdReader and options)."""
    # Unlike the watchlist at every scrape, diagnose asks fail2ban-client why the server is down.
    options = dataclasses.replace(
        context.options.access(), fail2ban_config_dir=context.options.fail2ban.config_dir
    )
    facts = context.access(options).read([network])
    layers = verdicts(facts, network)
    try:
        snapshot, error = context.sshd().read(), ""
    except (OSError, ValueError) as exc:
        snapshot, error = None, str(exc)
    return layers, host_causes(snapshot, facts.penalties, error, facts)


def diagnosis(context: Context, address: str) -> dict[str, Any]:
    """`diagnose ADDRESS --json`'s object (ValueError when `address` is no address or network)."""
    layers, host = diagnose(context, parse_target(address))
    return document(address, layers, host)


def main(argv: Sequence[str]) -> int:
    switches = registrations()
    args = parser(switches).parse_args(argv)
    if args.fleet is not None:
        return fleet.main(args.address, fleet.FleetOptions.from_namespace(args), args.json)
    try:
        network = parse_target(args.address)
    except ValueError:
        print(f"ssh-access-exporter diagnose: {args.address!r} is not an address or network", file=sys.stderr)
        return EXIT_ERROR
    try:
        context = Context(Options.from_namespace(args, switches))
    except ConfigError as exc:
        print(f"ssh-access-exporter diagnose: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        layers, host = diagnose(context, network)
    finally:
        context.close()
    if args.json:
        print(as_json(args.address, layers, host))
    else:
        as_text(args.address, layers, host, sys.stdout)
    return EXIT_CODES[outcome(layers, host)]
