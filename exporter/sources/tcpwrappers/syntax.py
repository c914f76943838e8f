"""hosts.allow / hosts.deny as Debian's libwrap (tcp-wrappers 7.6.q) reads them: lines into rules.

Checked against the real `tcpdmatch` (tests/integration/test_tcpwrappers_oracle.py), which links the same
libwrap.so.0 as Debian's sshd. Where Debian differs from the upstream man page, Debian wins:
- a line without a newline at the end of the file, or one that does not fit the 2048-byte buffer, makes
  libwrap give up on the file (upstream warns and skips it): hosts.allow stops matching, hosts.deny denies;
- a NUL byte ends a physical line and the next one is joined on (fgets, then strlen);
- `:` inside `[...]` does not split fields (IPv6 patterns), and `\\:` does not protect a `:` in the daemon
  or client list (it only escapes one inside options, which hosts_options(5) documents);
- an option field that is empty or wrong (`sshd: ALL:`, `bogus`, `allow` not last, `keepalive 1`) makes
  libwrap deny the connection, even in hosts.allow.
Nothing here opens a file: `parse_table` takes text, pattern files are read by the reader.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import overload

from exporter.sources.denyhosts import DENY_DELIMITER, ENTRY_DELIMITER
from exporter.sources.sshguard import HOSTS_MARKER

BUFFER = 2048  # libwrap's BUFLEN: a logical line and its newline must fit in BUFFER - 1 bytes
MAX_KEPT_ERRORS = 100  # per file; more are counted, not kept (6 MB of bad lines took 1 GB as objects)
INCOMPLETE = "missing newline or line too long: libwrap ignores the rest"
MAX_RULES = 250_000  # rules held one object each (DenyHosts' runs of pairs are text): at most ~60 MB


class TooManyRulesError(ValueError):
    """More than MAX_RULES rules outside DenyHosts' runs: the file is not evaluated (nor held)."""


SEPARATORS = re.compile(r"[, \t\r\n]+")
_OTHER_SPACE = re.compile(r"[^\S \t\r\n]")  # whitespace str.split knows and libwrap does not
WHITESPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)  # no __dict__: a large file holds many
class Option:
    """One `name value` option of hosts_options(5); `error` is why libwrap rejects it (it then denies)."""

    name: str
    value: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)  # no __dict__: a large file holds many
class Rule:
    """One logical line: `daemon_list : client_list [: option ...]`."""

    file: str
    line: int  # first physical line (1-based)
    text: str  # the logical line as libwrap sees it (continuations joined)
    daemons: tuple[str, ...]
    clients: tuple[str, ...]
    options: tuple[Option, ...] | None  # None: no third field
    marked_by: str | None = None  # "denyhosts" (a `# DenyHosts:` line above it) or "sshguard" (its block)

    @property
    def option_error(self) -> str | None:
        if self.options is None:
            return None
        return next((o.error for o in self.options if o.error), None)

    @property
    def twist(self) -> bool:
        """`twist` replaces the server with a shell command: the client never reaches sshd."""
        return any(o.name == "twist" for o in self.options or ())


@dataclass(frozen=True, slots=True)  # no __dict__: a large file holds many
class ParseError:
    file: str
    line: int
    message: str


# A `DAEMONS: ADDRESS` line read by parse_table's fast path, kept without a Rule object (50,000 of
# them take a while to build): (line, text, daemons, address, marked_by). Its Rule is
# Rule(file, line, text, daemons, (address,), None, marked_by), built only when asked for.
SimpleLine = tuple[int, str, tuple[str, ...], str, str | None]


