"""fail2ban source and collector against a fake server on a unix socket and sqlite fixtures."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.cli import serve_parser
from exporter.collectors.fail2ban import make_collector, snapshot_families
from exporter.collectors.families.bans import BanCollector
from exporter.options import Options
from exporter.registry import Context, build_collectors, registrations
from exporter.sources.access.model import parse_target
from exporter.sources.access.reader import AccessOptions, AccessReader
from exporter.sources.fail2ban.configcheck import failure_reason, parse_dump
from exporter.sources.fail2ban.database import DatabaseError, read_database
from exporter.sources.fail2ban.ports import all_ports, covers, parse_port_spec, parse_services
from exporter.sources.fail2ban.protocol import (
    END,
    Connection,
    ProtocolError,
    UnsafeReplyError,
    UntrustedSocketError,
    decode,
    encode,
    loads_plain,
)
from exporter.sources.fail2ban.reader import Fail2banReader, Fail2banSnapshot, parse_jail_status
from exporter.sources.host.paths import HostPaths
from tests.builders import V2_SCHEMA, V4_SCHEMA, make_db
from tests.exposition import promtool_check, render, samples, value

NOW = 1_800_000_000
Reply = Callable[[list[str]], bytes]


class FakeServer:
    """A unix-socket server framing replies as fail2ban does; `reply` maps a command to raw pickle bytes."""

    def __init__(self, path: Path, reply: Reply) -> None:
        self.path = path
        self.reply = reply
        self.commands: list[list[str]] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buffer = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buffer += chunk
                    while END in buffer:
                        frame, buffer = buffer.split(END, 1)
                        if frame == b"<F2B_CLOSE_COMMAND>":
                            break
                        command = pickle.loads(frame)
                        self.commands.append(command)
                        conn.sendall(self.reply(command) + END)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Reply], FakeServer]]:
    servers: list[FakeServer] = []

    def start(reply: Reply) -> FakeServer:
        server = FakeServer(tmp_path / f"f2b{len(servers)}.sock", reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def ok(result: object) -> bytes:
    return pickle.dumps((0, result), protocol=4)


class _Reduce:
    """Unpickles to os.system(COMMAND): what a hostile socket could send."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, (self.command,))


# -- protocol ---------------------------------------------------------------------------------------


def test_requests_are_pickle_4_lists_framed_by_the_end_marker() -> None:
    frame = encode(["status", "sshd", "short"])
    assert frame.endswith(END)
    assert frame[:2] == b"\x80\x04"
    assert pickle.loads(frame[: -len(END)]) == ["status", "sshd", "short"]


def test_replies_decode_to_the_result_of_code_zero() -> None:
    assert decode(ok([("Number of jail", 1), ("Jail list", "sshd")]) + END) == [
        ("Number of jail", 1),
        ("Jail list", "sshd"),
    ]
    with pytest.raises(ProtocolError, match="code 1"):
        decode(pickle.dumps((1, "boom"), 4) + END)
    with pytest.raises(ProtocolError, match="not terminated"):
        decode(ok("pong"))
    with pytest.raises(ProtocolError, match="undecodable"):
        decode(ok("pong")[:-3] + END)
    with pytest.raises(ProtocolError, match="ERROR"):
        decode(pickle.dumps("ERROR: load failed", 4) + END)


def test_plain_builtins_pass_the_restricted_unpickler() -> None:
    data = (0, [("a", 1), {"b": [1.5, None, True, b"x", frozenset({1})]}])
    assert loads_plain(pickle.dumps(data, 4)) == data


@pytest.mark.parametrize(
    "hostile",
    [
        (0, Exception("an exception is a global too")),
        (0, ValueError),
        (0, {1, 2, Path("/etc")}),
    ],
)
def test_any_global_is_refused(hostile: object) -> None:
    with pytest.raises(UnsafeReplyError):
        loads_plain(pickle.dumps(hostile, 4))


def test_malicious_pickle_from_a_fake_server_is_refused_and_nothing_runs(
    tmp_path: Path, serve: Callable[[Reply], FakeServer]
) -> None:
    marker = tmp_path / "pwned"
    server = serve(lambda _: pickle.dumps((0, _Reduce(f"touch {marker}")), 4))
    with Connection(server.path, 2.0, owner_uid=os.getuid()) as conn, pytest.raises(UnsafeReplyError):
        conn.request("ping")
    time.sleep(0.1)
    assert not marker.exists()
    # and the reader reports fail2ban unreachable instead of running it
    reader = Fail2banReader(HostPaths(tmp_path), "/" + server.path.name, None, owner_uid=os.getuid())
    snapshot = reader.read()
    assert (snapshot.up, snapshot.source) == (False, None)
    assert "UnsafeReplyError" in snapshot.error
    assert not marker.exists()


