"""Which rule of hosts.allow / hosts.deny decides a connection, as libwrap decides it, without any lookup.

libwrap resolves the client's name (and asks its ident server) only when a pattern needs it. We never
do: a pattern that would need a name, an ident user or a netgroup gives MAYBE, and three-valued logic
(EXCEPT included) carries it to the rule. The first rule that surely matches decides; rules before it
that may match make the verdict `depends_on_dns` only when their verdict differs from it. `if_unresolved`
is what libwrap decides when no lookup answers (names "unknown"), which is what `tcpdmatch` prints inside
a network namespace without DNS: tests compare the two. `turns` are the rules a lookup could bring in
(or, for the rule that decides without one, leave out) to change that outcome, so a person is told
which names would matter instead of a bare "depends".

`twist` replaces sshd by a shell command on the client's socket: the client never reaches sshd, so for
sshd it counts as deny (tcpdmatch prints "delegated").
"""

from __future__ import annotations

import bisect
import functools
import heapq
import ipaddress
import itertools
import re
import socket
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Literal

from exporter.sources.tcpwrappers.syntax import Rule, Table, split_at

NO, MAYBE, YES = 0, 1, 2
UNKNOWN = "unknown"  # libwrap's name for what it could not find out
VerdictName = Literal["allow", "deny", "depends_on_dns", "unknown"]
_HOSTNAME_LITERALS = re.compile(r"[A-Za-z0-9._*?-]*")
_INADDR_CHARS = frozenset("0123456789./")
_INET_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_LEADING_INT = re.compile(r"[ \t]*([-+]?)0*([0-9]+)")
_ADDRESS_TOKEN = re.compile(r"[0-9.]+|\[[0-9A-Fa-f:.]+\]")
_MAPPED = bytes(10) + b"\xff\xff"
PatternFiles = Callable[[str], Sequence[str] | None]  # host path -> its whitespace-separated patterns
MAX_PATTERN_FILES = 64  # files one `/path` pattern may bring in, itself included


@dataclass(frozen=True)
class ClientInfo:
    """The connection as libwrap sees it. `server_address` None: not known (daemon@host is then unknown)."""

    address: str
    server_address: str | None = None


@dataclass(frozen=True)
class LookupTurn:
    """A rule whose match hangs on a lookup, and the outcome it gives instead of `if_unresolved`.

    matches True: the outcome when a lookup makes the rule match; False: when a lookup answers and the
    rule (which decides when nothing answers) no longer matches. `tokens`: the client patterns that need
    the lookup (empty when only sshd's own address, `daemon@host`, is unknown)."""

    rule: Rule
    verdict: Literal["allow", "deny"]
    tokens: tuple[str, ...]
    matches: bool = True


@dataclass(frozen=True)
class Verdict:
    """The outcome for one client: the deciding rule (None: no rule matched, access granted)."""

    verdict: VerdictName
    rule: Rule | None = None
    if_unresolved: Literal["allow", "deny"] = "allow"  # when no name, ident or netgroup lookup answers
    maybe: tuple[Rule, ...] = ()  # earlier rules that match only if a lookup says so
    twist: bool = False
    unresolved_rule: Rule | None = field(default=None, compare=False)  # decides when no lookup answers
    turns: tuple[LookupTurn, ...] = field(default=(), compare=False)  # what a lookup could change

    @property
    def file(self) -> str | None:
        return self.rule.file if self.rule else None

    @property
    def line(self) -> int | None:
        return self.rule.line if self.rule else None

    @property
    def rule_text(self) -> str | None:
        return self.rule.text if self.rule else None


def canonical_address(address: str) -> str:
    """The address as libwrap prints it (inet_ntop): lower-case, compressed, `::ffff:a.b.c.d` for mapped."""
    address = address.strip("[]")
    try:
        return socket.inet_ntoa(socket.inet_pton(socket.AF_INET, address))
    except OSError:
        pass
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, address))
    except OSError:
        raise ValueError(f"not an IP address: {address!r}") from None


def _unmapped(address: str) -> str:
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return address


@functools.lru_cache(maxsize=4096)
def _wildcard_pieces(pattern: str) -> tuple[tuple[re.Pattern[str], int], ...]:
    """The pattern cut at its `*`s: each piece as a fixed-length regex (`?` is any one character)."""
    return tuple(
        (re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.DOTALL), len(piece))
        for piece in pattern.split("*")
    )


