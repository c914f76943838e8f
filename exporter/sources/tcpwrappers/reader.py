"""TCP wrappers on the host: hosts.allow, hosts.deny and their pattern files under --path.rootfs.

A scrape stats the files and reuses the parsed tables and their summary while (mtime, size) stay the
same: a hosts.deny with 50,000 DenyHosts lines takes a while to parse, and sits unchanged for hours.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.denyhosts import HOSTS_FILE_MAX_BYTES
from exporter.sources.host.files import Signature, file_signature, read_regular_file, read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.singleflight import singleflight
from exporter.sources.tcpwrappers.evaluate import (
    NO,
    YES,
    AccessRules,
    PatternExpander,
    applies_to,
    daemons_apply,
    needs_lookup,
    rule_verdict,
)
from exporter.sources.tcpwrappers.libwrap import BINARIES, read_links_libwrap
from exporter.sources.tcpwrappers.syntax import (
    ParseError,
    Rule,
    Table,
    TooManyRulesError,
    extend_table,
    parse_table,
    pattern_tokens,
)

log = logging.getLogger(__name__)
HOSTS_ALLOW = "/etc/hosts.allow"
HOSTS_DENY = "/etc/hosts.deny"
FILES = (HOSTS_ALLOW, HOSTS_DENY)
VERDICTS = ("allow", "deny")
MAX_BYTES = HOSTS_FILE_MAX_BYTES


@dataclass(frozen=True)
class FileState:
    path: str  # host path
    mtime: float | None  # None: missing (libwrap reads it as empty)
    rules: int
    errors: tuple[ParseError, ...]  # the first ones
    unreadable: str | None = None
    error_count: int = 0  # all of them


@dataclass(frozen=True)
class Summary:
    """What the files mean for one daemon, whatever the client."""

    rules: dict[tuple[str, str], int]  # (file, verdict) -> rules whose daemon list takes in the daemon
    lookup_rules: dict[str, int]  # file -> of those, rules whose clients may need a name or ident lookup
    decided: bool | None  # a rule settled whether everyone is denied (None: no rule did)
    broken_deny: bool  # hosts.deny ends in a line libwrap fails on: it denies whoever reaches it
    # bookkeeping for `summarize(since=...)`, not part of what the summary says
    deny_read: int = field(default=0, compare=False)  # general rules of hosts.deny this summary has read
    deny_simple_read: int = field(
        default=0, compare=False
    )  # simple (`DAEMONS: ADDRESS`) lines of hosts.deny this summary has read

    @property
    def denies_everyone(self) -> bool:
        return self.broken_deny if self.decided is None else self.decided


@dataclass(frozen=True)
class TcpWrappersSnapshot:
    rules: AccessRules
    files: tuple[FileState, ...]
    summary: Summary
    libwrap: dict[str, bool]  # binary (host path) -> linked with libwrap; only binaries that exist

    @property
    def honoured(self) -> bool:
        """sshd consults the files when the listener or the per-connection binary links libwrap."""
        return any(self.libwrap.values())

    @property
    def error(self) -> str:
        return "; ".join(f"{f.path}: {f.unreadable}" for f in self.files if f.unreadable)


def _everyone(rule: Rule) -> bool:
    if len(rule.clients) == 1 and rule.clients[0][0].isdigit():
        return False  # the common `sshd: ADDR` line, quickly
    lowered = [t.lower() for t in rule.clients]
    return "except" not in lowered and any(t in ("all", "*", "all@all") for t in lowered)


def summarize(rules: AccessRules, daemon: str = "sshd", since: Summary | None = None) -> Summary:
    """Rule counts by file and verdict, lookup-dependent rules, and whether no client can get in.

    Nobody gets in when, in libwrap's order, a rule for every client that denies comes before any rule
    that could allow someone (e.g. `sshd: ALL` in hosts.deny with nothing for sshd in hosts.allow).
    since: the summary of the same files before lines were appended to hosts.deny; only those are read."""
    if since is None:
        counts = {(f.file, v): 0 for f in (rules.allow, rules.deny) for v in VERDICTS}
        lookups = {rules.allow.file: 0, rules.deny.file: 0}
        everyone: bool | None = None
        todo = [(rules.allow, True, 0, 0), (rules.deny, False, 0, 0)]
    else:
        counts, lookups, everyone = dict(since.rules), dict(since.lookup_rules), since.decided
        todo = [(rules.deny, False, since.deny_read, since.deny_simple_read)]
    patterns = PatternExpander(rules.pattern_files)  # the files the rules share, read once
    for table, allow_file, start, simple_start in todo:
        # simple lines: one address each, no options, never a lookup, never "every client"; the
        # file's verdict. In hosts.allow the first one for the daemon lets someone in.
        first_allow = _count_simple(table, allow_file, simple_start, daemon, counts)
        for rule in table.general[start:]:
            if everyone is None and first_allow is not None and first_allow < rule.line:
                everyone = False
            applies = applies_to(rule, daemon)
            if applies == NO:
                continue
            verdict = rule_verdict(rule, allow_file)[0]
            counts[(table.file, verdict)] += 1
            if needs_lookup(rule, patterns):
                lookups[table.file] += 1
            if everyone is None and applies == YES and _everyone(rule):
                everyone = verdict == "deny"
            elif everyone is None and verdict == "allow":
                everyone = False
        if everyone is None and first_allow is not None:
            everyone = False
    deny = rules.deny
    return Summary(counts, lookups, everyone, deny.stop is not None, len(deny.general), deny.simple_count)


def _count_simple(
    table: Table, allow_file: bool, start: int, daemon: str, counts: dict[tuple[str, str], int]
) -> int | None:
    """Counts the simple lines from `start` that apply to the daemon; in hosts.allow, the first one's line."""
    verdict = "allow" if allow_file else "deny"
    first: int | None = None
    for daemons, number in table.simple_daemons(start).items():
        if daemons_apply(daemons, daemon) != NO:
            counts[(table.file, verdict)] += number
            first = 0
    if not allow_file or first is None:
        return None
    return next((s[0] for s in table.iter_simple(start) if daemons_apply(s[2], daemon) != NO), None)