def test_socket_owned_by_another_user_is_refused(
    tmp_path: Path, serve: Callable[[Reply], FakeServer]
) -> None:
    server = serve(lambda _: ok("pong"))
    with pytest.raises(UntrustedSocketError, match="owned by uid"):
        Connection(server.path, 1.0, owner_uid=os.getuid() + 4242).open()
    assert server.commands == []
    not_socket = tmp_path / "plain"
    not_socket.write_text("")
    with pytest.raises(UntrustedSocketError, match="not a socket"):
        Connection(not_socket, 1.0, owner_uid=os.getuid()).open()


def test_server_running_as_another_user_is_refused(serve: Callable[[Reply], FakeServer]) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    server = serve(lambda _: ok("pong"))
    os.chown(server.path, 4242, -1)  # the file says 4242, the process behind it is root
    with pytest.raises(UntrustedSocketError, match="runs as uid 0"):
        Connection(server.path, 1.0, owner_uid=4242).open()


def test_a_hung_server_costs_one_timeout(tmp_path: Path) -> None:
    path = tmp_path / "hung.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)  # accepts (in the kernel) and never answers
    try:
        started = time.monotonic()
        with Connection(path, 0.3, owner_uid=os.getuid()) as conn, pytest.raises(TimeoutError):
            conn.request("ping")
        assert time.monotonic() - started < 1.0
    finally:
        listener.close()


def test_oversized_reply_is_cut_off(
    serve: Callable[[Reply], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporter.sources.fail2ban.protocol.MAX_REPLY", 1000)
    server = serve(lambda _: ok("x" * 5000))
    with (
        Connection(server.path, 2.0, owner_uid=os.getuid()) as conn,
        pytest.raises(ProtocolError, match="larger"),
    ):
        conn.request("version")


# -- hostile replies: bounded before anything walks them ---------------------------------------------


def memo_bomb(levels: int) -> object:
    """`[a, a]` nested `levels` deep: 2**levels leaves, a pickle of a few hundred bytes (memo references)."""
    value: object = "a"
    for _ in range(levels):
        value = [value, value]
    return value


def ok_opcodes(result: bytes) -> bytes:
    """A `(0, result)` reply around hand-written opcodes that build the result."""
    return b"\x80\x04K\x00" + result + b"\x86."


def test_a_memo_bomb_is_refused_before_it_is_built() -> None:
    bomb = pickle.dumps((0, memo_bomb(40)), 4)
    assert len(bomb) < 400
    started = time.monotonic()
    with pytest.raises(ProtocolError, match="expands to more than"):
        decode(bomb + END)
    with pytest.raises(ProtocolError, match="expands to more than"):
        decode(pickle.dumps((1, memo_bomb(40)), 4) + END)  # the error path reprs its result
    assert time.monotonic() - started < 2.0
    assert decode(pickle.dumps((0, memo_bomb(10)), 4) + END) == memo_bomb(10)  # 1024 leaves: fine


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (b"]" * 100_000 + b"a" * 99_999, "nests deeper"),  # recursion in any walker
        (b"}N" + b"\x85" * 100_000 + b"Ns", "container as a dict key"),  # hashing it recurses in C
        (b"\x8f(N\x85\x90", "container as a dict key or set member"),
        (b"]\x94h\x00a", "contains itself"),
        (b"Nr\x00\x00\x00\x80", "memo index"),  # the unpickler would size its memo to 2**32
        (b"\x8b\x00\x01\x00\x00" + b"\xff" * 255 + b"\x7f", "integer of 2047 bits"),
    ],
)
def test_replies_the_unpickler_must_not_build_are_refused(result: bytes, error: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=error):
        decode(ok_opcodes(result) + END)
    assert time.monotonic() - started < 2.0


# -- a whole server ---------------------------------------------------------------------------------

