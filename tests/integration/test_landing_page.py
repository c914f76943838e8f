"""The landing page as a person sees it: the real exporter on a fixture host, `/` rendered by headless
Chromium, and what it reads checked: the problems first and in order, no `ok` for a broken layer, UTC
times.

Two hosts: a broken one (sshd not running: no listener in its procfs; fail2ban's socket answers nobody;
CrowdSec's local API is not there; `sshd: ALL` in hosts.deny with nothing in hosts.allow; the only auth
log source missing, the journal off) and the golden scrape's healthy one (tests/e2e/fixture.py). Both run
in a network namespace of their own with only loopback (root), and so does Chromium: it can reach
nothing but the exporter.

`python -m tests.integration.test_landing_page` writes docs/landing-page.png, the broken host's page,
which the README shows.
"""

from __future__ import annotations

import html.parser
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e import fixture
from tests.e2e.golden import GoldenScrape
from tests.integration.harness import Exporter, NetNs, require_root_and
from tests.procfs_tree import add_process, make_procfs

CHROMIUM = "/usr/bin/chromium"
REPOSITORY = Path(__file__).resolve().parents[2]
SCREENSHOT = REPOSITORY / "docs" / "landing-page.png"
# Headless, and nothing fetched but the page: no sync, updates, field trials or QUIC probes.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root, in a namespace: the sandbox needs user namespaces of its own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CLOCK = re.compile(r"\d\d:\d\d:\d\d")


