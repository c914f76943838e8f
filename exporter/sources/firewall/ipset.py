"""ipsets from `ipset list -o save`: every address set (hash:ip, hash:net, bitmap:ip) with its members.

Sets of other types (hash:ip,port, list:set, ...) are not address sets and are left out.
"""

from __future__ import annotations

from exporter.sources.firewall.model import AddressSet

ADDRESS_TYPES = frozenset({"hash:ip", "hash:net", "bitmap:ip"})


class IpsetError(Exception):
    """Text that is not `ipset list -o save` output."""


def parse_save(text: str) -> list[AddressSet]:
    """`create NAME TYPE [family inet6] ...` then `add NAME MEMBER [timeout N] ...` lines."""
    kinds: dict[str, tuple[str, str]] = {}  # name -> (type, family)
    members: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if words[0] == "create" and len(words) >= 3:
            family = "ipv6" if "inet6" in words[3:] else "ipv4"
            kinds[words[1]] = (words[2], family)
            members[words[1]] = []
        elif words[0] == "add" and len(words) >= 3 and words[1] in members:
            members[words[1]].append(words[2])
        else:
            raise IpsetError(f"line {number}: not ipset save output: {line[:80]!r}")
    return [
        AddressSet("ipset", family, "", name, tuple(members[name]))
        for name, (kind, family) in kinds.items()
        if kind in ADDRESS_TYPES
    ]