@dataclass(frozen=True)
class SimpleRun:
    """Consecutive pairs as DenyHosts writes them, `# DenyHosts: <asctime> | D: ADDR` then `D: ADDR`,
    with one daemon D throughout: `count` rules marked by DenyHosts, the first on `line`, then every
    other line. Kept as text (the parsed file's own string when the file is one run) and where each
    rule line starts in it: a SimpleLine is cut from the text when asked for, and not kept (50,000
    of them held 12 MB; their starts take 4 bytes each)."""

    line: int
    text: str
    daemons: tuple[str, ...]
    count: int

    @functools.cached_property
    def starts(self) -> array[int]:
        """Where each rule line starts in `text`, in order (worked out on first use, then kept)."""
        return array("i", (found.start(1) for found in _RUN_RULES.finditer(self.text)))

    def line_at(self, index: int) -> SimpleLine:
        """The `index`-th rule (0 <= index < count) as a SimpleLine; its text is exactly `D: ADDR`."""
        return next(self.iter_lines(index))

    def iter_lines(self, skip: int = 0) -> Iterator[SimpleLine]:
        """Its SimpleLines from the `skip`-th on, one at a time (none of them kept)."""
        text, daemons, first, cut, starts = (
            self.text,
            self.daemons,
            self.line,
            len(self.daemons[0]) + 2,
            self.starts,
        )
        for index in range(skip, self.count):
            start = starts[index]
            rule = text[start : text.index("\n", start)]
            yield (first + 2 * index, rule, daemons, rule[cut:], "denyhosts")

    @property
    def lines(self) -> tuple[SimpleLine, ...]:
        """All of them (built on each call: Table.iter_simple and Table.simple_line do not need this)."""
        return tuple(self.iter_lines())


SimplePart = tuple[SimpleLine, ...] | SimpleRun


def _part_size(part: SimplePart) -> int:
    return part.count if isinstance(part, SimpleRun) else len(part)


@dataclass(frozen=True, eq=False)
class Table:
    """One access control file, parsed. A missing file is an empty table (libwrap's rule).

    The rules are `general` (any rule, as Rule objects) and `compact` (fast-path `DAEMONS: ADDRESS`
    lines, in file order: SimpleLines and runs of DenyHosts pairs). A simple line is read by position
    (`simple_line`, `simple_rule`: the one that decides a verdict is built as a Rule, and kept) or in a
    pass (`iter_simple`, `rules`), which keeps none of them."""

    file: str
    general: tuple[Rule, ...]
    errors: tuple[ParseError, ...]
    stop: ParseError | None = None  # libwrap gives up here: hosts.allow stops matching, hosts.deny denies
    end: ParseState | None = None  # where parsing ended, to go on with appended text (None: cannot)
    compact: tuple[SimplePart, ...] = ()
    more_errors: int = 0  # errors counted beyond those kept in `errors`

    @property
    def error_count(self) -> int:
        return len(self.errors) + self.more_errors

    @property
    def simple(self) -> tuple[SimpleLine, ...]:
        """Every simple line, built on each call (and not kept): the index and the summary read them
        through iter_simple and simple_line instead."""
        if len(self.compact) == 1 and isinstance(self.compact[0], tuple):
            return self.compact[0]
        return tuple(self.iter_simple())

    def iter_simple(self, start: int = 0) -> Iterator[SimpleLine]:
        """The simple lines from position `start` on, one at a time (a run's are cut from its text)."""
        position = 0
        for part in self.compact:
            size = _part_size(part)
            if position + size > start:
                skip = max(0, start - position)
                yield from part.iter_lines(skip) if isinstance(part, SimpleRun) else part[skip:]
            position += size

    @functools.cached_property
    def _part_starts(self) -> tuple[int, ...]:
        """The position of each compact part's first simple line."""
        return tuple(itertools.accumulate((_part_size(p) for p in self.compact[:-1]), initial=0))

    def simple_line(self, position: int) -> SimpleLine:
        """The simple line at `position` (0-based, in file order): a binary search for its part."""
        if position < 0:
            raise IndexError(position)
        index = bisect.bisect_right(self._part_starts, position) - 1
        part, within = self.compact[index], position - self._part_starts[index]
        return part.line_at(within) if isinstance(part, SimpleRun) else part[within]

    @property
    def simple_count(self) -> int:
        return sum(_part_size(p) for p in self.compact)

    def simple_daemons(self, start: int = 0) -> dict[tuple[str, ...], int]:
        """How many simple lines from position `start` on have each daemon list (runs not read)."""
        counts: dict[tuple[str, ...], int] = {}
        position = 0
        for part in self.compact:
            size = _part_size(part)
            if position + size > start:
                if isinstance(part, SimpleRun):
                    number = size - max(0, start - position)
                    counts[part.daemons] = counts.get(part.daemons, 0) + number
                else:
                    for line in part[max(0, start - position) :]:
                        counts[line[2]] = counts.get(line[2], 0) + 1
            position += size
        return counts

    @functools.cached_property
    def _built(self) -> dict[int, Rule]:
        return {}

    def simple_rule(self, position: int) -> Rule:
        """The simple line at `position` as a Rule (built once)."""
        rule = self._built.get(position)
        if rule is None:
            rule = self._built[position] = self.as_rule(self.simple_line(position))
        return rule

    def as_rule(self, simple: SimpleLine) -> Rule:
        """One of its simple lines as the Rule the general parser would have made of it."""
        line, text, daemons, address, marked = simple
        return Rule(self.file, line, text, daemons, (address,), None, marked)

    @property
    def rules(self) -> Sequence[Rule]:
        """Every rule in file order; the simple lines are built as Rule objects while they are passed
        over, and not kept (TableRules)."""
        return TableRules(self) if self.compact else self.general

    @property
    def rule_count(self) -> int:
        return len(self.general) + self.simple_count

    def __eq__(self, other: object) -> bool:
        """Same file, rules, errors, stop and end, however the rules are held."""
        if not isinstance(other, Table):
            return NotImplemented
        return (self.file, self.errors, self.more_errors, self.stop, self.end, self.rules) == (
            other.file,
            other.errors,
            other.more_errors,
            other.stop,
            other.end,
            other.rules,
        )

    __hash__ = object.__hash__