SSHD_ACTIONS: list[tuple[str, object]] = [("Currently banned", 3), ("Total banned", 9)]
STATUS_SSHD = [
    ("Filter", [("Currently failed", 2), ("Total failed", 17), ("File list", ["/var/log/auth.log"])]),
    ("Actions", SSHD_ACTIONS),
]
STATUS_WEB = [
    (
        "Filter",
        [("Currently failed", 0), ("Total failed", 1), ("Journal matches", ["_SYSTEMD_UNIT=nginx.service"])],
    ),
    ("Actions", [("Currently banned", 1), ("Total banned", 1)]),
]
ANSWERS: dict[tuple[str, ...], object] = {
    ("version",): "1.0.2",
    ("status",): [("Number of jail", 2), ("Jail list", "sshd, web")],
    ("status", "sshd", "short"): STATUS_SSHD,
    ("status", "web", "short"): STATUS_WEB,
    ("get", "sshd", "bantime"): -1,
    ("get", "web", "bantime"): 3600,
    ("get", "sshd", "findtime"): 600,
    ("get", "web", "findtime"): 60,
    ("get", "sshd", "maxretry"): 5,
    ("get", "web", "maxretry"): 10,
    ("get", "sshd", "prefregex"): r"^(?:\[\])?\s*(?:[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?)\s+%(__prefix_line)s",
    ("get", "web", "prefregex"): "",
    ("get", "web", "failregex"): ["^<HOST> .* 401"],
    ("get", "sshd", "actions"): ["iptables-multiport", "sendmail"],
    ("get", "web", "actions"): ["iptables-allports"],
    ("get", "sshd", "actionproperties", "iptables-multiport"): ["actionban", "port", "protocol"],
    ("get", "sshd", "actionproperties", "sendmail"): ["actionban", "dest"],
    ("get", "sshd", "action", "iptables-multiport", "port"): "ssh,sftp",
}


def fake_fail2ban(command: list[str]) -> bytes:
    return ok(ANSWERS[tuple(command)])


def reader_for(
    root: Path, socket_name: str | None, ports: frozenset[int] = frozenset({22})
) -> Fail2banReader:
    return Fail2banReader(
        HostPaths(root), socket_name, "/f2b.sqlite3", owner_uid=os.getuid(), sshd_ports=lambda: ports
    )


def test_reader_builds_jails_from_short_status_and_settings(
    tmp_path: Path, serve: Callable[[Reply], FakeServer]
) -> None:
    server = serve(fake_fail2ban)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/services").write_text("ssh\t\t22/tcp\nsftp\t\t115/tcp\n")
    snapshot = reader_for(tmp_path, "/" + server.path.name).read()
    assert (snapshot.up, snapshot.source, snapshot.version) == (True, "socket", "1.0.2")
    sshd, web = snapshot.jails
    assert (sshd.banned, sshd.bans_total, sshd.failing, sshd.failures_total) == (3, 9, 2, 17)
    assert (sshd.bantime, sshd.findtime, sshd.maxretry) == (float("inf"), 600.0, 5)
    assert (sshd.backend, sshd.log_paths, sshd.missing_log_paths) == (
        "file",
        ("/var/log/auth.log",),
        ("/var/log/auth.log",),
    )
    assert (sshd.guards_sshd, sshd.action_ports, sshd.covers_sshd_port) == (True, ("ssh,sftp",), True)
    assert (web.backend, web.journal_matches, web.guards_sshd, web.covers_sshd_port) == (
        "systemd",
        ("_SYSTEMD_UNIT=nginx.service",),
        False,
        None,
    )
    assert snapshot.sshd_guarded is True
    # the full banned list is never asked for
    assert not any(c[:2] == ["status", "sshd"] and len(c) == 2 for c in server.commands)
    assert ["get", "sshd", "action", "sendmail", "port"] not in server.commands


def test_sshd_on_another_port_is_not_covered(tmp_path: Path, serve: Callable[[Reply], FakeServer]) -> None:
    server = serve(fake_fail2ban)
    snapshot = reader_for(tmp_path, "/" + server.path.name, frozenset({22, 2222})).read()
    assert snapshot.jails[0].covers_sshd_port is False


def test_rendered_families_pass_promtool(tmp_path: Path, serve: Callable[[Reply], FakeServer]) -> None:
    server = serve(fake_fail2ban)
    text = render(make_collector(reader_for(tmp_path, "/" + server.path.name)).collect())
    assert promtool_check(text) is None
    found = samples(text)
    assert value(found, "ssh_access_ban_source_up", source="fail2ban") == 1
    assert value(found, "ssh_access_banned_addresses", source="fail2ban", jail="sshd") == 3
    assert value(found, "ssh_access_fail2ban_jail_guards_sshd", jail="sshd") == 1
    assert value(found, "ssh_access_fail2ban_jail_guards_sshd", jail="web") == 0
    assert value(found, "ssh_access_fail2ban_jail_bans_total", jail="sshd") == 9
    assert value(found, "ssh_access_fail2ban_jail_failures_total", jail="sshd") == 17
    assert value(found, "ssh_access_fail2ban_jail_bantime_seconds", jail="sshd") == float("inf")
    assert value(found, "ssh_access_fail2ban_jail_log_files_missing", jail="sshd") == 1
    assert value(found, "ssh_access_fail2ban_sshd_guarded") == 1
    assert value(found, "ssh_access_fail2ban_data_source", source="socket") == 1


