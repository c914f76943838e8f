from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.collectors.sshd import SshdCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.processes import (
    ProcessInfo,
    classify_listeners,
    config_from_argv,
    parse_listener_title,
    read_processes,
)
from exporter.sources.sshd.reader import SshdReader
from tests.exposition import render, samples, value
from tests.procfs_tree import (
    add_binary,
    add_process,
    make_procfs,
    set_children,
    set_run_time,
    start_time,
)


def proc(pid: int, ppid: int, title: str, name: str = "sshd") -> ProcessInfo:
    return ProcessInfo(pid, ppid, name, title, 1_700_000_000.0)


def test_listener_title_is_parsed() -> None:
    title = parse_listener_title("sshd: /usr/sbin/sshd -D -f /etc/ssh/alt [listener] 4 of 3-6 startups")
    assert title is not None
    assert (title.startups, title.start, title.full) == (4, 3, 6)
    assert config_from_argv(title.argv) == "/etc/ssh/alt"


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        ("/usr/sbin/sshd -D", "/etc/ssh/sshd_config"),
        ("/usr/sbin/sshd -D -f /tmp/x/cfg", "/tmp/x/cfg"),
        ("/usr/sbin/sshd -f/tmp/y -D", "/tmp/y"),
        ("/usr/sbin/sshd -D -f", "/etc/ssh/sshd_config"),
        ('/usr/sbin/sshd -f "/tmp/with space" -D', "/tmp/with space"),
    ],
)
def test_config_from_argv(argv: str, config: str) -> None:
    assert config_from_argv(argv) == config


def test_not_a_listener_title() -> None:
    assert parse_listener_title("sshd: [accepted]") is None
    assert parse_listener_title("sshd: /usr/sbin/sshd -D [listener] x of 3-6 startups") is None


# One tree per OpenSSH generation: (listener, then per connection: monitor title + descendant titles).
GENERATIONS = {
    "7.x without listener title": (
        proc(100, 1, "/usr/sbin/sshd -D"),
        [
            ("sshd: [accepted]", [], "accepted"),
            ("sshd: [accepted]", ["sshd: [net]"], "preauth"),
            ("sshd: root [priv]", ["sshd: root [net]"], "authenticating"),
            ("sshd: unknown [priv]", ["sshd: unknown [net]"], "authenticating"),
            ("sshd: alice [priv]", ["sshd: alice@pts/0"], "session"),
            ("sshd: bob [priv]", ["sshd: bob@notty"], "session"),
            ("sshd: carol [priv]", ["sshd: carol@internal-sftp"], "session"),
            ("/usr/sbin/sshd -D -R", [], "accepted"),
        ],
    ),
    "8.2-9.7": (
        proc(100, 1, "sshd: /usr/sbin/sshd -D [listener] 4 of 10-100 startups"),
        [
            ("sshd: [accepted]", [], "accepted"),
            ("sshd: [accepted]", ["sshd: [net]"], "preauth"),
            ("sshd: root [priv]", ["sshd: root [net]"], "authenticating"),
            ("sshd: unknown [priv]", [], "authenticating"),
            ("sshd: alice [priv]", ["sshd: alice@pts/0"], "session"),
        ],
    ),
    "9.8-9.9 sshd-session": (
        proc(100, 1, "sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups"),
        [
            ("sshd-session: [accepted]", [], "accepted"),
            ("sshd-session: alice [priv]", ["sshd-session: alice [net]"], "authenticating"),
            ("sshd-session: [accepted]", ["sshd-session: [net]"], "preauth"),
            ("sshd-session: bob [priv]", ["sshd-session: bob@pts/0"], "session"),
        ],
    ),
    "10.x sshd-auth": (
        proc(100, 1, "sshd: /usr/sbin/sshd -D [listener] 4 of 10-100 startups"),
        [
            ("sshd-session: [accepted]", [], "accepted"),
            ("sshd-session: [accepted]", ["sshd-auth: [session-auth early]"], "preauth"),
            ("sshd-session: [accepted]", ["sshd-auth: [session-auth]"], "preauth"),
            ("sshd-session: alice [priv]", ["sshd-auth: alice [net]"], "authenticating"),
            (
                "sshd-session: bob [priv]",
                ["sshd-session: bob [postauth]", "sshd-session: bob@pts/1"],
                "session",
            ),
        ],
    ),
}