class TableRules(Sequence[Rule]):
    """A table's rules in file order, its simple lines built as Rule objects one at a time as a pass
    reaches them: the watchlist's pass over every rule's clients (a network of more than 256 addresses)
    kept 50,000 DenyHosts entries as 20 MB of Rules when they were built once and held. A pass builds
    them again (about 50 ms for 50,000); indexing makes the whole tuple (only tests do)."""

    __slots__ = ("_table",)

    def __init__(self, table: Table) -> None:
        self._table = table

    def __len__(self) -> int:
        return self._table.rule_count

    def __iter__(self) -> Iterator[Rule]:
        table = self._table
        built = map(table.as_rule, table.iter_simple())
        return heapq.merge(table.general, built, key=attrgetter("line"))

    def __eq__(self, other: object) -> bool:
        """Equal to the same rules, held as a tuple or as another table's."""
        if not isinstance(other, TableRules | tuple):
            return NotImplemented
        return tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # equal to a tuple, and not hashed like one

    @overload
    def __getitem__(self, index: int) -> Rule: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Rule]: ...

    def __getitem__(self, index: int | slice) -> Rule | Sequence[Rule]:
        return tuple(self)[index]


@dataclass(frozen=True)
class ParseState:
    """Between two complete lines: what parsing an appended part needs to know."""

    lines: int = 0  # physical lines read so far
    mark: str | None = None  # the `# DenyHosts:` line just before, if any
    in_sshguard: bool = False
    held: int = field(default=0, compare=False)  # rules held one object each (MAX_RULES, across appends)


def split_at(text: str, delimiter: str) -> tuple[str, str | None]:
    """libwrap's split_at: the first `delimiter` outside `[...]`; (head, rest) or (text, None)."""
    index = text.find(delimiter)
    while index != -1:
        if text.count("[", 0, index) == text.count("]", 0, index):  # libwrap's bracket depth is 0 here
            return text[:index], text[index + 1 :]
        index = text.find(delimiter, index + 1)
    return text, None


