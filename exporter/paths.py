"""Host paths: every file the exporter reads is resolved under --path.rootfs or --path.procfs.

Tests and containers point these at another tree (a fixture directory, or the host's / mounted at
/host), so no reader may open an absolute host path directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


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
        """The local path of an absolute path on the host (`/etc/ssh/sshd_config` -> `ROOTFS/etc/...`)."""
        relative = PurePosixPath(host_path).relative_to("/") if str(host_path).startswith("/") else host_path
        return self.rootfs / relative

    def unroot(self, local_path: Path) -> str:
        """The host path of a local path under rootfs, for messages and labels."""
        try:
            return "/" + str(local_path.relative_to(self.rootfs)).lstrip(".").lstrip("/")
        except ValueError:
            return str(local_path)

    def proc(self, *parts: str | int) -> Path:
        """A path under procfs (`proc(1234, "cmdline")` -> `PROCFS/1234/cmdline`)."""
        return self.procfs.joinpath(*(str(p) for p in parts))