def test_no_jail_guarding_sshd_is_reported(tmp_path: Path, serve: Callable[[Reply], FakeServer]) -> None:
    answers = {**ANSWERS, ("status",): [("Number of jail", 1), ("Jail list", "web")]}
    server = serve(lambda command: ok(answers[tuple(command)]))
    found = samples(render(make_collector(reader_for(tmp_path, "/" + server.path.name)).collect()))
    assert value(found, "ssh_access_fail2ban_sshd_guarded") == 0


def test_plain_status_parses_too() -> None:
    full = [STATUS_SSHD[0], ("Actions", [*SSHD_ACTIONS, ("Banned IP list", ["192.0.2.1"])])]
    assert parse_jail_status("sshd", full).banned == 3
    with pytest.raises(ProtocolError):
        parse_jail_status("sshd", "nonsense")


def test_checking_a_long_reply_keeps_to_the_session_deadline(serve: Callable[[Reply], FakeServer]) -> None:
    junk = b"\x80\x04" + b"(1" * (7 << 20) + b"N."  # 14 MiB of opcodes that build nothing: seconds to read
    server = serve(lambda _: junk)
    started = time.monotonic()
    with Connection(server.path, 0.5, owner_uid=os.getuid()) as conn, pytest.raises(TimeoutError):
        conn.request("version")
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "hostile",
    [
        {("version",): ok(memo_bomb(40))},  # str() of the version
        {("status",): ok([memo_bomb(40)])},  # the pair helper's repr of a bad item
        {("get", "sshd", "bantime"): ok(memo_bomb(40))},  # the integer helper's repr
        {("get", "sshd", "maxretry"): pickle.dumps((1, memo_bomb(40)), 4)},  # an error's message
    ],
)
def test_an_exponential_reply_costs_the_fail2ban_source_not_the_process(
    tmp_path: Path, serve: Callable[[Reply], FakeServer], hostile: dict[tuple[str, ...], bytes]
) -> None:
    server = serve(lambda command: hostile.get(tuple(command)) or fake_fail2ban(command))
    started = time.monotonic()
    snapshot = reader_for(tmp_path, "/" + server.path.name).read()
    assert time.monotonic() - started < 2.0  # before: the GIL held in repr, memory growing to MemoryError
    assert (snapshot.up, snapshot.source) == (False, None)
    assert "expands to more than" in snapshot.error
    found = samples(render(snapshot_families(snapshot)))
    assert value(found, "ssh_access_ban_source_up", source="fail2ban") == 0


@pytest.mark.parametrize(
    ("command", "answer", "error"),
    [
        (("get", "sshd", "bantime"), 10**400, "integer of 1329 bits"),
        (("get", "sshd", "findtime"), float("inf"), "findtime: not a finite number"),
        (("get", "sshd", "maxretry"), "9" * 400, "maxretry: integer out of range"),
        (("status", "sshd", "short"), [STATUS_SSHD[0], ("Actions", [("Currently banned", 2**70)])], "bits"),
    ],
    ids=["huge-bantime", "infinite-findtime", "huge-text-maxretry", "huge-count"],
)
def test_a_number_out_of_range_is_a_clear_error_and_the_source_is_down(
    tmp_path: Path,
    serve: Callable[[Reply], FakeServer],
    caplog: pytest.LogCaptureFixture,
    command: tuple[str, ...],
    answer: object,
    error: str,
) -> None:
    server = serve(lambda asked: ok(answer) if tuple(asked) == command else fake_fail2ban(asked))
    collector = make_collector(reader_for(tmp_path, "/" + server.path.name))
    found = samples(render(collector.collect()))  # before: OverflowError, and ban_source_up vanished
    assert value(found, "ssh_access_ban_source_up", source="fail2ban") == 0
    assert [error in getattr(r, "err", "") for r in caplog.records if r.msg == "ban source unreachable"] == [
        True
    ]


