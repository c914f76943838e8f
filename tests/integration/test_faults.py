"""Faults on a host under a small attack, counted: nothing crashes, no counter goes back, no line is lost
or counted twice, and every fault shows in the self-metrics and in the exporter's log (issue 16).

The host (a network namespace): sshd, fail2ban-server with 200 bans (no-op action), an nft set of
watched and unwatched addresses, a 5,000-entry hosts.deny bind-mounted over /etc/hosts.deny, a watchlist,
and an auth log written by the test at about 2,000 lines/s in lines of known kinds, rotated every 3 s
alternately by rename+create and by copytruncate (as logrotate does: NAME.1 moved to NAME.2 first; the
writer pauses for the copy and truncate, so the rotation itself loses nothing). The exporter runs in the
namespace with every collector on; 10 scraper threads (entered into the namespace) scrape it throughout
and keep every scrape's counters. The faults, one after the other, each waited for on what a user sees:
fail2ban stopped and restarted, killed and restarted, hung (SIGSTOP); the log deleted and recreated;
sshd restarted with a new config; the nft set flushed; a rotated file rewritten in place (`cp NAME
NAME.1`) while the exporter still drains it. rsyslog and journald are not in this log's path (the test
writes the file itself, so it can count every line), so neither is restarted here.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.authlog.tail import FileTailer
from tests.exposition import Samples, samples, value
from tests.integration.harness import SSHD, Exporter, Fail2banServer, NetNs, Sshd, require_root_and

RATE_PER_S = 2000
ROTATE_EVERY_S = 3.0
SCRAPERS = 10
SCRAPE_EVERY_S = 0.3
BANS = 200
DENY_ENTRIES = 5000
WATCHED = "192.0.2.77"  # in the nft set until it is flushed
KINDS = {  # one line template per kind: the event it is, or None for another daemon's line
    "auth_failed": "sshd[{pid}]: Failed password for root from 192.0.2.{a} port {port} ssh2",
    "invalid_user": "sshd[{pid}]: Invalid user admin from 198.51.100.{a} port {port}",
    "preauth_disconnect": "sshd[{pid}]: Connection closed by 203.0.113.{a} port {port} [preauth]",
    None: "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
}
# Counters documented to reset: fail2ban's own, from fail2ban-server's start (README, fail2ban collector).
RESETTABLE = ("ssh_access_fail2ban_",)
UP_TIMEOUT_S = 60.0


def _lines(first: int, count: int) -> tuple[bytes, dict[str | None, int]]:
    kinds = list(KINDS)
    stamp = time.strftime("%b %e %H:%M:%S")
    made: dict[str | None, int] = dict.fromkeys(kinds, 0)
    out = []
    for n in range(first, first + count):
        kind = kinds[n % len(kinds)]
        made[kind] += 1
        message = KINDS[kind].format(pid=1000 + n % 5000, a=1 + n % 250, port=1024 + n % 60000)
        out.append(f"{stamp} bastion {message}\n")
    return "".join(out).encode(), made


class LogWriter(threading.Thread):
    """Appends lines of known kinds at RATE_PER_S in 10 ms batches; counts each kind it wrote.

    `lock` is held for each batch: rotations and faults take it to act between two writes. `fd` is the
    file written to (a rename leaves it on the old file until `reopen`, as a syslog daemon before HUP).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.lock = threading.Lock()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.paused = False  # the file is gone on purpose: lines wait until it is back
        self.written: dict[str | None, int] = dict.fromkeys(KINDS, 0)
        self.stop_event = threading.Event()

    @property
    def total(self) -> int:
        return sum(self.written.values())

    def reopen(self) -> None:
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write_now(self, count: int) -> None:
        """Write `count` lines at once (the caller holds `lock`)."""
        data, made = _lines(self.total, count)
        os.write(self.fd, data)
        for kind, number in made.items():
            self.written[kind] += number

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop_event.is_set():
            with self.lock:
                due = int((time.monotonic() - started) * RATE_PER_S) - self.total
                if due > 0 and not self.paused:
                    self.write_now(due)
            time.sleep(0.01)