def wildcard_match(text: str, pattern: str) -> bool:
    """libwrap's match_pattern_ylo: `*` and `?`, case-sensitive; its verdicts without its cost.

    libwrap (like a regex `.*.*X`) backtracks through every way to share the text among the `*`s:
    `**********X` against an IPv6 address took 24 s. Between two `*`s a piece has a fixed length, so the
    leftmost place it fits leaves the most text to the pieces after it: the first piece must start the
    text, the last must end it, and each middle piece is searched for once, left to right."""
    (head, head_length), *rest = _wildcard_pieces(pattern)
    if not rest:
        return head.fullmatch(text) is not None
    *middle, (tail, tail_length) = rest
    start, end = head_length, len(text) - tail_length
    if start > end or head.match(text) is None or tail.fullmatch(text, end) is None:
        return False
    for piece, _ in middle:
        found = piece.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True


def string_match(token: str, text: str) -> bool:
    """libwrap's string_match: wildcards, `.suffix`, ALL, KNOWN, `prefix.`, `[v6]`, exact."""
    text = _unmapped(text)
    if "*" in token or "?" in token:
        return wildcard_match(text, token)
    lowered, low_text = token.lower(), text.lower()
    if token.startswith("."):
        return len(text) > len(token) and low_text.endswith(lowered)
    if lowered == "all":
        return True
    if lowered == "known":
        return low_text != UNKNOWN
    if token.endswith("."):
        return low_text.startswith(lowered)
    if token.startswith("[") and token.endswith("]"):
        try:
            return ipaddress.IPv6Address(token[1:-1]) == ipaddress.IPv6Address(text)
        except ValueError:
            return False
    return lowered == low_text


def _dotted_quad(text: str) -> int | None:
    """libwrap's dot_quad_addr: four parts as inet_addr reads them (`010` is octal 8, `0x10` hex 16).

    255.255.255.255 is INADDR_NONE, which libwrap takes for an error."""
    parts = text.split(".")
    if len(parts) != 4 or not all(_INET_PART.fullmatch(p) for p in parts):
        return None
    if any(
        len(p) > 3 and p[0] != "0" for p in parts
    ):  # a decimal part over 999 (int() of 5,000 digits raises)
        return None
    values = [int(p, 16) if p[:2] in ("0x", "0X") else int(p, 8) if p[0] == "0" else int(p) for p in parts]
    if any(v > 255 for v in values):
        return None
    value = int.from_bytes(bytes(values), "big")
    return None if value == 0xFFFFFFFF else value


def _atoi(text: str) -> int:
    """C's atoi for a prefix length: ASCII digits only, and any number too long to be one is -1 (a pattern
    file's token can hold 5,000 digits, which int() refuses)."""
    found = _LEADING_INT.match(text)
    if found is None:
        return 0
    sign, digits = found.groups()
    return -1 if len(digits) > 4 else int(sign + digits)


def masked_match(net: str, mask: str, address: str) -> bool:
    """`n.n.n.n/m.m.m.m`, `n.n.n.n/len` (1..32, net must have no host bits) and `[v6]/len` (0..128)."""
    address = _unmapped(address)
    if ":" not in address:
        addr, net_value = _dotted_quad(address), _dotted_quad(net)
        if addr is None or net_value is None:
            return False
        if "." in mask:
            mask_value = _dotted_quad(mask)
        else:
            bits = _atoi(mask)
            mask_value = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if 1 <= bits <= 32 else None
        return mask_value is not None and addr & mask_value == net_value
    if not (net.startswith("[") and net.endswith("]")):
        return False
    bits = _atoi(mask)
    if not 0 <= bits <= 128:
        return False
    try:
        network = int(ipaddress.IPv6Address(net[1:-1]))
        value = int(ipaddress.IPv6Address(address))
    except ValueError:
        return False
    shift = 128 - bits
    return network >> shift == value >> shift


def address_span(token: str) -> tuple[int, int, int] | None:
    """(version, first, last) of the addresses a `net/mask` client token matches, as masked_match decides,
    when they form one range; None for any other token (or a mask with holes, or a net with host bits
    under a v4 mask, which matches nothing)."""
    net, mask = split_at(token, "/")
    if mask is None:
        return None
    if net.startswith("[") and net.endswith("]"):
        bits = _atoi(mask)
        if not 0 <= bits <= 128:
            return None
        try:
            network = int(ipaddress.IPv6Address(net[1:-1]))
        except ValueError:
            return None
        host = (1 << (128 - bits)) - 1
        return 6, network & ~host, network | host
    net_value = _dotted_quad(net)
    if net_value is None:
        return None
    if "." in mask:
        mask_value = _dotted_quad(mask)
    else:
        bits = _atoi(mask)
        mask_value = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if 1 <= bits <= 32 else None
    if mask_value is None or (mask_value | (mask_value - 1)) & 0xFFFFFFFF != 0xFFFFFFFF:  # holes
        return None
    host = ~mask_value & 0xFFFFFFFF
    return None if net_value & host else (4, net_value, net_value | host)


