"""Scrape latency and RSS with 1,000 connections held to sshd, against prometheus-node-exporter.

sshd runs in one network namespace and the connections come from another over a veth pair, as from
other hosts, so sshd's TCP table holds only sshd's ends. Only the sshd collector runs (the other
collectors have their own benchmarks). Both exporters run on the host at once, scraped alternately,
so they see the same load. Needs root, sshd and prometheus-node-exporter (Debian packages).
Goal (issue 2): median scrape under 20 ms, RSS under 40 MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from exporter.registry import registrations
from exporter.sources.host.procfiles import read_proc_file
from exporter.sources.sshd.sock_diag import NetnsSockets
from tests.integration.harness import Exporter, NetNs, Sshd
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


# Runs in the client namespace: holds the connections (banner-less) until its stdin closes.
HOLDER = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection((host, port), timeout=30) for _ in range(count)]
assert all(s.recv(64).startswith(b"SSH-2.0-") for s in held), "sshd dropped a connection"
print("ready", flush=True)
sys.stdin.read()
"""
SERVER_ADDRESS, CLIENT_ADDRESS = "192.0.2.1", "192.0.2.2"  # inside the benchmark's own namespaces


def link(server: NetNs, client: NetNs) -> None:
    """A veth pair between the two namespaces, so the server's TCP table holds only its own ends."""
    tag = str(os.getpid())[-6:]
    host_end, peer_end = f"saebs{tag}", f"saebc{tag}"
    subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", peer_end], check=True)
    for end, ns, address in ((host_end, server, SERVER_ADDRESS), (peer_end, client, CLIENT_ADDRESS)):
        subprocess.run(["ip", "link", "set", end, "netns", ns.name], check=True)
        ns.run(["ip", "addr", "add", f"{address}/24", "dev", end])
        ns.run(["ip", "link", "set", end, "up"])


def hold(client: NetNs, port: int, count: int) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        client.command([sys.executable, "-c", HOLDER, SERVER_ADDRESS, str(port), str(count)]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def _median_ms(work: Callable[[], object], rounds: int = 20) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def floors_ms(listener: int, port: int) -> dict[str, float]:
    """What any per-connection reader must pay here, with the cheapest calls Python has, median of
    20 rounds. `open_read`: each connection's title and children file opened and read, plus the
    listener's text TCP table (IPv4: the benchmark's sshd listens on IPv4 only). `held`: the same
    files read through descriptors kept open (one pread each), plus a sock_diag dump of sshd's port
    in its namespace: the reads the exporter makes."""
    monitors = read_proc_file(f"/proc/{listener}/task/{listener}/children").split()

    def open_read() -> None:
        for child in monitors:
            with contextlib.suppress(OSError):
                read_proc_file(f"/proc/{child.decode()}/cmdline")
                read_proc_file(f"/proc/{child.decode()}/task/{child.decode()}/children")
        read_proc_file(f"/proc/{listener}/net/tcp")

    held = [
        os.open(path, os.O_RDONLY)
        for child in monitors
        for path in (
            f"/proc/{child.decode()}/cmdline",
            f"/proc/{child.decode()}/task/{child.decode()}/children",
        )
    ]
    diag = NetnsSockets()

    def held_reads() -> None:
        for fd in held:
            os.pread(fd, 4096, 0)
        diag.tcp_states(f"/proc/{listener}/ns/net", (port,))

    try:
        return {"open_read": _median_ms(open_read), "held": _median_ms(held_reads)}
    finally:
        for fd in held:
            os.close(fd)
        diag.close()


def summary(name: str, times: list[float], pid: int, size: int) -> dict[str, object]:
    ordered = sorted(times)
    return {
        "exporter": name,
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 2),
        "rss_mb": round(rss_mb(pid), 1),
        "exposition_bytes": size,
    }


def measure(targets: dict[str, tuple[str, int]]) -> list[dict[str, object]]:
    """Scrape the exporters alternately, SCRAPES times each, after one warm-up scrape."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    sizes: dict[str, int] = {}
    for url, _ in targets.values():
        scrape_ms(url)
    for _ in range(SCRAPES):
        for name, (url, _) in targets.items():
            elapsed, sizes[name] = scrape_ms(url)
            times[name].append(elapsed)
    return [summary(name, times[name], pid, sizes[name]) for name, (_, pid) in targets.items()]


def main() -> None:
    if os.geteuid() != 0 or not Path(NODE_EXPORTER).exists():
        print("needs root and prometheus-node-exporter (make system-deps)", file=sys.stderr)
        raise SystemExit(1)
    settings = (
        f"MaxStartups {CONNECTIONS + 100}:30:{CONNECTIONS + 200}\nLoginGraceTime 600\n"
        f"ListenAddress {SERVER_ADDRESS}\n"
    )
    others = [f"--no-collector.{r.name}" for r in registrations() if r.name != "sshd"]
    node_port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        NetNs(Path(tmp) / "srv") as server,
        NetNs(Path(tmp) / "cli") as client,
    ):
        if True:
            link(server, client)
            with Sshd(Path(tmp) / "sshd", settings, netns=server) as sshd:
                holder = hold(client, sshd.port, CONNECTIONS)
                node = subprocess.Popen(
                    [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    wait_for_port(node_port)
                    with Exporter(f"--collector.sshd.config={sshd.config}", *others) as ours:
                        text = ours.text()
                        assert f"ssh_access_sshd_startups {CONNECTIONS}.0" in text, "not all were held"
                        rows = measure(
                            {
                                "ssh-access-exporter": (ours.url, ours.proc.pid),
                                "prometheus-node-exporter": (
                                    f"http://127.0.0.1:{node_port}/metrics",
                                    node.pid,
                                ),
                            }
                        )
                        floors = floors_ms(sshd.pid, sshd.port)
                finally:
                    node.terminate()
                    node.wait()
                    holder.communicate("")
    result = {"connections": CONNECTIONS, "scrapes": SCRAPES, "floors_ms": floors, "results": rows}
    print(json.dumps(result, indent=2))
    print("\n| exporter | median scrape | p90 scrape | RSS | exposition |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['exporter']} | {row['median_ms']} ms | {row['p90_ms']} ms | {row['rss_mb']} MB "
            f"| {row['exposition_bytes']} B |"
        )
    print(f"| floor, files opened and read, text TCP table | {floors['open_read']} ms | | | |")
    print(f"| floor, held files (pread), sock_diag dump | {floors['held']} ms | | | |")


if __name__ == "__main__":
    main()
