"""`ssh-access-exporter diagnose ADDRESS [--json]`: why is this address (or network) kept out of sshd?

Every layer of the access model (TCP wrappers, the ban tools, the firewall, sshd's PerSourcePenalties)
gives its verdict with the evidence and, for people, what to do. Causes that hit every client come
after the layers: sshd not running (unless systemd listens for it: socket activation starts sshd on
the first connection), MaxStartups saturated now or drops in the log recently, a config change sshd
has not reloaded. They do not make the address "blocked": that is the layers' answer.

--json prints one object, contract keys exactly:
  {"address", "blocked", "layers": [{"layer", "verdict", "evidence", "detail"}]}
plus "host": {"sshd_running": true|false|null, "socket_activated": true|false|null, "causes": [...],
"evidence": [...]}; sshd_running is true for a socket-activated sshd with no process yet (it answers).
Exit 0 when no layer denies, 1 when one does, 2 on an error (bad address, unreadable config).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from exporter.config import ConfigError
from exporter.options import CollectorSwitch, Options, add_host_flags
from exporter.registry import Context, registrations
from exporter.sources.access import AccessReader, LayerVerdict, parse_target, verdicts
from exporter.sources.access.layers import PenaltyLog
from exporter.sources.sshd.reader import SshdSnapshot

EXIT_CLEAR = 0
EXIT_BLOCKED = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class HostCauses:
    """What keeps everyone out, not this address alone."""

    sshd_running: bool | None  # None: could not tell
    causes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = field(default=())
    socket_activated: bool | None = None  # None: could not tell


def host_causes(snapshot: SshdSnapshot | None, log: PenaltyLog | None, error: str = "") -> HostCauses:
    causes: list[str] = []
    running: bool | None = None
    activated: bool | None = None
    if snapshot is None:
        causes.append(f"sshd's state could not be read: {error}")
    else:
        activated = snapshot.socket_activated
        running = bool(snapshot.listeners) or activated  # socket-activated: systemd accepts for sshd
        if not running:
            causes.append("sshd is not running: no listener process")
        for state in snapshot.listeners:
            title = state.listener.title
            name = state.listener.config
            if title is not None and title.full and title.startups >= title.full:
                causes.append(f"MaxStartups full ({name}): {title.startups} unauthenticated connections, "
                              f"every new connection is refused")  # fmt: skip
            elif title is not None and title.start and title.startups >= title.start:
                causes.append(f"MaxStartups saturated ({name}): {title.startups} unauthenticated connections "
                              f"from start {title.start}: new connections are dropped at random")  # fmt: skip
            if state.reload_pending:
                causes.append(f"config reload pending ({name}): its files changed after sshd started; "
                              "reload it (systemctl reload ssh) once `sshd -t` passes")  # fmt: skip
    evidence: tuple[str, ...] = ()
    if log is not None:
        drops = [line for line in log.lines if line.event.event == "maxstartups_drop"]
        if drops:
            minutes = round(log.window / 60)
            causes.append(f"{len(drops)} connection(s) dropped for MaxStartups in the last {minutes} minutes")
            evidence = tuple(d.evidence for d in drops[-5:])
    return HostCauses(running, tuple(causes), evidence, activated)


def as_json(address: str, layers: Sequence[LayerVerdict], host: HostCauses) -> str:
    return json.dumps(
        {
            "address": address,
            "blocked": any(v.blocks for v in layers),
            "layers": [
                {"layer": v.layer, "verdict": v.verdict, "evidence": list(v.evidence), "detail": v.detail}
                for v in layers
            ],
            "host": {
                "sshd_running": host.sshd_running,
                "socket_activated": host.socket_activated,
                "causes": list(host.causes),
                "evidence": list(host.evidence),
            },
        },
        indent=2,
    )


def as_text(address: str, layers: Sequence[LayerVerdict], host: HostCauses, out: TextIO) -> None:
    denying = [v.layer for v in layers if v.blocks]
    head = f"BLOCKED by {', '.join(denying)}" if denying else "not blocked by any layer"
    out.write(f"{address}: {head}\n\n")
    for verdict in layers:
        out.write(f"  {verdict.layer:<13} {verdict.verdict:<9} {verdict.detail}\n")
        for line in verdict.evidence:
            out.write(f"      evidence: {line}\n")
        if verdict.blocks:
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
    result = argparse.ArgumentParser(
        prog="ssh-access-exporter diagnose",
        description="Why is ADDRESS kept out of sshd? Each layer's verdict, its evidence and what to do. "
        "Exit 0: not blocked, 1: blocked, 2: error.",
        allow_abbrev=False,
    )
    result.add_argument("address", metavar="ADDRESS", help="an IPv4/IPv6 address or CIDR network")
    result.add_argument("--json", action="store_true", help="print the verdicts as one JSON object")
    add_host_flags(result, collectors)
    return result


def main(argv: Sequence[str]) -> int:
    switches = registrations()
    args = parser(switches).parse_args(argv)
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
        reader = AccessReader(context.paths, context.options.access(), context.sshd_ports)
        facts = reader.read([network])
        layers = verdicts(facts, network)
        try:
            snapshot, error = context.sshd().read(), ""
        except (OSError, ValueError) as exc:
            snapshot, error = None, str(exc)
    finally:
        context.close()
    host = host_causes(snapshot, facts.penalties, error)
    if args.json:
        print(as_json(args.address, layers, host))
    else:
        as_text(args.address, layers, host, sys.stdout)
    return EXIT_BLOCKED if any(v.blocks for v in layers) else EXIT_CLEAR