def tokens(field: str) -> tuple[str, ...]:
    """libwrap's strtok on `, \\t\\r\\n`; str.split is the fast path when no other whitespace occurs."""
    if _OTHER_SPACE.search(field) is None:
        return tuple(field.replace(",", " ").split())
    return tuple(t for t in SEPARATORS.split(field) if t)


_C_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # isspace() in the C locale, what fscanf's %s stops at


def pattern_tokens(text: str) -> tuple[str, ...]:
    """The patterns of a `/path` pattern file as libwrap's fscanf("%s") reads them: separated by C
    whitespace only (str.split would also cut at \\x1c or U+00A0), each a C string ending at its
    first NUL (a token that starts with one is empty, and is dropped)."""
    cut = (token.partition("\0")[0] for token in _C_SPACE.split(text))
    return tuple(token for token in cut if token)


def logical_lines(text: str, first: int = 1) -> Iterator[tuple[int, str, bool]]:
    """(first physical line, text, complete) with backslash-newline joined away, as libwrap's xgets does.

    Not complete: the line does not end in a newline (end of file) or does not fit libwrap's 2048-byte
    buffer; Debian's libwrap then ignores the rest of the file and treats the file as an error."""
    for number, line, complete, _ in _joined_lines(text, first):
        yield number, line, complete


def _joined_lines(text: str, first: int) -> Iterator[tuple[int, str, bool, bool]]:
    """logical_lines, and whether a NUL byte cut the line; read one physical line at a time, so that
    a 60 MB file of continuations is not first split into millions of strings.

    libwrap's xgets measures what fgets read with strlen: a NUL ends the physical line there, and
    with no newline seen the next physical line is read onto the same logical line (tcpdmatch:
    `sshd: 192.0.2.1<NUL>x` then ` 198.51.100.1` denies both addresses)."""
    pending, start, cut = "", first, False
    position, number, size = 0, first, len(text)
    while position < size:
        newline = text.find("\n", position)
        if not pending:
            start = number
        end = size if newline == -1 else newline
        if len(pending) + end - position + 1 > BUFFER - 1 or newline == -1:
            yield start, pending + text[position : min(end, position + BUFFER)], False, cut
            return
        line = text[position:newline]
        position, number = newline + 1, number + 1
        nul = line.find("\0")
        if nul != -1:
            pending, cut = pending + line[:nul], True
        elif line.endswith("\\"):
            pending += line[:-1]
        else:
            yield start, pending + line, True, cut
            pending, cut = "", False
    if pending or cut:
        yield start, pending, False, cut


# hosts_options(5): name -> (value: "need" | "optional" | "none", must be last)
OPTION_TABLE: dict[str, tuple[str, bool]] = {
    "user": ("need", False),
    "group": ("need", False),
    "umask": ("need", False),
    "linger": ("need", False),
    "keepalive": ("none", False),
    "spawn": ("need", False),
    "twist": ("need", True),
    "rfc931": ("optional", False),
    "setenv": ("need", False),
    "nice": ("optional", False),
    "severity": ("need", False),
    "allow": ("none", True),
    "deny": ("none", True),
    "banners": ("need", False),
}
_FACILITIES = frozenset(
    (
        *("auth", "authpriv", "cron", "daemon", "kern", "lpr", "mail", "news", "syslog", "user", "uucp"),
        *("ftp", *(f"local{n}" for n in range(8))),
        *("emerg", "alert", "crit", "err", "error", "warning", "warn", "notice", "info", "debug"),
    )
)
_INTEGER = re.compile(r"\s*[-+]?\d+")


def _option_fields(text: str) -> list[str]:
    """Options split at `:` not preceded by a backslash; `\\:` becomes `:` (options.c get_field)."""
    fields = re.split(r"(?<!\\):", text)
    return [f.replace("\\:", ":") for f in fields]


