"""sshd's effective configuration: from `sshd -T` output, or from the config files when sshd cannot run.

Two parsers, one result. `parse_sshd_t` reads what sshd itself computed (authoritative). The file
parser re-implements what matters of sshd's own reading for a host where `sshd -T` fails (not root, no
host keys, a container without the binary's libraries): `Include` with globs relative to /etc/ssh,
first value wins (the last for the few LAST_WINS keywords, as in sshd), `Match` blocks excluded from
the global view, Match state not leaking out of an included file. Both feed
`EffectiveConfig.from_options`, which applies sshd's defaults.

The file parser also says what sshd itself would refuse to start on, line by line (`ConfigProblem`):
a keyword this OpenSSH release does not know (keywords.py), a keyword without a value, a value of an
option the exporter reports that sshd's own reading rejects. A refused line is skipped and the rest of
the config still applies, so one typo does not hide every effective setting; values are read the way
sshd reads them (`MaxStartups 10:30:60:99` is 10:30:60 to sshd's sscanf, not an error).
"""

from __future__ import annotations

import glob
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.keywords import Keywords, Kind, version_of

# Keywords that accumulate instead of first-wins.
MULTI_VALUED = frozenset(
    {"port", "listenaddress", "hostkey", "hostcertificate", "acceptenv", "setenv", "subsystem", "include"}
)
# Keywords sshd assigns on every line instead of keeping the first value, so the last one wins: servconf.c
# sets them without the "not yet set" check the others have (checked with `sshd -T` on OpenSSH 9.2).
LAST_WINS = frozenset({"maxstartups", "persourcemaxstartups", "persourcenetblocksize"})
_MAX_INCLUDE_DEPTH = 16  # servconf.c SERVCONF_MAX_DEPTH: deeper is fatal for sshd
# A real sshd_config and its drop-ins are a few KiB, a few hundred lines. The caps keep a file that is
# not one (a log, a device's worth of bytes) and an Include fan-out (each file including the next twice)
# from costing a scrape more than about a second (a line costs a few microseconds): sshd itself would
# take as long, the exporter need not. All inclusions together count (a file included twice, twice).
MAX_CONFIG_BYTES = 1 << 20  # one file
MAX_PARSED_BYTES = 4 << 20
MAX_PARSED_LINES = 200_000
MAX_INCLUSIONS = 1024
INT_MAX = 2**31 - 1  # sshd keeps these options in C ints

_DECIMAL = re.compile(r"[0-9]+")


def parse_int(value: str, low: int = 0, high: int = INT_MAX) -> int:
    """A decimal option value in [low, high], as sshd's strtonum() takes it; ValueError otherwise.

    The digit count is checked before int(): a value of thousands of digits is refused in constant time."""
    if _DECIMAL.fullmatch(value) is None or len(value.lstrip("0")) > len(str(high)):
        raise ValueError(f"{value[:40]!r} is not an integer from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{value[:40]!r} is not an integer from {low} to {high}")
    return number


@dataclass(frozen=True)
class MaxStartups:
    """`MaxStartups start:rate:full`; rate is a percentage in sshd's syntax, a ratio here."""

    start: int
    rate: float
    full: int

    @classmethod
    def parse(cls, value: str) -> MaxStartups:
        """sshd's rules: start and full above 0, start not above full, rate 1-100."""
        parts = value.split(":")
        if len(parts) == 1:  # a single N is a hard limit: N:30:N (as `sshd -T` prints it)
            n = parse_int(parts[0], 1)
            return cls(n, 0.30, n)
        if len(parts) != 3:
            raise ValueError(f"MaxStartups {value[:40]!r} is not N or start:rate:full")
        start, rate, full = parse_int(parts[0], 1), parse_int(parts[1], 1, 100), parse_int(parts[2], 1)
        if start > full:
            raise ValueError(f"MaxStartups {value[:40]!r}: start above full")
        return cls(start, rate / 100.0, full)


_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_PART = re.compile(r"([0-9]+)([smhdw]?)", re.IGNORECASE)