def _name(title: str) -> str:
    head = title.split(":", 1)[0]
    return head if head in ("sshd", "sshd-session", "sshd-auth") else "sshd"


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_connections_are_staged_from_titles(generation: str) -> None:
    listener, connections = GENERATIONS[generation]
    processes = [listener, proc(1, 0, "/sbin/init", name="systemd")]
    expected = {"accepted": 0, "preauth": 0, "authenticating": 0}
    sessions = 0
    pid = 200
    for monitor, descendants, stage in connections:
        monitor_pid = pid
        processes.append(proc(monitor_pid, listener.pid, monitor, _name(monitor)))
        parent = monitor_pid
        for title in descendants:
            pid += 1
            processes.append(proc(pid, parent, title, _name(title)))
            parent = pid
        pid += 1
        if stage == "session":
            sessions += 1
        else:
            expected[stage] += 1
    [found] = classify_listeners(processes)
    assert found.pid == 100
    assert found.stages == expected
    assert found.sessions == sessions
    if found.title is None:  # old sshd: the count comes from the children
        assert found.startups == sum(expected.values())
    else:
        assert found.startups == found.title.startups


def test_two_instances_are_reported_apart() -> None:
    processes = [
        proc(100, 1, "sshd: /usr/sbin/sshd -D [listener] 1 of 10-100 startups"),
        proc(101, 100, "sshd: [accepted]"),
        proc(300, 1, "sshd: /usr/sbin/sshd -D -f /etc/ssh/sshd_config_2222 [listener] 2 of 3-6 startups"),
        proc(301, 300, "sshd: [accepted]"),
        proc(302, 300, "sshd: [accepted]"),
    ]
    first, second = classify_listeners(processes)
    assert (first.config, first.startups, first.stages["accepted"]) == ("/etc/ssh/sshd_config", 1, 1)
    assert (second.config, second.startups, second.stages["accepted"]) == ("/etc/ssh/sshd_config_2222", 2, 2)


def test_orphaned_session_is_not_a_listener() -> None:
    assert classify_listeners([proc(500, 1, "sshd: alice@pts/0")]) == []


@pytest.mark.parametrize(
    "argv",
    [
        "/usr/sbin/sshd -T -f /etc/ssh/sshd_config",
        "/usr/sbin/sshd -t",
        "/usr/sbin/sshd -G -f /tmp/cfg",
        "/usr/sbin/sshd -V",
        "/usr/sbin/sshd -i",
        "/usr/sbin/sshd -TC user=root,host=h,addr=192.0.2.1",
    ],
)
def test_config_checks_and_inetd_runs_are_not_listeners(argv: str) -> None:
    """`sshd -T` run by an admin, by this exporter or by a test is not a second sshd instance."""
    assert classify_listeners([proc(600, 1, argv)]) == []


def test_read_processes_from_a_fixture_tree_with_garbage(tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path / "proc")
    add_process(procfs, 100, 1, "sshd: /usr/sbin/sshd -D [listener] 1 of 10-100 startups", start_ticks=500)
    add_process(procfs, 101, 100, "sshd: [accepted]")
    add_process(procfs, 102, 1, "/usr/bin/bash", comm="bash")
    (procfs / "103").mkdir()  # vanished process: no files
    (procfs / "104").mkdir()
    (procfs / "104" / "stat").write_bytes(b"\x00\xff garbage")
    (procfs / "105").mkdir()
    (procfs / "105" / "stat").write_text("105 (sshd) S\n")  # truncated stat
    (procfs / "self").mkdir()
    found = read_processes(procfs)
    assert sorted(p.pid for p in found) == [100, 101]
    listener = next(p for p in found if p.pid == 100)
    assert listener.create_time == pytest.approx(start_time(500))
    assert listener.title == "sshd: /usr/sbin/sshd -D [listener] 1 of 10-100 startups"


def _flood_fixture(procfs: Path, run_times: bool, binary: Path) -> None:
    title = "sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups"
    add_process(procfs, 100, 1, title, start_ticks=500, exe=binary)
    for pid, ppid, title in (
        (101, 100, "sshd: [accepted]"),
        (102, 100, "sshd: alice [priv]"),
        (103, 102, "sshd: alice@pts/0"),
        (104, 100, "sshd: [accepted]"),
        (105, 100, "sshd: [accepted]"),
        (106, 105, "sshd: [net]"),
    ):
        add_process(procfs, pid, ppid, title)
        set_children(procfs, pid, [])
        if run_times:
            set_run_time(procfs, pid, 1_000_000 + pid)
    set_children(procfs, 100, [101, 102, 104, 105])
    set_children(procfs, 102, [103])
    set_children(procfs, 105, [106])


def _stages(reader: SshdReader) -> tuple[dict[str, int], int]:
    [listener] = reader.listeners()
    return listener.stages, listener.sessions


