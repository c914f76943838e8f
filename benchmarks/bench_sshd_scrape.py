"""Scrape latency and RSS with 1,000 connections held to sshd, against prometheus-node-exporter.

Both exporters run at once on loopback against the same host, scraped alternately, so they see the
same load. Needs root (sshd -D), sshd and prometheus-node-exporter (Debian packages).
Goal (issue 2): median scrape under 20 ms, RSS under 40 MB.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.integration.harness import Exporter, Sshd
from tests.net import free_port, wait_for_port

CONNECTIONS = 1000
SCRAPES = 100
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape_ms(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, len(body)


def hold(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        held.append(sock)
    for sock in held:  # every one was accepted: MaxStartups is set above the count
        assert sock.recv(64).startswith(b"SSH-2.0-")
    return held


def summary(name: str, times: list[float], pid: int, size: int) -> dict[str, object]:
    ordered = sorted(times)
    return {
        "exporter": name,
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 2),
        "rss_mb": round(rss_mb(pid), 1),
        "exposition_bytes": size,
    }


def main() -> None:
    if os.geteuid() != 0 or not Path(NODE_EXPORTER).exists():
        print("needs root and prometheus-node-exporter (make system-deps)", file=sys.stderr)
        raise SystemExit(1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = f"MaxStartups {CONNECTIONS + 100}:30:{CONNECTIONS + 200}\nLoginGraceTime 600\n"
        with Sshd(Path(tmp) / "sshd", settings) as sshd:
            held = hold(sshd.port, CONNECTIONS)
            node_port = free_port()
            node = subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for_port(node_port)
                with Exporter(f"--collector.sshd.config={sshd.config}") as ours:
                    targets = {
                        "ssh-access-exporter": (ours.url, ours.proc.pid),
                        "prometheus-node-exporter": (f"http://127.0.0.1:{node_port}/metrics", node.pid),
                    }
                    first = ours.text()
                    assert f"ssh_access_sshd_startups {CONNECTIONS}.0" in first, "sshd did not hold them all"
                    times: dict[str, list[float]] = {name: [] for name in targets}
                    sizes: dict[str, int] = {}
                    for url, _ in targets.values():
                        scrape_ms(url)  # warm up
                    for _ in range(SCRAPES):
                        for name, (url, _) in targets.items():
                            elapsed, sizes[name] = scrape_ms(url)
                            times[name].append(elapsed)
                    rows = [
                        summary(name, times[name], pid, sizes[name]) for name, (_, pid) in targets.items()
                    ]
            finally:
                node.terminate()
                node.wait()
                for sock in held:
                    sock.close()
    print(json.dumps({"connections": CONNECTIONS, "scrapes": SCRAPES, "results": rows}, indent=2))
    print("\n| exporter | median scrape | p90 scrape | RSS | exposition |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['exporter']} | {row['median_ms']} ms | {row['p90_ms']} ms | {row['rss_mb']} MB "
            f"| {row['exposition_bytes']} B |"
        )


if __name__ == "__main__":
    main()
