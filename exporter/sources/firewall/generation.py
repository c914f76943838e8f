"""The nftables ruleset generation: a number the kernel moves on every committed change.

Every nftables transaction (a rule added, a table flushed, fail2ban or sshguard adding one element to a
set) ends in a commit that moves the generation; asking for it is one netlink request (NFT_MSG_GETGEN,
answered with NFT_MSG_NEWGEN), microseconds where listing a 100,000-element set costs `nft` half a second
of CPU. The reader lists set elements again only when the generation moved (or a set's elements can
change without a commit: see FirewallReader). What it cannot ask (no CAP_NET_ADMIN, a kernel without
nf_tables) is None: the reader then lists everything, as before.
"""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_NFGENMSG = struct.Struct("=BBH")  # family, version, resource id
_ATTRIBUTE = struct.Struct("=HH")  # length, type
TIMEOUT = 1.0


def _request(sequence: int) -> bytes:
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0)
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
    return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST, sequence, 0) + body


def parse_reply(data: bytes) -> int | None:
    """NFTA_GEN_ID of a NEWGEN message; None for an error message or anything else."""
    if len(data) < _HEADER.size + _NFGENMSG.size:
        return None
    length, kind, _, _, _ = _HEADER.unpack_from(data)
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN or length > len(data):
        return None
    offset = _HEADER.size + _NFGENMSG.size
    while offset + _ATTRIBUTE.size <= length:
        size, attribute = _ATTRIBUTE.unpack_from(data, offset)
        if size < _ATTRIBUTE.size or offset + size > length:
            return None
        if attribute & 0x3FFF == NFTA_GEN_ID and size == _ATTRIBUTE.size + 4:
            return int.from_bytes(data[offset + 4 : offset + 8], "big")
        offset += (size + 3) & ~3
    return None


def nft_generation(timeout: float = TIMEOUT) -> int | None:
    """The current generation of this network namespace's nftables ruleset, None when it cannot be asked."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.settimeout(timeout)
            sock.send(_request(1))
            return parse_reply(sock.recv(4096))
    except OSError:
        return None
