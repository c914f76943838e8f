"""What the sshd binary says: its version (from its bytes) and whether `sshd -t` accepts the config.

Running sshd costs a fork and a config parse, so callers cache on the signature of the files involved
(`file_signature`). Nothing here raises for a missing or failing sshd: results carry the error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.host.commands import CommandResult
from exporter.sources.host.files import read_regular_file
from exporter.sources.host.paths import HostPaths

_VERSION = re.compile(rb"OpenSSH_(\d+\.\d+(?:\.\d+)?p\d+)([^\x00\n]{0,80})")
_VERSION_V = re.compile(r"OpenSSH_(\d+\.\d+(?:\.\d+)?(?:p\d+)?)")
_CONFIG_ERROR = re.compile(
    r"line \d+:|bad configuration option|terminating|unsupported option|missing argument|"
    r"Directive '.*' is not allowed|keyword .* extra arguments|Include",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SshdVersion:
    """`9.2p1` and the full release string (`OpenSSH_9.2p1 Debian-2+deb12u1`)."""

    version: str
    release: str


def read_version(binary: Path, paths: HostPaths | None = None) -> SshdVersion | None:
    """The release string compiled into the binary: works without executing it (containers, rootfs).
    Read as a regular file of bounded size, opened inside `paths`' rootfs when given."""
    try:
        data = read_regular_file(binary, paths=paths)
    except OSError:
        return None
    match = _VERSION.search(data)
    if not match:
        return None
    suffix = match.group(2).decode("ascii", "replace").split("%")[0].rstrip(", ")
    version = match.group(1).decode()
    return SshdVersion(version, f"OpenSSH_{version}{suffix}")


def version_from_output(text: str) -> SshdVersion | None:
    """`sshd -V` prints `OpenSSH_9.2p1 Debian-2+deb12u1, OpenSSL ...`."""
    match = _VERSION_V.search(text)
    return SshdVersion(match.group(1), text.split(",", maxsplit=1)[0].strip()) if match else None


def config_test_verdict(run: CommandResult) -> bool | None:
    """`sshd -t`: True valid, False a config error, None unknown (no host keys, not root, no binary)."""
    if run.ok:
        return True
    if run.returncode is not None and _CONFIG_ERROR.search(run.stderr):
        return False
    return None


def file_signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of each file; a changed signature means re-run sshd."""
    signature = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            signature.append((str(path), -1, -1))
        else:
            signature.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(signature)
