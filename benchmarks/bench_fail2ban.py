"""The fail2ban collector against `fail2ban-client status JAIL` with 100,000 current bans in one jail.

A real fail2ban-server runs in a network namespace with a no-op ban action (nothing reaches a
firewall); the bans are injected with `fail2ban-client set JAIL banip ...` in batches, using
addresses from 2001:db8::/32 (documentation; no packet is sent anywhere). Measured in the same run:
our collector's scrape (median of SCRAPES), the server's CPU time per scrape (utime+stime deltas of
/proc/PID/stat), `fail2ban-client status JAIL` (what other exporters run every scrape), the raw
`status JAIL` over the socket (the same reply without the client's start-up), and the database count
(the fallback when the socket is unreachable).
Goal (issue 4): scrape under 10 ms and at least 20x faster than the CLI, without loading fail2ban.
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
from collections.abc import Callable
from pathlib import Path

from exporter.collectors.fail2ban import make_collector
from exporter.sources.fail2ban.database import read_database
from exporter.sources.fail2ban.protocol import CLOSE, END, encode
from exporter.sources.fail2ban.reader import Fail2banReader
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.reader import SshdReader
from tests.integration.harness import Fail2banServer, NetNs

BANS = 100_000
BATCH = 5_000
SCRAPES = 500
CLI_RUNS = 10
JAIL = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def address(index: int) -> str:
    return f"2001:db8::{index >> 16:x}:{index & 0xFFFF:x}"


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def idle_cpu_rate(pid: int, seconds: float = 5.0) -> float:
    """The server's own CPU seconds per second while nobody asks it anything (its polling threads)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def measure(run: Callable[[], object], times: int, pid: int, idle: float) -> dict[str, float]:
    """Median wall time of `run` and the server's CPU per call beyond its idle rate, in milliseconds."""
    run()  # warm up
    walls = []
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    for _ in range(times):
        started = time.perf_counter()
        run()
        walls.append((time.perf_counter() - started) * 1000)
    cpu = cpu_seconds(pid) - cpu_before - idle * (time.monotonic() - wall_before)
    return {"median_ms": round(statistics.median(walls), 2), "server_cpu_ms": round(cpu * 1000 / times, 2)}


def inject(server: Fail2banServer) -> float:
    started = time.monotonic()
    for first in range(0, BANS, BATCH):
        server.client("set", JAIL, "banip", *(address(i) for i in range(first, min(first + BATCH, BANS))))
    deadline = time.monotonic() + 600
    while f"Currently banned:\t{BANS}" not in server.client("status", JAIL, "--str"):
        assert time.monotonic() < deadline, "bans did not all land"
        time.sleep(1)
    return time.monotonic() - started


def raw_status(path: Path) -> int:
    """`status JAIL` over the socket, reply left undecoded: its addresses are IPAddr objects (a str
    subclass pickled through builtins.str), which the collector's unpickler refuses by design."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(encode(["status", JAIL]))
        frame = bytearray()
        while not frame.endswith(END):
            frame += sock.recv(1 << 20)
        sock.sendall(CLOSE + END)
    return len(frame)


def main() -> None:
    if os.geteuid() != 0:
        print("needs root (network namespace, fail2ban-server)", file=sys.stderr)
        raise SystemExit(1)
    with tempfile.TemporaryDirectory() as tmp, NetNs(Path(tmp) / "netns", "sae-bench") as netns:
        log = Path(tmp) / "empty.log"
        log.write_text("")
        jail = (
            f"[{JAIL}]\nenabled = true\nfilter = sshd\nport = ssh\nlogpath = {log}\n"
            "banaction = noop\nbantime = 86400\n"
        )
        server = Fail2banServer(Path(tmp) / "fail2ban", netns, jail)
        (server.conf / "action.d" / "noop.conf").write_text(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionban =\nactionunban =\n"
        )
        with server:
            injected = inject(server)
            db_lag = time.monotonic()  # the server writes bans to its database after it counts them
            while read_database(server.db, {JAIL: 86400}).jails[0].current_bans < BANS:
                assert time.monotonic() - db_lag < 300, "database did not catch up"
                time.sleep(1)
            db_lag = time.monotonic() - db_lag
            time.sleep(5)  # let the server settle, then take its idle rate over a longer window
            idle = idle_cpu_rate(server.pid, 10.0)
            paths = HostPaths()
            sshd = SshdReader(paths)
            reader = Fail2banReader(
                paths, str(server.socket), str(server.db), timeout=10.0, sshd_ports=sshd.ports
            )
            collector = make_collector(reader)
            snapshot = reader.read()
            assert snapshot.jails[0].banned == BANS, snapshot
            ours = measure(lambda: list(collector.collect()), SCRAPES, server.pid, idle)
            cli_command = ["fail2ban-client", "-s", str(server.socket), "status", JAIL]
            cli = measure(
                lambda: subprocess.run(cli_command, capture_output=True, check=True),
                CLI_RUNS,
                server.pid,
                idle,
            )
            raw = measure(lambda: raw_status(server.socket), CLI_RUNS, server.pid, idle)
            raw_size = raw_status(server.socket)
            started = time.perf_counter()
            read_database(server.db, {JAIL: 86400})
            db_ms = round((time.perf_counter() - started) * 1000, 1)
            idle_after = idle_cpu_rate(server.pid, 10.0)
            rss = Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]
    result = {
        "bans": BANS,
        "inject_seconds": round(injected, 1),
        "scrapes": SCRAPES,
        "collector": ours,
        "fail2ban_client_status": cli,
        "socket_status_full": {**raw, "reply_bytes": raw_size},
        "database_count_ms": db_ms,
        "database_lag_seconds": round(db_lag, 1),
        "speedup_vs_cli": round(cli["median_ms"] / ours["median_ms"], 1),
        "server_idle_cpu_ms_per_s": [round(idle * 1000, 1), round(idle_after * 1000, 1)],
        "server_rss_mb": round(int(rss) / 1024, 1),
    }
    print(json.dumps(result, indent=2))
    print("\n| what | median wall | fail2ban-server CPU per call |\n|---|---|---|")
    for name, row in (
        ("fail2ban collector (`status JAIL short` + settings)", ours),
        ("`fail2ban-client status JAIL`", cli),
        ("`status JAIL` over the socket (full list)", raw),
    ):
        print(f"| {name} | {row['median_ms']} ms | {row['server_cpu_ms']} ms |")


if __name__ == "__main__":
    main()