class Rotator(threading.Thread):
    """Every ROTATE_EVERY_S, a logrotate cycle, alternately create and copytruncate, unless held."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__(daemon=True)
        self.writer = writer
        self.hold = threading.Lock()  # a fault that needs the log to itself holds this
        self.stop_event = threading.Event()
        self.done = {"create": 0, "copytruncate": 0}

    def run(self) -> None:
        for mode in itertools.cycle(self.done):
            if self.stop_event.wait(ROTATE_EVERY_S):
                return
            with self.hold, self.writer.lock:
                path = self.writer.path
                first = path.with_name(path.name + ".1")
                if first.exists():
                    os.replace(first, path.with_name(path.name + ".2"))
                if mode == "copytruncate":
                    shutil.copyfile(path, first)
                    os.truncate(path, 0)
                else:
                    os.replace(path, first)
                    self.writer.reopen()
                self.done[mode] += 1


class Scraper(threading.Thread):
    """Scrapes every SCRAPE_EVERY_S from inside the namespace; keeps every scrape's samples."""

    def __init__(self, netns: NetNs, url: str) -> None:
        super().__init__(daemon=True)
        self.netns, self.url = netns, url
        self.history: list[tuple[float, Samples]] = []  # (when the scrape started, its samples)
        self.failures: list[str] = []
        self.slowest_s = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        self.netns.enter_this_thread()
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    self.history.append((started, samples(response.read().decode())))
            except OSError as exc:
                self.failures.append(repr(exc))
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            self.stop_event.wait(SCRAPE_EVERY_S)


def _backwards(history: list[tuple[float, Samples]]) -> list[str]:
    """Every counter sample that is lower than in the scrape before it (series that vanish and come
    back are compared with their last value)."""
    last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    found = []
    for index, (_, scrape) in enumerate(history):
        for key, number in scrape.items():
            name = key[0]
            if not name.endswith("_total") or name.startswith(RESETTABLE):
                continue
            if key in last and number < last[key]:
                found.append(f"scrape {index}: {key} {last[key]} -> {number}")
            last[key] = number
    return found


def _wait(scrapers: list[Scraper], check: Callable[[Samples], bool], what: str, after: float) -> Samples:
    """Wait until a scrape started after `after` (time.monotonic()) satisfies check; return it."""
    deadline = time.monotonic() + UP_TIMEOUT_S
    looked: set[tuple[int, int]] = set()
    while time.monotonic() < deadline:
        for number, scraper in enumerate(scrapers):
            for index in range(len(scraper.history) - 1, -1, -1):
                started, found = scraper.history[index]
                if started <= after or (number, index) in looked:
                    break
                looked.add((number, index))
                if check(found):
                    return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({len(looked)} scrapes looked at)")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[NetNs, Sshd, Fail2banServer, Path, Path]]:
    require_root_and(SSHD, "fail2ban-server", "nft", "ip")
    with NetNs(tmp_path / "netns", "sae-faults") as netns:
        empty = tmp_path / "fail2ban-input.log"
        empty.write_text("")
        bans = Fail2banServer.banning_nothing(tmp_path / "fail2ban", netns, "guard", empty)
        nft = tmp_path / "ruleset.nft"
        members = ", ".join([WATCHED, *(f"203.0.113.{i}" for i in range(1, 200))])
        nft.write_text(
            "table inet faults {\n"
            f"  set blocked {{ type ipv4_addr; elements = {{ {members} }} }}\n"
            "  chain in { type filter hook input priority 0; policy accept;\n"
            "    ip saddr @blocked counter drop\n  }\n}\n"
        )
        assert netns.run(["nft", "-f", str(nft)]).returncode == 0
        with Sshd(tmp_path / "sshd", netns=netns) as sshd, bans:
            bans.client("set", "guard", "banip", *(f"2001:db8::{i:x}" for i in range(1, BANS + 1)))
            yield netns, sshd, bans, tmp_path, nft