def address_value(address: str) -> tuple[int, int] | None:
    """(version, value) of a client address for address_span's ranges (after unmapping); None for one
    masked_match never matches (255.255.255.255 is libwrap's INADDR_NONE)."""
    address = _unmapped(address)
    if ":" not in address:
        value = _dotted_quad(address)
        return None if value is None else (4, value)
    try:
        return 6, int(ipaddress.IPv6Address(address))
    except ValueError:
        return None


def _not_inaddr(token: str) -> bool:
    return any(c not in _INADDR_CHARS for c in token)


def _could_name_host(token: str) -> bool:
    """Whether a host name (letters, digits, `.`, `-`, `_`) can match the token at all."""
    return _not_inaddr(token) and _HOSTNAME_LITERALS.fullmatch(token) is not None


class PatternExpander:
    """`/path` patterns as the patterns they stand for, every file they reach read once.

    libwrap matches each pattern of the file, and follows a `/path` inside it to any depth (a chain
    of 12 files matches as one); a file naming itself makes it recurse until it crashes. Matching
    against every pattern reachable is the same answer without the recursion: a file naming itself 8
    times cost 8^8 matches when each reference was followed again. At most MAX_PATTERN_FILES files."""

    def __init__(self, pattern_files: PatternFiles) -> None:
        self._read = pattern_files
        self._expanded: dict[str, tuple[str, ...]] = {}

    def __call__(self, path: str) -> tuple[str, ...]:
        """The patterns that are not `/path` themselves, from `path` and the files it reaches."""
        found = self._expanded.get(path)
        if found is None:
            found = self._expanded[path] = self._expand(path)
        return found

    def _expand(self, path: str) -> tuple[str, ...]:
        files, reached = [path], {path}
        patterns: dict[str, None] = {}  # ordered and without repeats
        for file in files:  # grows while read: breadth first
            for pattern in self._read(file) or ():
                if not pattern.startswith("/"):
                    patterns.setdefault(pattern)
                elif pattern not in reached and len(reached) < MAX_PATTERN_FILES:
                    reached.add(pattern)
                    files.append(pattern)
        return tuple(patterns)


@dataclass
class _Context:
    """One evaluation: the facts, the mode and why something stayed open."""

    client: str
    server: str | None
    daemon: str
    unresolved: bool  # True: lookups fail (names "unknown"); False: they give MAYBE
    patterns: PatternExpander
    reasons: set[str] = field(default_factory=set)

    def maybe(self, reason: str) -> int:
        self.reasons.add(reason)
        return MAYBE


def _host_match(token: str, address: str | None, ctx: _Context) -> int:
    """libwrap's host_match; address None: the host's address is not known."""
    lowered = token.lower()
    if token.startswith("@"):  # NIS netgroup: a name service lookup
        return NO if ctx.unresolved else ctx.maybe("dns")
    if token.startswith("/"):
        return max((_host_match(p, address, ctx) for p in ctx.patterns(token)), default=NO)
    if address is None:  # the server's address, not given to us
        if lowered == "all":
            return YES
        return _host_match(token, UNKNOWN, ctx) if ctx.unresolved else ctx.maybe("server")
    if lowered in ("known", "local"):  # both need the host name
        return NO if ctx.unresolved else ctx.maybe("dns")
    net, mask = split_at(token, "/")
    if mask is not None:
        return YES if masked_match(net, mask, address) else NO
    if string_match(token, address):
        return YES
    if not _not_inaddr(token):
        return NO
    if ctx.unresolved:
        return YES if string_match(token, UNKNOWN) else NO
    return ctx.maybe("dns") if _could_name_host(token) else NO


def _server_match(token: str, ctx: _Context) -> int:
    name, host = split_at(token[1:], "@")
    if host is None:
        return YES if string_match(token, ctx.daemon) else NO
    if not string_match(token[0] + name, ctx.daemon):
        return NO
    return _host_match(host, ctx.server, ctx)