class _Page(html.parser.HTMLParser):
    """What a person reads: the text, the headings, each table's rows as cell texts, the links."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.links: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._heading: list[str] | None = None
        self._link: str | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("h1", "h2"):
            self._heading = []
        elif tag == "a":
            self._link = dict(attrs).get("href") or ""
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("h1", "h2") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        self.text.append(data)
        for part in (self._cell, self._heading):
            if part is not None:
                part.append(data)
        if self._link is not None:
            self.links[data.strip()] = self._link
            self._link = None

    def rows(self, table: int) -> list[tuple[str, str, str]]:
        """(severity, what, finding) for each row of a table, its header left out."""
        return [(row[0], row[1], row[2]) for row in self.tables[table][1:]]


def chromium(netns: NetNs, url: str, directory: Path, *action: str) -> str:
    """Chromium in `netns`, on `url`: `--dump-dom` (the DOM as rendered, returned) or a screenshot."""
    profile = Path(tempfile.mkdtemp(dir=directory, prefix="chromium-"))
    argv = ["env", f"HOME={profile}", CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url]
    run = netns.run(argv, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def read_page(netns: NetNs, port: int, directory: Path) -> _Page:
    dom = chromium(netns, f"http://127.0.0.1:{port}/", directory, "--dump-dom")
    page = _Page()
    page.feed(dom)
    return page


def build_broken_host(directory: Path) -> tuple[Path, Path]:
    """The golden fixture's rootfs with wrappers denying everyone and no auth log; a procfs with only
    systemd (no sshd listener, no socket of its own for sshd, no sshguard blocker)."""
    rootfs, procfs = directory / "rootfs", directory / "proc"
    fixture.build_rootfs(rootfs)
    (rootfs / "etc/hosts.deny").write_text("sshd: ALL\n")
    (rootfs / "etc/hosts.allow").write_text("")
    (rootfs / "var/log/auth.log").unlink()
    make_procfs(procfs)
    add_process(procfs, 1, 0, "/sbin/init", comm="systemd", start_ticks=1)
    return rootfs, procfs


@contextmanager
def broken_exporter(directory: Path, netns: NetNs) -> Iterator[Exporter]:
    rootfs, procfs = build_broken_host(directory)
    with Exporter(
        f"--path.rootfs={rootfs}",
        f"--path.procfs={procfs}",
        "--collector.authlog.files=/var/log/auth.log",
        "--collector.authlog.journal=off",
        "--log.level=warn",
        netns=netns,
    ) as exporter:
        yield exporter


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[NetNs]:
    require_root_and("ip", "nft", CHROMIUM)
    with NetNs(tmp_path / "netns", prefix="sae-page") as namespace:
        yield namespace


def _times_are_utc(page: _Page) -> None:
    text = " ".join(page.text)
    assert ISO_UTC.search(text), text
    assert len(CLOCK.findall(text)) == len(ISO_UTC.findall(text)), "a time without its zone"


def test_broken_host_says_what_is_broken_first(tmp_path: Path, netns: NetNs) -> None:
    with broken_exporter(tmp_path, netns) as exporter:
        page = read_page(netns, exporter.port, tmp_path)
        chromium(netns, f"http://127.0.0.1:{exporter.port}/", tmp_path,
                 f"--screenshot={tmp_path / 'page.png'}", "--window-size=1200,900")  # fmt: skip
    assert page.headings[1:] == ["Host", "Collectors"]
    text = " ".join(page.text)
    assert "not scraped yet" not in text
    host = page.rows(0)
    problems = [what for severity, what, _ in host if severity == "problem"]
    assert problems == [
        "sshd",
        "TCP wrappers",
        "CrowdSec",
        "fail2ban",
        "Ban enforcement (fail2ban)",
        "Auth log",
    ], host
    findings = {what: finding for _, what, finding in host}
    assert findings["sshd"].startswith("sshd is not running")
    assert "sshd: ALL" in findings["TCP wrappers"]
    assert "fail2ban-server is not running" in findings["fail2ban"]
    assert "/var/log/auth.log" in findings["Auth log"] and "uncounted" in findings["Auth log"]
    assert "Connection refused" in findings["CrowdSec"]
    broken = {"sshd", "TCP wrappers", "CrowdSec", "fail2ban", "Auth log", "MaxStartups"}
    assert not [row for row in host if row[1] in broken and row[0] == "ok"]
    collectors = {what: severity for severity, what, _ in page.rows(1)}
    assert collectors["authlog"] == "problem"
    _times_are_utc(page)
    assert page.links["Metrics"] == "/metrics"
    assert page.links["Runbook"].endswith("/docs/runbook.md")
    assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG")


def test_healthy_host_reads_ok(tmp_path: Path, netns: NetNs) -> None:
    with GoldenScrape(tmp_path, netns) as scrape:
        scrape.settled()  # every auth log line counted: the page reuses this scrape (it is recent)
        page = read_page(netns, scrape.port, tmp_path)
    host = {what: (severity, finding) for severity, what, finding in page.rows(0)}
    assert host["sshd"] == ("ok", "sshd is running (1 listener).")
    assert host["MaxStartups (/etc/ssh/sshd_config)"][0] == "ok"
    assert host["TCP wrappers"][0] == "ok"
    for tool in ("CrowdSec", "DenyHosts", "fail2ban", "sshguard"):
        assert host[tool][0] == "ok" and host[tool][1].startswith(f"{tool} is up"), host[tool]
    assert host["Auth log"] == ("ok", "sshd's log lines are read from /var/log/auth.log.")
    # The fixture's log is dated 2099, and its namespace has no firewall: both are said, not hidden.
    assert host["Last sshd event"][0] == "warning" and "2099-" in host["Last sshd event"][1]
    assert host["Ban enforcement (CrowdSec)"][0] == host["Ban enforcement (fail2ban)"][0] == "problem"
    assert host["Watched 192.0.2.1"][0] == "problem"
    assert all(severity == "ok" for severity, _, _ in page.rows(1)), page.rows(1)
    _times_are_utc(page)


def main() -> int:
    """Writes docs/landing-page.png: the broken host's page, 1200x900."""
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        with (
            NetNs(directory / "netns", prefix="sae-page") as namespace,
            broken_exporter(directory, namespace) as exporter,
        ):
            url = f"http://127.0.0.1:{exporter.port}/"
            chromium(namespace, url, directory, f"--screenshot={SCREENSHOT}", "--window-size=1200,900")
    print(SCREENSHOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