def test_a_lone_surrogate_in_a_jail_name_still_reports_the_jail(
    tmp_path: Path, serve: Callable[[Reply], FakeServer]
) -> None:
    name = "web\ud800"
    answers = {
        **ANSWERS,
        ("version",): "1.0.2\udcff",
        ("status",): [("Number of jail", 2), ("Jail list", f"sshd, {name}")],
        **{(*key[:1], name, *key[2:]): answer for key, answer in ANSWERS.items() if key[1:2] == ("web",)},
    }
    web_filter = [("Currently failed", 0), ("Total failed", 1), ("File list", ["/l\ud800"])]
    answers[("status", name, "short")] = [("Filter", web_filter), STATUS_WEB[1]]
    server = serve(lambda command: ok(answers[tuple(command)]))
    text = render(make_collector(reader_for(tmp_path, "/" + server.path.name)).collect())  # before: 500
    found = samples(text)
    assert value(found, "ssh_access_banned_addresses", source="fail2ban", jail="web\ufffd") == 1
    assert value(found, "ssh_access_fail2ban_version_info", version="1.0.2\ufffd") == 1
    assert promtool_check(text) is None
    assert ["status", name, "short"] in server.commands  # asked by its own name


def test_a_lone_surrogate_in_a_banned_answer_reaches_diagnose_as_valid_text(
    tmp_path: Path, serve: Callable[[Reply], FakeServer]
) -> None:
    server = serve(lambda command: ok([["web\ud800"]]) if command[0] == "banned" else ok(None))
    options = AccessOptions(firewall=False, sshguard=False, crowdsec=False, authlog=False, fail2ban_db="",
                            fail2ban_socket="/" + server.path.name, fail2ban_owner=os.getuid())  # fmt: skip
    network = parse_target("192.0.2.1")
    found = {v.layer: v for v in AccessReader(HostPaths(tmp_path), options).check([network])[network]}
    assert found["fail2ban"].detail == "banned in jail web\ufffd"
    assert found["fail2ban"].detail.encode()  # before: UnicodeEncodeError when diagnose printed it


# -- database ---------------------------------------------------------------------------------------

V4_ROWS = [
    ("192.0.2.1", "sshd", NOW - 100, 600),  # current
    ("192.0.2.2", "sshd", NOW - 700, 600),  # expired, still in the table
    ("192.0.2.3", "sshd", NOW - 10**6, -1),  # permanent
    ("192.0.2.4", "sshd", NOW - 100, -2),  # unknown bantime, recent: current with the jail's bantime
    ("192.0.2.5", "sshd", NOW - 5000, -2),  # unknown bantime, older than it
    ("192.0.2.6", "old", NOW - 10, 600),  # a disabled jail
]


def test_v4_current_bans_as_fail2ban_counts_them(tmp_path: Path) -> None:
    db = make_db(tmp_path / "v4.sqlite3", V4_SCHEMA, [("sshd", 1), ("old", 0)], V4_ROWS)
    snapshot = read_database(db, now=NOW)
    assert snapshot.version == 4
    jails = {jail.name: jail for jail in snapshot.jails}
    assert (jails["sshd"].current_bans, jails["sshd"].permanent_bans) == (3, 1)
    assert jails["old"].enabled is False
    # a jail bantime longer than the unknown ban's age makes it current too
    assert {j.name: j.current_bans for j in read_database(db, {"sshd": 6000}, now=NOW).jails}["sshd"] == 4
    # a permanent jail bantime keeps every unknown ban
    assert {j.name: j.current_bans for j in read_database(db, {"sshd": -1}, now=NOW).jails}["sshd"] == 4


def test_now_compares_as_an_integer_not_text(tmp_path: Path) -> None:
    db = make_db(tmp_path / "v4.sqlite3", V4_SCHEMA, [("sshd", 1)], V4_ROWS[:1])
    with sqlite3.connect(db) as conn:  # the trap: strftime() is TEXT, and every integer is less than text
        (trap,) = conn.execute(
            "SELECT COUNT(*) FROM bips WHERE timeofban + bantime > strftime('%s', 'now')"
        ).fetchone()
    conn.close()
    assert trap == 0
    assert read_database(db, now=NOW).jails[0].current_bans == 1


def test_v2_bans_last_the_jail_bantime(tmp_path: Path) -> None:
    rows = [
        ("sshd", "192.0.2.1", NOW - 100),
        ("sshd", "192.0.2.1", NOW - 50),
        ("sshd", "192.0.2.2", NOW - 900),
    ]
    db = make_db(tmp_path / "v2.sqlite3", V2_SCHEMA, [("sshd", 1)], rows)
    snapshot = read_database(db, now=NOW)
    assert snapshot.version == 2
    assert snapshot.jails[0].current_bans == 1  # one address, banned twice; the other expired (600 s)
    assert read_database(db, {"sshd": 1000}, now=NOW).jails[0].current_bans == 2