def _value_error(name: str, value: str | None) -> str | None:
    """What libwrap's option function rejects (it then denies the connection)."""
    if value is None:
        return None
    if name == "severity":
        parts = value.lower().split(".")
        return None if len(parts) <= 2 and all(p in _FACILITIES for p in parts) else f"bad severity {value!r}"
    if name in ("nice", "linger", "rfc931"):
        return None if _INTEGER.match(value) else f"bad {name} value {value!r}"
    if name == "umask":
        match = re.match(r"\s*([0-7]+)", value)
        return None if match and int(match.group(1), 8) <= 0o777 else f"bad umask value {value!r}"
    if name in ("user", "group"):
        # tcpdmatch denies these; a real sshd would switch to that user before it can serve anyone
        return f"option {name} makes sshd drop its privileges"
    return None


def parse_options(text: str) -> tuple[Option, ...]:
    """The third field and beyond of a rule, with libwrap's checks applied in order."""
    fields = _option_fields(text)
    options: list[Option] = []
    for index, raw in enumerate(fields):
        field = raw.strip(WHITESPACE)
        match = re.match(r"([^ \t\r\n=]*)[ \t\r\n]*=?[ \t\r\n]*(.*)", field, re.DOTALL)
        assert match is not None
        name, value = match.group(1).lower(), match.group(2) or None
        error: str | None = None
        spec = OPTION_TABLE.get(name)
        last = index == len(fields) - 1
        if not name:
            error = "missing option name"
        elif spec is None:
            error = f"bad option name {name!r}"
        elif value is None and spec[0] == "need":
            error = f"option {name} requires a value"
        elif value is not None and spec[0] == "none":
            error = f"option {name} requires no value"
        elif spec[1] and not last:
            error = f"option {name} must be at the end"
        else:
            error = _value_error(name, value)
        options.append(Option(name, value, error))
    return tuple(options)


class _LineParser:
    """One file's general lines, fed one logical line at a time by parse_lines and parse_table: the
    rules, the errors (the first MAX_KEPT_ERRORS kept, the rest counted) and what a line carries to
    the next (the `# DenyHosts:` mark above it, whether it is inside sshguard's block)."""

    def __init__(self, file: str, state: ParseState) -> None:
        self.file = file
        self.rules: list[Rule] = []
        self.errors: list[ParseError] = []
        self.more_errors = 0
        self.mark, self.in_sshguard = state.mark, state.in_sshguard
        self.stop: ParseError | None = None
        self.held = state.held  # rules held one object each, general or simple

    def hold(self) -> None:
        """Counts one more rule held; memory stays bounded whatever the file holds."""
        self.held += 1
        if self.held > MAX_RULES:
            raise TooManyRulesError(f"more than {MAX_RULES} rules besides DenyHosts' entries: not evaluated")
        self._tokens: dict[str, tuple[str, ...]] = {}  # a daemon or client list repeats: one tuple

    def error(self, number: int, message: str) -> None:
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(ParseError(self.file, number, message))
        else:
            self.more_errors += 1

    def feed(self, text: str, first: int) -> bool:
        """The logical lines of `text` (its first physical line numbered `first`); False once libwrap
        gives up on the file (an incomplete line), which is then `stop`."""
        for number, line, complete, cut in _joined_lines(text, first):
            if cut:
                self.error(number, "NUL byte: libwrap reads the line up to it and joins the next line on")
            if not complete:
                self.stop = ParseError(self.file, number, INCOMPLETE)
                return False
            self.line(number, line)
        return True

    def _tokens_of(self, field: str) -> tuple[str, ...]:
        found = self._tokens.get(field)
        if found is None:
            found = self._tokens[field] = tokens(field)
        return found

    def line(self, number: int, line: str) -> None:
        if line.startswith(HOSTS_MARKER):
            self.in_sshguard = not self.in_sshguard
        if line.startswith("#") or not line.strip(WHITESPACE):
            self.mark = line if line.startswith(DENY_DELIMITER) else None
            return
        daemons, rest = split_at(line, ":")
        if rest is None:
            self.error(number, 'missing ":" separator')
            self.mark = None
            return
        clients, option_text = split_at(rest, ":")
        marked = "sshguard" if self.in_sshguard else None
        if self.mark is not None and self.mark.partition(ENTRY_DELIMITER)[2].strip() == line.strip():
            marked = "denyhosts"
        options = None if option_text is None else parse_options(option_text)
        self.hold()
        rule = Rule(
            self.file, number, line, self._tokens_of(daemons), self._tokens_of(clients), options, marked
        )
        if rule.option_error:
            self.error(number, rule.option_error)
        self.rules.append(rule)
        self.mark = None

    def table(self, lines: int, compact: tuple[SimplePart, ...] = ()) -> Table:
        """The table so far; `lines`: physical lines read, where an appended part would go on."""
        end = None if self.stop else ParseState(lines, self.mark, self.in_sshguard, self.held)
        errors = (*self.errors, self.stop) if self.stop else tuple(self.errors)
        return Table(self.file, tuple(self.rules), errors, self.stop, end, compact, self.more_errors)