def _client_match(token: str, ctx: _Context) -> int:
    user, host = split_at(token[1:], "@")
    if host is None:
        return _host_match(token, ctx.client, ctx)
    found = _host_match(host, ctx.client, ctx)
    if found == NO:
        return NO
    user = token[0] + user
    if user.lower() == "all":
        return found
    if ctx.unresolved:  # no ident answer: the user is "unknown"
        return min(found, YES if string_match(user, UNKNOWN) else NO)
    return min(found, ctx.maybe("dns"))


def list_match(items: Sequence[str], match: Callable[[str, _Context], int], ctx: _Context) -> int:
    """`a b EXCEPT c EXCEPT d` = (a or b) and not (c and not d): right-associative, three-valued."""
    try:
        cut = next(i for i, t in enumerate(items) if t.lower() == "except")
    except StopIteration:
        cut = len(items)
    found = NO
    for item in items[:cut]:
        found = max(found, match(item, ctx))
        if found == YES:
            break
    if found == NO or cut == len(items):
        return found
    return min(found, YES - list_match(items[cut + 1 :], match, ctx))


def rule_verdict(rule: Rule, allow_file: bool) -> tuple[Literal["allow", "deny"], bool]:
    """What a matching rule does: the file's verdict, flipped by a last `allow`/`deny`; (verdict, twist).

    A bad option makes libwrap deny (tcpd_jump), even in hosts.allow."""
    if rule.option_error:
        return "deny", False
    last = rule.options[-1].name if rule.options else ""
    if last in ("allow", "deny"):
        return ("allow" if last == "allow" else "deny"), False
    if last == "twist":
        return "deny", True
    return ("allow" if allow_file else "deny"), False


def rule_match(rule: Rule, ctx: _Context) -> int:
    daemons = list_match(rule.daemons, _server_match, ctx)
    if daemons == NO:
        return NO
    return min(daemons, list_match(rule.clients, _client_match, ctx))


def _no_pattern_files(path: str) -> Sequence[str] | None:
    return None


class _NoPatterns(PatternExpander):
    """For daemon lists and memoized tokens: no file is read, and nothing is kept."""

    def __call__(self, path: str) -> tuple[str, ...]:
        return ()


_NO_PATTERNS = _NoPatterns(_no_pattern_files)


def _literal_key(token: str) -> str | None:
    """The address an exact-address token stands for, when matching it needs nothing but equality."""
    try:
        if token.startswith("[") and token.endswith("]"):
            packed = socket.inet_pton(socket.AF_INET6, token[1:-1])
            return None if packed.startswith(_MAPPED) else socket.inet_ntop(socket.AF_INET6, packed)
        return token if socket.inet_ntoa(socket.inet_pton(socket.AF_INET, token)) == token else None
    except (OSError, ValueError):  # ValueError: a NUL byte
        return None


def _packed_literal(token: str) -> bytes | None:
    """_literal_key's address packed (4 bytes for IPv4, 16 for IPv6): equal keys, equal packed bytes."""
    try:
        if token.startswith("[") and token.endswith("]"):
            packed = socket.inet_pton(socket.AF_INET6, token[1:-1])
            return None if packed.startswith(_MAPPED) else packed
        packed = socket.inet_pton(socket.AF_INET, token)
        return packed if socket.inet_ntoa(packed) == token else None
    except (OSError, ValueError):  # ValueError: a NUL byte
        return None


def _packed_client(address: str) -> bytes:
    """A canonical, unmapped client address packed as _packed_literal packs the token naming it."""
    return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)


def _entries(table: Table, allow_file: bool, start: int = 0) -> list[tuple[Rule, bool]]:
    """(general rule, in hosts.allow) from `start`; a broken hosts.deny ends in a rule denying everyone."""
    entries = [(r, allow_file) for r in table.general[start:]]
    if table.stop is not None and not allow_file:  # libwrap's table_match fails for hosts.deny: deny
        stop = table.stop
        entries.append((Rule(stop.file, stop.line, stop.message, ("ALL",), ("ALL",), None), False))
    return entries


_DENY_ORDER = 1 << 48  # hosts.deny's rules come after hosts.allow's: order = line (+ this in hosts.deny)
_Entry = tuple[int, Rule | tuple[Table, int], bool]  # (order, rule or (table, simple line), in hosts.allow)


_LOW = (1 << 64) - 1
_LINE = (1 << 32) - 1