def test_database_is_opened_read_only(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(DatabaseError):
        read_database(missing)
    assert not missing.exists()


@pytest.mark.parametrize(
    "content", [b"not a database at all" * 100, b"", b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_garbage_database_is_an_error(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "garbage.sqlite3"
    db.write_bytes(content)
    with pytest.raises(DatabaseError):
        read_database(db)


def test_socket_down_falls_back_to_the_database(tmp_path: Path) -> None:
    make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1), ("old", 0)], V4_ROWS)
    snapshot = reader_for(tmp_path, "/missing.sock").read()
    assert (snapshot.installed, snapshot.up, snapshot.source) == (True, False, "database")
    assert [jail.name for jail in snapshot.jails] == ["sshd"]  # disabled jails: a clean stop unbanned them
    found = samples(render(snapshot_families(snapshot)))
    assert value(found, "ssh_access_ban_source_up", source="fail2ban") == 0
    assert value(found, "ssh_access_fail2ban_data_source", source="database") == 1
    assert value(found, "ssh_access_fail2ban_sshd_guarded") is None


def test_database_only_mode_is_up_when_the_database_reads(tmp_path: Path) -> None:
    make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1)], V4_ROWS)
    snapshot = reader_for(tmp_path, None).read()
    assert (snapshot.up, snapshot.source) == (True, "database")
    (tmp_path / "f2b.sqlite3").write_bytes(b"garbage" * 100)
    snapshot = reader_for(tmp_path, None).read()
    assert (snapshot.installed, snapshot.up, snapshot.source) == (True, False, None)
    assert "database" in snapshot.error


DEFAULT_SOCKET = "/var/run/fail2ban/fail2ban.sock"


