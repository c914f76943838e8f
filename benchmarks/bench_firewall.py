"""The firewall collector against its floor: 100,000 addresses in an nft set, 10,000 legacy rules.

Inside a fresh network namespace: an nft set of 100,000 addresses from 2001:db8::/32 (documentation;
no packet is sent anywhere) referenced by a drop rule, and 10,000 iptables-legacy rules in one chain
jumped to from INPUT (documentation addresses, one destination port each). Measured in the same run,
inside the namespace, in interleaved rounds (median of each): the collector's whole scrape (read,
walk, render) with python-iptables and with `iptables-legacy-save` for the legacy tables, and the
floor: `iptables-legacy-save` plus `nft -j list ruleset` alone, their output unparsed.
Goal (issue 5): within 2x of the floor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.harness import NetNs

ADDRESSES = 100_000
RULES = 10_000
RUNS = 9

# Run inside the namespace: median seconds of each contender, as JSON.
CHILD = """
import json, statistics, subprocess, sys, time
from exporter.collectors.firewall import FirewallCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.firewall.reader import FirewallReader

def floor():
    subprocess.run(["iptables-legacy-save", "-c"], capture_output=True, check=True)
    subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, check=True)

def scrape(use_iptc):
    collector = FirewallCollector(FirewallReader(HostPaths(), timeout=60, use_iptc=use_iptc), None)
    return lambda: list(collector.collect())

def only(name, *args):
    return lambda: subprocess.run([name, *args], capture_output=True, check=True)

contenders = {
    "floor": floor,
    "iptables-legacy-save": only("iptables-legacy-save", "-c"),
    "nft -j list ruleset": only("nft", "-j", "list", "ruleset"),
    "collector (iptables-legacy-save)": scrape(False),
    "collector (python-iptables)": scrape(True),
}
times = {name: [] for name in contenders}
for _ in range(int(sys.argv[1])):  # rounds: each contender once, so load on the machine hits all alike
    for name, run in contenders.items():
        started = time.perf_counter()
        run()
        times[name].append(time.perf_counter() - started)
print(json.dumps({name: statistics.median(found) for name, found in times.items()}))
"""


def populate(netns: NetNs, directory: Path) -> None:
    """The set and the rules, each loaded in one transaction."""
    elements = ",\n".join(f"2001:db8::{i >> 16:x}:{i & 0xFFFF:x}" for i in range(ADDRESSES))
    nft_file = directory / "ruleset.nft"
    nft_file.write_text(
        "table inet bench {\n"
        f"  set blocked {{ type ipv6_addr; elements = {{ {elements} }} }}\n"
        "  chain in { type filter hook input priority 0; policy accept;\n"
        "    tcp dport 22 ip6 saddr @blocked counter drop\n  }\n}\n"
    )
    networks = ("192.0.2", "198.51.100", "203.0.113")
    rules = "\n".join(
        f"-A bench -s {networks[i % 3]}.{i % 256} -p tcp -m tcp --dport {1024 + i} -j DROP"
        for i in range(RULES)
    )
    restore = f"*filter\n:INPUT ACCEPT [0:0]\n:bench - [0:0]\n-A INPUT -p tcp -j bench\n{rules}\nCOMMIT\n"
    for command, text in ((["nft", "-f", str(nft_file)], None), (["iptables-legacy-restore"], restore)):
        subprocess.run(netns.command(command), input=text, text=True, check=True, timeout=300)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, NetNs(Path(tmp) / "netns", prefix="fwbench") as netns:
        populate(netns, Path(tmp))
        cwd = Path(__file__).resolve().parents[1]
        run = subprocess.run(
            netns.command([sys.executable, "-c", CHILD, str(RUNS)]),
            capture_output=True, text=True, check=True, cwd=cwd, timeout=1200,
        )  # fmt: skip
        result = json.loads(run.stdout)
    floor = result["floor"]
    print(f"{ADDRESSES:,} addresses in an nft set, {RULES:,} legacy rules; median of {RUNS} runs")
    for name, seconds in result.items():
        print(f"  {name:36s} {seconds * 1000:8.1f} ms  {seconds / floor:5.2f}x floor")
