"""A whole host under attack, every collector on, scraped as Prometheus would, beside node_exporter.

`python -m benchmarks attacked_host [--duration SECONDS] [--interval SECONDS] [--rotate-every SECONDS]
[--bans-per-second N] [--no-collector.NAME ...]` (the last to tell one collector's share). Needs root,
sshd, fail2ban, nft, iptables-legacy and prometheus-node-exporter (`make system-deps`). Built in
namespaces this benchmark creates, each part the way its own benchmark builds it:

- sshd in a server network namespace with 1,000 pre-auth connections held from a client namespace over a
  veth pair (bench_sshd_scrape);
- fail2ban-server in the server namespace, a no-op ban action, 100,000 current bans (bench_fail2ban; its
  jail reads an empty file, so fail2ban's own log parsing does not compete for the 2 cores);
- an nft set of 100,000 addresses and 10,000 iptables-legacy rules in the server namespace (bench_firewall);
- a 50,000-entry DenyHosts hosts.deny (bench_tcpwrappers) bind-mounted over /etc/hosts.deny in the
  exporter's mount namespace;
- an auth log growing at 20,000 lines/s (benchmarks/authlog_gen.py, 1,000,000 distinct addresses drawn
  first-come), written by a separate process in batches every 10 ms, rotated every --rotate-every seconds
  alternately by rename+create and by copytruncate (each as logrotate does it: NAME.1 moved to NAME.2
  first), the writer pausing during a copytruncate, so no line is lost to the rotation itself;
- a watchlist naming addresses the firewall set, fail2ban and hosts.deny block, and one nothing blocks;
- with --bans-per-second, new bans while it runs, in fail2ban and the nft set (Banner).

Measured: scrape latency (one scrape every --interval seconds, as Prometheus would; median and p99), the
exporter's CPU per scrape (quiet phase: the host built, the log not growing; back-to-back scrapes minus the
idle rate), its CPU per 1,000 log lines (the run's CPU minus scrapes and idle), RSS every 5 s, log lag (a
marker line `ROOT LOGIN REFUSED FROM <unique address>` written every 5 s, an event the generator never
writes, then /metrics polled every 100 ms until its count shows), lines written against
`ssh_access_authlog_lines_read_total` at the end, and node_exporter in the same namespace, scraped right
after ours every time. Goals: p99 scrape < 250 ms, log lag < 1 s, RSS < 100 MB and flat after warm-up
(< 5 MB growth over the last 2/3 of the run). The 30-minute soak is `--duration 1800`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks.authlog_gen import generate
from benchmarks.bench_fail2ban import BANS, JAIL, inject
from benchmarks.bench_fail2ban import address as ban_address
from benchmarks.bench_firewall import populate
from benchmarks.bench_sshd_scrape import CONNECTIONS, NODE_EXPORTER, SERVER_ADDRESS, hold, link
from benchmarks.bench_tcpwrappers import addresses as deny_patterns
from benchmarks.bench_tcpwrappers import hosts_deny
from exporter.sources.fail2ban.protocol import Connection as Fail2banSocket
from exporter.sources.fail2ban.protocol import ProtocolError
from tests.integration.harness import Exporter, Fail2banServer, NetNs, Sshd

RATE = 20_000
DISTINCT_ADDRESSES = 1_000_000
TICK_S = 0.01
MARKER_EVERY_S = 5.0
RSS_EVERY_S = 5.0
QUIET_SCRAPES = 10
CATCH_UP_S = 300.0
DURATION = re.compile(r'^ssh_access_collector_duration_seconds\{collector="([^"]+)"\} (\S+)$', re.M)
MARKER = re.compile(r'^ssh_access_sshd_events_total\{event="root_login_refused"\} (\S+)$', re.M)
LINES_READ = re.compile(r"^ssh_access_authlog_lines_read_total\{source=\"([^\"]+)\"\} (\S+)$", re.M)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))]


# ---- the auth log writer (a process of its own: generating 20,000 lines/s must not steal our GIL) ------


def marker_line(index: int) -> bytes:
    stamp = time.strftime("%b %e %H:%M:%S")
    return f"{stamp} bastion sshd[999]: ROOT LOGIN REFUSED FROM 2001:db8:ffff::{index:x} port 22\n".encode()


def rotate(path: Path, fd: int, mode: str) -> int:
    """One logrotate cycle in `mode` (`create` or `copytruncate`); the fd to write to afterwards."""
    first, second = path.with_name(path.name + ".1"), path.with_name(path.name + ".2")
    if first.exists():
        os.replace(first, second)
    if mode == "copytruncate":
        shutil.copyfile(path, first)
        os.truncate(path, 0)  # the writer appends (O_APPEND): its next line lands at 0
        return fd
    os.replace(path, first)
    new = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.close(fd)
    return new


def write_log(path: Path, rate: int, duration: float, rotate_every: float, control: Connection) -> None:
    """Append generated lines at `rate` for `duration` s; write a marker when asked (answering with the
    monotonic time it was written); rotate every `rotate_every` s; report the totals at the end."""
    distinct = 0

    def fresh() -> None:
        nonlocal distinct
        distinct += 1

    lines = generate(int(rate * duration), DISTINCT_ADDRESSES, start=time.time() - 86400, on_fresh=fresh)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    written, rotations, modes = 0, 0, itertools.cycle(("create", "copytruncate"))
    started = time.monotonic()
    next_rotation = started + rotate_every
    while (now := time.monotonic()) - started < duration:
        batch = [line.encode() for line in itertools.islice(lines, int((now - started) * rate) - written)]
        markers = []
        while control.poll():
            markers.append(control.recv())
        batch += [marker_line(index) for index in markers]
        if batch:
            os.write(fd, b"".join(batch))
            written += len(batch)
        for index in markers:
            control.send((index, time.monotonic()))
        if now >= next_rotation:
            fd = rotate(path, fd, next(modes))
            rotations += 1
            next_rotation += rotate_every
        time.sleep(TICK_S)
    os.close(fd)
    control.send(("done", written, distinct, rotations, time.monotonic() - started))


# ---- scraping, as Prometheus would, from a thread inside the server namespace ---------------------------


def scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read().decode()
    return (time.perf_counter() - started) * 1000, body


@dataclass
class Scrapes:
    ours_ms: list[float] = field(default_factory=list)
    node_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Prometheus(threading.Thread):
    """Scrapes ours then node_exporter every `interval` s until stopped."""

    def __init__(self, netns: NetNs, ours: str, node: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.netns, self.ours, self.node, self.interval = netns, ours, node, interval
        self.stop = threading.Event()
        self.scrapes = Scrapes()

    def run(self) -> None:
        self.netns.enter_this_thread()
        next_at = time.monotonic()
        while not self.stop.is_set():
            for url, times in ((self.ours, self.scrapes.ours_ms), (self.node, self.scrapes.node_ms)):
                try:
                    times.append(scrape(url)[0])
                except OSError as exc:
                    self.scrapes.failures.append(f"{url}: {exc}")
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))


class LagProbe(threading.Thread):
    """Every MARKER_EVERY_S: a marker line through the writer, then /metrics polled until it counts."""

    def __init__(self, netns: NetNs, url: str, control: Connection) -> None:
        super().__init__(daemon=True)
        self.netns, self.url, self.control = netns, url, control
        self.stop = threading.Event()
        self.lags_s: list[float] = []
        self.unseen = 0
        self.done: tuple[object, ...] | None = None

    def run(self) -> None:
        self.netns.enter_this_thread()
        for index in itertools.count(1):
            if self.stop.wait(MARKER_EVERY_S):
                return
            self.control.send(index)
            reply = self.control.recv()
            if reply[0] == "done":  # the writer finished first
                self.done = reply
                return
            _, written_at = reply
            while time.monotonic() - written_at < 30:
                found = MARKER.search(scrape(self.url)[1])
                if found is not None and float(found[1]) >= index:
                    self.lags_s.append(time.monotonic() - written_at)
                    break
                time.sleep(0.1)
            else:
                self.unseen += 1


class Banner(threading.Thread):
    """`per_second` new bans a second, each as fail2ban with an nftables action makes it: `set JAIL banip`
    on fail2ban's socket (its database changes) and the address added to the nft set (the ruleset's
    generation moves). An attack goes on being banned; the host's other bans stay as they were built."""

    def __init__(self, netns: NetNs, socket: Path, per_second: float) -> None:
        super().__init__(daemon=True)
        self.netns, self.socket, self.per_second = netns, socket, per_second
        self.stop = threading.Event()
        self.added = 0
        self.failures: list[str] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            new = ban_address(BANS + self.added)
            try:
                with Fail2banSocket(self.socket, timeout=10) as server:
                    server.request("set", JAIL, "banip", new)
                add = ["nft", "add", "element", "inet", "bench", "blocked", f"{{ {new} }}"]
                subprocess.run(self.netns.command(add), check=True, capture_output=True, timeout=30)
                self.added += 1
            except (OSError, ProtocolError, subprocess.SubprocessError) as exc:
                self.failures.append(str(exc))
            next_at += 1 / self.per_second


