"""Hostile or broken auth-log input costs one line, never the batch, the view or the process (issue 11).

Each view of the pipeline is fed what a local user, a broken syslog daemon or a hostile client can put
in a log: timestamps that name no date, lines built to make a regex backtrack, client text shaped like
sshd's own address fields, tokens that are no address.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.__main__ import main
from exporter.collectors.authlog import LiveAuthlogCollector, SourceUnavailableError, build_sources
from exporter.options import AuthlogOptions
from exporter.sources.authlog import stats as stats_module
from exporter.sources.authlog.fast import fastscan, linescan
from exporter.sources.authlog.framing import Framer
from exporter.sources.authlog.stats import Stats
from exporter.sources.authlog.tail import FileTailer
from exporter.sources.host.paths import HostPaths
from tests.exposition import render, samples, value

GOOD = "2023-07-29T04:15:{second:02d}+02:00 h sshd[{pid}]: Failed password for a from 192.0.2.7 port 2 ssh2"
BAD_STAMPS = (
    "2023-13-29T04:15:01+02:00",  # month 13
    "2023-00-29T04:15:01+02:00",  # month 00
    "0000-07-29T04:15:01+02:00",  # year 0000
    "2023-07-29T04:15:01+25:00",  # an offset of more than a day
)


def _bad_line(stamp: str, message: str = "Failed password for root from 198.51.100.8 port 22 ssh2") -> str:
    return f"{stamp} host sshd[77]: {message}"


@pytest.mark.parametrize("stamp", BAD_STAMPS)
def test_a_bad_timestamp_costs_its_time_only(stamp: str) -> None:
    """The line keeps its event; it has no time, like a bare line (the wall clock counts it)."""
    record = Framer().parse(_bad_line(stamp))
    assert record is not None
    assert (record.ident, record.pid, record.time) == ("sshd", 77, None)
    assert record.message.startswith("Failed password for root from 198.51.100.8")
    rfc5424 = Framer().parse(
        f"<38>1 {stamp} host sshd 77 - - Failed password for root from 192.0.2.1 port 2 ssh2"
    )
    assert rfc5424 is not None and rfc5424.time is None and rfc5424.ident == "sshd"


def test_replay_counts_the_lines_around_a_bad_timestamp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "auth.log"
    lines = [
        GOOD.format(second=1, pid=10),
        *(_bad_line(s) for s in BAD_STAMPS),
        GOOD.format(second=2, pid=11),
    ]
    log.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(log)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["line"], r["address"], r["time"] is None) for r in rows] == [
        (1, "192.0.2.7", False),
        *((n, "198.51.100.8", True) for n in range(2, 2 + len(BAD_STAMPS))),
        (2 + len(BAD_STAMPS), "192.0.2.7", False),
    ]
    assert main(["replay", "--format", "metrics", str(log)]) == 0
    found = samples(capsys.readouterr().out)
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == len(lines)


def test_live_batch_with_a_bad_timestamp_loses_no_line(tmp_path: Path) -> None:
    """100 good lines, a bad one, 100 good lines, in one batch of the follower: all 201 counted."""
    log = tmp_path / "auth.log"
    good = [GOOD.format(second=n % 60, pid=1000 + n) for n in range(100)]
    log.write_text("\n".join([*good, _bad_line(BAD_STAMPS[0]), *good]) + "\n")
    collector = LiveAuthlogCollector([FileTailer(log, from_start=True, name="auth.log")], Stats(), 0.05)
    try:
        deadline = time.monotonic() + 10
        while collector.stats.snapshot().sources["auth.log"].lines_read < 201 and time.monotonic() < deadline:
            time.sleep(0.02)
        found = samples(render(collector.collect()))
    finally:
        collector.close()
    assert value(found, "ssh_access_sshd_events_total", event="auth_failed") == 201
    assert collector.follower.health.sink_errors == 0


def test_diagnose_and_watchlist_read_a_log_tail_with_a_bad_timestamp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`drop` lines are framed for the penalty layer: a bad one must not take diagnose down."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "var/log").mkdir(parents=True)
    drop = "drop connection #3 from [192.0.2.9]:5555 on [192.0.2.1]:22 penalty: failed authentication"
    (tmp_path / "var/log/auth.log").write_text(_bad_line(BAD_STAMPS[0], drop) + "\n")
    argv = [
        "diagnose",
        "192.0.2.9",
        "--json",
        f"--path.rootfs={tmp_path}",
        f"--path.procfs={tmp_path / 'proc'}",
        "--no-collector.firewall",
        "--no-collector.sshguard",
        "--no-collector.crowdsec",
        "--collector.authlog.files=/var/log/auth.log",
    ]
    code = main(argv)
    document = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert document["address"] == "192.0.2.9"


FRAME = "Nov 23 19:04:34 host sshd[4242]: "
# Lines built to make a backtracking matcher retry at every repetition: 16 KiB (the tailer's cap), ending in
# a character no fast alternative accepts, so every attempt fails only at the very end.
BACKTRACKING = (
    "Disconnecting user " + "a port 1: " * 1600,
    "in MaxStartups throttling for " + "a, 1 conn" * 1800,
    "exited MaxStartups throttling after " + "00:05:00, 57 connections " * 640,
    "Accepted password for " + "a from 198.51.100.1 port 5 ssh2: " * 480,
    "pam_unix(sshd:auth): authentication failure;" + " rhost=203.0.113.21  user=root" * 500,
    "error: PAM: Authentication failure for " + "for " * 4000,
)


@pytest.mark.parametrize("scanner", ["fastscan", "linescan"])
@pytest.mark.parametrize("end", ["\x01", "\u00e9", "\t"])
def test_lines_ending_in_a_control_character_cost_linear_time(
    scanner: str, end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 such lines took 12 s (290 ms each, quadratic backtracking); linear work takes milliseconds."""
    monkeypatch.setattr(stats_module, "scan", fastscan.scan if scanner == "fastscan" else linescan.scan)
    lines = [FRAME + BACKTRACKING[n % len(BACKTRACKING)] + end for n in range(40)]
    stats = Stats()
    started = time.monotonic()
    stats.feed_text("\n".join(lines) + "\n", "f", Framer())
    elapsed = time.monotonic() - started
    assert stats.snapshot().sources["f"].lines_read == 40
    assert elapsed < 2.0, f"{elapsed:.1f} s for 40 lines of 16 KiB"