@dataclass(frozen=True)
class _Sorted:
    """The lines naming addresses of one family, by address: IPv4 in `high`, IPv6 as its first 64 bits
    in `high` and the last 64 in `low`; each with the line's position and number (lines naming the same
    address in file order)."""

    high: array[int]  # "Q", ascending
    low: array[int] | None  # "Q", ascending within each run of equal `high`; None: IPv4
    positions: array[int]  # "i"
    lines: array[int]  # "i"

    @classmethod
    def of(cls, values: Iterable[int], v6: bool) -> _Sorted:
        """From `(address << 64) | (position << 32) | line` values: sorting them sorts by address, then
        position."""
        ordered = sorted(values)
        high = array("Q", (value >> (128 if v6 else 64) for value in ordered))
        low = array("Q", ((value >> 64) & _LOW for value in ordered)) if v6 else None
        positions = array("i", ((value >> 32) & _LINE for value in ordered))
        return cls(high, low, positions, array("i", (value & _LINE for value in ordered)))

    def values(self) -> Iterator[int]:
        """What `of` was made from."""
        addresses = (
            self.high
            if self.low is None
            else ((h << 64) | lo for h, lo in zip(self.high, self.low, strict=True))
        )
        for address, position, line in zip(addresses, self.positions, self.lines, strict=True):
            yield (address << 64) | (position << 32) | line

    def find(self, address: int) -> tuple[int, int] | None:
        """(position, line) of the first line naming the address: one or two binary searches."""
        if self.low is None:
            index, end = bisect.bisect_left(self.high, address), len(self.high)
            found = index < end and self.high[index] == address
        else:
            high, low = address >> 64, address & _LOW
            start = bisect.bisect_left(self.high, high)
            end = bisect.bisect_right(self.high, high, start)
            index = bisect.bisect_left(self.low, low, start, end)
            found = index < end and self.low[index] == low
        return (self.positions[index], self.lines[index]) if found else None


@dataclass(frozen=True)
class _SimpleKeys:
    """Simple lines of one table (a stretch of them, in file order) that each name one exact address,
    sorted by address: about 16 bytes a line (24 for IPv6), where a dict of address strings to entry
    tuples held 50,000 DenyHosts entries in about 150 bytes each. A lookup is a binary search."""

    table: Table
    allow_file: bool
    v4: _Sorted
    v6: _Sorted

    @classmethod
    def of(cls, table: Table, allow_file: bool, v4: Iterable[int], v6: Iterable[int]) -> _SimpleKeys:
        """From `(address << 64) | (position << 32) | line` values of each family."""
        return cls(table, allow_file, _Sorted.of(v4, False), _Sorted.of(v6, True))

    def __len__(self) -> int:
        return len(self.v4.high) + len(self.v6.high)

    def merged(self, later: _SimpleKeys) -> _SimpleKeys:
        """These and a later stretch of the same file (`later.table` is this one's, grown) as one."""
        v4 = itertools.chain(self.v4.values(), later.v4.values())
        v6 = itertools.chain(self.v6.values(), later.v6.values())
        return _SimpleKeys.of(later.table, later.allow_file, v4, v6)


def _rule(entry: _Entry) -> tuple[Rule, bool]:
    _, rule, allow_file = entry
    if isinstance(rule, Rule):
        return rule, allow_file
    table, position = rule
    return table.simple_rule(position), allow_file


@dataclass(frozen=True)
class _Spans:
    """Address ranges of rules that match by address alone, cut into segments that each know the first
    rule covering them: the first such rule for an address is one binary search, where comparing it
    with every rule cost diagnose 30 s for a /32 against 2,000 /48 rules."""

    starts: tuple[tuple[int, int], ...]  # (version, first address) of each segment, sorted
    firsts: tuple[_Entry | None, ...]  # the first rule covering each segment

    @classmethod
    def build(cls, spans: Sequence[tuple[int, int, int, _Entry]]) -> _Spans:
        """From (version, first, last, entry): a sweep over the boundaries, the covering rules in a heap."""
        ordered = sorted(spans, key=lambda span: (span[0], span[1]))
        points = sorted({(v, first) for v, first, _, _ in spans} | {(v, last + 1) for v, _, last, _ in spans})
        active: list[tuple[int, int, int, _Entry]] = []  # (order, last, tie, entry): the first on top
        firsts: list[_Entry | None] = []
        taken = 0
        for version, point in points:
            while taken < len(ordered) and (ordered[taken][0], ordered[taken][1]) <= (version, point):
                v, _, last, entry = ordered[taken]
                heapq.heappush(active, (entry[0], (v << 130) | last, taken, entry))
                taken += 1
            while active and active[0][1] < ((version << 130) | point):  # ended, or of the other family
                heapq.heappop(active)
            firsts.append(active[0][3] if active else None)
        return cls(tuple(points), tuple(firsts))

    def first(self, address: str) -> _Entry | None:
        key = address_value(address)
        if key is None:
            return None
        index = bisect.bisect_right(self.starts, key) - 1
        return self.firsts[index] if index >= 0 else None


