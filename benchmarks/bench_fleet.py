"""`diagnose ADDRESS --fleet=PROMETHEUS_URL` over 200 real exporters on loopback behind one real Prometheus.

`python -m benchmarks fleet [--exporters N] [--runs R] [--batch B] [--scrape-interval S]` (as root, with
prometheus installed). Each exporter is the installed command with --web.enable-diagnose on its own
loopback port, reading its own fixture host tree (tests/builders.py `wrapped_sshd_host`: an sshd linked
with libwrap listening); every other host's hosts.deny denies the asked address, the others deny another
one. They are started B at a time, each batch waited for until every port answers. Prometheus scrapes
them all under job ssh-access-exporter (instance `host-NNN.example:9822`) and itself under job
prometheus; the benchmark waits until every target is up.

Measured, each as a user sees it:
- the whole command `ssh-access-exporter diagnose ADDRESS --fleet=URL` (text output), R times, each run
  more than the exporters' answer cache (`OneAtATime.ttl`, 5 s) after the last, so every exporter
  diagnoses afresh; each answer is checked (exit 1, `KEPT OUT by D of N`, D hosts named, none not asked);
- where its time could go: the command's own startup (the same command against a closed port: exit 2),
  Prometheus's target list (GET in this process), the asking alone (exporter.fleet.fleet_diagnosis called
  in this process, its CONCURRENCY), and each exporter's /diagnose asked one after another;
- the exporters' RSS (idle, after the runs) and CPU (start-up, per fleet run); Prometheus's RSS.
Goal (issue 16): under 5 s. Every process started here is stopped by pid, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks.bench_attacked_host import percentile, proc_cpu, proc_rss_mb
from exporter import fleet
from tests.builders import wrapped_sshd_host
from tests.integration.harness import _stop
from tests.integration.services import Prometheus, eventually
from tests.net import wait_for_port

ADDRESS = "198.51.100.7"  # the address asked of the fleet
OTHER = "203.0.113.9"  # what the letting hosts deny instead; also the address of the per-exporter probe
JOB = "ssh-access-exporter"
CACHE_TTL_S = 5.0  # exporter.web.diagnose.OneAtATime's default: runs are spaced beyond it
COMMAND = Path(sys.executable).with_name("ssh-access-exporter")  # the installed command
HEADLINE = re.compile(r"^(\S+): KEPT OUT by (\d+) of (\d+) host\(s\)$")


def reserve_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all bound at once, so no two are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Host:
    instance: str
    port: int
    denies: bool
    proc: subprocess.Popen[bytes]
    log: TextIO


class FleetPrometheus(Prometheus):
    """Prometheus scraping every host under JOB (labelled with its instance) and itself under prometheus."""

    def __init__(self, directory: Path, hosts: list[Host], port: int, interval: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        config = {
            "global": {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{min(interval, 5.0):g}s"},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{host.port}"], "labels": {"instance": host.instance}}
                        for host in hosts
                    ],
                },
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            ],
        }
        self.start(directory, config)

    def all_up(self, count: int) -> bool:
        active = self.api("targets", state="active")["activeTargets"]
        return len(active) == count and all(target["health"] == "up" for target in active)


def start_hosts(base: Path, ports: list[int], batch: int, hosts: list[Host]) -> None:
    """Fixture trees and exporters, `batch` started at once, each batch waited for; appended to `hosts` as
    they start (so the caller stops every one even when a later one fails)."""
    for first in range(0, len(ports), batch):
        started = []
        for index in range(first, min(first + batch, len(ports))):
            denies = index % 2 == 0
            name = f"host-{index:03d}"
            flags = wrapped_sshd_host(base / name, f"sshd: {ADDRESS if denies else OTHER}\n")
            log = (base / f"{name}.log").open("w")
            command = [
                str(COMMAND),
                f"--web.listen-address=127.0.0.1:{ports[index]}",
                "--web.enable-diagnose",
            ]
            proc = subprocess.Popen([*command, *flags], stdout=log, stderr=subprocess.STDOUT)
            hosts.append(Host(f"{name}.example:9822", ports[index], denies, proc, log))
            started.append(hosts[-1])
        for host in started:
            wait_for_port(host.port, timeout=60)


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of the command as a whole (start-up included) and its result."""
    began = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    return time.perf_counter() - began, run