# Client text around sshd's own address field: the user name before it, a disconnect reason or a
# certificate's key ID after it. Each line holds the shape twice; the address must not come from the
# client's copy. The connection's earlier line (the primer, same pid) gives the address instead.
PRIMER = FRAME + "Invalid user root from 192.0.2.7 port 4444\n"
INJECTED = (
    "Disconnecting authenticating user root 192.0.2.7 port 4444: Change of username or service not allowed: "
    "(root,ssh-connection) -> (x 203.0.113.66 port 22: y,ssh-connection) [preauth]",
    "Disconnecting invalid user x 203.0.113.66 port 22: y 192.0.2.7 port 4444: Too many authentication "
    "failures [preauth]",
    "Disconnecting user x 203.0.113.66 port 22: y 192.0.2.7 port 4444: Bye",
    "Failed publickey for root from 192.0.2.7 port 4444 ssh2: ED25519-CERT SHA256:abc ID k from "
    "203.0.113.66: z (serial 1) CA ED25519 SHA256:def",
    "Failed publickey for x from 203.0.113.66 port 22 ssh2: from 192.0.2.7 port 4444 ssh2",
    "Accepted publickey for root from 192.0.2.7 port 4444 ssh2: ED25519-CERT SHA256:a ID k from 203.0.113.66",
    "Postponed publickey for root from 192.0.2.7 port 4444 ssh2: RSA-CERT ID from 203.0.113.66: b [preauth]",
)


