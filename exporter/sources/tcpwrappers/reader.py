"""TCP wrappers on the host: hosts.allow, hosts.deny and their pattern files under --path.rootfs.

A scrape stats the files and reuses the parsed tables and their summary while (mtime, size) stay the
same: a hosts.deny with 50,000 DenyHosts lines takes a while to parse, and sits unchanged for hours.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.paths import HostPaths
from exporter.sources.tcpwrappers.evaluate import (
    NO,
    YES,
    AccessRules,
    applies_to,
    needs_lookup,
    rule_verdict,
)
from exporter.sources.tcpwrappers.libwrap import BINARIES, read_links_libwrap
from exporter.sources.tcpwrappers.syntax import ParseError, Rule, Table, parse_table

HOSTS_ALLOW = "/etc/hosts.allow"
HOSTS_DENY = "/etc/hosts.deny"
FILES = (HOSTS_ALLOW, HOSTS_DENY)
VERDICTS = ("allow", "deny")
Signature = tuple[int, int] | None  # (mtime_ns, size); None: missing


@dataclass(frozen=True)
class FileState:
    path: str  # host path
    mtime: float | None  # None: missing (libwrap reads it as empty)
    rules: int
    errors: tuple[ParseError, ...]
    unreadable: str | None = None


@dataclass(frozen=True)
class Summary:
    """What the files mean for one daemon, whatever the client."""

    rules: dict[tuple[str, str], int]  # (file, verdict) -> rules whose daemon list takes in the daemon
    lookup_rules: dict[str, int]  # file -> of those, rules whose clients may need a name or ident lookup
    denies_everyone: bool


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
    lowered = [t.lower() for t in rule.clients]
    return "except" not in lowered and any(t in ("all", "*", "all@all") for t in lowered)


def summarize(rules: AccessRules, daemon: str = "sshd") -> Summary:
    """Rule counts by file and verdict, lookup-dependent rules, and whether no client can get in.

    Nobody gets in when, in libwrap's order, a rule for every client that denies comes before any rule
    that could allow someone (e.g. `sshd: ALL` in hosts.deny with nothing for sshd in hosts.allow)."""
    counts = {(f.file, v): 0 for f in (rules.allow, rules.deny) for v in VERDICTS}
    lookups = {rules.allow.file: 0, rules.deny.file: 0}
    everyone: bool | None = None
    for table, allow_file in ((rules.allow, True), (rules.deny, False)):
        for rule in table.rules:
            applies = applies_to(rule, daemon)
            if applies == NO:
                continue
            verdict = rule_verdict(rule, allow_file)[0]
            counts[(table.file, verdict)] += 1
            if needs_lookup(rule, rules.pattern_files):
                lookups[table.file] += 1
            if everyone is None and applies == YES and _everyone(rule):
                everyone = verdict == "deny"
            elif everyone is None and verdict == "allow":
                everyone = False
    if everyone is None and rules.deny.stop is not None:
        everyone = True  # libwrap denies every client that reaches a broken hosts.deny
    return Summary(counts, lookups, bool(everyone))


class TcpWrappersReader:
    def __init__(self, paths: HostPaths, binaries: Sequence[str] = BINARIES, daemon: str = "sshd") -> None:
        self.paths = paths
        self.binaries = tuple(binaries)
        self.daemon = daemon
        self._tables: dict[str, tuple[Signature, Table, str | None]] = {}
        self._patterns: dict[str, tuple[Signature, tuple[str, ...] | None]] = {}
        self._binaries: dict[str, tuple[Signature, bool | None]] = {}
        self._summary: tuple[tuple[Signature, ...], AccessRules, Summary] | None = None

    @staticmethod
    def _signature(path: Path) -> Signature:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _table(self, host_path: str) -> tuple[Signature, Table, str | None]:
        local = self.paths.root(host_path)
        signature = self._signature(local)
        cached = self._tables.get(host_path)
        if cached is not None and cached[0] == signature:
            return cached
        unreadable: str | None = None
        try:
            table = parse_table(local.read_text(errors="replace"), host_path)
        except FileNotFoundError:
            table = Table(host_path, (), ())
        except OSError as exc:
            unreadable = exc.strerror or str(exc)
            stop = ParseError(host_path, 0, f"cannot open: {unreadable}")
            table = Table(host_path, (), (stop,), stop)  # libwrap's table_match: an error, not "empty"
        self._tables[host_path] = (signature, table, unreadable)
        return self._tables[host_path]

    def pattern_file(self, host_path: str) -> tuple[str, ...] | None:
        """A `/path` pattern file's patterns (read under rootfs); None when it cannot be read."""
        local = self.paths.root(host_path)
        signature = self._signature(local)
        cached = self._patterns.get(host_path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            patterns: tuple[str, ...] | None = tuple(local.read_text(errors="replace").split())
        except OSError:
            patterns = None
        self._patterns[host_path] = (signature, patterns)
        return patterns

    def _links(self, host_path: str) -> bool | None:
        local = self.paths.root(host_path)
        signature = self._signature(local)
        cached = self._binaries.get(host_path)
        if cached is None or cached[0] != signature:
            cached = (signature, read_links_libwrap(local) if signature else None)
            self._binaries[host_path] = cached
        return cached[1]

    def read(self) -> TcpWrappersSnapshot:
        allow_sig, allow, allow_error = self._table(HOSTS_ALLOW)
        deny_sig, deny, deny_error = self._table(HOSTS_DENY)
        referenced = sorted(
            {t for table in (allow, deny) for r in table.rules for t in r.clients if t[0] == "/"}
        )
        signature = (allow_sig, deny_sig, *(self._signature(self.paths.root(p)) for p in referenced))
        if self._summary is None or self._summary[0] != signature:
            rules = AccessRules(allow, deny, self.pattern_file)
            self._summary = (signature, rules, summarize(rules, self.daemon))
        _, rules, summary = self._summary
        files = tuple(
            FileState(table.file, sig[0] / 1e9 if sig else None, len(table.rules), table.errors, error)
            for table, sig, error in ((allow, allow_sig, allow_error), (deny, deny_sig, deny_error))
        )
        libwrap = {b: linked for b in self.binaries if (linked := self._links(b)) is not None}
        return TcpWrappersSnapshot(rules, files, summary, libwrap)
