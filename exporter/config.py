"""The YAML file behind --config.file: the watchlist, addresses and networks that must always get in
(a list flags express badly).

Validation is strict: an unknown key or a bad value is an error that names the key, so a typo never
silently turns a check off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.sources.host.files import CONFIG_FILE_MAX_BYTES, read_regular_file
from exporter.sources.host.yamltext import RepeatedKeyError, YAMLSyntaxError, parse_yaml

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


@dataclass(frozen=True)
class FileConfig:
    """The validated content of --config.file (empty when no file is given)."""

    watchlist: tuple[Network, ...] = field(default_factory=tuple)
    watchlist_entries: tuple[str, ...] = ()  # the watchlist as written, for the `address` label


def _parse_watchlist(value: Any) -> tuple[Network, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("watchlist: must be a list of addresses or CIDR networks")
    first_index: dict[Network, int] = {}  # a hash lookup per entry: 100,000 entries check in linear time
    for index, item in enumerate(value):
        try:
            network = ipaddress.ip_network(str(item).strip(), strict=False)
        except ValueError:
            raise ConfigError(f"watchlist[{index}]: {item!r} is not an address or CIDR network") from None
        earlier = first_index.setdefault(network, index)
        if earlier != index:  # the same series twice would be an invalid exposition
            raise ConfigError(f"watchlist[{index}]: {item!r} repeats watchlist[{earlier}]")
    return tuple(first_index)


_KEYS = {"watchlist": _parse_watchlist}


def _yaml_problem(exc: YAMLSyntaxError) -> str:
    """`line 3, column 5: PROBLEM (CONTEXT from line L, column C)`, 1-based as editors count.

    PyYAML's own text spans four lines and names the file `<unicode string>`; its error (the cause)
    keeps the position and the problem apart, so the message can name the real file and one place."""
    cause = exc.__cause__
    mark, problem = getattr(cause, "problem_mark", None), getattr(cause, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, begun = getattr(cause, "context", None), getattr(cause, "context_mark", None)
    if context and begun is not None and (begun.line, begun.column) != (mark.line, mark.column):
        return f"{text} ({context} from line {begun.line + 1}, column {begun.column + 1})"
    return f"{text} ({context})" if context else text


def load_yaml_mapping(text: str, origin: str, keys: Iterable[str]) -> dict[str, Any] | None:
    """YAML text that must be a mapping of known keys (None for an empty file); errors name the key."""
    known = list(keys)
    try:
        data = parse_yaml(text, refuse_repeated_keys=True)
    except RepeatedKeyError as exc:
        raise ConfigError(f"{exc.path}: given twice in {origin} (the last would silently win)") from None
    except YAMLSyntaxError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: top level must be a mapping of keys ({', '.join(known)})")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key in {origin} (known: {', '.join(known)})")
    return data


def parse_config(text: str, origin: str = "config") -> FileConfig:
    """Validate YAML text into a FileConfig."""
    data = load_yaml_mapping(text, origin, _KEYS)
    if data is None:
        return FileConfig()
    watchlist = _parse_watchlist(data.get("watchlist"))
    return FileConfig(watchlist, tuple(str(item).strip() for item in data.get("watchlist") or ()))


def load_config(path: Path | None) -> FileConfig:
    """Read and validate the file; no file means defaults."""
    if path is None:
        return FileConfig()
    try:
        text = read_regular_file(path, CONFIG_FILE_MAX_BYTES).decode("utf-8")  # a FIFO must not hang start-up
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config.file: cannot read {path}: {exc}") from None
    return parse_config(text, origin=str(path))