@contextlib.contextmanager
def _flood_reader(root: Path, run_times: bool) -> Iterator[tuple[Path, SshdReader]]:
    procfs = make_procfs(root / "proc")
    _flood_fixture(procfs, run_times, add_binary(root))
    reader = SshdReader(HostPaths(rootfs=root, procfs=procfs))
    try:
        assert _stages(reader) == ({"accepted": 2, "preauth": 1, "authenticating": 0}, 1)
        yield procfs, reader
    finally:
        reader.close()


def test_known_listeners_are_followed_through_children_files(tmp_path: Path) -> None:
    """After the first scan the reader follows the listener's children files, and a later scan of
    /proc skips those connections. A connection whose monitor has not run keeps its settled stage;
    once it has run (its schedstat moved) it is read again."""
    with _flood_reader(tmp_path, run_times=True) as (procfs, reader):
        (procfs / "104" / "cmdline").write_bytes(b"sshd: bob [priv]\0\0")
        assert _stages(reader) == ({"accepted": 2, "preauth": 1, "authenticating": 0}, 1)  # not run
        set_run_time(procfs, 104, 5_000_000)
        assert _stages(reader) == ({"accepted": 1, "preauth": 1, "authenticating": 1}, 1)
        (procfs / "106" / "cmdline").write_bytes(b"sshd: carol [net]\0")  # pre-auth: always read
        assert _stages(reader) == ({"accepted": 1, "preauth": 0, "authenticating": 2}, 1)
        assert [p.pid for p in read_processes(procfs, skip={101, 102, 103, 104, 105, 106})] == [100]


def test_without_run_times_every_connection_is_read_each_time(tmp_path: Path) -> None:
    with _flood_reader(tmp_path, run_times=False) as (procfs, reader):
        (procfs / "104" / "cmdline").write_bytes(b"sshd: bob [priv]\0\0")
        assert _stages(reader) == ({"accepted": 1, "preauth": 1, "authenticating": 1}, 1)


# -- who is trusted as a listener (issue 11): a root process running the configured sshd binary --

REAL = "sshd: /usr/sbin/sshd -D [listener] 1 of 10-100 startups"


@contextlib.contextmanager
def _host(tmp_path: Path) -> Iterator[tuple[HostPaths, Path, SshdReader]]:
    """A rootfs with the sshd binary and a real listener (pid 100) holding one connection."""
    rootfs = tmp_path / "root"
    (rootfs / "etc/ssh").mkdir(parents=True)
    (rootfs / "etc/ssh/sshd_config").write_text("Port 22\n")
    binary = add_binary(rootfs)
    procfs = make_procfs(tmp_path / "proc")
    add_process(procfs, 100, 1, REAL, start_ticks=500, exe=binary)
    add_process(procfs, 101, 100, "sshd: [accepted]")
    paths = HostPaths(rootfs=rootfs, procfs=procfs)
    reader = SshdReader(paths)
    try:
        yield paths, binary, reader
    finally:
        reader.close()


def _scrape_within(reader: SshdReader, seconds: float, fifo: Path | None = None) -> str:
    """One collector pass, given `seconds`; a pass blocked on `fifo` is released so the test fails
    instead of hanging."""
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(render(SshdCollector(reader).collect())), daemon=True
    )
    worker.start()
    worker.join(seconds)
    blocked = worker.is_alive()
    if fifo is not None:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    worker.join(30)
    assert not blocked, f"the scrape took more than {seconds} s"
    return result[0]


def _untrusted_logs(caplog: pytest.LogCaptureFixture, pid: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "not trusted" in r.getMessage() and getattr(r, "pid", None) == pid]