@dataclass(frozen=True)
class _Index:
    """Rules for one daemon: the first rule naming each exact address, and every other rule in order.

    DenyHosts writes one `sshd: ADDR` line per ban; with 50,000 of them, a lookup replaces the scan.
    Rules are ordered by (file, line); the simple lines naming one address are searched through
    _SimpleKeys (no object per line), and one is built as a Rule only when it decides a verdict."""

    exact: dict[str, _Entry]  # general rules (Rule objects): the first naming each address
    others: tuple[tuple[int, Rule, bool], ...]  # (order, rule, in hosts.allow), in file order
    spans: tuple[tuple[int, int, int, _Entry], ...] = ()  # (version, first, last, rule): `net/mask` rules
    ranges: _Spans | None = None  # the spans, searchable
    simple: tuple[_SimpleKeys, ...] = ()  # simple lines naming one exact address, stretches in file order

    @classmethod
    def build(cls, allow: Table, deny: Table, daemon: str) -> _Index:
        return cls({}, ()).extend(allow, True, 0, 0, daemon).extend(deny, False, 0, 0, daemon)

    @staticmethod
    def _by_address(rule: Rule) -> tuple[list[str], list[tuple[int, int, int]]] | None:
        """The exact addresses and address ranges the rule's clients name, when that is all they are."""
        keys: list[str] = []
        spans: list[tuple[int, int, int]] = []
        for token in rule.clients:
            key = _literal_key(token)
            if key is not None:
                keys.append(key)
                continue
            span = address_span(token)
            if span is None:
                return None
            spans.append(span)
        return (keys, spans) if rule.clients else None

    def extend(self, table: Table, allow_file: bool, start: int, simple_start: int, daemon: str) -> _Index:
        """A new index with the table's rules from `start` / `simple_start` added after these rules
        (this one is left as it is); the table's rules all come after the rules indexed so far."""
        offset = 0 if allow_file else _DENY_ORDER
        added: dict[str, _Entry] = {}  # the first new rule naming each address
        general: list[tuple[int, Rule, bool]] = []
        spans: list[tuple[int, int, int, _Entry]] = []
        for rule, in_allow in _entries(table, allow_file, start):
            applies = applies_to(rule, daemon)
            if applies == NO:
                continue
            named = self._by_address(rule) if applies == YES else None
            if named is None:
                general.append((offset + rule.line, rule, in_allow))
                continue
            entry: _Entry = (offset + rule.line, rule, in_allow)
            for key in named[0]:
                added.setdefault(key, entry)
            spans.extend((version, first, last, entry) for version, first, last in named[1])
        simple: list[tuple[int, Rule, bool]] = []
        lists: dict[tuple[str, ...], int] = {}
        found: tuple[list[int], list[int]] = ([], [])  # IPv4, IPv6: (address << 64) | (position << 32) | line
        lines = table.iter_simple(simple_start)
        for position, (line, _, daemons, address, _) in enumerate(lines, simple_start):
            takes = lists.get(daemons)
            if takes is None:
                takes = lists[daemons] = _applies(daemons, daemon)
            if takes == NO:
                continue
            packed = _packed_literal(address) if takes == YES else None
            if packed is None:
                simple.append((offset + line, table.simple_rule(position), allow_file))
            else:
                value = int.from_bytes(packed, "big")
                found[len(packed) == 16].append((value << 64) | (position << 32) | line)
        exact = self.exact
        if added:
            exact = dict(exact)
            for key, entry in added.items():
                exact.setdefault(key, entry)
        others = (*self.others, *heapq.merge(general, simple, key=itemgetter(0)))
        keyed = self.simple
        if found[0] or found[1]:
            keyed = self._with_keys(_SimpleKeys.of(table, allow_file, *found))
        if not spans:
            return _Index(exact, others, self.spans, self.ranges, keyed)
        every_span = (*self.spans, *spans)
        return _Index(exact, others, every_span, _Spans.build(every_span), keyed)

    def _with_keys(self, added: _SimpleKeys) -> tuple[_SimpleKeys, ...]:
        """The stretches with `added` after them, merged into the last while it is of the same file and
        not more than twice as large (as a binary counter carries): DenyHosts appending one line at a
        time leaves O(log n) stretches to search, each line merged O(log n) times."""
        stretches = list(self.simple)
        while (
            stretches
            and stretches[-1].allow_file == added.allow_file
            and len(stretches[-1]) <= 2 * len(added)
        ):
            added = stretches.pop().merged(added)
        return (*stretches, added)

    def listed(self, client: str) -> _Entry | None:
        """The first rule that matches the client by its address alone: one naming it exactly (a
        general rule or a simple line), or one whose `net/mask` takes it in. Whatever the lookups."""
        unmapped = _unmapped(client)
        listed = self.exact.get(unmapped)
        if self.simple:
            packed = _packed_client(unmapped)
            value, v6 = int.from_bytes(packed, "big"), len(packed) == 16
            for stretch in self.simple:  # in file order: the first one naming it has the first line
                found = (stretch.v6 if v6 else stretch.v4).find(value)
                if found is not None:
                    position, line = found
                    order = line if stretch.allow_file else _DENY_ORDER + line
                    if listed is None or order < listed[0]:
                        listed = (order, (stretch.table, position), stretch.allow_file)
                    break
        ranged = self.ranges.first(client) if self.ranges is not None else None
        if ranged is not None and (listed is None or ranged[0] < listed[0]):
            listed = ranged
        return listed

    def scan(
        self, ctx: _Context, listed: _Entry | Literal[False] | None = False
    ) -> tuple[tuple[Rule, bool] | None, list[tuple[Rule, bool, set[str]]]]:
        """The first surely matching rule, and the maybe-matching rules before it; `listed`: what
        `listed(ctx.client)` gave (False: not asked yet)."""
        if listed is False:
            listed = self.listed(ctx.client)
        limit = listed[0] if listed is not None else 2 * _DENY_ORDER
        maybes: list[tuple[Rule, bool, set[str]]] = []
        for order, rule, allow_file in self.others:
            if order > limit:
                break
            ctx.reasons = set()
            found = rule_match(rule, ctx)
            if found == YES:
                return (rule, allow_file), maybes
            if found == MAYBE:
                maybes.append((rule, allow_file, ctx.reasons))
        return (_rule(listed) if listed is not None else None), maybes


