"""Live tailing at 50,000 lines/s while being scraped every second (issue 3).

A writer thread appends realistic auth log lines (benchmarks/authlog_gen.py: mixed sshd connections,
listener bursts, other daemons, documentation addresses) at RATE lines/s for DURATION_S seconds to a
file the real exporter follows (`--collector.authlog.files`, only the authlog collector on). Every
TICK_S the writer appends what is due as one write (a syslog daemon writes in batches too). A scraper
thread scrapes /metrics every second and records the scrape latency and the lag: lines written so far
minus `ssh_access_authlog_lines_read_total`. At the end: whether the exporter caught up and how long it
took after the writer stopped, whether the lag grew through the run, the exporter's CPU (utime + stime
over the load) and RSS.

`python -m benchmarks authlog_live` (no root needed).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.authlog_gen import generate
from exporter.registry import registrations
from tests.exposition import samples, value
from tests.integration.harness import Exporter

RATE = 50_000
DURATION_S = 20.0
TICK_S = 0.01
SCRAPE_EVERY_S = 1.0
CATCH_UP_TIMEOUT_S = 60.0
ADDRESSES = 200_000


def proc_stat(pid: int) -> tuple[float, float, float]:
    """(CPU seconds used, RSS MiB, peak RSS MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return cpu, int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class Writer(threading.Thread):
    def __init__(self, path: Path, lines: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.lines = lines
        self.written = 0
        self.behind_max = 0  # lines the writer itself was late by (the generator side must keep up too)
        self.started = 0.0
        self.finished = 0.0

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.started = time.monotonic()
        try:
            while self.written < len(self.lines):
                due = min(len(self.lines), int((time.monotonic() - self.started) * RATE) + 1)
                if due > self.written:
                    os.write(fd, b"".join(self.lines[self.written : due]))
                    self.written = due
                time.sleep(TICK_S)
        finally:
            os.close(fd)
            self.finished = time.monotonic()


class Scraper(threading.Thread):
    def __init__(self, url: str, source: str, writer: Writer) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.source = source
        self.writer = writer
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.lags: list[int] = []

    def scrape(self) -> tuple[float, int]:
        written = self.writer.written
        started = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=30) as response:
            text = response.read().decode()
        elapsed = (time.perf_counter() - started) * 1000
        read = value(samples(text), "ssh_access_authlog_lines_read_total", source=self.source)
        assert read is not None, "no lines_read for the source"
        return elapsed, written - int(read)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            elapsed, lag = self.scrape()
            self.latencies_ms.append(elapsed)
            self.lags.append(lag)
            next_at += SCRAPE_EVERY_S
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))]


def main() -> None:
    total = int(RATE * DURATION_S)
    print(f"generating {total:,} lines ...", file=sys.stderr, flush=True)
    lines = [line.encode() for line in generate(total, ADDRESSES, start=time.time() - 86400)]
    others = [f"--no-collector.{r.name}" for r in registrations() if r.name != "authlog"]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "auth.log"
        log.write_bytes(b"")
        with Exporter(f"--collector.authlog.files={log}", *others) as exporter:
            pid = exporter.proc.pid
            writer = Writer(log, lines)
            scraper = Scraper(exporter.url, str(log), writer)
            idle_ms = [scraper.scrape()[0] for _ in range(10)]
            cpu0, rss_idle, _ = proc_stat(pid)
            wall0 = time.monotonic()
            writer.start()
            scraper.start()
            writer.join()
            scraper.stop.set()
            scraper.join()
            cpu1, rss_load, _ = proc_stat(pid)
            load_s = time.monotonic() - wall0
            # catch-up after the writer stopped
            caught_up_s: float | None = None
            while time.monotonic() - writer.finished < CATCH_UP_TIMEOUT_S:
                if scraper.scrape()[1] == 0:
                    caught_up_s = time.monotonic() - writer.finished
                    break
                time.sleep(0.05)
            _, rss_end, rss_peak = proc_stat(pid)
            final_lag = scraper.scrape()[1]
    achieved = writer.written / (writer.finished - writer.started)
    during = scraper.lags[1:] or scraper.lags  # the first scrape is at t=0
    lag_seconds_max = round(max(during) / RATE, 2)
    result: dict[str, object] = {
        "lines": writer.written,
        "target_rate": RATE,
        "achieved_write_rate": round(achieved),
        "scrapes_during_load": len(scraper.latencies_ms),
        "scrape_ms_median": round(statistics.median(scraper.latencies_ms), 1),
        "scrape_ms_p90": round(percentile(scraper.latencies_ms, 0.9), 1),
        "scrape_ms_max": round(max(scraper.latencies_ms), 1),
        "idle_scrape_ms_median": round(statistics.median(idle_ms), 1),
        "lag_lines_median": int(statistics.median(during)),
        "lag_lines_max": max(during),
        "lag_seconds_max": lag_seconds_max,
        "caught_up_after_s": None if caught_up_s is None else round(caught_up_s, 2),
        "final_lag_lines": final_lag,
        "exporter_cpu_percent": round(100 * (cpu1 - cpu0) / load_s, 1),
        "exporter_rss_mb_idle": round(rss_idle, 1),
        "exporter_rss_mb_under_load": round(rss_load, 1),
        "exporter_rss_mb_end": round(rss_end, 1),
        "exporter_rss_mb_peak": round(rss_peak, 1),
    }
    # Keeping up: everything read, the backlog drained soon after the writer stopped, and the lag not
    # growing through the run (falling behind would show as a lag rising from one half to the next).
    half = len(during) // 2
    growing = max(during[half:], default=0) > max(during[:half], default=0) + RATE
    result["lag_growing"] = growing
    result["keeps_up"] = final_lag == 0 and caught_up_s is not None and caught_up_s <= 2.0 and not growing
    print(json.dumps(result, indent=2))
    print(
        "\n| lines | write rate | scrape median / p90 / max | lag median / max | caught up after | CPU | "
        "RSS (idle / load / peak) |\n|---|---|---|---|---|---|---|"
    )
    print(
        f"| {writer.written:,} | {round(achieved):,}/s | {result['scrape_ms_median']} / "
        f"{result['scrape_ms_p90']} / {result['scrape_ms_max']} ms | {int(statistics.median(during)):,} / "
        f"{max(during):,} lines | {result['caught_up_after_s']} s | "
        f"{result['exporter_cpu_percent']}% | {result['exporter_rss_mb_idle']} / "
        f"{result['exporter_rss_mb_under_load']} / {result['exporter_rss_mb_peak']} MiB |"
    )


if __name__ == "__main__":
    main()