def parse_lines(text: str, file: str, state: ParseState | None = None) -> Table:
    """Rules of one access control file, line by line (the general parser behind parse_table);
    TooManyRulesError past MAX_RULES.

    Comment lines start with `#` in column 0 only. state: go on after lines already parsed (text is
    what was appended to them)."""
    state = state or ParseState()
    parser = _LineParser(file, state)
    parser.feed(text, state.lines + 1)
    return parser.table(state.lines + text.count("\n"))


def extend_table(table: Table, appended: str) -> Table:
    """The table of the file with `appended` added at its end (DenyHosts appends): parses only that part."""
    assert table.end is not None, "the table ended in a broken line"
    more = parse_table(appended, table.file, table.end)
    kept = table.errors + (more.errors[:-1] if more.stop else more.errors)  # the stop goes last
    errors = kept[:MAX_KEPT_ERRORS] + ((more.stop,) if more.stop else ())
    return Table(
        table.file,
        table.general + more.general,
        errors,
        more.stop,
        more.end,
        table.compact + more.compact,
        table.more_errors + more.more_errors + max(0, len(kept) - MAX_KEPT_ERRORS),
    )


# The fast path: the lines DenyHosts writes, classified by one regex over the whole text. Each match is
# one of: a run of blank lines and plain comments; a rule `DAEMONS: ADDRESS` (optionally with the
# `# DenyHosts:` comment above it); or anything else, with its continuation lines, which goes through
# parse_lines. Lengths are bounded so that no fast line comes near libwrap's buffer; a line with a NUL
# byte is never a fast one (libwrap joins the next line onto it).
_ADDRESS = r"[0-9.]{1,64}|\[[0-9A-Fa-f:.]{1,64}\]"
_NOT_MARKER = f"(?!{re.escape(HOSTS_MARKER[1:])})(?!{re.escape(DENY_DELIMITER[1:])})"
_DENYHOSTS_MARK = rf"{re.escape(DENY_DELIMITER)} [^\n|\\\x00]{{0,1024}}{re.escape(ENTRY_DELIMITER)}"
# DenyHosts' pairs in a row, one daemon name throughout, each rule line what its mark names: all marked.
# The repeat is possessive: nothing follows it to backtrack for, and a greedy one saved its groups for
# every pair (32 MB of regex stack for 50,000 pairs, freed after; possessive: 3 KB, and twice as fast).
_RUN = (
    rf"(?P<run>{_DENYHOSTS_MARK}(?P<first>(?P<run_daemons>[A-Za-z0-9_-]{{1,64}}): (?:{_ADDRESS}))\n"
    rf"(?P=first)\n(?:{_DENYHOSTS_MARK}(?P<next>(?P=run_daemons): (?:{_ADDRESS}))\n(?P=next)\n)*+)"
)
_RUN_RULES = re.compile(r"[^\n]*\n([^\n:]*: ([^\n]*))\n")  # a run's (rule line, address)
_FAST_LINES = re.compile(
    rf"(?P<skip>(?:(?:[ \t\r]{{0,1024}}|#{_NOT_MARKER}(?:[^\n\x00]{{0,1024}}[^\n\\\x00])?)\n)+)"
    rf"|{_RUN}"
    rf"|(?:(?P<mark>{re.escape(DENY_DELIMITER)}(?:[^\n\x00]{{0,1024}}[^\n\\\x00])?)\n)?"
    rf"(?P<rule>(?!#)(?P<daemons>[^\n:\[\]\\\x00]{{0,512}}):"
    rf"[ \t\r]{{0,64}}(?P<address>{_ADDRESS})[ \t\r]{{0,64}})\n"
    # with the lines libwrap joins on (after a backslash or a NUL); possessive: no state kept per line
    r"|(?P<other>(?:[^\n]*\\\n|[^\n\x00]*\x00[^\n]*\n)*+[^\n]*(?:\n|\Z))"
)


