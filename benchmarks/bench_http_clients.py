"""Hostile HTTP clients against the exporter and prometheus-node-exporter side by side, on loopback.

Both run at once with the same web config (one bcrypt user), the exporter with its default collectors on
this host, node_exporter with a cheap collector set; the clients run in processes of their own
(tests/integration/hostile.py). Three cases (issue 16):
1. 1,000 idle + 1,000 byte-a-second clients against each (reconnecting when closed) while both are
   scraped every 0.5 s: scrape latency before, during and after; Threads and RSS every second; what the
   server closed, and when.
2. 50 concurrent keep-alive scrapers for 30 s, each exporter alone: failures, p50/p99, scrapes/s.
3. 20 clients sending a wrong password in a loop while a good login is timed, against its time alone.
`--phase hostile|crowd|auth` (repeatable) runs only those cases. Needs prometheus-node-exporter (Debian
package); root is not needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bcrypt

from tests.integration.harness import Exporter
from tests.integration.hostile import raise_fd_limit
from tests.net import free_port, wait_for_port

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
NODE_COLLECTORS = ["cpu", "loadavg", "meminfo", "stat", "time", "uname"]
IDLE = TRICKLE = 1000
PHASES = {"before": 10.0, "during": 40.0, "after": 10.0}
SCRAPE_EVERY = 0.5
CROWD, CROWD_SECONDS = 50, 30.0
BAD_CLIENTS, AUTH_SAMPLES = 20, 40
USER, PASSWORD = "prometheus", "good-password"
GOOD = "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BAD = "Basic " + b64encode(f"{USER}:wrong".encode()).decode()


def proc_status(pid: int) -> tuple[int, float]:
    """Threads and RSS (MB) of a process."""
    threads, rss = 0, 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return threads, rss


def timed_get(url: str, authorization: str = GOOD) -> float | str:
    """Seconds for one GET on a new connection, or what went wrong."""
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return type(exc).__name__
    return time.perf_counter() - started


def percentiles_ms(times: list[float]) -> dict[str, float | int]:
    ordered = sorted(times)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def client(mode: str, port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.hostile", mode, "127.0.0.1", str(port), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = proc.communicate("", timeout=120)
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


class Sampler:
    """Scrapes every target every SCRAPE_EVERY s and reads Threads/RSS every second, tagged by phase."""

    def __init__(self, targets: dict[str, tuple[str, int]]) -> None:
        self.targets = targets
        self.phase = "before"
        self.scrapes: dict[tuple[str, str], list[float]] = {}
        self.failures: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self.status: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._scrape), threading.Thread(target=self._watch)]

    def __enter__(self) -> Sampler:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _scrape(self) -> None:
        while not self.stop.wait(SCRAPE_EVERY):
            for name, (url, _) in self.targets.items():
                result = timed_get(url)
                key = (name, self.phase)
                if isinstance(result, float):
                    self.scrapes.setdefault(key, []).append(result)
                else:
                    self.failures.setdefault(key, []).append((time.monotonic() - self.started, result))

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            for name, (_, pid) in self.targets.items():
                self.status.setdefault((name, self.phase), []).append(proc_status(pid))

    def report(self) -> dict[str, dict[str, object]]:
        rows: dict[str, dict[str, object]] = {}
        for name in self.targets:
            for phase in PHASES:
                status = self.status.get((name, phase), [(0, 0.0)])
                rows[f"{name} {phase}"] = {
                    **percentiles_ms(self.scrapes.get((name, phase), [])),
                    "failures": self.failures.get((name, phase), []),
                    "threads_max": max(t for t, _ in status),
                    "rss_mb_min": round(min(r for _, r in status), 1),
                    "rss_mb_max": round(max(r for _, r in status), 1),
                }
        return rows


def hostile_phase(targets: dict[str, tuple[str, int]], ports: dict[str, int]) -> dict[str, object]:
    load: dict[str, object] = {"loadavg_start": os.getloadavg()}
    with Sampler(targets) as sampler:
        time.sleep(PHASES["before"])
        sampler.phase = "during"
        holders = {
            name: client("hold", port, str(IDLE), str(TRICKLE), str(PHASES["during"]), "--reconnect")
            for name, port in ports.items()
        }
        for holder in holders.values():
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        time.sleep(PHASES["during"])
        closed = {name: finish(holder) for name, holder in holders.items()}
        sampler.phase = "after"
        time.sleep(PHASES["after"])
    load["loadavg_end"] = os.getloadavg()
    return {"load": load, "phases": sampler.report(), "clients": closed}


def watch_status(pid: int, done: threading.Event, into: list[tuple[int, float]]) -> None:
    while not done.wait(1.0):
        into.append(proc_status(pid))


def crowd_phase(targets: dict[str, tuple[str, int]], ports: dict[str, int]) -> dict[str, object]:
    rows: dict[str, object] = {}
    for name, port in ports.items():
        pid = targets[name][1]
        load = os.getloadavg()[0]
        crowd = client("scrape", port, str(CROWD), str(CROWD_SECONDS), GOOD)
        peaks: list[tuple[int, float]] = []
        done = threading.Event()
        watcher = threading.Thread(target=watch_status, args=(pid, done, peaks))
        watcher.start()
        try:
            result = finish(crowd)  # read while it runs: its summary is larger than a pipe holds
        finally:
            done.set()
            watcher.join()
        peak = (max(t for t, _ in peaks), max(r for _, r in peaks))
        latencies = result["latencies"]
        failures = result["failures"]
        assert isinstance(latencies, list) and isinstance(failures, list)
        seconds = result["seconds"]
        assert isinstance(seconds, float)
        rows[name] = {
            **percentiles_ms(latencies),
            "failures": len(failures),
            "failure_kinds": sorted(set(failures)),
            "scrapes_per_s": round(len(latencies) / seconds, 1),
            "threads_max": peak[0],
            "rss_mb_max": round(peak[1], 1),
            "loadavg_1m_before": load,
        }
    return rows


def good_logins(url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        result = timed_get(url)
        assert isinstance(result, float), result
        times.append(result)
        time.sleep(0.25)
    return times


def auth_phase(targets: dict[str, tuple[str, int]], ports: dict[str, int]) -> dict[str, object]:
    """The good login comes from 127.0.0.1; the wrong passwords from another address (127.0.0.2, as from
    another host: the server takes waiting requests in turn by address), then from the same one."""
    rows: dict[str, object] = {}
    for source in ("127.0.0.2", "127.0.0.1"):
        for name, port in ports.items():
            url = targets[name][0]
            assert timed_get(url, BAD) == "HTTP 401"
            alone = good_logins(url, AUTH_SAMPLES)
            bad = client("scrape", port, str(BAD_CLIENTS), "3600", BAD, f"--from={source}")
            time.sleep(2)
            attacked = good_logins(url, AUTH_SAMPLES)
            bad.kill()  # its summary (all 401s) is not needed
            bad.wait()
            before, during = percentiles_ms(alone), percentiles_ms(attacked)
            rows[f"{name}, wrong passwords from {source}"] = {
                "alone": before,
                "with_bad_passwords": during,
                "p50_factor": round(float(during["p50_ms"]) / float(before["p50_ms"]), 2),
                "p99_factor": round(float(during["p99_ms"]) / float(before["p99_ms"]), 2),
                "loadavg_1m": os.getloadavg()[0],
            }
    return rows


PHASES_RUN = {"hostile": hostile_phase, "crowd": crowd_phase, "auth": auth_phase}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks http_clients")
    parser.add_argument("--phase", action="append", choices=sorted(PHASES_RUN), help="default: all, in turn")
    args, _ = parser.parse_known_args(sys.argv[1:])
    phases = args.phase or list(PHASES_RUN)
    if not Path(NODE_EXPORTER).exists():
        print("needs prometheus-node-exporter (make system-deps)", file=sys.stderr)
        raise SystemExit(1)
    raise_fd_limit(8192)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    node_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        web_config = Path(tmp) / "web.yml"
        web_config.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        node = subprocess.Popen(
            [
                NODE_EXPORTER,
                f"--web.listen-address=127.0.0.1:{node_port}",
                f"--web.config.file={web_config}",
                "--web.max-requests=0",  # its default, 40 at once, answers the 41st scraper 503
                "--collector.disable-defaults",
                *(f"--collector.{name}" for name in NODE_COLLECTORS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(node_port)
            with Exporter(f"--web.config.file={web_config}", headers={"Authorization": GOOD}) as ours:
                ours.text()
                targets = {
                    "ssh-access-exporter": (ours.url, ours.proc.pid),
                    "node_exporter": (f"http://127.0.0.1:{node_port}/metrics", node.pid),
                }
                ports = {"ssh-access-exporter": ours.port, "node_exporter": node_port}
                for url, _ in targets.values():
                    assert isinstance(timed_get(url), float)  # the good login is cached from here on
                result: dict[str, object] = {"cpus": os.cpu_count()}
                for name in phases:
                    result[name] = PHASES_RUN[name](targets, ports)
        finally:
            node.terminate()
            node.wait()
    print(json.dumps(result, indent=2))
    print_tables(result)


def print_tables(result: Mapping[str, object]) -> None:
    hostile = result.get("hostile")
    if isinstance(hostile, dict):
        print_hostile(hostile)
    crowd = result.get("crowd")
    if isinstance(crowd, dict):
        print_crowd(crowd)
    auth = result.get("auth")
    if isinstance(auth, dict):
        print_auth(auth)


def print_hostile(hostile: dict[str, Any]) -> None:
    print("\n| exporter, phase | scrapes | p50 | p99 | max | failures | threads max | RSS min-max |")
    print("|---|---|---|---|---|---|---|---|")
    for key, row in hostile["phases"].items():
        print(
            f"| {key} | {row.get('count')} | {row.get('p50_ms')} ms | {row.get('p99_ms')} ms "
            f"| {row.get('max_ms')} ms | {len(row['failures'])} | {row['threads_max']} "
            f"| {row['rss_mb_min']}-{row['rss_mb_max']} MB |"
        )


def print_crowd(crowd: dict[str, Any]) -> None:
    print("\n| exporter | 50 scrapers: scrapes | failures | p50 | p99 | scrapes/s | threads max | RSS max |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in crowd.items():
        print(
            f"| {name} | {row['count']} | {row['failures']} | {row['p50_ms']} ms | {row['p99_ms']} ms "
            f"| {row['scrapes_per_s']} | {row['threads_max']} | {row['rss_mb_max']} MB |"
        )


def print_auth(auth: dict[str, Any]) -> None:
    print(
        "\n| exporter | good login alone p50/p99 | with 20 wrong-password clients p50/p99 | factor p50/p99 |"
    )
    print("|---|---|---|---|")
    for name, row in auth.items():
        alone, during = row["alone"], row["with_bad_passwords"]
        print(
            f"| {name} | {alone['p50_ms']} / {alone['p99_ms']} ms "
            f"| {during['p50_ms']} / {during['p99_ms']} ms | {row['p50_factor']} / {row['p99_factor']} |"
        )


if __name__ == "__main__":
    main()
