"""sshd's effective configuration: from `sshd -T` output, or from the config files when sshd cannot run.

Two parsers, one result. `parse_sshd_t` reads what sshd itself computed (authoritative). The file
parser re-implements what matters of sshd's own reading for a host where `sshd -T` fails (not root, no
host keys, a container without the binary's libraries): `Include` with globs relative to /etc/ssh,
first value wins, `Match` blocks excluded from the global view, Match state not leaking out of an
included file. Both feed `EffectiveConfig.from_options`, which applies sshd's defaults.
"""

from __future__ import annotations

import glob
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporter.paths import HostPaths

# Keywords that accumulate instead of first-wins.
MULTI_VALUED = frozenset(
    {"port", "listenaddress", "hostkey", "hostcertificate", "acceptenv", "setenv", "subsystem", "include"}
)
_MAX_INCLUDE_DEPTH = 16  # sshd's own limit


@dataclass(frozen=True)
class MaxStartups:
    """`MaxStartups start:rate:full`; rate is a percentage in sshd's syntax, a ratio here."""

    start: int
    rate: float
    full: int

    @classmethod
    def parse(cls, value: str) -> MaxStartups:
        parts = value.split(":")
        if len(parts) == 1:  # a single N is a hard limit: N:30:N (as `sshd -T` prints it)
            n = int(parts[0])
            return cls(n, 0.30, n)
        if len(parts) != 3:
            raise ValueError(f"MaxStartups {value!r} is not N or start:rate:full")
        start, rate, full = (int(p) for p in parts)
        return cls(start, rate / 100.0, full)


_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_PART = re.compile(r"(\d+)([smhdw]?)", re.IGNORECASE)


def parse_time(value: str) -> float:
    """sshd's time format: `120`, `2m`, `1h30m` -> seconds."""
    text = value.strip()
    pos, total = 0, 0
    while pos < len(text):
        match = _TIME_PART.match(text, pos)
        if not match:
            raise ValueError(f"{value!r} is not an sshd time value")
        total += int(match.group(1)) * _TIME_UNITS[match.group(2).lower()]
        pos = match.end()
    if not text:
        raise ValueError("empty time value")
    return float(total)


def _version_tuple(version: str | None) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@dataclass(frozen=True)
class EffectiveConfig:
    """The settings this exporter reports, with sshd's defaults applied."""

    source: str  # "sshd_t" (sshd -T) or "file" (our parser)
    max_startups: MaxStartups
    per_source_max_startups: int | None  # None: no per-source limit
    per_source_netblock_v4: int
    per_source_netblock_v6: int
    login_grace_time: float
    max_auth_tries: int
    per_source_penalties: bool
    ports: tuple[int, ...]
    listen_addresses: tuple[str, ...]
    pid_file: str | None
    files: tuple[str, ...] = field(default=())  # host paths of the files read (main + Includes)

    @classmethod
    def from_options(
        cls,
        options: dict[str, list[str]],
        source: str,
        version: str | None = None,
        files: tuple[str, ...] = (),
    ) -> EffectiveConfig:
        def first(key: str, default: str) -> str:
            values = options.get(key)
            return values[0] if values else default

        per_source = first("persourcemaxstartups", "none")
        netblock = first("persourcenetblocksize", "32:128").split(":")
        # PerSourcePenalties exists from 9.8 on, enabled by default; `sshd -T` prints it when supported.
        penalties_default = "yes" if _version_tuple(version) >= (9, 8) else "no"
        penalties = first("persourcepenalties", penalties_default).lower()
        ports = tuple(int(p) for p in options.get("port", ["22"]))
        pid_file = first("pidfile", "/run/sshd.pid")
        return cls(
            source=source,
            max_startups=MaxStartups.parse(first("maxstartups", "10:30:100")),
            per_source_max_startups=None if per_source.lower() == "none" else int(per_source),
            per_source_netblock_v4=int(netblock[0]),
            per_source_netblock_v6=int(netblock[1]) if len(netblock) > 1 else 128,
            login_grace_time=parse_time(first("logingracetime", "120")),
            max_auth_tries=int(first("maxauthtries", "6")),
            per_source_penalties=penalties not in ("no", "none"),
            ports=ports,
            listen_addresses=tuple(options.get("listenaddress", [])),
            pid_file=None if pid_file.lower() == "none" else pid_file,
            files=files,
        )


def parse_sshd_t(text: str) -> dict[str, list[str]]:
    """`sshd -T` output: one `keyword value...` per line, keywords already lower-case."""
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            options.setdefault(key.lower(), []).append(value.strip())
    return options


@dataclass
class ParsedFiles:
    """The global (non-Match) options found in the files, the files read, and the problems met."""

    options: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _split_line(line: str) -> tuple[str, list[str]] | None:
    """`Keyword value`, `Keyword=value`, quoted arguments; None for blanks and comments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    match = re.match(r"([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)", stripped)
    if not match:
        raise ValueError(f"cannot parse {stripped[:80]!r}")
    try:
        args = shlex.split(match.group(2), comments=True)
    except ValueError:
        args = match.group(2).split()
    return match.group(1).lower(), args


ReadText = Callable[[str], str]


def parse_config_files(main: str, read_text: ReadText, expand: Callable[[str], list[str]]) -> ParsedFiles:
    """Parse the main file and its Includes. `read_text` and `expand` take host paths (for rootfs)."""
    result = ParsedFiles()

    def parse_file(path: str, active: bool, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            result.errors.append(f"{path}: Include nested too deep")
            return
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(f"{path}: {exc}")
            return
        result.files.append(path)
        for number, line in enumerate(text.splitlines(), 1):
            try:
                parsed = _split_line(line)
            except ValueError as exc:
                result.errors.append(f"{path}:{number}: {exc}")
                continue
            if parsed is None:
                continue
            key, args = parsed
            if key == "match":
                # Any Match ends the global section of this file; `Match all` reopens it.
                active = [a.lower() for a in args] == ["all"]
            elif key == "include":
                for pattern in args:
                    resolved = pattern if pattern.startswith("/") else str(PurePosixPath("/etc/ssh", pattern))
                    for included in expand(resolved):
                        parse_file(included, active, depth + 1)  # Match inside it stays inside it
            elif active and args:
                if key in MULTI_VALUED:
                    result.options.setdefault(key, []).extend(args)
                elif key not in result.options:
                    result.options[key] = [" ".join(args)]

    parse_file(main, True, 0)
    return result


def read_config_files(paths: HostPaths, main: str) -> ParsedFiles:
    """The file parser on the host tree under --path.rootfs."""

    def read_text(host_path: str) -> str:
        return paths.root(host_path).read_text(encoding="utf-8", errors="replace")

    def expand(host_pattern: str) -> list[str]:
        local = str(paths.root(host_pattern))
        if not glob.has_magic(host_pattern):
            return [host_pattern] if Path(local).exists() else []
        return sorted(paths.unroot(Path(p)) for p in glob.glob(local))

    return parse_config_files(main, read_text, expand)
