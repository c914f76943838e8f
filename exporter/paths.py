"""Host paths: every file the exporter reads is resolved under --path.rootfs or --path.procfs.

Tests and containers point these at another tree (a fixture directory, or the host's / mounted at
/host), so no reader may open an absolute host path directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_SLASH = Path("/")
_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


@dataclass(frozen=True)
class HostPaths:
    """Where the host's root filesystem and procfs are mounted, as seen by this process."""

    rootfs: Path = Path("/")
    procfs: Path = Path("/proc")

    @property
    def is_host_root(self) -> bool:
        """True when rootfs is this process's own root, so host binaries can be executed as they are."""
        return self.rootfs.resolve() == Path("/")

    def root(self, host_path: str | PurePosixPath) -> Path:
        """The local path of a host path (`/etc/ssh/sshd_config` -> `ROOTFS/etc/...`).

        Under another rootfs, symlinks on the way are followed inside it, as the host would: Debian's
        `/var/run` -> `/run` must lead to `ROOTFS/run`, not to this container's own /run."""
        path = PurePosixPath("/", host_path)
        if self.rootfs == _SLASH:
            return Path(path)
        return self.rootfs / self._resolve_inside(path).relative_to("/")

    def _resolve_inside(self, path: PurePosixPath) -> PurePosixPath:
        pending = list(path.parts[1:])
        current = PurePosixPath("/")
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                current = current.parent
                continue
            candidate = current / part
            local = self.rootfs / candidate.relative_to("/")
            if hops < _MAX_SYMLINKS and local.is_symlink():
                hops += 1
                try:
                    target = PurePosixPath(os.readlink(local))
                except OSError:
                    current = candidate
                    continue
                pending = list((current / target).parts[1:]) + pending  # absolute targets drop `current`
                current = PurePosixPath("/")
                continue
            current = candidate
        return current

    def unroot(self, local_path: Path) -> str:
        """The host path of a local path under rootfs, for messages and labels."""
        try:
            return "/" + str(local_path.relative_to(self.rootfs)).lstrip(".").lstrip("/")
        except ValueError:
            return str(local_path)

    def proc(self, *parts: str | int) -> Path:
        """A path under procfs (`proc(1234, "cmdline")` -> `PROCFS/1234/cmdline`)."""
        return self.procfs.joinpath(*(str(p) for p in parts))
