from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from exporter.sources.sshd.sock_diag import NetnsSockets
from exporter.sources.sshd.sockets import (
    ListeningSockets,
    connection_states,
    listening_inodes,
    listening_sockets,
    own_listening_ports,
    parse_proc_net_tcp,
    read_tcp_sockets,
    states_on_ports,
)
from tests.procfs_tree import add_process, add_socket, make_procfs

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0
   1: 0100007F:08AE 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4
   2: 0100007F:08AE 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4
   3: 0100007F:08AE 0100007F:D2F4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
   4: 0100007F:2382 0100007F:D2F6 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 20 4
   garbage line
   5: ZZZ:QQ 0100007F:D2F6 01
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:08AE 00000000000000000000000001000000:C350 03 0
"""


def test_states_on_sshd_ports_only() -> None:
    sockets = parse_proc_net_tcp(TCP) + parse_proc_net_tcp(TCP6)
    assert dict(states_on_ports(sockets, {2222})) == {"established": 2, "time_wait": 1, "syn_recv": 1}


def test_read_from_a_process_namespace(tmp_path: Path) -> None:
    (tmp_path / "42" / "net").mkdir(parents=True)
    (tmp_path / "42" / "net" / "tcp").write_text(TCP)
    assert len(read_tcp_sockets(tmp_path, 42)) == 5
    assert read_tcp_sockets(tmp_path, 43) == []  # gone: no sockets, no error


def test_sock_diag_unavailable_falls_back_to_the_text_tables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fixture procfs has no namespace files (as a procfs without privileges to enter the
    namespace would fail): the counts come from the listener's text tables instead."""
    (tmp_path / "42" / "net").mkdir(parents=True)
    (tmp_path / "42" / "net" / "tcp").write_text(TCP)
    (tmp_path / "42" / "net" / "tcp6").write_text(TCP6)
    diag = NetnsSockets()
    try:
        with caplog.at_level(logging.DEBUG):
            states = connection_states(tmp_path, 42, {2222}, ("tcp", "tcp6"), diag)
    finally:
        diag.close()
    assert states == {"established": 2, "time_wait": 1, "syn_recv": 1}
    assert "sock_diag unavailable" in caplog.text
    assert connection_states(tmp_path, 42, {2222}, ("tcp",), None) == {"established": 2, "time_wait": 1}


def test_listening_inodes_are_the_listen_entries_only() -> None:
    assert listening_inodes(TCP) == {1001: 2222}
    real = (  # as the kernel lays it out (%5u uid, %8d timeout)
        "   3: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
        "376156 1 0000000000000000 100 0 0 10 0\n"
    )
    assert listening_inodes(real) == {376156: 22}


def test_own_listening_ports_match_fds_against_the_process_own_tables(tmp_path: Path) -> None:
    procfs = make_procfs(tmp_path)
    add_process(procfs, 1, 0, "/sbin/init", comm="systemd")
    assert own_listening_ports(procfs, 1) is None  # no fd directory (not root): unknown, not "none"
    (procfs / "1/fd").mkdir()
    assert own_listening_ports(procfs, 1) == frozenset()
    add_socket(procfs, 1, 5001, 22, table="tcp6")
    add_socket(procfs, 1, 5002, 9090, state=0x01)  # a connection, not a listener
    add_socket(procfs, 1, 5003, 2222)  # another process's listener in the same namespace...
    next(f for f in (procfs / "1/fd").iterdir() if os.readlink(f) == "socket:[5003]").unlink()
    (procfs / "1/fd/20").symlink_to("/dev/null")
    (procfs / "1/fd/21").symlink_to("anon_inode:[eventpoll]")
    (procfs / "net").mkdir()
    (procfs / "net/tcp").write_text(TCP)  # the reader's own namespace: never consulted
    assert own_listening_ports(procfs, 1) == frozenset({22})


def test_listening_sockets_are_looked_up_in_the_listener_own_namespace(tmp_path: Path) -> None:
    """A listener in another namespace: its sockets are in its /proc/PID/net tables only (the reader's
    /proc/net holds none of them), and an IPv4-only listener's connections are read from `tcp` alone."""
    procfs = make_procfs(tmp_path)
    add_process(procfs, 100, 1, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups")
    assert listening_sockets(procfs, 100) is None  # fds unreadable
    add_socket(procfs, 100, 9001, 2222)
    assert listening_sockets(procfs, 100) == ListeningSockets(frozenset({2222}), ("tcp",))
    add_socket(procfs, 100, 9002, 2222, table="tcp6")
    assert listening_sockets(procfs, 100) == ListeningSockets(frozenset({2222}), ("tcp", "tcp6"))
    add_process(procfs, 200, 1, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups")
    add_socket(procfs, 200, 9003, 2200, state=0x01)  # a connection only
    assert listening_sockets(procfs, 200) is None
