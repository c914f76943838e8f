from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import exporter.sources.host.paths as paths_module
from exporter.sources.host.files import read_regular_file
from exporter.sources.host.paths import HostPaths


def test_host_root_paths_are_unchanged() -> None:
    assert HostPaths().root("/var/run/fail2ban/fail2ban.sock") == Path("/var/run/fail2ban/fail2ban.sock")


def test_symlinks_are_followed_inside_rootfs(tmp_path: Path) -> None:
    (tmp_path / "run/fail2ban").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var/run")  # Debian's absolute link
    (tmp_path / "etc/ssh").mkdir(parents=True)
    os.symlink("../ssh/real.conf", tmp_path / "etc/ssh/sshd_config")  # a relative one
    paths = HostPaths(rootfs=tmp_path)
    assert paths.root("/var/run/fail2ban/fail2ban.sock") == tmp_path / "run/fail2ban/fail2ban.sock"
    assert paths.root("/etc/ssh/sshd_config") == tmp_path / "etc/ssh/real.conf"
    assert paths.root("/etc/../etc/ssh") == tmp_path / "etc/ssh"
    assert paths.unroot(paths.root("/etc/ssh/real.conf")) == "/etc/ssh/real.conf"


def _chain_out_of(rootfs: Path, outside: Path, links: int) -> None:
    """`etc/hosts.deny -> /l1 -> ... -> /lN -> outside`: every hop but the last stays inside."""
    (rootfs / "etc").mkdir()
    os.symlink("/l1", rootfs / "etc/hosts.deny")
    for n in range(1, links):
        os.symlink(f"/l{n + 1}", rootfs / f"l{n}")
    os.symlink(str(outside), rootfs / f"l{links}")


def test_a_symlink_loop_is_refused_not_handed_to_the_kernel(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(OSError) as raised:
        HostPaths(rootfs=tmp_path).root("/loop/x")
    assert raised.value.errno == errno.ELOOP


def test_forty_one_links_do_not_lead_out_of_rootfs(tmp_path: Path) -> None:
    """The break test's escape: resolution stopped after 40 links and the kernel followed the 41st from
    the exporter's own root, so `diagnose` printed a line of a file outside the rootfs."""
    rootfs, outside = tmp_path / "rootfs", tmp_path / "secret"
    rootfs.mkdir()
    outside.write_text("ALL: 192.0.2.1\n")
    _chain_out_of(rootfs, outside, 40)
    paths = HostPaths(rootfs=rootfs)
    with pytest.raises(OSError) as raised:
        paths.root("/etc/hosts.deny")
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        read_regular_file(rootfs / "etc/hosts.deny", paths=paths)


def test_open_resolves_inside_rootfs_at_open_time(tmp_path: Path) -> None:
    """A file swapped for a link after `root` ran (a tailed log, say) still resolves inside the rootfs."""
    rootfs, outside = tmp_path / "rootfs", tmp_path / "outside"
    (rootfs / "var/log").mkdir(parents=True)
    outside.mkdir()
    (outside / "auth.log").write_text("outside\n")
    (rootfs / "var/log/auth.log").write_text("inside\n")
    paths = HostPaths(rootfs=rootfs)
    local = paths.root("/var/log/auth.log")
    os.unlink(local)
    os.symlink(str(outside / "auth.log"), local)  # absolute: means ROOTFS/<outside path> on the host
    with pytest.raises(FileNotFoundError):
        os.close(paths.open(local))
    (rootfs / "tmp").mkdir()
    (rootfs / "tmp/auth.log").write_text("moved\n")
    os.unlink(local)
    os.symlink("../../tmp/auth.log", local)
    assert read_regular_file(local, paths=paths) == b"moved\n"


def test_open_without_openat2_refuses_a_descriptor_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernels before 5.6 (or a seccomp profile that predates openat2): the stand-in resolves in userspace
    and checks where the opened descriptor really is."""

    def missing(*args: object) -> int:
        raise OSError(errno.ENOSYS, "no openat2")

    monkeypatch.setattr(paths_module, "_openat2", missing)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/hosts.allow").write_text("sshd: ALL\n")
    os.symlink("/etc/hosts.allow", rootfs / "etc/hosts.deny")
    paths = HostPaths(rootfs=rootfs)
    assert read_regular_file(rootfs / "etc/hosts.deny", paths=paths) == b"sshd: ALL\n"
    os.symlink("/l1", rootfs / "etc/escape")
    for n in range(1, 41):
        os.symlink(f"/l{n + 1}", rootfs / f"l{n}")
    os.symlink(str(tmp_path), rootfs / "l41")
    with pytest.raises(OSError):
        read_regular_file(rootfs / "etc/escape", paths=paths)
    with pytest.raises(OSError) as raised:
        paths.open(tmp_path / "elsewhere")
    assert raised.value.errno == errno.EXDEV


def test_devices_and_fifos_are_never_opened_for_reading(tmp_path: Path) -> None:
    """O_PATH first: a device where a file should be is refused without being opened (a watchdog would
    start), and a FIFO without blocking."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    os.symlink("/dev/zero", rootfs / "etc/zero")  # inside the rootfs: ROOTFS/dev/zero, which is missing
    paths = HostPaths(rootfs=rootfs)
    with pytest.raises(FileNotFoundError):
        read_regular_file(rootfs / "etc/zero", paths=paths)
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file(Path("/dev/zero"))
    os.mkfifo(rootfs / "etc/fifo")
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file(rootfs / "etc/fifo", paths=paths)
