"""What the exporter keeps for a hosts.deny of 50,000 DenyHosts entries (issue 16: a host under attack).

The reader keeps the file's text once and a compact index of its addresses: before, the index and
the rules it read held 32 MB of objects for a 4.5 MB file, and the first parse peaked at 41 MB (a regex
stack). The bounds leave room for Python versions and allocators; they do not depend on the machine's
load (tracemalloc counts bytes, not time).
"""

from __future__ import annotations

import gc
import ipaddress
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.access.layers import wrapper_outcome
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers import reader as wrappers_reader
from exporter.sources.tcpwrappers.reader import TcpWrappersReader
from exporter.sources.tcpwrappers.syntax import ParseState, Table, parse_table

ENTRIES = 50_000
MB = 1_000_000
HELD_MAX = 12 * MB  # the text (4.5 MB) and the index (under 1 MB); 32 MB before
PEAK_MAX = 26 * MB  # reading the file takes a 16 MiB buffer (host.files); 41 MB before


def _patterns() -> Iterator[str]:
    """Every IPv4 documentation address, then 2001:db8:: ones as libwrap's `[v6]` patterns."""
    v4 = [f"{net}.{host}" for net in ("192.0.2", "198.51.100", "203.0.113") for host in range(256)]
    yield from v4
    for number in range(ENTRIES - len(v4)):
        yield f"[2001:db8::{number >> 16:x}:{number & 0xFFFF:x}]"


def _denyhosts(patterns: Iterator[str]) -> str:
    stamp = time.asctime(time.localtime(1_700_000_000))
    return "".join(f"# DenyHosts: {stamp} | sshd: {p}\nsshd: {p}\n" for p in patterns)


def _traced(measure: Callable[[], object]) -> tuple[int, int]:
    """(bytes still held, peak) by what `measure()` makes, after a garbage collection."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = measure()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return current - before, peak - before


def test_a_50000_entry_denyhosts_file_is_held_in_a_few_megabytes(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    deny = tmp_path / "etc/hosts.deny"
    deny.write_text(_denyhosts(_patterns()))
    (tmp_path / "etc/hosts.allow").write_text("sshd: 192.0.2.250\n")
    paths = HostPaths(rootfs=tmp_path)
    reader = TcpWrappersReader(paths)
    last = f"2001:db8::{(ENTRIES - 769) >> 16:x}:{(ENTRIES - 769) & 0xFFFF:x}"

    def read_and_judge() -> TcpWrappersReader:
        snapshot = reader.read()
        assert snapshot.summary.rules[("/etc/hosts.deny", "deny")] == ENTRIES
        found = evaluate(snapshot.rules, client=ClientInfo(last))  # builds the index, as diagnose does
        assert (found.verdict, found.line, found.rule_text) == ("deny", 2 * ENTRIES, f"sshd: [{last}]")
        assert found.rule is not None and found.rule.marked_by == "denyhosts"
        assert evaluate(snapshot.rules, client=ClientInfo("192.0.2.250")).verdict == "allow"
        assert evaluate(snapshot.rules, client=ClientInfo("2001:db8:1::1")).verdict == "allow"
        outcome = wrapper_outcome(snapshot, ipaddress.ip_network("198.51.100.0/24"))  # the watchlist's way
        assert outcome.sure_deny and outcome.rule is not None and outcome.rule.line == 2 * 257
        # the watchlist's pass over every rule (a network of more than 256 addresses) keeps none of them
        assert sum(rule.marked_by == "denyhosts" for rule in snapshot.rules.deny.rules) == ENTRIES
        return reader

    held, peak = _traced(read_and_judge)
    assert held < HELD_MAX, f"{held / MB:.1f} MB held"
    assert peak < PEAK_MAX, f"{peak / MB:.1f} MB at the peak"

    with deny.open("a") as appended:  # DenyHosts adds a ban: the index grows, and stays small
        appended.write(_denyhosts(iter(["[2001:db8:2::1]"])))
    grown = reader.read()
    assert evaluate(grown.rules, client=ClientInfo("2001:db8:2::1")).line == 2 * ENTRIES + 2


def test_readers_at_once_share_one_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector, the watchlist and diagnose read at the same time in a scrape: one of them parses,
    the others get its tables (each parse kept its own copy of a 4.5 MB text while it was used)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts.deny").write_text("sshd: 192.0.2.1\n")
    parsing, release = threading.Event(), threading.Event()
    parsed: list[str] = []

    def slow_parse(text: str, file: str, state: ParseState | None = None) -> Table:
        parsed.append(file)
        parsing.set()
        assert release.wait(10)
        return parse_table(text, file, state)

    monkeypatch.setattr(wrappers_reader, "parse_table", slow_parse)
    reader = TcpWrappersReader(HostPaths(rootfs=tmp_path))
    snapshots: list[object] = []
    threads = [threading.Thread(target=lambda: snapshots.append(reader.read())) for _ in range(3)]
    threads[0].start()
    assert parsing.wait(10)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # the others reach read() while the first one parses (later, they find it cached)
    release.set()
    for thread in threads:
        thread.join(10)
    assert parsed == ["/etc/hosts.deny"]
    assert len(snapshots) == 3 and all(s is snapshots[0] for s in snapshots)