@dataclass
class AccessRules:
    """hosts.allow and hosts.deny together, with the pattern files they name; indexes built on demand."""

    allow: Table
    deny: Table
    pattern_files: PatternFiles = _no_pattern_files
    _indexes: dict[str, _Index] = field(default_factory=dict, repr=False)

    def index(self, daemon: str) -> _Index:
        if daemon not in self._indexes:
            self._indexes[daemon] = _Index.build(self.allow, self.deny, daemon)
        return self._indexes[daemon]

    def with_deny(self, deny: Table) -> AccessRules:
        """The same rules with hosts.deny grown by appended lines: indexes built so far are extended."""
        old = self.deny
        assert old.stop is None and deny.general[: len(old.general)] == old.general
        assert deny.compact[: len(old.compact)] == old.compact
        grown = AccessRules(self.allow, deny, self.pattern_files)
        for daemon, index in self._indexes.items():
            grown._indexes[daemon] = index.extend(deny, False, len(old.general), old.simple_count, daemon)
        return grown


def evaluate(rules: AccessRules, daemon: str = "sshd", *, client: ClientInfo) -> Verdict:
    """The verdict of hosts.allow then hosts.deny for `daemon` and `client`; never resolves a name."""
    address = canonical_address(client.address)
    server = canonical_address(client.server_address) if client.server_address else None
    index = rules.index(daemon)
    patterns = PatternExpander(rules.pattern_files)
    listed = index.listed(address)  # the same in both modes: no lookup changes it
    decided, maybes = index.scan(_Context(address, server, daemon, False, patterns), listed)
    fallback, _ = index.scan(_Context(address, server, daemon, True, patterns), listed)
    if_unresolved = rule_verdict(*fallback)[0] if fallback else "allow"
    final, twist = rule_verdict(*decided) if decided else ("allow", False)
    rule = decided[0] if decided else None
    maybe_rules = tuple(r for r, _, _ in maybes)
    differing = [(r, why) for r, allow_file, why in maybes if rule_verdict(r, allow_file)[0] != final]
    if differing:
        reasons = set().union(*(why for _, why in differing))
        name: VerdictName = "depends_on_dns" if "dns" in reasons else "unknown"
        unresolved_rule = fallback[0] if fallback else None
        turns = _turns(maybes, unresolved_rule, if_unresolved, final, rule, patterns)
        return Verdict(name, differing[0][0], if_unresolved, maybe_rules, False, unresolved_rule, turns)
    return Verdict(final, rule, if_unresolved, maybe_rules, twist)