def parse_time(value: str) -> float:
    """sshd's time format: `120`, `2m`, `1h30m` -> seconds. As sshd's convtime(), a part or a sum past
    INT_MAX seconds is invalid (a ValueError, never an overflow)."""
    text = value.strip()
    if not text:
        raise ValueError("empty time value")
    pos, total = 0, 0
    while pos < len(text):
        match = _TIME_PART.match(text, pos)
        if not match:
            raise ValueError(f"{value[:40]!r} is not an sshd time value")
        multiplier = _TIME_UNITS[match.group(2).lower()]
        total += parse_int(match.group(1), 0, INT_MAX // multiplier) * multiplier
        if total > INT_MAX:
            raise ValueError(f"{value[:40]!r} is more than {INT_MAX} seconds")
        pos = match.end()
    return float(total)


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
        netblock_v4, netblock_v6 = _netblock(first("persourcenetblocksize", "32:128"))
        # PerSourcePenalties exists from 9.8 on, enabled by default; `sshd -T` prints it when supported.
        penalties_default = "yes" if (version_of(version) or (0, 0)) >= (9, 8) else "no"
        penalties = first("persourcepenalties", penalties_default).lower()
        ports = tuple(parse_int(p, 1, 65535) for p in options.get("port", ["22"]))
        pid_file = first("pidfile", "/run/sshd.pid")
        return cls(
            source=source,
            max_startups=MaxStartups.parse(first("maxstartups", "10:30:100")),
            per_source_max_startups=_per_source_max_startups(per_source),
            per_source_netblock_v4=netblock_v4,
            per_source_netblock_v6=netblock_v6,
            login_grace_time=parse_time(first("logingracetime", "120")),
            max_auth_tries=parse_int(first("maxauthtries", "6")),
            per_source_penalties=penalties not in ("no", "none"),
            ports=ports,
            listen_addresses=tuple(options.get("listenaddress", [])),
            pid_file=None if pid_file.lower() == "none" else pid_file,
            files=files,
        )


def _per_source_max_startups(value: str) -> int | None:
    """`none` (sshd compares exactly) or a count; sshd stores none as INT_MAX and prints INT_MAX as none."""
    if value == "none":
        return None
    count = parse_int(value)
    return None if count == INT_MAX else count


def _netblock(value: str) -> tuple[int, int]:
    """`PerSourceNetBlockSize v4[:v6]`: 0-32 and 0-128. Left out, IPv6's is 0 (one network for every
    IPv6 client): sshd reads both with one sscanf into a pair that starts at 0, as `sshd -T` shows."""
    parts = value.split(":")
    if len(parts) > 2:
        raise ValueError(f"PerSourceNetBlockSize {value[:40]!r} is not v4[:v6]")
    return parse_int(parts[0], 0, 32), parse_int(parts[1], 0, 128) if len(parts) == 2 else 0


def parse_sshd_t(text: str) -> dict[str, list[str]]:
    """`sshd -T` output: one `keyword value...` per line, keywords already lower-case."""
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            options.setdefault(key.lower(), []).append(value.strip())
    return options


# -- what sshd refuses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem met in the config files: where, why, and whether sshd itself would refuse to start
    on it (`refused`) or only the exporter could not read something (an unreadable Include, its own
    budget): the first is a broken config, the second a blind spot."""

    file: str  # host path
    line: int | None  # None: the file as a whole
    reason: str
    refused: bool

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"


# sscanf's %d: blanks, a sign, digits; the conversions stop at the first character that does not fit
_SCANF_INT = r"\s*([+-]?[0-9]+)"
_SCANF_TRIPLE = re.compile(rf"{_SCANF_INT}(?::{_SCANF_INT}(?::{_SCANF_INT})?)?")
_SCANF_PAIR = re.compile(rf"{_SCANF_INT}(?::{_SCANF_INT})?")


def _scanf_ints(pattern: re.Pattern[str], value: str) -> list[int]:
    """The integers sshd's `sscanf(value, "%d:%d...")` converts (its return value is their count);
    anything after them is ignored, as sshd ignores it. A number past a C int is refused."""
    match = pattern.match(value)
    numbers = [int(group) for group in match.groups() if group is not None] if match else []
    if any(abs(number) > INT_MAX for number in numbers):
        raise ValueError("number out of range")
    return numbers


def _read_max_startups(value: str) -> str:
    numbers = _scanf_ints(_SCANF_TRIPLE, value)
    if len(numbers) == 3:
        start, rate, full = numbers
        if start > full or not 1 <= rate <= 100:
            raise ValueError("invalid MaxStartups spec (start:rate:full, start not above full, rate 1-100)")
    elif len(numbers) == 1:
        start, rate, full = numbers[0], 30, numbers[0]
    else:
        raise ValueError("invalid MaxStartups spec (N or start:rate:full)")
    if start <= 0 or full <= 0:
        raise ValueError("invalid MaxStartups spec (start and full must be above 0)")
    return f"{start}:{rate}:{full}"


def _read_netblock(value: str) -> str:
    numbers = _scanf_ints(_SCANF_PAIR, value)
    if not numbers or not 0 <= numbers[0] <= 32 or (len(numbers) == 2 and not 0 <= numbers[1] <= 128):
        raise ValueError("invalid PerSourceNetBlockSize spec (IPv4 0-32[:IPv6 0-128])")
    return f"{numbers[0]}:{numbers[1] if len(numbers) == 2 else 0}"  # as _netblock


def _read_count(value: str) -> str:
    """sshd's atoi_err(): a decimal from 0 to INT_MAX."""
    return str(parse_int(value))


def _read_per_source_max_startups(value: str) -> str:
    return value if value == "none" else _read_count(value)


def _read_time(value: str) -> str:
    return str(int(parse_time(value)))


def _read_port(value: str) -> str:
    """sshd's a2port(): a number from 1 to 65535, or a service name of the services database."""
    if _DECIMAL.fullmatch(value):
        return str(parse_int(value, 1, 65535))
    try:
        return str(socket.getservbyname(value, "tcp"))
    except OSError:
        raise ValueError(f"bad port number {value[:40]!r}") from None


_BRACKETED = re.compile(r"\[([^\]]*)\](?::(.*))?")
_NUMERIC_HOST = re.compile(r"[0-9.]+")


def _read_listen_address(value: str) -> str:
    """`host`, `host:port`, `[host]:port` or a bare IPv6 address. sshd resolves host names (and
    refuses one that does not resolve): names are not looked up here, numeric addresses are checked."""
    bracketed = _BRACKETED.fullmatch(value)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, None
    if port is not None:
        _read_port(port)
    try:
        if ":" in host:
            ipaddress.IPv6Address(host)
        elif _NUMERIC_HOST.fullmatch(host):
            socket.inet_aton(host)  # the forms getaddrinfo() takes: 192.0.2.1, also 127.1
    except (OSError, ValueError):
        raise ValueError(f"bad address {host[:60]!r}") from None
    return value


_PENALTY_TIMES = frozenset(
    {"crash", "authfail", "invaliduser", "noauth", "grace-exceeded", "refuseconnection", "max", "min"}
)
_PENALTY_FIXED = frozenset(
    {"overflow:deny-all", "overflow:permissive", "overflow6:deny-all", "overflow6:permissive"}
)
# convtime_double(): parts of digits with a unit, a fraction only in seconds; possessive (no backtracking)
_DECIMAL_TIME = re.compile(r"(?:[0-9]*+\.[0-9]++s?+|[0-9]++[smhdw]?+)++", re.IGNORECASE)


def _check_penalties(args: list[str]) -> None:
    """`yes`/`no` alone, or `kind:time`, `max-sources4:N`, `overflow:MODE`... (the kinds of every
    release from 9.8 on: one a given release lacks is not refused here)."""
    for index, arg in enumerate(args):
        kind, _, value = arg.partition(":")
        if arg.lower() in ("yes", "no"):
            if index < len(args) - 1:
                raise ValueError(f"PerSourcePenalties {arg!r} must appear alone")
        elif kind in _PENALTY_TIMES and value:
            if _DECIMAL_TIME.fullmatch(value) is None:
                raise ValueError(f"invalid PerSourcePenalties time value {arg[:40]!r}")
        elif kind in ("max-sources4", "max-sources6") and value:
            _read_count(value)
        elif arg not in _PENALTY_FIXED:
            raise ValueError(f"unsupported PerSourcePenalties keyword {arg[:40]!r}")


# The options the exporter reports, each read as sshd reads it: one argument, turned into the form
# EffectiveConfig takes (ValueError: sshd refuses the value).
_SINGLE_VALUE_READERS: dict[str, Callable[[str], str]] = {
    "maxstartups": _read_max_startups,
    "logingracetime": _read_time,
    "maxauthtries": _read_count,
    "persourcemaxstartups": _read_per_source_max_startups,
    "persourcenetblocksize": _read_netblock,
    "port": _read_port,
    "pidfile": str,
}
_READ_KEYWORDS = frozenset({*_SINGLE_VALUE_READERS, "listenaddress", "persourcepenalties"})


def read_option(key: str, args: list[str]) -> list[str]:
    """The values sshd keeps from one line of a keyword the exporter reports (others pass as they are);
    ValueError with sshd's reason when it would refuse the line."""
    reader = _SINGLE_VALUE_READERS.get(key)
    if reader is not None:
        if len(args) > 1:
            raise ValueError("extra arguments at end of line")
        return [reader(args[0])]
    if key == "listenaddress":
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "rdomain"):
            raise ValueError("extra arguments at end of line (ListenAddress ADDRESS [rdomain DOMAIN])")
        return [_read_listen_address(args[0])]
    if key == "persourcepenalties":
        _check_penalties(args)
    return args