def children_cpu() -> float:
    """User + system seconds of the commands this process has run and waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_answer(run: subprocess.CompletedProcess[str], hosts: list[Host]) -> str:
    """Why the fleet's answer is wrong, or "" when it is right."""
    lines = run.stdout.splitlines()
    denying = sorted(host.instance for host in hosts if host.denies)
    named = sorted(line.split()[2].rstrip(":") for line in lines if line.startswith("  kept out "))
    problems = []
    if run.returncode != 1:
        problems.append(f"exit {run.returncode} (stderr {run.stderr.strip()[:300]!r})")
    headline = HEADLINE.match(lines[0]) if lines else None
    if headline is None or headline.groups() != (ADDRESS, str(len(denying)), str(len(hosts))):
        problems.append(f"headline {lines[:1]!r}")
    if named != denying:
        problems.append(f"{len(named)} hosts named as keeping it out, {len(denying)} deny it")
    not_asked = [line for line in lines if line.startswith("  not asked")]
    if not_asked:
        problems.append(f"{len(not_asked)} not asked, e.g. {not_asked[0].strip()!r}")
    return "; ".join(problems)


def get_seconds(url: str) -> tuple[float, int]:
    """Wall time of one GET and the size of its body."""
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        size = len(response.read())
    return time.perf_counter() - began, size


def spread(values: list[float], unit: float = 1.0, digits: int = 2) -> str:
    scaled = [value * unit for value in values]
    return (
        f"median {statistics.median(scaled):.{digits}f}, min {min(scaled):.{digits}f}, "
        f"max {max(scaled):.{digits}f}"
    )


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(args: argparse.Namespace, base: Path, hosts: list[Host]) -> dict[str, Any]:
    """Start the fleet and Prometheus, then time the command; `hosts` is filled as exporters start."""
    figures: dict[str, Any] = {"load_start": load()}
    *ports, prometheus_port, closed = reserve_ports(args.exporters + 2)  # `closed`: nothing listens
    began = time.perf_counter()
    start_hosts(base, ports, args.batch, hosts)
    figures["start_s"] = time.perf_counter() - began
    prometheus = FleetPrometheus(base / "prometheus", hosts, prometheus_port, args.scrape_interval)
    try:
        began = time.perf_counter()
        eventually(lambda: prometheus.all_up(len(hosts) + 1), timeout=120 + 2 * args.scrape_interval,
                   what=f"all {len(hosts)} exporters up in Prometheus")  # fmt: skip
        figures["all_up_s"] = time.perf_counter() - began
        figures["rss_idle"] = [proc_rss_mb(host.proc.pid) for host in hosts]
        figures["cpu_start"] = [proc_cpu(host.proc.pid) for host in hosts]
        url = f"http://127.0.0.1:{prometheus.port}"

        startup = [
            timed([str(COMMAND), "diagnose", ADDRESS, f"--fleet=http://127.0.0.1:{closed}"]) for _ in range(3)
        ]
        figures["startup_s"] = [seconds for seconds, run in startup if run.returncode == 2]
        listing = [get_seconds(f"{url}/api/v1/targets?state=active") for _ in range(3)]
        figures["targets_s"] = [seconds for seconds, _ in listing]
        figures["targets_bytes"] = listing[0][1]
        figures["one_exporter_s"] = [
            get_seconds(f"http://127.0.0.1:{host.port}/diagnose?address={OTHER}")[0] for host in hosts
        ]

        figures.update(runs_s=[], wrong=[], cpu_runs_s=[], cpu_command_s=[])
        for number in range(args.runs):
            time.sleep(CACHE_TTL_S + 1.0)  # past the answer cache: every exporter diagnoses afresh
            cpu_before, own_before = sum(proc_cpu(host.proc.pid) for host in hosts), children_cpu()
            seconds, run = timed([str(COMMAND), "diagnose", ADDRESS, f"--fleet={url}"])
            figures["cpu_runs_s"].append(sum(proc_cpu(host.proc.pid) for host in hosts) - cpu_before)
            figures["cpu_command_s"].append(children_cpu() - own_before)
            figures["runs_s"].append(seconds)
            wrong = check_answer(run, hosts)
            print(f"run {number + 1}: {seconds:.2f} s, exit {run.returncode}, {wrong or 'answer right'}")
            if wrong:
                figures["wrong"].append(wrong)
        figures["fan_out_s"] = []
        for _ in range(3):  # the asking alone, without the command's start-up
            time.sleep(CACHE_TTL_S + 1.0)
            began = time.perf_counter()
            fleet.fleet_diagnosis(ADDRESS, fleet.FleetOptions(prometheus=url))
            figures["fan_out_s"].append(time.perf_counter() - began)
        figures["rss_after"] = [proc_rss_mb(host.proc.pid) for host in hosts]
        figures["prometheus_rss"] = proc_rss_mb(prometheus.proc.pid)
        figures["load_end"] = load()
        return figures
    finally:
        prometheus.stop()


