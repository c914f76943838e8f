"""TCP wrappers with a hosts.deny of 50,000 DenyHosts entries: our evaluator and scrape against tcpdmatch.

The file is what DenyHosts writes, a `# DenyHosts: <asctime> | sshd: ADDR` line then `sshd: ADDR`, for
the 768 IPv4 documentation addresses and 2001:db8::/32 ones in libwrap's `[v6]` form. Measured in the
same run on the same files: the collector's first scrape (read and parse), a scrape with the files
unchanged (the cache on mtime and size), one after the file changed, `evaluate` for an address near the
top, one at the end and one not listed, and `tcpdmatch -d sshd ADDRESS` for the same addresses (run in an
empty network namespace, as every tcpdmatch here). Goal (issue 6): scrape under 100 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers.reader import TcpWrappersReader
from tests.integration.harness import NetNs

ENTRIES = 50_000
SCRAPES = 200
EVALUATIONS = 2_000
TCPDMATCH_RUNS = 10
V4_NETS = ("192.0.2", "198.51.100", "203.0.113")


def addresses() -> list[str]:
    """Every IPv4 documentation address, then IPv6 ones, ENTRIES in all (as libwrap patterns)."""
    v4 = [f"{net}.{host}" for net in V4_NETS for host in range(256)]
    v6 = [f"[2001:db8::{i >> 16:x}:{i & 0xFFFF:x}]" for i in range(ENTRIES - len(v4))]
    return v4 + v6


def hosts_deny(patterns: list[str]) -> str:
    stamp = time.asctime(time.localtime(1_700_000_000))
    return "".join(f"# DenyHosts: {stamp} | sshd: {p}\nsshd: {p}\n" for p in patterns)


def median_ms(run: Callable[[], object], times: int) -> float:
    walls = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        walls.append((time.perf_counter() - started) * 1000)
    return statistics.median(walls)


def once_ms(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    patterns = addresses()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "etc").mkdir()
        (root / "usr/sbin").mkdir(parents=True)
        (root / "usr/sbin/sshd").symlink_to("/usr/sbin/sshd")
        deny = root / "etc/hosts.deny"
        deny.write_text(hosts_deny(patterns))
        (root / "etc/hosts.allow").write_text("sshd: 192.0.2.250\n")
        print(f"hosts.deny: {ENTRIES} entries, {deny.stat().st_size / 1e6:.1f} MB")

        reader = TcpWrappersReader(HostPaths(rootfs=root))
        collector = TcpWrappersCollector(reader)

        def scrape() -> None:
            assert list(collector.collect())

        print(f"scrape, first (read + parse + summary): {once_ms(scrape):.1f} ms")
        print(f"scrape, files unchanged (median of {SCRAPES}): {median_ms(scrape, SCRAPES):.3f} ms")
        os.utime(deny)
        print(f"scrape after hosts.deny was touched (read, hashed): {once_ms(scrape):.1f} ms")
        evaluate(reader.read().rules, client=ClientInfo("192.0.2.1"))  # build the index, as diagnose would
        with deny.open("a") as appended:
            appended.write(hosts_deny(["[2001:db8:2::1]"]))  # DenyHosts appends a new ban
        print(f"scrape after DenyHosts appended an entry: {once_ms(scrape):.1f} ms")
        deny.write_text(hosts_deny(patterns[1:]))  # DenyHosts purged the oldest entry: a rewrite
        print(f"scrape after hosts.deny was rewritten (parsed again): {once_ms(scrape):.1f} ms")

        rules = reader.read().rules
        probes = {
            "near the top": "192.0.2.3",
            "last entry": patterns[-1].strip("[]"),
            "not listed": "2001:db8:1::1",
        }
        for label, address in probes.items():
            client = ClientInfo(address)
            verdict = evaluate(rules, client=client)

            def judge(c: ClientInfo = client) -> object:
                return evaluate(rules, client=c)

            per_call = median_ms(judge, EVALUATIONS) * 1000
            print(f"evaluate {label} ({address}): {verdict.verdict} line {verdict.line}, {per_call:.1f} us")

        with NetNs(root / "ns") as netns:
            for label, address in probes.items():
                command = netns.command(["tcpdmatch", "-d", "sshd", address])

                def once(cmd: list[str] = command) -> str:
                    return subprocess.run(
                        cmd, cwd=root / "etc", capture_output=True, text=True, check=True
                    ).stdout

                answer = once().strip().splitlines()[-1].split()[-1]
                took = median_ms(once, TCPDMATCH_RUNS)
                print(f"tcpdmatch {label}: {answer}, {took:.1f} ms (process included)")
            bare = netns.command(["true"])
            took = median_ms(lambda: subprocess.run(bare, check=True), TCPDMATCH_RUNS)
            print(f"  (ip netns exec + a process that does nothing: {took:.1f} ms)")