def test_fake_listener_of_an_unprivileged_user_is_ignored_once_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's process named sshd with a listener title: its `-f` (a FIFO here) is never opened and
    its claimed startups are not counted; it is logged once at info, not on every scrape."""
    with _host(tmp_path) as (paths, binary, reader):
        fifo = paths.rootfs / "tmp/fifo"
        fifo.parent.mkdir()
        os.mkfifo(fifo)
        fake = "sshd: /usr/sbin/sshd -D -f /tmp/fifo [listener] 99 of 1-2 startups"
        add_process(paths.procfs, 666, 1, fake, start_ticks=600, uid=1000, exe=binary)
        caplog.set_level(logging.DEBUG)
        for _ in range(2):
            found = samples(_scrape_within(reader, 2, fifo))
            assert value(found, "ssh_access_sshd_listeners") == 1
            assert value(found, "ssh_access_sshd_startups") == 1
            assert value(found, "ssh_access_sshd_listener_startups", listener="/tmp/fifo") is None
        [record] = _untrusted_logs(caplog, 666)
        assert record.levelno == logging.INFO and "uid 1000" in str(getattr(record, "reason", ""))


def test_root_process_running_another_executable_is_ignored(tmp_path: Path) -> None:
    """A root process named sshd that is not the configured binary (a container's own sshd, a script):
    compared by device and inode, so a copy of the binary does not pass either."""
    with _host(tmp_path) as (paths, binary, reader):
        copy = paths.rootfs / "var/lib/container/usr/sbin/sshd"
        copy.parent.mkdir(parents=True)
        shutil.copy(binary, copy)
        add_process(paths.procfs, 700, 1, REAL.replace("1 of", "50 of"), start_ticks=600, exe=copy)
        add_process(paths.procfs, 701, 1, "/usr/sbin/sshd -D -f /etc/other", start_ticks=600)  # no exe
        [listener] = reader.listeners()
        assert listener.pid == 100 and listener.startups == 1


def test_listener_is_recognised_by_identity_and_its_sessions_followed(tmp_path: Path) -> None:
    """The exe link names the binary by another path (a hard link; in a container, the host's path):
    the same file is trusted. OpenSSH 9.8+ connections run sshd-session and sshd-auth, other
    executables, some as the user: they are followed under the trusted listener all the same."""
    with _host(tmp_path) as (paths, binary, reader):
        other_name = paths.rootfs / "usr/sbin/sshd-hardlink"
        os.link(binary, other_name)
        session = add_binary(paths.rootfs, "/usr/lib/openssh/sshd-session")
        add_process(paths.procfs, 100, 1, REAL.replace("1 of", "2 of"), start_ticks=500, exe=other_name)
        add_process(paths.procfs, 101, 100, "sshd-session: [accepted]", comm="sshd-session", exe=session)
        add_process(paths.procfs, 102, 100, "sshd-session: alice [priv]", comm="sshd-session", exe=session)
        add_process(paths.procfs, 103, 102, "sshd-session: alice@pts/0", comm="sshd-session", uid=1000)
        add_process(paths.procfs, 104, 100, "sshd-session: [accepted]", comm="sshd-session", exe=session)
        add_process(paths.procfs, 105, 104, "sshd-auth: [session-auth]", comm="sshd-auth", uid=101)
        for pid, children in ((100, [101, 102, 104]), (101, []), (102, [103]), (103, []), (104, [105])):
            set_children(paths.procfs, pid, children)
        set_children(paths.procfs, 105, [])
        [listener] = reader.listeners()
        assert (listener.pid, listener.startups, listener.sessions) == (100, 2, 1)
        assert listener.stages == {"accepted": 1, "preauth": 1, "authenticating": 0}


def test_listener_checked_when_found_not_on_every_scrape(tmp_path: Path) -> None:
    """The check costs a few reads per listener found; known listeners are followed without it."""
    with _host(tmp_path) as (paths, _, reader):
        assert [item.pid for item in reader.listeners()] == [100]
        (paths.procfs / "100" / "status").unlink()  # a second check would now fail
        assert [item.pid for item in reader.listeners()] == [100]


def test_without_the_configured_binary_no_listener_is_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _host(tmp_path) as (_, binary, reader):
        binary.unlink()
        caplog.set_level(logging.INFO)
        found = samples(_scrape_within(reader, 5))
        assert value(found, "ssh_access_sshd_listeners") == 0
        [record] = _untrusted_logs(caplog, 100)
        assert "/usr/sbin/sshd" in str(getattr(record, "reason", ""))


@pytest.mark.parametrize(
    "title",
    [
        "sshd: x" + " " * 100_000 + "y",  # quadratic in the old title regex: 14 s (a MB: 1,400 s)
        "sshd: x" + " " * 100_000 + "[listener] 1 of 2-3 startups",
        "sshd: x [listener] " + "9" * 5000 + " of 1-2 startups",  # int() refused it with ValueError
        "/usr/sbin/sshd -D -f '" + "x" * 500_000,  # shlex: quadratic in a quoted word
    ],
)
def test_any_title_is_parsed_in_linear_time_without_error(tmp_path: Path, title: str) -> None:
    """Titles are anyone's: an unprivileged process named sshd can carry any of these."""
    with _host(tmp_path) as (paths, _, reader):
        add_process(paths.procfs, 800, 1, title, start_ticks=600, uid=1000)
        started = time.monotonic()
        found = samples(_scrape_within(reader, 30))
        assert time.monotonic() - started < 2
        assert value(found, "ssh_access_sshd_listeners") == 1
        assert value(found, "ssh_access_sshd_startups") == 1
