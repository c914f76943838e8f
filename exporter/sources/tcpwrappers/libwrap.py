"""Does sshd honour hosts.allow / hosts.deny at all? Only when it is linked with libwrap.

Upstream OpenSSH dropped TCP wrappers in 6.7; Debian and Ubuntu patch them back in (from 9.8 the check
runs in sshd-session), Fedora and RHEL do not. The binaries are read, never run (they may belong to a
container's rootfs): the ELF dynamic section's DT_NEEDED entries name `libwrap.so.0`, and a static
build still carries Debian's `Connection refused by tcp wrapper` message.
"""

from __future__ import annotations

import struct
from pathlib import Path

from exporter.sources.host.files import read_regular_file
from exporter.sources.host.paths import HostPaths

BINARIES = ("/usr/sbin/sshd", "/usr/lib/openssh/sshd-session", "/usr/libexec/openssh/sshd-session")
WRAPPER_MESSAGE = b"Connection refused by tcp wrapper"
PT_LOAD, PT_DYNAMIC = 1, 2
MAX_BINARY_BYTES = 64 << 20  # sshd is about 1 MB; a FIFO or /dev/zero in its place must not be read
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


def needed_libraries(data: bytes) -> tuple[str, ...] | None:
    """DT_NEEDED names of an ELF image; None when it is not an ELF file or is malformed."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    try:
        if wide:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "Q", data, 32)[0],
                *struct.unpack_from(order + "HH", data, 54),
            )
            program = order + "IIQQQQQQ"
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "I", data, 28)[0],
                *struct.unpack_from(order + "HH", data, 42),
            )
            program = order + "IIIIIIII"
        loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        dynamic: tuple[int, int] | None = None  # (offset, size)
        for index in range(phnum):
            fields = struct.unpack_from(program, data, phoff + index * phentsize)
            if wide:
                kind, offset, vaddr, filesz = fields[0], fields[2], fields[3], fields[5]
            else:
                kind, offset, vaddr, filesz = fields[0], fields[1], fields[2], fields[4]
            if kind == PT_LOAD:
                loads.append((vaddr, offset, filesz))
            elif kind == PT_DYNAMIC:
                dynamic = (offset, filesz)
        if dynamic is None:
            return ()
        entry = order + ("qQ" if wide else "iI")
        size = struct.calcsize(entry)
        needed: list[int] = []
        strtab = None
        for position in range(dynamic[0], dynamic[0] + dynamic[1] - size + 1, size):
            tag, value = struct.unpack_from(entry, data, position)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed.append(value)
            elif tag == DT_STRTAB:
                strtab = next((value - v + o for v, o, n in loads if v <= value < v + n), None)
        if strtab is None:
            return None
        return tuple(
            data[strtab + n : data.index(b"\0", strtab + n)].decode("ascii", "replace") for n in needed
        )
    except (struct.error, ValueError):
        return None


def links_libwrap(data: bytes) -> bool:
    """True when the binary loads libwrap or has it built in."""
    needed = needed_libraries(data) or ()
    return any(name.startswith("libwrap.so") for name in needed) or WRAPPER_MESSAGE in data


def read_links_libwrap(binary: Path, paths: HostPaths | None = None) -> bool | None:
    """links_libwrap of a file (a regular one, inside `paths`' rootfs when given); None when it does not
    exist or cannot be read."""
    try:
        return links_libwrap(read_regular_file(binary, MAX_BINARY_BYTES, paths=paths))
    except OSError:
        return None