@dataclass(frozen=True)
class _Parsed:
    """A file as last read: its table, and what tells an append from a rewrite next time."""

    signature: Signature
    table: Table
    unreadable: str | None = None
    size: int = 0
    digest: bytes = b""  # blake2b of the bytes parsed
    grown_from: Table | None = None  # the table this one extends with appended lines


def _followed(local: Path | None) -> Path:
    """The local path of a file to read; ELOOP (libwrap's fopen fails alike) when the host path's links
    could not be followed inside the rootfs. libwrap reads a table it cannot open for any reason but
    ENOENT as a match: hosts.deny then denies everyone, so such a file is never taken for a missing one."""
    if local is None:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    return local


def _unreadable(signature: Signature, host_path: str, why: str) -> _Parsed:
    """A file that could not be read or held: an error (the collector fails), not an empty file."""
    log.warning("tcpwrappers: %s: %s", host_path, why)
    stop = ParseError(host_path, 0, f"cannot open: {why}")
    return _Parsed(signature, Table(host_path, (), (stop,), stop), why)


class TcpWrappersReader:
    def __init__(self, paths: HostPaths, binaries: Sequence[str] = BINARIES, daemon: str = "sshd") -> None:
        self.paths = paths
        self.binaries = tuple(binaries)
        self.daemon = daemon
        self._tables: dict[str, _Parsed] = {}
        self._patterns: dict[str, tuple[Signature, tuple[str, ...] | None]] = {}
        self._binaries: dict[str, tuple[Signature, bool | None]] = {}
        self._summary: tuple[tuple[Signature, ...], AccessRules, Summary] | None = None
        self._pattern_paths: tuple[Table, Table, tuple[str, ...]] | None = None

    def _table(self, host_path: str) -> _Parsed:
        """The file's table: cached while unchanged, extended when lines were only appended (DenyHosts)."""
        local = self.paths.root_or_none(host_path)
        signature = file_signature(local)
        cached = self._tables.get(host_path)
        if cached is not None and cached.signature == signature:
            return cached
        try:
            data = read_regular_file(_followed(local), MAX_BYTES, paths=self.paths)
        except FileNotFoundError:
            parsed = _Parsed(signature, Table(host_path, (), ()))
        except OSError as exc:
            parsed = _unreadable(signature, host_path, exc.strerror or str(exc))
        else:
            try:
                parsed = self._parsed(host_path, signature, data, cached)
            except TooManyRulesError as exc:
                parsed = _unreadable(signature, host_path, str(exc))
        self._tables[host_path] = parsed
        return parsed

    @staticmethod
    def _parsed(host_path: str, signature: Signature, data: bytes, cached: _Parsed | None) -> _Parsed:
        """The file's bytes as a table: the cached one touched or extended when only lines were added."""
        prefix = hashlib.blake2b(memoryview(data)[: cached.size] if cached else b"")  # no 4.5 MB copy
        same_start = cached is not None and prefix.digest() == cached.digest
        if cached and same_start and cached.size == len(data):  # touched, not changed
            return _Parsed(signature, cached.table, None, cached.size, cached.digest, cached.table)
        if cached and same_start and cached.table.end and cached.size < len(data):
            prefix.update(data[cached.size :])
            table = extend_table(cached.table, data[cached.size :].decode("utf-8", "replace"))
            return _Parsed(signature, table, None, len(data), prefix.digest(), cached.table)
        table = parse_table(data.decode("utf-8", "replace"), host_path)
        return _Parsed(signature, table, None, len(data), hashlib.blake2b(data).digest())

    def pattern_file(self, host_path: str) -> tuple[str, ...] | None:
        """A `/path` pattern file's patterns (read under rootfs); None when it cannot be read."""
        local = self.paths.root_or_none(host_path)
        signature = file_signature(local)
        cached = self._patterns.get(host_path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            patterns: tuple[str, ...] | None = pattern_tokens(
                read_regular_text(_followed(local), MAX_BYTES, paths=self.paths)
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            if not isinstance(exc, FileNotFoundError):
                log.warning("tcpwrappers: pattern file %r: %s; it matches nothing", host_path, exc)
            patterns = None
        self._patterns[host_path] = (signature, patterns)
        return patterns

    def _links(self, host_path: str) -> bool | None:
        local = self.paths.root_or_none(host_path)
        signature = file_signature(local)
        cached = self._binaries.get(host_path)
        if cached is None or cached[0] != signature:
            cached = (signature, read_links_libwrap(local, self.paths) if local and signature else None)
            self._binaries[host_path] = cached
        return cached[1]

    def _referenced(self, allow: Table, deny: Table) -> tuple[str, ...]:
        """Pattern files the rules name, worked out once per parsed pair of tables."""
        if (
            self._pattern_paths is None
            or self._pattern_paths[0] is not allow
            or self._pattern_paths[1] is not deny
        ):
            paths = sorted(
                {t for table in (allow, deny) for r in table.general for t in r.clients if t[0] == "/"}
            )
            self._pattern_paths = (allow, deny, tuple(paths))
        return self._pattern_paths[2]

    # the collector, the watchlist and diagnose at once: one parse (and one 4.5 MB text held), not two
    @singleflight
    def read(self) -> TcpWrappersSnapshot:
        allow, deny = self._table(HOSTS_ALLOW), self._table(HOSTS_DENY)
        referenced = self._referenced(allow.table, deny.table)
        patterns = tuple(file_signature(self.paths.root_or_none(p)) for p in referenced)
        signature = (allow.signature, deny.signature, *patterns)
        previous = self._summary
        if previous is not None and previous[0] == signature:
            _, rules, summary = previous
        else:
            old_signature, old_rules, old_summary = previous or ((), None, None)
            if (
                old_rules is not None
                and old_summary is not None
                and old_signature[:1] + old_signature[2:] == signature[:1] + signature[2:]
                and deny.grown_from is not None
                and deny.grown_from is old_rules.deny
            ):
                rules = old_rules.with_deny(deny.table)
                summary = summarize(rules, self.daemon, since=old_summary)
            else:
                rules = AccessRules(allow.table, deny.table, self.pattern_file)
                summary = summarize(rules, self.daemon)
            self._summary = (signature, rules, summary)
        files = tuple(
            FileState(
                p.table.file,
                p.signature[0] / 1e9 if p.signature else None,
                p.table.rule_count,
                p.table.errors,
                p.unreadable,
                p.table.error_count,
            )
            for p in (allow, deny)
        )
        libwrap = {b: linked for b in self.binaries if (linked := self._links(b)) is not None}
        return TcpWrappersSnapshot(rules, files, summary, libwrap)
