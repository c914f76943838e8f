"""The golden scrape: the real exporter on the fixture host (fixture.py), its exposition made comparable.

The exporter runs as users run it (`python -m exporter`, the package behind `ssh-access-exporter`), on a
loopback port inside a fresh network namespace (root): the firewall collector and sshguard's nft/ipset
reads look at the exporter's own namespace, which is then empty on every machine, and CrowdSec's local
API is a stand-in (lapi.py) on the bouncer config's fixed address there. Everything else is read under
--path.rootfs / --path.procfs, and no host tool runs under another rootfs (`sshd -T`, `sshd -t`,
journalctl, fail2ban-client, cscli). TZ and the locale are fixed (DenyHosts' dates are local time).

Scrapes repeat until the auth log follower has counted every line of the file and two scrapes in a row
agree; then VOLATILE drops or masks what differs between runs and machines. `python -m tests.e2e.update`
(`make e2e-update`) writes the result to EXPECTED, which test_golden_scrape.py compares with.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e import fixture, lapi
from tests.exposition import samples, value
from tests.integration.harness import Daemon, NetNs
from tests.net import free_port

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.prom"
AUTH_LOG = "/var/log/auth.log"
EXPORTER = (sys.executable, "-m", "exporter")
# The clock and locale the host's files are read in: DenyHosts' entries carry local asctime dates.
ENVIRONMENT = ("env", "TZ=UTC", "LC_ALL=C.UTF-8")
SETTLE_TIMEOUT = 30.0
REPOSITORY = HERE.parents[1]

# What differs between runs or machines: (pattern, replacement) per line; None drops the line. HELP and
# TYPE lines stay unless a rule says otherwise, so a family whose samples are dropped is still checked.
VOLATILE: tuple[tuple[re.Pattern[str], str | None], ...] = (
    # client_python's process and runtime collectors (memory, CPU, fds, start time, GC, Python's version):
    # the machine's, not the exporter's contract. Whole families, HELP and TYPE too.
    (re.compile(r"^(?:# (?:HELP|TYPE) )?(?:process|python)_"), None),
    # How long each collector took.
    (re.compile(r"^ssh_access_collector_duration_seconds\{"), None),
    # The exporter's version: a release must not need a new golden file.
    (re.compile(r'^(ssh_access_build_info\{(?:.*,)?version=")[^"]*'), r"\g<1>VERSION"),
)


def normalise(text: str) -> str:
    """The exposition with VOLATILE applied, line by line."""
    kept = []
    for line in text.splitlines():
        current: str | None = line
        for pattern, replacement in VOLATILE:
            if current is not None and pattern.search(current):
                current = None if replacement is None else pattern.sub(replacement, current)
        if current is not None:
            kept.append(current)
    return "\n".join(kept) + "\n"


def flags(rootfs: Path, procfs: Path, port: int) -> list[str]:
    """The fixture host, the whole auth log from its start, no journal, fail2ban's database only."""
    return [
        f"--web.listen-address=127.0.0.1:{port}",
        f"--path.rootfs={rootfs}",
        f"--path.procfs={procfs}",
        f"--config.file={fixture.CONFIG}",
        f"--collector.authlog.files={AUTH_LOG}",
        "--collector.authlog.from-start",
        "--collector.authlog.journal=off",
        "--collector.fail2ban.socket=",
        "--log.level=warn",
    ]


class _InNamespace(Daemon):
    """A process in `netns`, listening on `port` there; stopped by pid."""

    def __init__(self, netns: NetNs, argv: list[str], port: int, log: Path) -> None:
        self.netns, self.argv, self.port, self.log = netns, argv, port, log

    def start(self) -> _InNamespace:
        with self.log.open("wb") as log:  # a file, not a pipe nobody drains
            self.proc = subprocess.Popen(self.netns.command(self.argv), stderr=log, cwd=REPOSITORY)
        self.netns.wait_for_port(self.port)
        return self


class GoldenScrape:
    """The exporter (and the CrowdSec stand-in) on the fixture host built in `directory`, in `netns`."""

    def __init__(self, directory: Path, netns: NetNs) -> None:
        self.rootfs, self.procfs = fixture.build(directory)
        self.netns = netns
        self.port = free_port()
        self.log = directory / "exporter.log"
        self.api = _InNamespace(
            netns, [sys.executable, "-m", "tests.e2e.lapi"], lapi.ADDRESS[1], directory / "lapi.log"
        )
        argv = [*ENVIRONMENT, *EXPORTER, *flags(self.rootfs, self.procfs, self.port)]
        self.exporter = _InNamespace(netns, argv, self.port, self.log)
        self.log_lines = len((self.rootfs / AUTH_LOG.lstrip("/")).read_text().splitlines())

    def __enter__(self) -> GoldenScrape:
        self.api.start()
        try:
            self.exporter.start()
        except BaseException:
            self.api.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.exporter.stop()
        self.api.stop()

    def text(self) -> str:
        """One scrape of /metrics over HTTP, from inside the namespace."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=15).read().decode(), end='')"
        run = self.netns.run([sys.executable, "-c", code])
        assert run.returncode == 0, run.stderr
        return run.stdout

    def settled(self) -> str:
        """The raw exposition once every auth log line is counted and two scrapes in a row agree."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        previous = ""
        while True:
            text = self.text()
            read = value(samples(text), "ssh_access_authlog_lines_read_total", source=AUTH_LOG)
            if read == self.log_lines and normalise(text) == normalise(previous):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no stable exposition within {SETTLE_TIMEOUT:g} s (auth log lines read: {read} of "
                    f"{self.log_lines}); the exporter's log:\n{self.log.read_text()}"
                )
            previous = text
            time.sleep(0.1)


def scrape_fixture_host(directory: Path) -> str:
    """The raw settled exposition of the exporter on the fixture host built in `directory` (needs root:
    a network namespace)."""
    with NetNs(directory / "netns") as netns, GoldenScrape(directory, netns) as scrape:
        return scrape.settled()
