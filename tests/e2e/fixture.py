"""The golden scrape's fixture host: the committed text tree (tests/e2e/rootfs) plus what git keeps badly.

Text files are committed so a review sees them; this module copies them into a scratch directory and adds
the rest: the fake sshd binary (an ELF linked with libwrap, its release string inside), fail2ban's sqlite
database, Debian's `/var/run -> /run` link, and the procfs tree of a running sshd with a connection in
every stage (its title's `3 of 10-60 startups` counts the unauthenticated ones) and of sshguard's
blocker. CrowdSec's bouncer config points at lapi.py's address. Nothing here depends on the clock or the
machine:

- every file's and directory's mtime is FILE_TIME, older than the sshd listener's start (boot + 10 s),
  so no reload is pending and the tcpwrappers/DenyHosts timestamps are fixed;
- the auth log is dated 2099: every window the exporter ends at the wall clock (top offenders' last hour,
  the watchlist's penalty window, the OpenSSH 10.0+ throttling hold) then includes all of it, always;
- fail2ban's bans are permanent (bantime -1) or end in 2118; one ended in 2023 (not current).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.builders import V4_SCHEMA, elf, make_db
from tests.procfs_tree import BOOT_TIME, add_binary, add_process, add_socket, make_procfs, set_children

HERE = Path(__file__).resolve().parent
TEXT_TREE = HERE / "rootfs"
CONFIG = HERE / "config.yml"  # --config.file: the watchlist

FILE_TIME = BOOT_TIME - 3600  # every fixture file's mtime: an hour before boot
# As Debian 13 ships it: the config's PerSourcePenalties (9.8+) and the log's 10.0 wordings are its own, so
# the fixture host is one sshd would start on.
SSHD_RELEASE = b"OpenSSH_10.0p1 Debian-7"
SSHD_PORT = 22
LISTENER = 100
BANNED_AT = 1_700_000_000
FAR_FUTURE_BANTIME = 3_000_000_000  # ends in 2118
FAIL2BAN_JAILS = [("sshd", 1), ("recidive", 1), ("old", 0)]
FAIL2BAN_BANS = [  # (ip, jail, timeofban, bantime)
    ("203.0.113.50", "sshd", BANNED_AT, -1),  # permanent
    ("203.0.113.51", "sshd", BANNED_AT, FAR_FUTURE_BANTIME),
    ("203.0.113.52", "sshd", BANNED_AT, 600),  # ended in 2023: in the table, not current
    ("192.0.2.1", "recidive", BANNED_AT, -1),
    ("198.51.100.99", "old", BANNED_AT, -1),  # a disabled jail's: not counted
]

# The listener's connections, one per stage: (monitor pid, monitor title, [(child pid, child title)]).
CONNECTIONS = [
    (101, "sshd: [accepted]", []),
    (102, "sshd: [accepted]", [(112, "sshd: [net]")]),  # preauth
    (103, "sshd: root [priv]", [(113, "sshd: root [net]")]),  # authenticating
    (104, "sshd: carol [priv]", [(114, "sshd: carol@pts/0")]),  # a session
]
# The listener's TCP table besides its listening sockets: (remote address, remote port, state code).
TCP_PEERS = [
    ("076433C6", 51234, 0x01),  # 198.51.100.7 established (little-endian hex, as the kernel writes)
    ("0A7100CB", 41000, 0x01),  # 203.0.113.10 established
    ("0B0200C0", 50100, 0x03),  # 192.0.2.11 syn_recv
    ("0C0200C0", 50200, 0x08),  # 192.0.2.12 close_wait
]


def _tcp_row(procfs: Path, pid: int, remote: str, remote_port: int, state: int, inode: int) -> None:
    """A connection to 198.51.100.200:22 in the process's /proc/PID/net/tcp (no fd: its monitor holds it)."""
    path = procfs / str(pid) / "net" / "tcp"
    text = path.read_text()
    row = len(text.splitlines()) - 1
    text += (
        f"{row:4d}: C86433C6:{SSHD_PORT:04X} {remote}:{remote_port:04X} {state:02X} 00000000:00000000 "
        f"00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )
    path.write_text(text)


def _process(
    procfs: Path,
    pid: int,
    ppid: int,
    title: str,
    comm: str = "sshd",
    start_ticks: int = 1000,
    exe: Path | None = None,
) -> None:
    """add_process, plus /proc/PID/comm (what process scans by name read)."""
    add_process(procfs, pid, ppid, title, comm=comm, start_ticks=start_ticks, exe=exe)
    (procfs / str(pid) / "comm").write_text(comm + "\n")


def build_procfs(procfs: Path, sshd: Path) -> None:
    """pid 1 (no sockets: sshd is not socket-activated), the sshd listener with a connection in each
    stage and its TCP tables, and sshguard's blocker (so sshguard runs)."""
    make_procfs(procfs)
    _process(procfs, 1, 0, "/sbin/init", comm="systemd", start_ticks=1)
    _process(procfs, LISTENER, 1, "sshd: /usr/sbin/sshd -D [listener] 3 of 10-60 startups", exe=sshd)
    add_socket(procfs, LISTENER, 5000, SSHD_PORT, table="tcp")
    add_socket(procfs, LISTENER, 5001, SSHD_PORT, table="tcp6")
    for inode, (remote, port, state) in enumerate(TCP_PEERS, start=6000):
        _tcp_row(procfs, LISTENER, remote, port, state, inode)
    for pid, title, children in CONNECTIONS:
        _process(procfs, pid, LISTENER, title, start_ticks=2000)
        for child, child_title in children:
            _process(procfs, child, pid, child_title, start_ticks=2001)
        set_children(procfs, pid, [child for child, _ in children])
    set_children(procfs, LISTENER, [pid for pid, _, _ in CONNECTIONS])
    _process(procfs, 300, 1, "/usr/libexec/sshguard/sshg-blocker", comm="sshg-blocker", start_ticks=500)


def build_rootfs(rootfs: Path) -> Path:
    """The text tree plus the binary parts; returns the fake sshd's local path."""
    shutil.copytree(TEXT_TREE, rootfs, symlinks=True)
    (rootfs / "run").mkdir()
    (rootfs / "var/run").symlink_to("/run")
    sshd = add_binary(rootfs)
    sshd.write_bytes(elf(["libwrap.so.0", "libc.so.6"]) + b"\0" + SSHD_RELEASE + b"\0")
    database = rootfs / "var/lib/fail2ban/fail2ban.sqlite3"
    database.parent.mkdir(parents=True)
    make_db(database, V4_SCHEMA, FAIL2BAN_JAILS, FAIL2BAN_BANS)
    for directory, directories, files in os.walk(rootfs):  # links themselves: var/run's target is absolute
        for name in (*directories, *files):
            os.utime(Path(directory, name), (FILE_TIME, FILE_TIME), follow_symlinks=False)
    os.utime(rootfs, (FILE_TIME, FILE_TIME))
    return sshd


def build(directory: Path) -> tuple[Path, Path]:
    """The fixture host under `directory`: (rootfs, procfs)."""
    rootfs, procfs = directory / "rootfs", directory / "proc"
    sshd = build_rootfs(rootfs)
    build_procfs(procfs, sshd)
    return rootfs, procfs
