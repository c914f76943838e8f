"""Auth log replay (issue 3): lines/s and peak RSS of the full pipeline, against fail2ban-regex and mtail.

`python -m benchmarks replay` or `python benchmarks/bench_replay.py [--lines N] [--addresses N] ...`.

On one generated log (benchmarks/authlog_gen.py: 1,000,000 lines, 200,000 distinct addresses), in the
same run:
- ours: `python -m exporter replay --format metrics FILE` in a subprocess, i.e. framing,
  classification, pid carry-over, counters and top-k, interpreter start-up included;
- fail2ban-regex with fail2ban's own sshd filter (/etc/fail2ban/filter.d/sshd.conf);
- mtail (Debian package) in --one_shot mode running MTAIL_PROGRAM, an sshd program counting the same
  events and auth methods (mtail has no bounded top-k, so it does less than we do).
Then peak RSS of ours on a log with 1,000,000 distinct addresses. Each tool's wall time and peak RSS
come from wait4() on its own process. Goals: >= 4x mtail, >= 25x fail2ban-regex, RSS < 60 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


FAIL2BAN_FILTER = Path("/etc/fail2ban/filter.d/sshd.conf")

MTAIL_PROGRAM = r"""
counter sshd_events_total by event
counter sshd_auth_failures_total by method

/^(?P<date>\w+\s+\d+\s+\d+:\d+:\d+)\s+\S+\s+sshd(?:-session)?\[\d+\]:\s+/ {
  strptime($date, "Jan _2 15:04:05")
  /Failed (?P<method>[\w-]+)\S* for (invalid user )?.* from \S+/ {
    sshd_events_total["auth_failed"]++
    sshd_auth_failures_total[$method]++
  }
  /Accepted \S+ for .* from \S+/ {
    sshd_events_total["auth_accepted"]++
  }
  /Invalid user .* from \S+/ {
    sshd_events_total["invalid_user"]++
  }
  /User .* not allowed because / {
    sshd_events_total["user_not_allowed"]++
  }
  /maximum authentication attempts exceeded for / {
    sshd_events_total["max_auth_tries_exceeded"]++
  }
  /pam_\w+\(sshd:auth\): (authentication failure|\d+ more authentication failures);.* rhost=/ {
    sshd_events_total["pam_auth_failure"]++
  }
  /(Connection closed by|Connection reset by|Disconnected from|Disconnecting|/ +
  /Received disconnect from) .*\[preauth\]$/ {
    sshd_events_total["preauth_disconnect"]++
  }
  /Unable to negotiate with \S+ port \d+/ {
    sshd_events_total["negotiation_failed"]++
  }
  /(banner exchange: |kex_exchange_identification: |Did not receive identification string|/ +
  /Bad (remote )?protocol version identification)/ {
    sshd_events_total["banner_error"]++
  }
  /Timeout before authentication for / {
    sshd_events_total["login_grace_timeout"]++
  }
  /refused connect from / {
    sshd_events_total["wrapper_refused"]++
  }
  /drop connection #\d+ from \[\S+\]:\d+ on \[\S+\]:\d+ (past )?Max[sS]tartups/ {
    sshd_events_total["maxstartups_drop"]++
  }
  /drop connection #\d+ from \[\S+\]:\d+ on \[\S+\]:\d+ (penalty: |too many penalised)/ {
    sshd_events_total["penalty_drop"]++
  }
  /beginning MaxStartups throttling/ {
    sshd_events_total["maxstartups_throttling_begin"]++
  }
  /exited MaxStartups throttling/ {
    sshd_events_total["maxstartups_throttling_end"]++
  }
  /srclimit_penalise: .* (new|activating) .*penalty/ {
    sshd_events_total["penalty_applied"]++
  }
}
"""


@dataclass(frozen=True)
class Run:
    """One tool over one file: wall seconds and peak RSS (MiB), from wait4()."""

    tool: str
    seconds: float
    rss_mib: float
    lines: int

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def measure(tool: str, argv: list[str], lines: int, cwd: Path | None = None, out: Path | None = None) -> Run:
    started = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{tool}: {argv} exited {process.returncode}")
    return Run(tool, seconds, usage.ru_maxrss / 1024, lines)


def ours(path: Path, lines: int, out: Path | None = None) -> Run:
    argv = [sys.executable, "-m", "exporter", "replay", "--format", "metrics", str(path)]
    return measure("ssh-access-exporter replay", argv, lines, out=out)


_EVENT_SAMPLE = re.compile(r'^(?:ssh_access_)?sshd_events_total\{event="(\w+)"[^}]*\} (\S+)$', re.M)


def event_counts(exposition: Path) -> dict[str, int]:
    """{event: count} from ours or mtail's exposition, zeros dropped, to check both counted the same."""
    counts = {name: int(float(value)) for name, value in _EVENT_SAMPLE.findall(exposition.read_text())}
    return {name: count for name, count in counts.items() if count}