def test_faults_counted(host: tuple[NetNs, Sshd, Fail2banServer, Path, Path]) -> None:
    netns, sshd, bans, tmp, _ = host
    deny, allow, config = tmp / "hosts.deny", tmp / "hosts.allow", tmp / "exporter.yml"
    deny.write_text(
        "".join(f"sshd: [2001:db8:1::{i:x}]\n" for i in range(DENY_ENTRIES)) + "sshd: 192.0.2.9\n"
    )
    allow.write_text("sshd: 198.51.100.250\n")
    config.write_text(f"watchlist:\n  - {WATCHED}\n  - 192.0.2.9\n  - 2001:db8::5\n")
    log = tmp / "auth.log"
    writer = LogWriter(log)
    exporter = Exporter(
        f"--collector.sshd.config={sshd.config}",
        f"--collector.fail2ban.socket={bans.socket}",
        f"--collector.fail2ban.db={bans.db}",
        f"--collector.fail2ban.config-dir={bans.conf}",
        "--collector.fail2ban.timeout=1",
        f"--collector.authlog.files={log}",
        f"--config.file={config}",
        netns=netns,
        binds={Path("/etc/hosts.deny"): deny, Path("/etc/hosts.allow"): allow},
    )
    source = str(log)
    with exporter:
        pid = exporter.proc.pid
        scrapers = [Scraper(netns, exporter.url) for _ in range(SCRAPERS)]
        rotator = Rotator(writer)
        for thread in (*scrapers, writer, rotator):
            thread.start()

        def mark() -> float:
            return time.monotonic()

        def up(found: Samples) -> float | None:
            return value(found, "ssh_access_ban_source_up", source="fail2ban")

        def blocked(found: Samples, address: str, layer: str) -> float | None:
            return value(found, "ssh_access_watched_address_blocked", address=address, layer=layer)

        # all is well under load first
        found = _wait(
            scrapers, lambda f: up(f) == 1 and blocked(f, WATCHED, "firewall") == 1, "a healthy host", 0.0
        )
        assert value(found, "ssh_access_banned_addresses", source="fail2ban", jail="guard") == BANS
        assert blocked(found, "192.0.2.9", "tcp_wrappers") == 1
        assert blocked(found, "2001:db8::5", "fail2ban") == 1
        failing = [k for k, v in found.items() if k[0] == "ssh_access_collector_success" and v != 1]
        assert not failing, failing

        # fail2ban stopped, then started again: up 0 meanwhile, its collector still succeeds
        started = value(found, "ssh_access_fail2ban_server_start_time_seconds")
        bans.stop()
        found = _wait(scrapers, lambda f: up(f) == 0, "fail2ban down", mark())
        assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
        bans.start()
        _wait(
            scrapers,
            lambda f: up(f) == 1 and value(f, "ssh_access_fail2ban_server_start_time_seconds") != started,
            "fail2ban back",
            mark(),
        )

        # killed (no clean stop: the socket file stays), then started again
        os.kill(bans.pid, signal.SIGKILL)
        assert bans.proc is not None
        bans.proc.wait(timeout=30)
        _wait(scrapers, lambda f: up(f) == 0, "fail2ban killed", mark())
        bans.start()
        _wait(scrapers, lambda f: up(f) == 1, "fail2ban back after a kill", mark())

        # hung: the socket accepts, the server never answers; a scrape still answers, bounded
        os.kill(bans.pid, signal.SIGSTOP)
        try:
            since = mark()
            found = _wait(scrapers, lambda f: up(f) == 0, "fail2ban hung", since)
            assert value(found, "ssh_access_collector_success", collector="fail2ban") == 1
            slow = max(s.slowest_s for s in scrapers)
            assert slow < 20, f"a scrape took {slow:.1f} s while fail2ban hung"
        finally:
            os.kill(bans.pid, signal.SIGCONT)
        _wait(scrapers, lambda f: up(f) == 1, "fail2ban answering again", mark())

        def read(found: Samples) -> float | None:
            return value(found, "ssh_access_authlog_lines_read_total", source=source)

        # the log deleted: source_up 0 until it is back; lines meanwhile wait in the writer
        def rotations(found: Samples) -> float:
            return value(found, "ssh_access_authlog_rotations_total", source=source) or 0

        with rotator.hold:
            with writer.lock:
                os.unlink(log)
                writer.paused = True
            found = _wait(
                scrapers,
                lambda f: value(f, "ssh_access_authlog_source_up", source=source) == 0,
                "log gone",
                mark(),
            )
            assert value(found, "ssh_access_collector_success", collector="authlog") == 0
            with writer.lock:
                writer.reopen()
                writer.paused = False
            _wait(
                scrapers,
                lambda f: value(f, "ssh_access_authlog_source_up", source=source) == 1,
                "log back",
                mark(),
            )

        # sshd restarted with a new config: its listener gone meanwhile (others' sshds on this host may
        # run: the pid namespace is shared), then back, started anew, with the new setting
        def started_at(found: Samples) -> float | None:
            return value(found, "ssh_access_sshd_listener_start_time_seconds", listener=str(sshd.config))

        was = started_at(_wait(scrapers, lambda f: started_at(f) is not None, "sshd's listener", mark()))
        sshd.stop()
        _wait(scrapers, lambda f: started_at(f) is None, "sshd down", mark())
        sshd.config.write_text("MaxAuthTries 3\n" + sshd.config.read_text())
        sshd.start()
        _wait(
            scrapers,
            lambda f: started_at(f) not in (None, was) and value(f, "ssh_access_sshd_max_auth_tries") == 3,
            "sshd back with MaxAuthTries 3",
            mark(),
        )

        # the nft set flushed: the watched address is no longer blocked by the firewall
        assert netns.run(["nft", "flush", "set", "inet", "faults", "blocked"]).returncode == 0
        _wait(scrapers, lambda f: blocked(f, WATCHED, "firewall") == 0, "the set flushed", mark())

        # A rotated file rewritten in place while it is still drained: rename rotation, the writer stays
        # on the old file a moment (no HUP yet), then moves on; the next cycle copies the current file
        # over NAME.1 with `cp` (the same inode, truncated and refilled) once the current file is larger
        # than the old one was, within the tailer's 10 s grace for draining rotated files.
        with rotator.hold:
            before = rotations(_wait(scrapers, lambda f: True, "a scrape", mark()))
            rotated = log.with_name(log.name + ".1")
            with writer.lock:
                os.replace(log, rotated)
                log.touch()
            time.sleep(0.5)  # lines keep landing in the renamed file, as before a syslog daemon's HUP
            with writer.lock:
                writer.reopen()
                writer.write_now(rotated.stat().st_size // 70 + 100)  # lines of 78+ bytes: outgrows the old
                # everything read (the renamed file drained to its end), then the copy over it
                _wait(scrapers, lambda f: read(f) == writer.total, "both files read", mark())
                subprocess.run(["cp", str(log), str(rotated)], check=True)
            _wait(scrapers, lambda f: rotations(f) >= before + 2, "the rewrite counted as a rotation", mark())

        # more regular rotations after the faults, at least two of each mode in all
        wanted = {mode: max(2, done + 1) for mode, done in rotator.done.items()}
        deadline = time.monotonic() + UP_TIMEOUT_S
        while any(rotator.done[mode] < count for mode, count in wanted.items()):
            assert time.monotonic() < deadline, f"rotations stalled: {rotator.done}"
            time.sleep(0.1)
        rotator.stop_event.set()
        rotator.join()
        writer.stop_event.set()
        writer.join()
        expected = dict(writer.written)
        total = sum(expected.values())

        found = _wait(scrapers, lambda f: read(f) == total, "every line read", mark())
        time.sleep(1)  # a line counted twice would show by now
        found = _wait(scrapers, lambda f: True, "a last scrape", mark())
        for scraper in scrapers:
            scraper.stop_event.set()
            scraper.join()
        events = {k: value(found, "ssh_access_sshd_events_total", event=k) for k in expected if k is not None}
        assert (read(found), events) == (total, {k: v for k, v in expected.items() if k is not None})
        assert exporter.proc.poll() is None and exporter.proc.pid == pid, "the exporter died"
        failures = [f for s in scrapers for f in s.failures]
        assert not failures, failures[:5]
        backwards = [b for s in scrapers for b in _backwards(s.history)]
        assert not backwards, backwards[:10]
        assert rotator.done["create"] >= 2 and rotator.done["copytruncate"] >= 2, rotator.done
        assert rotations(found) >= sum(rotator.done.values())
        logged = exporter.log()
    for words in ("fail2ban", "vanished", "rotated or replaced", "truncated", "rewritten while still read"):
        assert words in logged, f"{words!r} not in the exporter's log:\n{logged[-3000:]}"


def test_rotated_file_rewritten_while_drained_is_not_read_again(tmp_path: Path) -> None:
    """`cp auth.log auth.log.1` writes into the inode a rename rotation left behind, which the tailer still
    drains: that content is a copy of lines read already from auth.log, so it must not be read again."""
    log = tmp_path / "auth.log"
    log.write_text("")
    tailer = FileTailer(log, rotated_grace_s=60)
    assert tailer.poll() == []
    log.write_text("".join(f"old {i}\n" for i in range(10)))
    assert len(tailer.poll()) == 10
    os.replace(log, tmp_path / "auth.log.1")
    log.write_text("".join(f"new {i}\n" for i in range(200)))
    assert len(tailer.poll()) == 200
    (tmp_path / "auth.log.1").write_bytes(log.read_bytes())  # truncated and rewritten in place
    assert tailer.poll() == []
    assert tailer.health.truncations == 1
    with log.open("a") as more:  # the current file is still followed
        more.write("new 200\n")
    assert tailer.poll() == ["new 200"]
