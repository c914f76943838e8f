"""Which TCP ports a fail2ban action blocks, from its `port` setting (`ssh`, `22,2222`, `1000:2000`).

The setting comes from fail2ban-server's reply: a port is 0-65535 in ASCII digits or a service name,
a token too long to be either is passed over (the range pattern would backtrack over it), and ranges
are merged before they are expanded, so a spec costs at most 65,536 set entries however it repeats.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths

MAX_PORT = 65535
MAX_SERVICES_BYTES = 4 * 1024 * 1024  # Debian's /etc/services is 12 KB
_MAX_TOKEN = 64  # longer than any service name or range of them
_SPLIT = re.compile(r"[\s,]+")
_RANGE = re.compile(r"^(\w[\w.+-]*)[:-](\w[\w.+-]*)$")


def parse_services(text: str) -> dict[str, int]:
    """/etc/services: TCP service names and aliases -> port."""
    services: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or not fields[1].endswith("/tcp"):
            continue
        port = _number(fields[1].split("/", 1)[0])
        if port is None:
            continue
        for name in (fields[0], *fields[2:]):
            services.setdefault(name, port)
    return services


def read_services(path: Path, paths: HostPaths | None = None) -> dict[str, int]:
    try:
        return parse_services(read_regular_text(path, MAX_SERVICES_BYTES, paths=paths))
    except OSError:
        return {"ssh": 22}  # the one name that matters here, when the host has no services file


def _number(token: str) -> int | None:
    """A port number in ASCII digits, 0-65535; None otherwise (int() would take `²` or 5,000 digits)."""
    if not (token.isascii() and token.isdigit() and len(token) <= 5):
        return None
    port = int(token)
    return port if port <= MAX_PORT else None


def _port(token: str, services: dict[str, int]) -> int | None:
    return _number(token) if token.isdigit() else services.get(token)


def _union(ranges: list[tuple[int, int]]) -> frozenset[int]:
    """The ports of the ranges, each port expanded once however often the ranges overlap."""
    ports: set[int] = set()
    end = -1  # ports up to here are in already
    for low, high in sorted(ranges):
        if high > end:
            ports.update(range(max(low, end + 1), high + 1))
            end = high
    return frozenset(ports)


@functools.cache
def all_ports() -> frozenset[int]:
    """Every port: 4 MB as a set, so made on first use, not at import by every exporter."""
    return frozenset(range(MAX_PORT + 1))


def parse_port_spec(spec: str, services: dict[str, int]) -> frozenset[int] | None:
    """The ports a spec names; None when no part of it can be resolved."""
    ranges: list[tuple[int, int]] = []
    resolved = False
    for token in filter(None, _SPLIT.split(spec.strip())):
        if len(token) > _MAX_TOKEN:
            continue
        if token.lower() in ("all", "any"):
            return all_ports()
        single = _port(token, services)
        if single is not None:
            ranges.append((single, single))
            resolved = True
            continue
        match = _RANGE.match(token)
        if match:
            low, high = (_port(part, services) for part in match.groups())
            if low is not None and high is not None:
                ranges.append((low, high))
                resolved = True
    return _union(ranges) if resolved else None


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
