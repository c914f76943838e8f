"""sock_diag requests and replies, as bytes: what the kernel is sent and how its answer is counted.
The kernel's own verdict on the bytecode is tested against real sockets in
tests/integration/test_sock_diag_live.py."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from exporter.sources.sshd.sock_diag import (
    INET_DIAG_BC_JMP,
    INET_DIAG_BC_S_EQ,
    NLMSG_DONE,
    NLMSG_ERROR,
    TCPDIAG_GETSOCK,
    count_states,
    dump_request,
    port_filter,
)

HEADER = struct.Struct("=IHHII")
OP = struct.Struct("=BBH")


def ops(code: bytes) -> list[tuple[int, int, int]]:
    return [OP.unpack_from(code, offset) for offset in range(0, len(code), 4)]


def run_filter(code: bytes, port: int) -> bool:
    """The kernel's inet_diag_bc_run, for S_EQ and JMP: accept when the walk ends exactly at the end."""
    remaining, offset = len(code), 0
    while remaining > 0:
        kind, yes, no = OP.unpack_from(code, offset)
        matched = kind == INET_DIAG_BC_S_EQ and OP.unpack_from(code, offset + 4)[2] == port
        step = yes if matched and kind != INET_DIAG_BC_JMP else no
        remaining -= step
        offset += step
    return remaining == 0


def test_one_port_is_a_single_test() -> None:
    assert ops(port_filter([22])) == [(INET_DIAG_BC_S_EQ, 8, 12), (0, 0, 22)]


def test_several_ports_are_or_ed_with_jumps_to_the_end() -> None:
    code = port_filter([2222, 22, 22])
    assert ops(code) == [
        (INET_DIAG_BC_S_EQ, 8, 12),
        (0, 0, 22),
        (INET_DIAG_BC_JMP, 4, 12),
        (INET_DIAG_BC_S_EQ, 8, 12),
        (0, 0, 2222),
    ]
    for port, accepted in ((22, True), (2222, True), (23, False), (0, False)):
        assert run_filter(code, port) is accepted


def test_three_ports_accept_each_and_nothing_else() -> None:
    code = port_filter([22, 80, 443])
    assert [port for port in range(1, 1000) if run_filter(code, port)] == [22, 80, 443]


def test_dump_request_asks_for_every_state_but_listen() -> None:
    request = dump_request([22], sequence=7)
    length, kind, flags, sequence, _ = HEADER.unpack_from(request)
    assert (length, kind, sequence) == (len(request), TCPDIAG_GETSOCK, 7)
    assert flags == 0x301  # NLM_F_REQUEST | NLM_F_DUMP
    states = struct.unpack_from("=I", request, HEADER.size + 4 + 48)[0]
    assert states & (1 << 10) == 0 and states & (1 << 1) and states & (1 << 12)


def message(family: int, state: int, extra: bytes = b"\0" * 8) -> bytes:
    body = bytes([family, state]) + b"\0" * 70 + extra
    return HEADER.pack(HEADER.size + len(body), TCPDIAG_GETSOCK, 2, 1, 0) + body


def done() -> bytes:
    return HEADER.pack(HEADER.size + 4, NLMSG_DONE, 2, 1, 0) + b"\0" * 4


def test_uniform_datagrams_are_counted_by_family_and_state() -> None:
    first = message(socket.AF_INET, 1) * 3 + message(socket.AF_INET6, 6)
    counts, finished = count_states([first, message(socket.AF_INET, 3) + done()])
    assert finished
    assert counts == {(socket.AF_INET, 1): 3, (socket.AF_INET6, 6): 1, (socket.AF_INET, 3): 1}


def test_messages_of_different_lengths_are_walked_one_by_one() -> None:
    mixed = message(socket.AF_INET, 1) + message(socket.AF_INET, 1, extra=b"\0" * 20) + done()
    counts, finished = count_states([mixed])
    assert finished and counts == {(socket.AF_INET, 1): 2}


def test_a_dump_without_done_is_not_finished() -> None:
    counts, finished = count_states([message(socket.AF_INET, 1)])
    assert counts == {(socket.AF_INET, 1): 1} and not finished


def test_kernel_error_is_raised_with_its_errno() -> None:
    error = HEADER.pack(HEADER.size + 4, NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -errno.EINVAL)
    with pytest.raises(OSError) as caught:
        count_states([error])
    assert caught.value.errno == errno.EINVAL


def test_garbage_length_is_an_error_not_a_loop() -> None:
    with pytest.raises(OSError):
        count_states([HEADER.pack(3, TCPDIAG_GETSOCK, 0, 1, 0) + b"\0" * 80])