# sshd 8.7 and later refuse any keyword without a value before looking it up; older releases refused
# it keyword by keyword (of those the exporter reads, every one)
_ANY_KEYWORD_NEEDS_A_VALUE = (8, 7)


@dataclass
class ParsedFiles:
    """The global (non-Match) options found in the files, the files read, and the problems met.

    `aborted`: the parse stopped before the end (Includes nested deeper than sshd allows, or past the
    budget), so `options` are not the whole config and no effective config is made from them."""

    options: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    errors: list[ConfigProblem] = field(default_factory=list)
    aborted: bool = False

    @property
    def refusals(self) -> list[ConfigProblem]:
        """The problems sshd itself would refuse to start on."""
        return [error for error in self.errors if error.refused]


# One piece of an unquoted stretch: blanks, a run of plain characters, a backslash (with the character
# it escapes, if any), or an opening quote. The alternatives start with different characters and the
# quantifiers are possessive, so matching never backtracks: splitting is linear in the line.
_PIECE = re.compile(r"""[ \t]++|[^ \t"'\\]++|\\[ "'\\]?+|["']""")
_QUOTED = {quote: re.compile(rf"""((?:[^{quote}\\]++|\\["'\\]?+)*+){quote}""") for quote in "\"'"}
_QUOTED_ESCAPE = re.compile(r"""\\(["'\\])""")


