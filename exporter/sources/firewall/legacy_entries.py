"""A legacy (x_tables) table's entries as the kernel hands them out, to tell whether anything but counters
changed since the last read.

libiptc (through python-iptables) copies a table's whole blob and builds its chain cache at every read:
about 70 ms for 10,000 rules, at every scrape, though between two scrapes only the counters move. The
blob itself is two getsockopt calls (`IPT_SO_GET_INFO`, `IPT_SO_GET_ENTRIES`, or the ip6t ones) on a raw
socket, as libiptc makes them. Its entries with their counters zeroed are the table's shape: equal
shapes mean equal rules in equal chains, so the rules parsed at the last read hold, with the counters
read from this blob. Only the layout is decoded here (where each chain's rules are); what a rule means is
still read through libiptc whenever the shape changed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import socket
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass

_GET_INFO, _GET_ENTRIES = 64, 65  # IPT_SO_GET_INFO / IP6T_SO_GET_INFO, and ..._GET_ENTRIES
_LEVEL = {"ipv4": socket.IPPROTO_IP, "ipv6": socket.IPPROTO_IPV6}
_FAMILY = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
# struct ipt_entry / ip6t_entry: where target_offset, next_offset and the counters (two u64) are.
_TARGET_OFFSET = {"ipv4": 88, "ipv6": 140}
_COUNTERS = {"ipv4": 96, "ipv6": 152}
_INFO = struct.Struct("=32sI5I5III")  # name, valid_hooks, hook_entry[5], underflow[5], num_entries, size
_ENTRIES_HEADER = 40  # struct ipt_get_entries: name[32], u32 size, then entries aligned to 8
_TARGET_HEADER = 32  # struct xt_entry_target: u16 size, char name[29], u8 revision
_COUNTER_PAIR = struct.Struct("=QQ")
_ZERO_COUNTERS = bytes(_COUNTER_PAIR.size)
HOOK_CHAINS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")  # NF_INET_* order
MAX_BYTES = 256 << 20  # a table larger than this is not copied (libiptc would still read it)


class LayoutError(Exception):
    """The blob is not laid out as x_tables writes it: the caller reads the table through libiptc."""


_libc: ctypes.CDLL | None = None


def _getsockopt() -> Callable[..., int]:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                     ctypes.POINTER(ctypes.c_uint)]  # fmt: skip
        _libc.getsockopt.restype = ctypes.c_int
    return _libc.getsockopt


def _ask(sock: socket.socket, family: str, option: int, buffer: ctypes.Array[ctypes.c_char]) -> None:
    length = ctypes.c_uint(len(buffer))
    if _getsockopt()(sock.fileno(), _LEVEL[family], option, buffer, ctypes.byref(length)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"getsockopt: {os.strerror(error)}")


@dataclass(frozen=True)
class TableBlob:
    """One read of a table: its hooks' entry and policy offsets, and its entries (counters included)."""

    family: str
    hook_entry: dict[str, int]  # builtin chain -> offset of its first entry
    underflow: dict[str, int]  # builtin chain -> offset of its policy entry
    entries: bytes