def _turns(
    maybes: Sequence[tuple[Rule, bool, set[str]]],
    unresolved_rule: Rule | None,
    if_unresolved: Literal["allow", "deny"],
    final: Literal["allow", "deny"],
    decided: Rule | None,
    patterns: PatternExpander,
) -> tuple[LookupTurn, ...]:
    """The lookup-dependent rules that would change the outcome libwrap gives when no lookup answers:
    those before the rule deciding it (all of them when that rule itself hangs on a lookup) whose verdict
    differs, and that rule itself when, once a lookup answers, it no longer matches and the outcome flips."""
    found: list[LookupTurn] = []
    itself = any(r is unresolved_rule for r, _, _ in maybes)
    for rule, allow_file, _ in maybes:
        if rule is unresolved_rule:
            if not itself:
                break
            continue
        verdict = rule_verdict(rule, allow_file)[0]
        if verdict != if_unresolved:
            found.append(LookupTurn(rule, verdict, lookup_tokens(rule, patterns)))
    if itself and unresolved_rule is not None and final != if_unresolved and decided is not unresolved_rule:
        found.append(LookupTurn(unresolved_rule, final, lookup_tokens(unresolved_rule, patterns), False))
    return tuple(found)


def applies_to(rule: Rule, daemon: str = "sshd") -> int:
    """Whether the rule's daemon list takes in `daemon` (MAYBE: only for some server addresses)."""
    return _applies(rule.daemons, daemon)


def daemons_apply(daemons: tuple[str, ...], daemon: str = "sshd") -> int:
    """Whether a daemon list takes in `daemon` (applies_to for a rule held as a simple line)."""
    return _applies(daemons, daemon)


@functools.lru_cache(maxsize=4096)
def _applies(daemons: tuple[str, ...], daemon: str) -> int:
    """Daemon lists repeat (50,000 DenyHosts lines say `sshd`): worked out once each."""
    return list_match(daemons, _server_match, _Context(UNKNOWN, None, daemon, False, _NO_PATTERNS))


def _token_needs_lookup(token: str, patterns: PatternExpander) -> bool:
    """Address tokens never need a lookup; other tokens without a `/` repeat, so they are memoized."""
    if _ADDRESS_TOKEN.fullmatch(token):
        return False
    if "/" not in token:
        return _plain_needs_lookup(token)
    return _needs_lookup(token, patterns)


@functools.lru_cache(maxsize=65536)
def _plain_needs_lookup(token: str) -> bool:
    return _needs_lookup(token, _NO_PATTERNS)


def _needs_lookup(token: str, patterns: PatternExpander) -> bool:
    user, host = split_at(token[1:], "@")
    if host is not None:
        return (token[0] + user).lower() != "all" or _token_needs_lookup(host, patterns)
    lowered = token.lower()
    if token.startswith("@") or lowered in ("known", "local"):
        return True
    if token.startswith("/"):
        return any(_token_needs_lookup(p, patterns) for p in patterns(token))
    return lowered not in ("all", "except") and "/" not in token and _could_name_host(token)


def lookup_tokens(rule: Rule, patterns: PatternExpander) -> tuple[str, ...]:
    """The rule's client patterns that need a name, ident or netgroup lookup, as written."""
    return tuple(t for t in rule.clients if _token_needs_lookup(t, patterns))


def needs_lookup(rule: Rule, patterns: PatternFiles | PatternExpander = _no_pattern_files) -> bool:
    """Whether libwrap may look up a name, ident user or netgroup for this rule's clients; pass one
    PatternExpander for many rules, so that the pattern files they share are read once."""
    expander = patterns if isinstance(patterns, PatternExpander) else PatternExpander(patterns)
    return any(_token_needs_lookup(t, expander) for t in rule.clients)