def split_args(text: str) -> list[str]:
    """A line's arguments as sshd's argv_split() makes them: blanks separate, single or double quotes
    group, a backslash escapes a quote, a backslash or (outside quotes) a blank, a `#` at the start of
    an argument ends the line. ValueError("invalid quotes") for a quote left open, as sshd reports it."""
    args: list[str] = []
    current: list[str] | None = None  # the argument being built; None between arguments
    pos, end = 0, len(text)
    while pos < end:
        piece = _PIECE.match(text, pos)
        assert piece is not None  # every character starts one of the alternatives
        chunk, pos = piece.group(), piece.end()
        if chunk[0] in " \t":
            if current is not None:
                args.append("".join(current))
                current = None
            continue
        if current is None:
            if chunk[0] == "#":
                break
            current = []
        if chunk in ('"', "'"):
            quoted = _QUOTED[chunk].match(text, pos)
            if quoted is None:
                raise ValueError("invalid quotes")
            current.append(_QUOTED_ESCAPE.sub(r"\1", quoted.group(1)))
            pos = quoted.end()
        elif chunk[0] == "\\":
            current.append(chunk[1:] or "\\")
        else:
            current.append(chunk)
    if current is not None:
        args.append("".join(current))
    return args


_KEYWORD = re.compile(r"([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)")


