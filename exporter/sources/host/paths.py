"""Host paths: every file the exporter reads is resolved under --path.rootfs or --path.procfs.

Tests and containers point these at another tree (a fixture directory, or the host's / mounted at
/host), so no reader may open an absolute host path directly.

Under another rootfs a symlink on the host is read as the host would read it: an absolute target starts at
the rootfs, `..` stops at it. The exporter runs as root, so nothing it opens may leave the rootfs, however
many links the path crosses: `open` asks the kernel to resolve inside the rootfs (openat2 with
RESOLVE_IN_ROOT), and `root` refuses a path whose links it cannot follow to the end (ELOOP), rather than
hand the kernel a path with a link left in it.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_SLASH = Path("/")
_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit

_SYS_OPENAT2 = 437  # the same number on every architecture (the syscall table unified in Linux 5.1)
_RESOLVE_NO_MAGICLINKS = 0x02  # no /proc/PID/fd/N jumps out of the tree
_RESOLVE_IN_ROOT = 0x10  # the dirfd is `/` for every absolute link and `..`
_OPENAT2_MISSING = (errno.ENOSYS, errno.EPERM)  # kernels before 5.6; seccomp profiles that predate it


class _OpenHow(ctypes.Structure):
    """struct open_how of linux/openat2.h."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


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
        `/var/run` -> `/run` must lead to `ROOTFS/run`, not to this container's own /run. A path that
        crosses more links than the kernel follows raises OSError(ELOOP): the kernel would follow the
        next link from this process's own root, out of the rootfs."""
        path = PurePosixPath("/", host_path)
        if self.rootfs == _SLASH:
            return Path(path)
        return self.rootfs / self._resolve_inside(path).relative_to("/")

    def root_or_none(self, host_path: str | PurePosixPath) -> Path | None:
        """`root(host_path)`, or None when its links cannot be followed inside the rootfs: the host
        itself could not open such a path (ELOOP), so it is as good as missing."""
        try:
            return self.root(host_path)
        except OSError:
            return None

    def exists(self, host_path: str | PurePosixPath) -> bool:
        """Whether the host path names something, looked up inside the rootfs (False for a link loop)."""
        local = self.root_or_none(host_path)
        return local is not None and local.exists()

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
            if local.is_symlink():
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
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

    def open(self, local: Path, flags: int = os.O_RDONLY) -> int:
        """A descriptor for `local` (a path under rootfs, as `root` gives it), resolved by the kernel inside
        the rootfs at the moment of opening, so a link swapped in after `root` ran cannot lead out either.

        Where the kernel lacks openat2, the path is resolved here and its last part opened without
        following a link, and the descriptor is refused if the file it names lies outside the rootfs."""
        flags |= (
            os.O_CLOEXEC if flags & os.O_PATH else os.O_CLOEXEC | os.O_NOCTTY
        )  # openat2: O_PATH takes no more
        if self.rootfs == _SLASH:
            return os.open(local, flags)
        relative = self._relative(local)
        root_fd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return _openat2(root_fd, relative, flags, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno not in _OPENAT2_MISSING:
                raise
        finally:
            os.close(root_fd)
        return self._open_checked(relative, flags)

    def _relative(self, local: Path) -> str:
        try:
            return str(local.relative_to(self.rootfs))
        except ValueError:
            raise OSError(errno.EXDEV, "not under --path.rootfs", str(local)) from None

    def _open_checked(self, relative: str, flags: int) -> int:
        """openat2's stand-in: resolve in userspace, open the last part with O_NOFOLLOW, then check where
        the descriptor really is (a directory on the way swapped for a link in between is caught)."""
        resolved = self.rootfs / self._resolve_inside(PurePosixPath("/", relative)).relative_to("/")
        fd = os.open(resolved, flags | os.O_NOFOLLOW)
        real_root = os.path.realpath(self.rootfs)
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            where = os.path.realpath(resolved)
        if os.path.commonpath([real_root, where]) != real_root:
            os.close(fd)
            raise OSError(errno.EXDEV, "resolves outside --path.rootfs", str(resolved))
        return fd

    def unroot(self, local_path: Path) -> str:
        """The host path of a local path under rootfs, for messages and labels."""
        try:
            return "/" + str(local_path.relative_to(self.rootfs)).lstrip(".").lstrip("/")
        except ValueError:
            return str(local_path)

    def proc(self, *parts: str | int) -> Path:
        """A path under procfs (`proc(1234, "cmdline")` -> `PROCFS/1234/cmdline`)."""
        return self.procfs.joinpath(*(str(p) for p in parts))