def test_absent_is_not_unreachable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A rootfs without fail2ban (no socket, database, config dir or binary): absent, said once."""
    reader = reader_for(tmp_path, DEFAULT_SOCKET)
    snapshot = reader.read()
    assert snapshot == Fail2banSnapshot(False, False, None, snapshot.error)
    collector = make_collector(reader)
    caplog.set_level(logging.INFO)
    assert list(collector.collect()) == list(collector.collect()) == []  # no ban_source_up series
    # before: a warning "ban source unreachable" with the socket's FileNotFoundError
    assert [(r.levelname, r.msg) for r in caplog.records] == [("INFO", "ban source absent")]
    assert collector.state is not None and (collector.state.status, collector.state.reason) == ("absent", "")


def test_installed_but_not_running_is_unreachable_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "etc/fail2ban").mkdir(parents=True)
    collector = make_collector(reader_for(tmp_path, DEFAULT_SOCKET))
    found = samples(render(collector.collect()))
    assert value(found, "ssh_access_ban_source_up", source="fail2ban") == 0
    reason = f"fail2ban-server is not running (nothing answers on {DEFAULT_SOCKET})"
    # before: "socket ...: FileNotFoundError: [Errno 2] No such file or directory: '<rootfs>/var/run/...'"
    assert [(r.levelname, getattr(r, "err", "")) for r in caplog.records] == [("WARNING", reason)]
    assert collector.state is not None and (collector.state.status, collector.state.reason) == (
        "down",
        reason,
    )
    (tmp_path / "etc/fail2ban").rmdir()  # uninstalled: absent from then on, said once
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert list(collector.collect()) == []
    assert [(r.levelname, r.msg) for r in caplog.records] == [("INFO", "ban source absent")]


# -- ports ------------------------------------------------------------------------------------------

SERVICES = parse_services("ssh 22/tcp # comment\nssh 22/udp\nsftp 115/tcp\nhttp 80/tcp www\n")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ssh", {22}),
        ("ssh,sftp", {22, 115}),
        ("22, 2222", {22, 2222}),
        ("www", {80}),
        ("1000:1002", {1000, 1001, 1002}),
        ("ssh-http", set(range(22, 81))),
        ("nonsense", None),
    ],
)
def test_port_specs(spec: str, expected: set[int] | None) -> None:
    parsed = parse_port_spec(spec, SERVICES)
    assert parsed == (None if expected is None else frozenset(expected))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0:999999999999", None),  # before: a set of 10**12 ports built in C, the GIL held
        ("\u00b2, 22", {22}),  # before: ValueError from int()
        ("9" * 5000 + ",22", {22}),  # before: ValueError (int's digit limit)
        ("a-" * 50_000 + "!,22", {22}),  # before: the range pattern backtracked quadratically
        (",".join(["0:65535"] * 20_000), set(range(65536))),  # before: 20,000 expansions of every port
        ("30-20", set()),
    ],
    ids=["huge-range", "unicode-digit", "5000-digits", "backtracking-token", "repeated-ranges", "empty"],
)
def test_port_specs_from_a_hostile_server_cost_linear_time(spec: str, expected: set[int] | None) -> None:
    started = time.monotonic()
    parsed = parse_port_spec(spec, SERVICES)
    assert time.monotonic() - started < 2.0
    assert parsed == (None if expected is None else frozenset(expected))


def test_services_out_of_the_port_range_are_passed_over() -> None:
    assert parse_services("huge 99999999999/tcp\nssh 22/tcp\nsup \u00b2/tcp\n") == {"ssh": 22}


def test_coverage_is_the_union_of_actions() -> None:
    assert covers(["22", "2222"], frozenset({22, 2222}), SERVICES) is True
    assert covers(["ssh"], frozenset({2222}), SERVICES) is False
    assert covers(["all"], frozenset({2222}), SERVICES) is True
    assert covers(["nonsense"], frozenset({22}), SERVICES) is None
    assert covers(["ssh"], frozenset(), SERVICES) is None
    assert parse_port_spec("0:65535", SERVICES) == all_ports()


def test_flags_reach_the_reader(tmp_path: Path) -> None:
    switches = registrations()
    args = serve_parser(switches).parse_args(
        [
            f"--path.rootfs={tmp_path}",
            "--collector.fail2ban.socket=/run/f2b.sock",
            "--collector.fail2ban.db=",
            "--collector.fail2ban.socket-owner=7",
            "--collector.fail2ban.timeout=0.5",
        ]
    )
    collector = build_collectors(Context(Options.from_namespace(args, switches)))["fail2ban"]
    assert isinstance(collector, BanCollector)
    reader = collector.reader
    assert isinstance(reader, Fail2banReader)
    assert (reader.socket_path, reader.db_path, reader.owner_uid, reader.timeout) == (
        "/run/f2b.sock",
        None,
        7,
        0.5,
    )


# -- config check while the server is down ----------------------------------------------------------

DUMP = """\
['set', 'syslogsocket', 'auto']
['set', 'dbfile', '/var/lib/fail2ban/fail2ban.sqlite3']
['add', 'sshd', 'auto']
['set', 'sshd', 'prefregex', '^<F-MLFID>(?:\\\\[\\\\])?\\\\s*[\\\\[\\\\(]?sshd(?:\\\\(\\\\S+\\\\))?:?']
['set', 'sshd', 'addfailregex', '^Failed \\\\S+ for .* from <HOST>']
['set', 'sshd', 'maxretry', 5]
['start', 'sshd']
['add', 'web', 'polling']
['set', 'web', 'addfailregex', '^<HOST> .* 401']
['set', 'web', 'addlogpath', '/var/log/nginx/access.log', 'head']
['start', 'web']
"""
DUMP_STDERR = (
    "2026-11-23 20:39:02,023 fail2ban.jailreader [2388]: WARNING Have not found any log file for sshd jail\n"
)


def test_config_dump_names_jails_without_logs() -> None:
    check = parse_dump(DUMP, DUMP_STDERR)
    assert check.jails == ("sshd", "web")
    assert check.without_logs == frozenset({"sshd"})
    assert any("sshd" in regex for regex in check.matches["sshd"])
    snapshot = Fail2banSnapshot(True, False, None, "down", config=check)
    assert snapshot.sshd_guarded is True
    found = samples(render(snapshot_families(snapshot)))
    assert value(found, "ssh_access_fail2ban_config_jail_log_missing", jail="sshd") == 1
    assert value(found, "ssh_access_fail2ban_config_jail_log_missing", jail="web") == 0
    assert value(found, "ssh_access_fail2ban_sshd_guarded") == 1
    web_only = parse_dump("['add', 'web', 'polling']\n['set', 'web', 'addfailregex', '^<HOST> 401']\n", "")
    assert Fail2banSnapshot(True, False, None, "down", config=web_only).sshd_guarded is False


def test_a_config_dump_the_parser_cannot_take_costs_its_line_only() -> None:
    hostile = "['add', 'deep', " + "-" * 100_000 + "1]\n['add', 'sum', " + "+".join(["1"] * 100_000) + "]\n"
    check = parse_dump(hostile + "['add', 'web\\ud800', 'auto']\n" + DUMP, "")  # before: MemoryError
    assert check.jails == ("web\ufffd", "sshd", "web")
    text = render(snapshot_families(Fail2banSnapshot(True, False, None, "down", config=check)))
    assert value(samples(text), "ssh_access_fail2ban_config_jail_log_missing", jail="web\ufffd") == 0


def test_config_check_runs_only_while_the_socket_is_unreachable(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    (tmp_path / "dump").write_text(DUMP)
    client = tmp_path / "fail2ban-client"
    client.write_text(
        f'#!/bin/sh\necho run >> {calls}\ncat {tmp_path / "dump"}\necho "{DUMP_STDERR.strip()}" >&2\n'
    )
    client.chmod(0o755)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/jail.local").write_text("[sshd]\nenabled = true\n")
    reader = Fail2banReader(
        HostPaths(), str(tmp_path / "no.sock"), None, config_dir=str(tmp_path / "conf"), client=str(client)
    )
    first, second = reader.read(), reader.read()
    assert first.config is not None and first.config.without_logs == frozenset({"sshd"})
    assert first.error == (  # why the server is down, as fail2ban itself would say it
        f"fail2ban-server is not running (nothing answers on {tmp_path / 'no.sock'}); "
        "jail sshd: no log file found (fail2ban-server refuses to start)"
    )
    assert second.config == first.config
    assert calls.read_text().count("run") == 1  # cached until a config file changes
    (tmp_path / "conf/jail.local").write_text("[sshd]\nenabled = false\n")
    os.utime(tmp_path / "conf/jail.local", ns=(1, 1))
    reader.read()
    assert calls.read_text().count("run") == 2


# What Debian 12's fail2ban-client 1.0.2 writes for `-d` on a broken config: the last line says nothing.
CLIENT_FAILURES = {
    "no-filter": (
        "2026-12-06 05:08:36,359 fail2ban.configreader   [4624]: WARNING 'allowipv6' not defined in "
        "'Definition'. Using default one: 'auto'\n"
        "2026-12-06 05:08:36,360 fail2ban.configreader   [4624]: ERROR   Found no accessible config files "
        "for 'filter.d/nosuchfilter' under /etc/fail2ban\n"
        "2026-12-06 05:08:36,360 fail2ban.jailreader     [4624]: ERROR   Unable to read the filter "
        "'nosuchfilter'\n"
        "2026-12-06 05:08:36,360 fail2ban.jailsreader    [4624]: ERROR   Errors in jail 'sshd'. Skipping...\n"
        "2026-12-06 05:08:36,362 fail2ban                [4624]: ERROR   Init of command line failed\n",
        "Found no accessible config files for 'filter.d/nosuchfilter' under /etc/fail2ban; "
        "Unable to read the filter 'nosuchfilter'; Errors in jail 'sshd'. Skipping...",
    ),
    "no-section": (
        "2026-12-06 05:08:36,420 fail2ban                [4625]: ERROR   Failed during configuration: File "
        "contains no section headers.\nfile: '/etc/fail2ban/jail.local', line: 1\n'[sshd\\n'\n"
        "2026-12-06 05:08:36,420 fail2ban                [4625]: ERROR   Init of command line failed\n",
        "Failed during configuration: File contains no section headers. "
        "file: '/etc/fail2ban/jail.local', line: 1 '[sshd\\n'",
    ),
}


@pytest.mark.parametrize("case", sorted(CLIENT_FAILURES))
def test_a_config_the_client_refuses_is_named_whole(tmp_path: Path, case: str) -> None:
    stderr, reason = CLIENT_FAILURES[case]
    assert failure_reason(stderr, 255) == reason
    (tmp_path / "stderr").write_text(stderr)
    client = tmp_path / "fail2ban-client"
    client.write_text(f"#!/bin/sh\ncat {tmp_path / 'stderr'} >&2\nexit 255\n")
    client.chmod(0o755)
    (tmp_path / "conf").mkdir()
    reader = Fail2banReader(
        HostPaths(), str(tmp_path / "no.sock"), None, config_dir=str(tmp_path / "conf"), client=str(client)
    )
    snapshot = reader.read()
    assert (
        snapshot.config is not None and snapshot.config.error == reason
    )  # before: "Init of command line failed"
    down = f"fail2ban-server is not running (nothing answers on {tmp_path / 'no.sock'})"
    assert snapshot.error == f"{down}; fail2ban-client -d: {reason}"
    assert failure_reason("", 1) == "exited with status 1"