# ---- the host ----------------------------------------------------------------------------------------


def fail2ban(tmp: Path, netns: NetNs, log: Path) -> Fail2banServer:
    return Fail2banServer.banning_nothing(tmp / "fail2ban", netns, JAIL, log)


def watchlist(tmp: Path) -> Path:
    """Addresses the set, fail2ban and hosts.deny block, a network, and one nothing blocks."""
    config = tmp / "exporter.yml"
    entries = ["2001:db8::1:5", ban_address(7), "192.0.2.3", "198.51.100.0/24", "203.0.113.250"]
    config.write_text("watchlist:\n" + "".join(f"  - {entry!r}\n" for entry in entries))
    return config


def trend(samples: list[tuple[float, float]]) -> float:
    """MB gained over the samples' span by their least-squares line: RSS saw-tooths by up to 20 MB between
    malloc trims (every 10 s), so the last sample less the first says more about the phase than a trend."""
    if len(samples) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in samples)
    mean_mb = statistics.fmean(mb for _, mb in samples)
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in samples) / spread if spread else 0.0
    return slope * (samples[-1][0] - samples[0][0])


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks attacked_host")
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (1 or 5)")
    parser.add_argument("--rotate-every", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument(
        "--bans-per-second", type=float, default=0.0, help="new bans a second, in fail2ban and the nft set"
    )
    args, rest = parser.parse_known_args(sys.argv[1:])
    off = [flag for flag in rest if flag.startswith("--no-collector.")]  # to tell one collector's share
    if os.geteuid() != 0 or not Path(NODE_EXPORTER).exists():
        print("needs root and prometheus-node-exporter (make system-deps)", file=sys.stderr)
        raise SystemExit(1)
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as directory,
        NetNs(Path(directory) / "srv", "sae-host") as server,
        NetNs(Path(directory) / "cli", "sae-cli") as client,
    ):
        tmp = Path(directory)
        link(server, client)
        settings = (
            f"MaxStartups {CONNECTIONS + 100}:30:{CONNECTIONS + 200}\nLoginGraceTime 600\n"
            f"ListenAddress {SERVER_ADDRESS}\n"
        )
        print("building: firewall ...", file=sys.stderr, flush=True)
        populate(server, tmp)
        deny, allow = tmp / "hosts.deny", tmp / "hosts.allow"
        deny.write_text(hosts_deny(deny_patterns()))
        allow.write_text("sshd: 192.0.2.250\n")
        log = tmp / "auth.log"
        log.write_bytes(b"")
        empty = tmp / "fail2ban-input.log"
        empty.write_text("")
        with Sshd(tmp / "sshd", settings, netns=server) as sshd, fail2ban(tmp, server, empty) as bans:
            print("building: 1,000 held connections, 100,000 bans ...", file=sys.stderr, flush=True)
            holder = hold(client, sshd.port, CONNECTIONS)
            inject(bans)
            node_port = 9100
            node = subprocess.Popen(
                server.command([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                server.wait_for_port(node_port)
                exporter = Exporter(
                    f"--collector.sshd.config={sshd.config}",
                    f"--collector.fail2ban.socket={bans.socket}",
                    f"--collector.fail2ban.db={bans.db}",
                    f"--collector.fail2ban.config-dir={bans.conf}",
                    f"--collector.authlog.files={log}",
                    f"--config.file={watchlist(tmp)}",
                    *off,
                    netns=server,
                    binds={Path("/etc/hosts.deny"): deny, Path("/etc/hosts.allow"): allow},
                )
                with exporter:
                    result = run(args, server, exporter, node, node_port, log, bans.socket)
                    result["exporter_log_tail"] = exporter.log().splitlines()[-5:]
            finally:
                node.terminate()
                node.wait()
                holder.communicate("")
    result["collectors_off"] = off
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    report(result)


def settle(pid: int, idle: float, limit: float = 120.0) -> None:
    """Wait until the process is back to its idle CPU rate: a collector that outlived its scrape's
    timeout still runs in the background, and its CPU belongs to the scrapes."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = proc_cpu(pid)
        time.sleep(2)
        if proc_cpu(pid) - before <= 2 * (2 * idle + 0.02):
            return


def quiet_phase(netns: NetNs, url: str, pid: int) -> tuple[float, float, str, float]:
    """(idle CPU s/s, CPU s per scrape after a warm-up scrape, the first scrape's body, RSS MB before any
    scrape) with the host built and the log still. Idle is taken before the first scrape, when no
    collector runs."""
    out: list[tuple[float, float, str, float]] = []

    def measure() -> None:
        netns.enter_this_thread()
        rss = proc_rss_mb(pid)
        before, wall = proc_cpu(pid), time.monotonic()
        time.sleep(5)
        idle = (proc_cpu(pid) - before) / (time.monotonic() - wall)
        body = scrape(url)[1]  # warm-up: the first scrape reads and parses every source once
        settle(pid, idle)
        before, wall = proc_cpu(pid), time.monotonic()
        for _ in range(QUIET_SCRAPES):
            scrape(url)
        settle(pid, idle)
        spent = proc_cpu(pid) - before - idle * (time.monotonic() - wall)
        out.append((idle, spent / QUIET_SCRAPES, body, rss))

    thread = threading.Thread(target=measure)
    thread.start()
    thread.join()
    return out[0]


def lines_read(netns: NetNs, url: str, log: Path) -> tuple[int, str]:
    """The exporter's lines_read_total for the log, and the scrape's body."""
    found: list[tuple[int, str]] = []

    def read() -> None:
        netns.enter_this_thread()
        body = scrape(url)[1]
        found.append((sum(int(float(n)) for name, n in LINES_READ.findall(body) if name == str(log)), body))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return found[0]


def run(
    args: argparse.Namespace, netns: NetNs, exporter: Exporter, node: subprocess.Popen[bytes], node_port: int,
    log: Path, bans_socket: Path,
) -> dict[str, object]:  # fmt: skip
    pid = exporter.proc.pid
    idle, cpu_per_scrape, body, rss_before_scrapes = quiet_phase(netns, exporter.url, pid)
    rss_after_quiet = proc_rss_mb(pid)
    failing = re.findall(r'^ssh_access_collector_success\{collector="([^"]+)"\} 0', body, re.M)
    startups = re.search(r"^ssh_access_sshd_startups(?:\{[^}]*\})? (\S+)$", body, re.M)
    ours, control = multiprocessing.get_context("fork").Pipe()
    writer = multiprocessing.get_context("fork").Process(
        target=write_log, args=(log, args.rate, args.duration, args.rotate_every, control), daemon=True
    )
    node_url = f"http://127.0.0.1:{node_port}/metrics"
    prometheus = Prometheus(netns, exporter.url, node_url, args.interval)
    probe = LagProbe(netns, exporter.url, ours)
    banner = Banner(netns, bans_socket, args.bans_per_second)
    rss: list[tuple[float, float]] = []
    cpu0, node_cpu0, wall0 = proc_cpu(pid), proc_cpu(node.pid), time.monotonic()
    writer.start()
    prometheus.start()
    probe.start()
    if args.bans_per_second > 0:
        banner.start()
    while writer.is_alive():
        rss.append((round(time.monotonic() - wall0, 1), round(proc_rss_mb(pid), 1)))
        writer.join(RSS_EVERY_S)
    prometheus.stop.set()
    probe.stop.set()
    banner.stop.set()
    probe.join()
    prometheus.join()
    if banner.is_alive():
        banner.join()
    done = probe.done or ours.recv()
    while done[0] != "done":  # a marker answer still in the pipe
        done = ours.recv()
    _, written, distinct, rotations, writing_s = done
    assert isinstance(written, int)
    caught_up: float | None = None
    catch_up_scrapes = 0
    while (waited := time.monotonic() - wall0 - float(str(writing_s))) < CATCH_UP_S:
        read, last = lines_read(netns, exporter.url, log)
        catch_up_scrapes += 1
        if read >= written:
            caught_up = round(waited, 2)
            break
        time.sleep(1)
    cpu = proc_cpu(pid) - cpu0  # the load and the catch-up: every line written was read (or not: said)
    wall = time.monotonic() - wall0
    scrapes = prometheus.scrapes
    scrape_count = len(scrapes.ours_ms) + len(probe.lags_s) + catch_up_scrapes  # the probe's: at least
    log_cpu = cpu - idle * wall - cpu_per_scrape * scrape_count
    third = next((mb for t, mb in rss if t >= wall / 3), rss[-1][1])
    late = [mb for t, mb in rss if t >= wall / 3]
    late_samples = [(t, mb) for t, mb in rss if t >= wall / 3]
    return {
        "duration_s": args.duration,
        "scrape_interval_s": args.interval,
        "rotate_every_s": args.rotate_every,
        "bans_per_second": args.bans_per_second,
        "bans_added": banner.added,
        "ban_failures": banner.failures[:5],
        "collectors_failing_at_start": failing,
        "sshd_startups": startups[1] if startups else None,
        "lines_written": written,
        "distinct_addresses": distinct,
        "rotations": rotations,
        "lines_read": read,
        "collector_duration_s_last": {n: round(float(v), 3) for n, v in DURATION.findall(last)},
        "rss_mb_before_first_scrape": round(rss_before_scrapes, 1),
        "rss_mb_after_quiet_phase": round(rss_after_quiet, 1),
        "caught_up_after_s": caught_up,
        "scrapes": len(scrapes.ours_ms),
        "scrape_failures": scrapes.failures[:5],
        "ours_scrape_ms": summary(scrapes.ours_ms),
        "node_exporter_scrape_ms": summary(scrapes.node_ms),
        "ours_idle_cpu_ms_per_s": round(idle * 1000, 1),
        "ours_cpu_ms_per_scrape_quiet": round(cpu_per_scrape * 1000, 1),
        "ours_cpu_ms_per_1000_lines": round(log_cpu * 1000 / max(1, written) * 1000, 2),
        "ours_cpu_percent_under_load": round(100 * cpu / wall, 1),
        "node_exporter_cpu_ms_per_scrape": round(
            (proc_cpu(node.pid) - node_cpu0) * 1000 / max(1, len(scrapes.node_ms)), 1
        ),
        "node_exporter_rss_mb": round(proc_rss_mb(node.pid), 1),
        "log_lag_s": summary(probe.lags_s) if probe.lags_s else None,
        "markers_unseen": probe.unseen,
        "rss_mb": rss,
        "rss_growth_last_two_thirds_mb": round(rss[-1][1] - third, 1),
        "rss_trend_last_two_thirds_mb": round(trend(late_samples), 1),
        "rss_max_last_two_thirds_mb": max(late, default=rss[-1][1]),
    }  # fmt: skip


def report(result: dict[str, object]) -> None:
    ours, node, lag = result["ours_scrape_ms"], result["node_exporter_scrape_ms"], result["log_lag_s"]
    assert isinstance(ours, dict) and isinstance(node, dict)
    print("\n| what | ours | node_exporter | goal |\n|---|---|---|---|")
    print(f"| scrape median / p99 / max | {ours['median']} / {ours['p99']} / {ours['max']} ms | "
          f"{node['median']} / {node['p99']} / {node['max']} ms | p99 < 250 ms |")  # fmt: skip
    print(f"| CPU per scrape | {result['ours_cpu_ms_per_scrape_quiet']} ms (quiet phase) | "
          f"{result['node_exporter_cpu_ms_per_scrape']} ms | |")  # fmt: skip
    print(f"| CPU per 1,000 log lines | {result['ours_cpu_ms_per_1000_lines']} ms | | |")
    if isinstance(lag, dict):
        print(f"| log lag median / p99 / max | {lag['median']} / {lag['p99']} / {lag['max']} s | | < 1 s |")
    rss = result["rss_mb"]
    assert isinstance(rss, list)
    growth, trended = result["rss_growth_last_two_thirds_mb"], result["rss_trend_last_two_thirds_mb"]
    print(f"| RSS end / last 2/3: end - start; trend | {rss[-1][1]} MB / {growth}; {trended} MB | "
          f"{result['node_exporter_rss_mb']} MB | < 100 MB / < 5 MB |")  # fmt: skip
    print(f"| lines written / read | {result['lines_written']:,} / {result['lines_read']:,} | | equal |")


if __name__ == "__main__":
    main()