def _split_line(line: str) -> tuple[str, list[str]] | None:
    """`Keyword value`, `Keyword=value`, quoted arguments; None for blanks and comments. The keyword as
    written (sshd compares keywords without regard to case)."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    match = _KEYWORD.match(stripped)
    if not match:
        raise ValueError(f"cannot parse {stripped[:80]!r}")
    return match.group(1), split_args(match.group(2))


ReadText = Callable[[str], str]


class _ParseStoppedError(Exception):
    """The parse cannot go on (sshd would stop too, or the budget is spent)."""

    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _ConfigParser:
    """One parse of a main file and its Includes. Each file is read once however often it is included
    (as sshd loads each once); every inclusion is parsed, against a total budget."""

    def __init__(self, read_text: ReadText, expand: Callable[[str], list[str]], keywords: Keywords) -> None:
        self.read_text = read_text
        self.expand = expand
        self.keywords = keywords
        self.result = ParsedFiles()
        self._texts: dict[str, str | None] = {}  # None: unreadable, reported once
        self._parsed_bytes = 0
        self._parsed_lines = 0
        self._inclusions = 0

    def run(self, main: str) -> ParsedFiles:
        try:
            self.parse_file(main, True, 0)
        except _ParseStoppedError as exc:
            self.result.errors.append(exc.problem)
            self.result.aborted = True
        return self.result

    def _text(self, path: str) -> str | None:
        if path not in self._texts:
            try:
                self._texts[path] = self.read_text(path)
                self.result.files.append(path)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._texts[path] = None
                reason = str(getattr(exc, "strerror", None) or exc)
                self.result.errors.append(ConfigProblem(path, None, reason, refused=False))
        return self._texts[path]

    def _charge(self, path: str, text: str) -> None:
        self._inclusions += 1
        self._parsed_bytes += len(text)
        self._parsed_lines += text.count("\n")
        if (
            self._inclusions > MAX_INCLUSIONS
            or self._parsed_bytes > MAX_PARSED_BYTES
            or self._parsed_lines > MAX_PARSED_LINES
        ):
            reason = (
                f"Include budget exceeded ({MAX_INCLUSIONS} files, {MAX_PARSED_LINES} lines or "
                f"{MAX_PARSED_BYTES} bytes parsed in all); the rest of the config is not read"
            )
            raise _ParseStoppedError(ConfigProblem(path, None, reason, refused=False))

    def parse_file(self, path: str, active: bool, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            reason = f"Include nested too deep (sshd stops past {_MAX_INCLUDE_DEPTH} levels)"
            raise _ParseStoppedError(ConfigProblem(path, None, reason, refused=True))
        text = self._text(path)
        if text is None:
            return
        self._charge(path, text)
        for number, line in enumerate(text.splitlines(), 1):
            try:
                parsed = _split_line(line)
                if parsed is not None:
                    active = self._apply(*parsed, active, depth)
            except ValueError as exc:  # sshd refuses the line: skipped, the rest still applies
                self.result.errors.append(ConfigProblem(path, number, str(exc), refused=True))

    def _expand(self, pattern: str) -> list[str]:
        """The files an Include names (relative to /etc/ssh, as sshd has it); an error when the pattern
        cannot be followed (a link loop, a link out of the rootfs)."""
        resolved = pattern if pattern.startswith("/") else str(PurePosixPath("/etc/ssh", pattern))
        try:
            return self.expand(resolved)
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "strerror", None) or exc)
            self.result.errors.append(ConfigProblem(resolved, None, reason, refused=False))
            return []

    def _check(self, word: str, args: list[str]) -> Kind:
        """How sshd takes the keyword; ValueError when it refuses the line before reading its value."""
        needs_value = word.lower() in _READ_KEYWORDS or not self.keywords.before(_ANY_KEYWORD_NEEDS_A_VALUE)
        if not args and needs_value:
            raise ValueError(f"no argument after keyword {word}")
        kind = self.keywords.kind(word)
        if kind is Kind.UNKNOWN:
            raise ValueError(f"bad configuration option {word}: unknown to {self.keywords.describe()}")
        return kind

    def _apply(self, word: str, args: list[str], active: bool, depth: int) -> bool:
        """One option line; returns whether the lines after it are global. ValueError: sshd refuses it."""
        options = self.result.options
        key = word.lower()
        if self._check(word, args) is not Kind.OPTION:
            return active  # deprecated or not built in: sshd logs it and goes on
        if key == "match":
            # Any Match ends the global section of this file; `Match all` reopens it.
            return [a.lower() for a in args] == ["all"]
        if key == "include":
            for pattern in args:
                for included in self._expand(pattern):
                    self.parse_file(included, active, depth + 1)  # Match inside it stays inside it
        elif active and args:
            try:
                args = read_option(key, args)
            except ValueError as exc:
                raise ValueError(f"{word}: {exc}") from None
            if key in MULTI_VALUED:
                options.setdefault(key, []).extend(args)
            elif key in LAST_WINS or key not in options:
                options[key] = [" ".join(args)]
        return active


def parse_config_files(
    main: str,
    read_text: ReadText,
    expand: Callable[[str], list[str]],
    keywords: Keywords | None = None,
) -> ParsedFiles:
    """Parse the main file and its Includes. `read_text` and `expand` take host paths (for rootfs);
    `keywords` are those of the sshd that reads the files (default: of any release in the table)."""
    return _ConfigParser(read_text, expand, keywords or Keywords()).run(main)


def read_config_files(paths: HostPaths, main: str, keywords: Keywords | None = None) -> ParsedFiles:
    """The file parser on the host tree under --path.rootfs: regular files only, each at most
    MAX_CONFIG_BYTES, opened inside the rootfs (a FIFO, a device or a link out is an error, not a read)."""

    def read_text(host_path: str) -> str:
        return read_regular_text(paths.root(host_path), MAX_CONFIG_BYTES, paths=paths)

    def expand(host_pattern: str) -> list[str]:
        local = str(paths.root(host_pattern))  # OSError (a link loop): the Include is unreadable
        if not glob.has_magic(host_pattern):
            return [host_pattern] if Path(local).exists() else []
        return sorted(paths.unroot(Path(p)) for p in glob.glob(local))

    return parse_config_files(main, read_text, expand, keywords)