def fail2ban(path: Path, lines: int) -> Run | None:
    exe = shutil.which("fail2ban-regex")
    if exe is None or not FAIL2BAN_FILTER.exists():
        return None
    return measure("fail2ban-regex (sshd filter)", [exe, str(path), str(FAIL2BAN_FILTER)], lines)


def write_log(path: Path, lines: int, addresses: int) -> int:
    """Generate in a child process: this one stays small, so a forked child's pre-exec RSS (which
    wait4 counts) never exceeds the measured tool's own. Returns the distinct addresses written."""
    argv = [sys.executable, "-m", "benchmarks.authlog_gen", str(path), "--lines", str(lines)]
    done = subprocess.run(
        [*argv, "--addresses", str(addresses)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(done.stdout.split(" lines, ")[1].split()[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mtail(path: Path, lines: int, workdir: Path) -> Run | None:
    exe = shutil.which("mtail")
    if exe is None:
        return None
    progs = workdir / "mtail"
    progs.mkdir(exist_ok=True)
    (progs / "sshd.mtail").write_text(MTAIL_PROGRAM)
    argv = [exe, "--one_shot", "--one_shot_format", "prometheus", "--progs", str(progs), "--logs", str(path)]
    argv += ["--logtostderr", "--port", str(_free_port())]  # one_shot still listens
    return measure("mtail (sshd program)", argv, lines, cwd=workdir, out=workdir / "mtail.prom")


def _compiled() -> bool:
    """Whether the install under test compiled the hot path (setup.py): the figures depend on it."""
    from exporter.sources.authlog.fast import linescan  # noqa: PLC0415 (only the benchmark needs it)

    return bool(linescan.COMPILED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Auth log replay benchmark (issue 3)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument("--rss-addresses", type=int, default=1_000_000, help="0 skips the RSS run")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated logs here")
    args = parser.parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / "auth.log"
        distinct = write_log(log, args.lines, args.addresses)
        print(f"log: {args.lines} lines, {distinct} distinct addresses, {log.stat().st_size / 2**20:.0f} MiB")
        print(f"ours: the auth-log hot path {'compiled (mypyc)' if _compiled() else 'in pure Python'}")
        runs = [ours(log, args.lines, out=workdir / "ours.prom")]
        for other in (fail2ban(log, args.lines), mtail(log, args.lines, workdir)):
            if other is not None:
                runs.append(other)
        if any(r.tool.startswith("mtail") for r in runs):
            same = event_counts(workdir / "ours.prom") == event_counts(workdir / "mtail.prom")
            print(f"event counts, ours vs mtail: {'identical' if same else 'DIFFERENT'}")
        else:
            print("mtail: not installed (apt-get install mtail)")
        print("| tool | lines/s | wall s | peak RSS MiB | ours is |")
        print("|---|---:|---:|---:|---:|")
        for run in runs:
            ratio = runs[0].rate / run.rate
            print(f"| {run.tool} | {run.rate:,.0f} | {run.seconds:.1f} | {run.rss_mib:.0f} | {ratio:.1f}x |")
        if args.rss_addresses:
            big = workdir / "auth-distinct.log"
            big_lines = int(args.rss_addresses * 4.5)  # about 3.8 lines per connection
            distinct = write_log(big, big_lines, args.rss_addresses)
            run = ours(big, big_lines)
            print(
                f"RSS with {distinct:,} distinct addresses ({big_lines:,} lines): {run.rss_mib:.1f} MiB, "
                f"{run.rate:,.0f} lines/s"
            )
            big.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