@pytest.mark.parametrize("message", INJECTED)
def test_client_text_never_decides_the_address_in_replay(
    message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "auth.log"
    log.write_text(PRIMER + FRAME + message + "\n")
    assert main(["replay", str(log)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["address"] for row in rows] == ["192.0.2.7"] * len(rows)
    assert main(["replay", "--format", "metrics", str(log)]) == 0
    assert "203.0.113.66" not in capsys.readouterr().out


def _counted(text: str, path: str, monkeypatch: pytest.MonkeyPatch) -> Stats:
    """Stats after `text` through one path: the chunk scanner `fastscan` or `linescan`, or `general`
    (framing and classify line by line, as the journal's records and replay's JSON take)."""
    monkeypatch.setattr(stats_module, "scan", fastscan.scan if path == "fastscan" else linescan.scan)
    stats = Stats()
    if path == "general":
        stats.feed_batch(Framer().parse_many(text.splitlines()), "f")
    else:
        stats.feed_text(text, "f", Framer())
    return stats


@pytest.mark.parametrize("scanner", ["fastscan", "linescan", "general"])
@pytest.mark.parametrize("message", INJECTED)
def test_client_text_never_decides_the_pid_map(
    message: str, scanner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = _counted(PRIMER + FRAME + message + "\n", scanner, monkeypatch)
    assert stats.pid_map() == {4242: "192.0.2.7"}
    assert all(address == "192.0.2.7" for address, _ in stats.snapshot().top_offenders)


# Tokens where sshd writes an address that are none: only valid addresses become labels or pid-map entries.
NOT_ADDRESSES = ("192.0.2.\ufffd(9", "192.0.2.999", "::ffff:::ffff:", "x", "[]", "01.2.3.4", "2001:db8::1%")


@pytest.mark.parametrize("scanner", ["fastscan", "linescan", "general"])
@pytest.mark.parametrize("token", NOT_ADDRESSES)
def test_only_addresses_become_top_offenders_or_pid_map_entries(
    token: str, scanner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        f"{FRAME}Invalid user a from {token} port 22\n"
        f"{FRAME}Failed password for invalid user a from {token} port 22 ssh2\n"
        f"Nov 23 19:04:35 host sshd[4243]: Connection closed by {token} port 22\n"
        f"Nov 23 19:04:35 host sshd[4244]: refused connect from {token}\n"
    )
    stats = _counted(text, scanner, monkeypatch)
    snapshot = stats.snapshot()
    assert snapshot.top_offenders == ()
    assert stats.pid_map() == {}
    assert snapshot.events["auth_failed"] == 1 and snapshot.events["invalid_user"] == 1


def test_a_mapped_address_is_unmapped_once_on_every_path() -> None:
    """Compiled linescan stripped `::ffff:` twice from a TCP wrappers line; the other paths once."""
    lines = [
        f"{FRAME}refused connect from x (::ffff:::ffff:192.0.2.1)",
        f"{FRAME}refused connect from ::ffff:192.0.2.2",
    ]
    text = "\n".join(lines) + "\n"
    general = [fastscan.general(line, Framer(), time.time) for line in lines]
    assert [op[1] for op in general if op is not None] == ["::ffff:192.0.2.1", "192.0.2.2"]
    assert [op[1] for op in fastscan.scan(text, Framer(), time.time)] == ["::ffff:192.0.2.1", "192.0.2.2"]
    assert [op[1] for op in linescan.scan(text, Framer(), time.time)] == ["::ffff:192.0.2.1", "192.0.2.2"]


def _collector_for(rootfs: Path) -> LiveAuthlogCollector:
    """The registered collector's sources for `rootfs` (as the CLI builds them), polled every 20 ms."""
    options = AuthlogOptions(files=("/var/log/auth.log",), journal="off", from_start=True)
    return LiveAuthlogCollector(build_sources(HostPaths(rootfs=rootfs), options), Stats(), 0.02)


def _wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _failures(collector: LiveAuthlogCollector) -> dict[str, float]:
    return {a: n for a, n in collector.stats.snapshot().top_offenders}


def _failed(address: str, n: int) -> str:
    """n failures from `address`, stamped now (top offenders are those of the last hour)."""
    frame = time.strftime("%b %d %H:%M:%S host sshd[4242]: ")
    return "".join(f"{frame}Failed password for a from {address} port {n + i} ssh2\n" for i in range(n))


@pytest.mark.parametrize("replacement", ["directory", "fifo", "dangling link"])
def test_a_path_that_turns_unreadable_fails_the_collector_while_the_old_file_is_drained(
    tmp_path: Path, replacement: str
) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    log = tmp_path / "var/log/auth.log"
    log.write_text(_failed("192.0.2.7", 3))
    collector = _collector_for(tmp_path)
    try:
        _wait(lambda: _failures(collector).get("192.0.2.7") == 3)
        log.rename(log.with_name("auth.log.1"))  # the writer still has the old file open
        if replacement == "directory":
            log.mkdir()
        elif replacement == "fifo":
            os.mkfifo(log)
        else:
            log.symlink_to("nowhere")
        append = log.with_name("auth.log.1").open("a")
        append.write(_failed("192.0.2.7", 2))
        append.close()
        _wait(lambda: _failures(collector).get("192.0.2.7") == 5)  # no line of the old file lost
        with pytest.raises(SourceUnavailableError, match=r"/var/log/auth\.log"):
            list(collector.collect())
        if replacement == "directory":
            log.rmdir()
        else:
            log.unlink()
        log.write_text(_failed("192.0.2.8", 1))
        _wait(lambda: _failures(collector).get("192.0.2.8") == 1)
        assert list(collector.collect())  # readable again: the collector succeeds again
    finally:
        collector.close()


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_a_tailed_log_swapped_for_a_link_out_of_the_rootfs_is_not_followed(
    tmp_path: Path, target: str
) -> None:
    rootfs = tmp_path / "root"
    (rootfs / "var/log").mkdir(parents=True)
    outside = tmp_path / "outside.log"
    outside.write_text(_failed("203.0.113.66", 4))
    log = rootfs / "var/log/auth.log"
    log.write_text(_failed("192.0.2.7", 1))
    collector = _collector_for(rootfs)
    try:
        _wait(lambda: _failures(collector).get("192.0.2.7") == 1)
        swapped = log.with_name("auth.log.new")
        swapped.symlink_to(outside if target == "absolute" else Path("../../..") / outside.name)
        swapped.rename(log)
        with outside.open("a") as stream:
            stream.write(_failed("203.0.113.66", 3))
        _wait(lambda: not collector.follower.source_health()["/var/log/auth.log"]["open"])
        time.sleep(0.3)  # a dozen more polls
        assert "203.0.113.66" not in _failures(collector)
        with pytest.raises(SourceUnavailableError, match=r"/var/log/auth\.log"):
            list(collector.collect())
    finally:
        collector.close()