def report(args: argparse.Namespace, hosts: list[Host], figures: dict[str, Any]) -> None:
    denying = sum(host.denies for host in hosts)
    print(f"{len(hosts)} exporters ({denying} deny {ADDRESS}), scrape interval {args.scrape_interval:g} s")
    print(f"load average (1, 5, 15 min): start {figures['load_start']}, end {figures['load_end']}")
    print(f"started in {figures['start_s']:.1f} s ({args.batch} at a time); all up in Prometheus "
          f"{figures['all_up_s']:.1f} s later")  # fmt: skip
    runs = figures["runs_s"]
    verdict = "under" if statistics.median(runs) < 5.0 else "NOT under"
    print(f"diagnose --fleet, whole command, {len(runs)} runs: {spread(runs)} s ({verdict} the 5 s goal)")
    print(f"  its startup (closed Prometheus port, exit 2): {spread(figures['startup_s'])} s")
    print(f"  fleet_diagnosis() in this process (no start-up): {spread(figures['fan_out_s'])} s")
    listing = spread(figures["targets_s"], 1000, 1)
    print(f"  Prometheus target list ({figures['targets_bytes']:,} bytes): {listing} ms")
    one = figures["one_exporter_s"]
    print(f"  one exporter's /diagnose, asked in turn: {spread(one, 1000, 1)} ms, p99 "
          f"{percentile(one, 0.99) * 1000:.1f} ms, sum {sum(one):.2f} s")  # fmt: skip
    idle, after = figures["rss_idle"], figures["rss_after"]
    print(f"exporter RSS idle: median {statistics.median(idle):.1f} MB, max {max(idle):.1f} MB, "
          f"sum {sum(idle) / 1024:.2f} GB; after the runs: median {statistics.median(after):.1f} MB, "
          f"max {max(after):.1f} MB")  # fmt: skip
    cpu = figures["cpu_start"]
    print(f"  CPU per run: the command {spread(figures['cpu_command_s'])} s; the {len(hosts)} exporters "
          f"together {spread(figures['cpu_runs_s'])} s (scrapes during the run included)")  # fmt: skip
    print(f"exporter CPU: start-up and scrapes until all up, median {statistics.median(cpu):.2f} s each, "
          f"{sum(cpu):.1f} s in all")  # fmt: skip
    print(f"Prometheus RSS {figures['prometheus_rss']:.0f} MB")
    if figures["wrong"]:
        print(f"WRONG ANSWERS: {figures['wrong']}")


def stop_all(hosts: list[Host]) -> None:
    """Every exporter stopped by its pid: all signalled first, then each waited for (killed if it lingers)."""
    for host in hosts:
        if host.proc.poll() is None:
            host.proc.send_signal(signal.SIGTERM)
    for host in hosts:
        _stop(host.proc)
        host.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks fleet")
    parser.add_argument("--exporters", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10, help="exporters started at once")
    parser.add_argument("--scrape-interval", type=float, default=10.0, help="Prometheus's, in seconds")
    args, _ = parser.parse_known_args(sys.argv[1:])
    if os.geteuid() != 0 or shutil.which("prometheus") is None:
        print("needs root and prometheus (make system-deps)", file=sys.stderr)
        return
    # SIGTERM unwinds like an error, so the finally below stops what was started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    hosts: list[Host] = []
    try:
        figures = measure(args, base, hosts)
    finally:
        stop_all(hosts)
        shutil.rmtree(base, ignore_errors=True)
    report(args, hosts, figures)
