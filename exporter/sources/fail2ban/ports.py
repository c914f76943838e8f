"""Which TCP ports a fail2ban action blocks, from its `port` setting (`ssh`, `22,2222`, `1000:2000`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

ALL_PORTS = frozenset(range(65536))
_SPLIT = re.compile(r"[\s,]+")
_RANGE = re.compile(r"^(\w[\w.+-]*)[:-](\w[\w.+-]*)$")


def parse_services(text: str) -> dict[str, int]:
    """/etc/services: TCP service names and aliases -> port."""
    services: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or not fields[1].endswith("/tcp"):
            continue
        try:
            port = int(fields[1].split("/", 1)[0])
        except ValueError:
            continue
        for name in (fields[0], *fields[2:]):
            services.setdefault(name, port)
    return services


def read_services(path: Path) -> dict[str, int]:
    try:
        return parse_services(path.read_text(errors="replace"))
    except OSError:
        return {"ssh": 22}  # the one name that matters here, when the host has no services file


def _port(token: str, services: dict[str, int]) -> int | None:
    if token.isdigit():
        return int(token)
    return services.get(token)


def parse_port_spec(spec: str, services: dict[str, int]) -> frozenset[int] | None:
    """The ports a spec names; None when no part of it can be resolved."""
    ports: set[int] = set()
    resolved = False
    for token in filter(None, _SPLIT.split(spec.strip())):
        if token.lower() in ("all", "any"):
            return ALL_PORTS
        single = _port(token, services)
        if single is not None:
            ports.add(single)
            resolved = True
            continue
        match = _RANGE.match(token)
        if match:
            low, high = (_port(part, services) for part in match.groups())
            if low is not None and high is not None:
                ports.update(range(low, high + 1))
                resolved = True
    return frozenset(ports) if resolved else None


def covers(specs: Iterable[str], wanted: frozenset[int], services: dict[str, int]) -> bool | None:
    """True when the actions' ports together include every wanted port; None when none can be read."""
    blocked: set[int] = set()
    known = False
    for spec in specs:
        ports = parse_port_spec(spec, services)
        if ports is not None:
            blocked |= ports
            known = True
    if not known or not wanted:
        return None
    return wanted <= blocked