def parse_table(text: str, file: str, state: ParseState | None = None) -> Table:
    """Rules of one access control file: parse_lines' result, the simple lines classified in C.

    Blank lines, `#` comments and `DAEMONS: ADDRESS` lines (all DenyHosts writes) are read from one
    regex match each (finditer: one match at a time); any other line, with its continuations, goes
    through the general parser with the state reached, and so does a `###sshguard###` marker or a
    `# DenyHosts:` line not followed by a rule. The `DAEMONS: ADDRESS` lines are kept compact in
    `Table.compact`, not built as Rule objects. state: go on after lines already parsed (text is what
    was appended to them). TooManyRulesError past MAX_RULES."""
    state = state or ParseState()
    parser = _LineParser(file, state)
    compact: list[SimplePart] = []
    simple: list[SimpleLine] = []
    lines = state.lines
    daemon_lists: dict[str, tuple[str, ...]] = {}
    for match in _FAST_LINES.finditer(text):  # one match at a time: findall held 10 strings per line
        kind = match.lastgroup
        if kind == "rule":
            mark_text, rule_text, field, address = match.group("mark", "rule", "daemons", "address")
            if mark_text:
                parser.mark = mark_text
                lines += 1
            lines += 1
            daemons = daemon_lists.get(field)
            if daemons is None:
                daemons = daemon_lists[field] = tokens(field)
            marked = "sshguard" if parser.in_sshguard else None
            if (
                parser.mark is not None
                and parser.mark.partition(ENTRY_DELIMITER)[2].strip() == rule_text.strip()
            ):
                marked = "denyhosts"
            parser.hold()
            simple.append((lines, rule_text, daemons, address, marked))
            parser.mark = None
        elif kind == "skip":
            lines += match.group("skip").count("\n")
            parser.mark = None
        elif kind == "run":
            if simple:
                compact.append(tuple(simple))
                simple = []
            run = match.group("run")
            count = run.count("\n") // 2
            compact.append(SimpleRun(lines + 2, run, (match.group("run_daemons"),), count))
            lines += 2 * count
            parser.mark = None
        elif kind == "other":
            other = match.group("other")
            start, end = match.span()
            single = 0 < end - start < BUFFER - 1 and text.find("\n", start, end) == end - 1
            if single and not other.endswith("\\\n") and "\0" not in other:
                lines += 1  # one whole line (the common case, taken without a generator)
                parser.line(lines, other[:-1])
                continue
            if not parser.feed(other, lines + 1):
                break
            lines += other.count("\n")
    if simple:
        compact.append(tuple(simple))
    return parser.table(lines, tuple(compact))