def read_table(name: str, family: str) -> TableBlob:
    """The table's blob (CAP_NET_ADMIN, as libiptc); OSError when the kernel refuses or the table changed
    size between the two calls."""
    with socket.socket(_FAMILY[family], socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        info = ctypes.create_string_buffer(name.encode()[:31], _INFO.size)
        _ask(sock, family, _GET_INFO, info)
        _, valid, *rest = _INFO.unpack(info.raw)
        hook_entry, underflow, size = rest[0:5], rest[5:10], rest[11]
        if size > MAX_BYTES:
            raise OSError(f"table {name} is {size} bytes")
        header = struct.pack("=32sI4x", name.encode()[:31], size)
        request = ctypes.create_string_buffer(header + bytes(size), _ENTRIES_HEADER + size)
        _ask(sock, family, _GET_ENTRIES, request)  # EAGAIN when the size moved since GET_INFO
    hooks = [(chain, bit) for bit, chain in enumerate(HOOK_CHAINS) if valid & (1 << bit)]
    return TableBlob(
        family,
        {chain: hook_entry[bit] for chain, bit in hooks},
        {chain: underflow[bit] for chain, bit in hooks},
        request.raw[_ENTRIES_HEADER:],
    )


@dataclass(frozen=True)
class Layout:
    """Where each chain's rules are in a blob, and a digest of its shape (entries without counters)."""

    chains: dict[str, array[int]]  # chain -> its rules' entry offsets, in order
    ends: array[int]  # the other entries: chain heads, policies, RETURNs, the table's end
    size: int
    shape: bytes

    def counters(self, blob: TableBlob, chain: str) -> list[tuple[int, int]]:
        """(packets, bytes) of each of the chain's rules in this blob."""
        at, data = _COUNTERS[blob.family], blob.entries
        return [_COUNTER_PAIR.unpack_from(data, offset + at) for offset in self.chains[chain]]

    def holds(self, blob: TableBlob) -> bool:
        """The blob has this layout's shape: the same entries, counters aside."""
        return len(blob.entries) == self.size and _shape(blob, self.chains, self.ends) == self.shape


def _shape(blob: TableBlob, chains: dict[str, array[int]], ends: array[int]) -> bytes:
    """A digest of the entries with every counter zeroed (2.5 MB for 10,000 rules: about 2 ms)."""
    at = _COUNTERS[blob.family]
    data = bytearray(blob.entries)
    for offsets in (*chains.values(), ends):
        for offset in offsets:
            data[offset + at : offset + at + 16] = _ZERO_COUNTERS
    return hashlib.blake2b(data, digest_size=32).digest()


def layout(blob: TableBlob) -> Layout:
    """Each chain's rules, found as libiptc finds them: a builtin chain runs from its hook's entry to its
    policy (the underflow entry); a user chain from the entry after its head (an ERROR target naming it)
    to the RETURN entry before the next head; a last ERROR entry ends the table. LayoutError otherwise."""
    data, family = blob.entries, blob.family
    offsets: list[int] = []
    position = 0
    while position < len(data):
        offsets.append(position)
        if position + _COUNTERS[family] + 16 > len(data):
            raise LayoutError(f"the entry at {position} is cut short")
        step = struct.unpack_from("=H", data, position + _TARGET_OFFSET[family] + 2)[0]
        if step < _COUNTERS[family] + 16 or position + step > len(data):
            raise LayoutError(f"an entry at {position} claims {step} bytes")
        position += step
    starts = {offset: chain for chain, offset in blob.hook_entry.items()}
    chains: dict[str, array[int]] = {}
    ends = array("I")
    current: str | None = None
    rules = array("I")
    for index, offset in enumerate(offsets):
        head = _error_name(data, offset, family)
        if offset in starts or head is not None:
            if current is not None:
                _close(chains, current, rules, ends, blob)
            current, rules = starts.get(offset), array("I")
            if head is not None:
                ends.append(offset)
                if index == len(offsets) - 1:  # the table's end
                    break
                current = head
                continue
        if current is None:
            raise LayoutError(f"the entry at {offset} belongs to no chain")
        rules.append(offset)
    else:
        raise LayoutError("the table does not end in an ERROR entry")
    if set(blob.hook_entry) - set(chains):
        raise LayoutError("a hook's chain was not found")
    return Layout(chains, ends, len(data), _shape(blob, chains, ends))


def _close(chains: dict[str, array[int]], chain: str, rules: array[int], ends: array[int],
           blob: TableBlob) -> None:  # fmt: skip
    """A chain's last entry is its policy (builtin: the hook's underflow) or its RETURN, not a rule."""
    if not rules:
        raise LayoutError(f"chain {chain} has no end entry")
    end = rules.pop()
    if chain in blob.underflow and blob.underflow[chain] != end:
        raise LayoutError(f"chain {chain} does not end at its policy")
    if chain in chains:
        raise LayoutError(f"chain {chain} appears twice")
    ends.append(end)
    chains[chain] = rules


def _error_name(data: bytes, offset: int, family: str) -> str | None:
    """The chain an ERROR target names (a user chain's head, or `ERROR` at the table's end)."""
    target = offset + struct.unpack_from("=H", data, offset + _TARGET_OFFSET[family])[0]
    if data[target + 2 : target + 8] != b"ERROR\0":
        return None
    name = data[target + _TARGET_HEADER : target + _TARGET_HEADER + 32].split(b"\0", 1)[0]
    return name.decode("utf-8", "replace")
