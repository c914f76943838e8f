"""iptables rules from `iptables-save -c` text (legacy or iptables-nft) or from python-iptables.

python-iptables sees only legacy tables, and importing or reading it may load kernel modules and
creates the legacy filter table; so it is imported lazily, only for tables that already exist
(`/proc/net/ip_tables_names`), and every call runs under one process-wide lock (it is not
thread-safe, and its Table objects are process-wide singletons). Its rules are turned into the
same tokens `iptables-save` prints, so one parser reads both.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import importlib
import ipaddress
import logging
import shlex
import socket
import struct
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from exporter.sources.firewall import legacy_entries
from exporter.sources.firewall.model import Chain, PortRanges, Rule, parse_ports, set_key

HOOKS = {"INPUT": "input", "PREROUTING": "prerouting", "FORWARD": "forward", "OUTPUT": "output",
         "POSTROUTING": "postrouting"}  # fmt: skip
VERDICTS = {"DROP": "drop", "REJECT": "reject", "ACCEPT": "accept", "RETURN": "return"}
TCP = frozenset({"tcp", "6", "all", "0", "ip"})
PORT_OPTIONS = frozenset({"--dport", "--dports", "--destination-port", "--destination-ports"})
log = logging.getLogger(__name__)
IPTC_LOCK = threading.Lock()  # every python-iptables call, process-wide
_iptc: ModuleType | None = None
# The rules of each table's last read, by what identifies them (see _entry_key): a table read again each
# scrape holds (nearly) the same rules, whose counters are the only part that changes.
_last_read: dict[tuple[str, str], dict[tuple[bytes, frozenset[str]], Rule]] = {}


class IptablesError(Exception):
    """Text that is not iptables-save output."""


def complement(ranges: PortRanges) -> PortRanges:
    """The ports a negated port match (`! --dport 22`) matches."""
    result, start = [], 0
    for low, high in sorted(ranges):
        if low > start:
            result.append((start, low - 1))
        start = max(start, high + 1)
    if start <= 65535:
        result.append((start, 65535))
    return tuple(result)


def _address(text: str) -> str:
    """`192.0.2.1/32` -> `192.0.2.1`; networks stay prefixes."""
    address, _, length = text.partition("/")
    if length in ("32", "128") or not length:
        return address
    return text


def parse_rule(tokens: list[str], chains: Iterable[str] | frozenset[str]) -> Rule:
    """One rule's options (after `-A CHAIN`); `chains` are the table's chains, to tell jumps from targets."""
    verdict, target, sources, sets, ports = "", "", None, [], None
    negated = negate = non_tcp = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        value = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token == "!":
            negate = True
            index += 1
            continue
        if token in ("-s", "--source"):
            negated |= negate
            if not negate:
                sources = tuple(_address(part) for part in value.split(","))
        elif token in ("-p", "--protocol"):
            non_tcp = negate or value.lower() not in TCP
        elif token in PORT_OPTIONS:
            ports = complement(parse_ports(value)) if negate else parse_ports(value)
        elif token == "--match-set":
            direction = tokens[index + 2] if index + 2 < len(tokens) else ""
            if direction.split(",")[0] == "src":
                negated |= negate
                sets.append(set_key("ipset", "", value))
            index += 1
        elif token in ("-j", "--jump", "-g", "--goto"):
            if value in VERDICTS:
                verdict = VERDICTS[value]
            elif value in chains:
                verdict, target = ("goto" if token in ("-g", "--goto") else "jump"), value
        negate = False
        index += 2 if token.startswith("-") else 1
    if non_tcp:
        ports = ()
    return Rule(verdict, target, sources, tuple(sets), ports, negated)


def _split(line: str) -> list[str]:
    return shlex.split(line) if '"' in line or "'" in line else line.split()


def _counters(text: str) -> tuple[int, int]:
    packets, _, octets = text.strip("[]").partition(":")
    return int(packets), int(octets)


def parse_save(text: str, backend: str, family: str) -> list[Chain]:
    """`iptables-save -c` (or ip6tables-save): every table's chains, policies, rules and counters."""
    result: list[Chain] = []
    table = ""
    policies: dict[str, str | None] = {}
    lines: list[tuple[str, list[str], tuple[int, int]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        try:
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table, policies, lines = line[1:], {}, []
            elif line.startswith(":"):
                name, policy, *_ = line[1:].split()
                policies[name] = None if policy == "-" else policy.lower()
            elif line == "COMMIT":
                result.extend(_table(backend, family, table, policies, lines))
                table = ""
            else:
                counters = (0, 0)
                if line.startswith("["):
                    head, line = line.split(None, 1)
                    counters = _counters(head)
                tokens = _split(line)
                if len(tokens) < 2 or tokens[0] != "-A" or not table:
                    raise ValueError("not a rule")
                lines.append((tokens[1], tokens[2:], counters))
        except ValueError as exc:
            raise IptablesError(f"line {number}: {exc}: {raw[:80]!r}") from exc
    if table:
        raise IptablesError(f"table {table} has no COMMIT")
    return result


def _table(
    backend: str,
    family: str,
    table: str,
    policies: dict[str, str | None],
    lines: list[tuple[str, list[str], tuple[int, int]]],
) -> list[Chain]:
    names = frozenset(policies)
    rules: dict[str, list[Rule]] = {name: [] for name in policies}
    for chain, tokens, (packets, octets) in lines:
        rule = parse_rule(tokens, names)
        rules.setdefault(chain, []).append(_with_counters(rule, packets, octets))
    return [
        Chain(backend, family, table, name, HOOKS.get(name) if policies.get(name) else None,
              policies.get(name), tuple(chain_rules))
        for name, chain_rules in rules.items()
    ]  # fmt: skip


def _with_counters(rule: Rule, packets: int, octets: int) -> Rule:
    return Rule(rule.verdict, rule.target, rule.sources, rule.source_sets, rule.ports, rule.negated,
                packets, octets)  # fmt: skip


# -- python-iptables ---------------------------------------------------------------------------------
def load_iptc() -> ModuleType | None:
    """python-iptables, imported on first use (under IPTC_LOCK); None when it cannot be loaded."""
    global _iptc
    if _iptc is None:
        try:
            with _without_distutils():
                _iptc = importlib.import_module("iptc")
        except (ImportError, OSError, AttributeError):  # missing, or libiptc not loadable
            return None
    return _iptc


@contextlib.contextmanager
def _without_distutils() -> Iterator[None]:
    """python-iptables asks `distutils.sysconfig` for a fallback library directory and takes `sysconfig`'s
    when distutils is missing. In a virtualenv with setuptools, `import distutils` loads all of setuptools
    (121 modules: 15 MB of objects, 31 MB resident in a daemon that otherwise needs 12 MB), so distutils is
    made missing while iptc imports; a distutils someone already imported is left alone."""
    if "distutils" in sys.modules:
        yield
        return
    sys.modules["distutils"] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
    try:
        yield
    finally:
        if sys.modules.get("distutils", 0) is None:
            del sys.modules["distutils"]


def _prefix(source: str) -> tuple[bool, str | None]:
    """iptc's `!192.0.2.0/255.255.255.0` -> (negated, `192.0.2.0/24`); None for any address."""
    negated = source.startswith("!")
    address, _, mask = source.lstrip("!").partition("/")
    length = int(ipaddress.ip_address(mask)).bit_count() if mask else None
    if length == 0:
        return negated, None
    return negated, address if length in (None, 32, 128) else f"{address}/{length}"


def _iptc_tokens(rule: Any) -> list[str]:
    """A python-iptables Rule as the tokens iptables-save prints for it (slow: about 0.1 ms a rule)."""
    tokens: list[str] = []
    negated, source = _prefix(rule.src)
    if source:
        tokens += ["!", "-s", source] if negated else ["-s", source]
    tokens += ["-p", str(rule.protocol)]
    for match in rule.matches:
        tokens += ["-m", match.name]
        for option, values in match.get_all_parameters().items():
            negated = bool(values) and values[0] == "!"
            tokens += ["!"] if negated else []
            tokens += [f"--{option}", *values[1 if negated else 0 :]]
    tokens += ["-g" if rule.target.goto else "-j", rule.target.name]
    return tokens


_MATCH_HEADER = 32  # struct xt_entry_match: u16 size, char name[29], u8 revision
_INV_SRCIP, _INV_PROTO, _TCP_INV_DSTPT = 0x08, 0x40, 0x02
_GOTO = {"ipv4": 0x02, "ipv6": 0x04}  # IPT_F_GOTO, IP6T_F_GOTO


def _port_tokens(name: bytes, revision: int, data: bytes) -> list[str] | None:
    """The destination ports of a tcp or multiport match's data; [] for matches we do not model,
    None for `set` (its data holds an index, not the set's name: python-iptables' Rule decodes it)."""
    if name == b"set":
        return None
    if name == b"tcp" and len(data) >= 12:
        low, high = struct.unpack_from("=HH", data, 4)
        if (low, high) == (0, 65535):
            return []
        return ["!"] * bool(data[11] & _TCP_INV_DSTPT) + ["--dport", f"{low}:{high}"]
    if name == b"multiport" and len(data) >= 32:
        flags, count = data[0], min(data[1], 15)
        ports = struct.unpack_from("=15H", data, 2)
        ranged = data[32:47] if revision >= 1 and len(data) >= 48 else bytes(15)
        if flags not in (1, 2):  # source ports only
            return []
        parts, index = [], 0
        while index < count:
            if ranged[index] and index + 1 < count:
                parts.append(f"{ports[index]}:{ports[index + 1]}")
                index += 2
            else:
                parts.append(str(ports[index]))
                index += 1
        invert = revision >= 1 and len(data) >= 48 and bool(data[47])
        return ["!"] * invert + ["--dports", ",".join(parts)]
    return []


def _entry_tokens(table: Any, entry: Any, family: str) -> list[str] | None:
    """An ipt_entry/ip6t_entry read straight from libiptc's memory as iptables-save tokens: python-iptables'
    Rule objects cost about 0.1 ms each (10,000 rules: a second). None when only a Rule can tell."""
    raw = ctypes.string_at(ctypes.addressof(entry), entry.target_offset)
    ip = entry.ip if family == "ipv4" else entry.ipv6
    tokens: list[str] = []
    af = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    length = int.from_bytes(bytes(ip.smsk), "big").bit_count()
    if length:
        address = socket.inet_ntop(af, bytes(ip.src))
        tokens += ["!"] * bool(ip.invflags & _INV_SRCIP)
        tokens += ["-s", address if length in (32, 128) else f"{address}/{length}"]
    tokens += ["!"] * bool(ip.invflags & _INV_PROTO) + ["-p", str(ip.proto)]
    offset = ctypes.sizeof(entry)
    while offset + _MATCH_HEADER <= len(raw):
        size = struct.unpack_from("=H", raw, offset)[0]
        if size < _MATCH_HEADER:
            return None
        name = raw[offset + 2 : offset + 31].split(b"\0", 1)[0]
        found = _port_tokens(name, raw[offset + 31], raw[offset + _MATCH_HEADER : offset + size])
        if found is None:
            return None
        tokens += found
        offset += size
    target = table.get_target(entry)
    tokens += ["-g" if ip.flags & _GOTO[family] else "-j", target.decode() if target else ""]
    return tokens


def _entry_key(entry: Any, target: bytes | None) -> bytes:
    """A digest of what _entry_tokens reads of an entry, undecoded: the address part, each match's name,
    revision and data, and the target's name as libiptc resolves it (a jump's data is an offset, which
    names another chain once rules move). Not the counters, and not the bytes after a name's NUL, which
    hold whatever the kernel left there: equal rules have equal keys from one read to the next. A digest
    (16 bytes) where the parts were kept: 10,000 rules' keys took 3 MB."""
    raw = ctypes.string_at(ctypes.addressof(entry), entry.target_offset)
    parts = [raw[: type(entry).nfcache.offset]]
    offset = ctypes.sizeof(entry)
    while offset + _MATCH_HEADER <= len(raw):
        size = struct.unpack_from("=H", raw, offset)[0]
        if size < _MATCH_HEADER:
            parts.append(raw[offset:])
            break
        parts += [raw[offset + 2 : offset + 31].split(b"\0", 1)[0], raw[offset + 31 : offset + size]]
        offset += size
    parts.append(target or b"")
    return hashlib.blake2b(
        b"".join(len(part).to_bytes(4, "little") + part for part in parts), digest_size=16
    ).digest()


def read_iptc(tables: Iterable[str], family: str) -> list[Chain]:
    """The legacy tables' chains through python-iptables, fresh counters; ImportError when it cannot load."""
    with IPTC_LOCK:
        iptc = load_iptc()
        if iptc is None:
            raise ImportError("python-iptables unavailable")
        return [chain for name in tables for chain in _read_table(iptc, name, family)]


def _read_table(iptc: ModuleType, name: str, family: str) -> list[Chain]:
    """One table: the last read's chains with this blob's counters while its shape holds (the entries,
    counters aside, are the same: legacy_entries), else read through libiptc and kept with its layout."""
    before = _blob(name, family)
    kept = _kept.get((family, name))
    if before is not None and kept is not None and kept.layout.holds(before):
        chains = [_recounted(chain, kept.layout.counters(before, chain.name)) for chain in kept.chains]
        _kept[(family, name)] = _Kept(kept.layout, chains)
        return chains
    chains, keepable = _read_libiptc(iptc, name, family)
    after = _blob(name, family) if before is not None and keepable else None
    found = _layout(after) if after is not None else None
    rules = {chain.name: len(chain.rules) for chain in chains}
    if (
        before is not None
        and found is not None
        and found.holds(before)
        and rules == {chain: len(offsets) for chain, offsets in found.chains.items()}
    ):
        _kept[(family, name)] = _Kept(found, chains)  # libiptc read between two blobs of one shape
    else:
        _kept.pop((family, name), None)
    return chains


@dataclass(frozen=True)
class _Kept:
    layout: legacy_entries.Layout
    chains: list[Chain]


# Each table's last chains with the layout of the blob they were read from (see _read_table).
_kept: dict[tuple[str, str], _Kept] = {}


def _blob(name: str, family: str) -> legacy_entries.TableBlob | None:
    try:
        return legacy_entries.read_table(name, family)
    except OSError as exc:  # no CAP_NET_RAW for the socket, say: libiptc answers (or says why not)
        log.debug("legacy table %s/%s not read as a blob: %s", family, name, exc)
        return None


def _layout(blob: legacy_entries.TableBlob) -> legacy_entries.Layout | None:
    try:
        return legacy_entries.layout(blob)
    except legacy_entries.LayoutError as exc:
        log.info("legacy table layout not understood, read through libiptc each time: %s", exc)
        return None


def _recounted(chain: Chain, counters: list[tuple[int, int]]) -> Chain:
    """The chain with these counters; the same objects where none moved."""
    rules = tuple(
        rule if (rule.packets, rule.bytes) == pair else _with_counters(rule, *pair)
        for rule, pair in zip(chain.rules, counters, strict=True)
    )
    if all(new is old for new, old in zip(rules, chain.rules, strict=True)):
        return chain
    return dataclasses.replace(chain, rules=rules)


def _read_libiptc(iptc: ModuleType, name: str, family: str) -> tuple[list[Chain], bool]:
    """The table through libiptc, and whether it may be kept: not when a rule has a `set` match, whose
    data is an ipset index (`ipset swap` changes the set it names, not the blob)."""
    table_class = iptc.Table if family == "ipv4" else iptc.Table6
    result: list[Chain] = []
    keepable = True
    table = table_class(name)
    table.refresh()
    chains = list(table.chains)
    names = frozenset(chain.name for chain in chains)
    last = _last_read.get((family, name), {})
    seen: dict[tuple[bytes, frozenset[str]], Rule] = {}
    for chain in chains:
        policy = table.get_policy(chain.name)[0].name.lower() if chain.is_builtin() else None
        rules = []
        entry = table.first_rule(chain.name)
        while entry:
            key = (_entry_key(entry, table.get_target(entry)), names)
            parsed = last.get(key)
            remember = True
            if parsed is None:
                tokens = _entry_tokens(table, entry, family)
                if tokens is None:  # a set match: its data holds an index, not the set's name,
                    rule, remember = table.create_rule(entry, chain), False  # so it is not kept
                    keepable = False
                    parsed = parse_rule(_iptc_tokens(rule), names)
                else:
                    parsed = parse_rule(tokens, names)
            counters = entry.counters
            if (parsed.packets, parsed.bytes) != (counters.pcnt, counters.bcnt):
                parsed = _with_counters(parsed, counters.pcnt, counters.bcnt)  # else: the last one
            if remember:
                seen[key] = parsed
            rules.append(parsed)
            entry = table.next_rule(entry)
        hook = HOOKS.get(chain.name) if policy else None
        result.append(Chain("legacy", family, name, chain.name, hook, policy, tuple(rules)))
    _last_read[(family, name)] = seen
    return result, keepable
