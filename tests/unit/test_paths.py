from __future__ import annotations

import os
from pathlib import Path

from exporter.paths import HostPaths


def test_host_root_paths_are_unchanged() -> None:
    assert HostPaths().root("/var/run/fail2ban/fail2ban.sock") == Path("/var/run/fail2ban/fail2ban.sock")


def test_symlinks_are_followed_inside_rootfs(tmp_path: Path) -> None:
    (tmp_path / "run/fail2ban").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var/run")  # Debian's absolute link
    (tmp_path / "etc/ssh").mkdir(parents=True)
    os.symlink("../ssh/real.conf", tmp_path / "etc/ssh/sshd_config")  # a relative one
    os.symlink("loop", tmp_path / "loop")
    paths = HostPaths(rootfs=tmp_path)
    assert paths.root("/var/run/fail2ban/fail2ban.sock") == tmp_path / "run/fail2ban/fail2ban.sock"
    assert paths.root("/etc/ssh/sshd_config") == tmp_path / "etc/ssh/real.conf"
    assert paths.root("/etc/../etc/ssh") == tmp_path / "etc/ssh"
    assert paths.root("/loop/x") == tmp_path / "loop/x"  # a loop ends at the kernel's limit, no hang
    assert paths.unroot(paths.root("/etc/ssh/real.conf")) == "/etc/ssh/real.conf"
