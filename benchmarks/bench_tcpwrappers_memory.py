"""What the exporter keeps for bench_tcpwrappers' 50,000-entry DenyHosts hosts.deny (issue 16).

The file is read through TcpWrappersReader on a temporary rootfs and judged as the tcpwrappers collector
(a read), diagnose (`evaluate` for single addresses) and the watchlist (`wrapper_outcome` for networks)
do, then DenyHosts appends one entry and it is judged again; the DenyHosts reader reads the same file.
Printed: the times and the resident memory the process grew by (after a garbage collection), without
tracemalloc (first: the heap is not grown yet), then in a second pass tracemalloc's bytes held after each
step and its peak during it (what was held before included). No root needed.
"""

from __future__ import annotations

import gc
import ipaddress
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_tcpwrappers import addresses, hosts_deny
from exporter.sources.access.layers import wrapper_outcome
from exporter.sources.denyhosts import DenyhostsReader
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers.reader import TcpWrappersReader

MB = 1e6
NETWORKS = ("192.0.2.3/32", "2001:db8::/120", "198.51.100.0/24")


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def phases(root: Path, patterns: list[str]) -> list[tuple[str, Callable[[], object]]]:
    """The steps, in order; each keeps what it made on the readers."""
    paths = HostPaths(rootfs=root)
    wrappers, denyhosts = TcpWrappersReader(paths), DenyhostsReader(paths, str(root / "none"))
    last = patterns[-1].strip("[]")

    def judge() -> None:
        snapshot = wrappers.read()
        for address in ("192.0.2.3", last, "2001:db8:1::1"):
            evaluate(snapshot.rules, client=ClientInfo(address))
        for network in NETWORKS:
            wrapper_outcome(snapshot, ipaddress.ip_network(network))

    def append() -> None:
        with (root / "etc/hosts.deny").open("a") as deny:
            deny.write(hosts_deny(["[2001:db8:2::1]"]))
        judge()

    return [
        ("read and parse (the collector's first scrape)", wrappers.read),
        ("first verdicts (the index built)", judge),
        ("one DenyHosts entry appended, judged again", append),
        ("the DenyHosts reader", denyhosts.read),
    ]


def main() -> None:
    patterns = addresses()
    print(f"hosts.deny: {len(patterns)} entries")
    for traced in (False, True):
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            (root / "etc").mkdir()
            (root / "etc/hosts.deny").write_text(hosts_deny(patterns))
            (root / "etc/hosts.allow").write_text("sshd: 192.0.2.250\n")
            steps = phases(root, patterns)
            gc.collect()
            start = resident_mb()
            if traced:
                print("tracemalloc: held after each step (peak during it)")
                tracemalloc.start()
            for label, step in steps:
                if traced:
                    tracemalloc.reset_peak()
                started = time.perf_counter()
                step()
                took = (time.perf_counter() - started) * 1000
                gc.collect()
                if traced:
                    held, peak = tracemalloc.get_traced_memory()
                    print(f"  {label}: {held / MB:.2f} MB held (peak {peak / MB:.2f} MB)")
                else:
                    print(f"  {label}: {took:.1f} ms")
            if traced:
                tracemalloc.stop()
            else:
                print(f"  resident memory grew by {resident_mb() - start:.1f} MB (after gc)")
