"""Builds fake procfs trees for tests: just the files the readers look at."""

from __future__ import annotations

from pathlib import Path

BOOT_TIME = 1_700_000_000
CLOCK_TICKS = 100


def make_procfs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  1 2 3 4\nbtime {BOOT_TIME}\n")
    return root


def add_process(
    procfs: Path,
    pid: int,
    ppid: int,
    title: str,
    comm: str = "sshd",
    start_ticks: int = 1000,
    *,
    uid: int = 0,
    exe: Path | None = None,
) -> None:
    """One process: /proc/PID/stat (comm, ppid, starttime), a setproctitle-style cmdline, status (its
    uids) and, when given, exe: a link to the file it runs (the kernel's magic link, stat() follows)."""
    directory = procfs / str(pid)
    directory.mkdir(parents=True, exist_ok=True)
    fields = ["S", str(ppid)] + ["0"] * 17 + [str(start_ticks)] + ["0"] * 20
    (directory / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    (directory / "cmdline").write_bytes(title.encode() + b"\0" * 8)
    (directory / "status").write_text(
        f"Name:\t{comm}\nState:\tS (sleeping)\nPid:\t{pid}\nPPid:\t{ppid}\n"
        f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
    )
    if exe is not None:
        (directory / "exe").unlink(missing_ok=True)
        (directory / "exe").symlink_to(exe)


def add_binary(rootfs: Path, host_path: str = "/usr/sbin/sshd") -> Path:
    """An executable file under rootfs (its bytes do not matter: the readers compare identities)."""
    binary = rootfs / host_path.lstrip("/")
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(b"\x7fELF\x00" + host_path.encode())
    return binary


def start_time(start_ticks: int) -> float:
    return BOOT_TIME + start_ticks / CLOCK_TICKS


def set_children(procfs: Path, pid: int, children: list[int]) -> None:
    """/proc/PID/task/PID/children, as the kernel writes it (`PID PID `)."""
    directory = procfs / str(pid) / "task" / str(pid)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "children").write_text("".join(f"{child} " for child in children))


def set_run_time(procfs: Path, pid: int, nanoseconds: int) -> None:
    """/proc/PID/schedstat: time on CPU (ns), time waiting (ns), timeslices."""
    (procfs / str(pid) / "schedstat").write_text(f"{nanoseconds} 1000 3\n")


_TCP_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)


def add_socket(procfs: Path, pid: int, inode: int, port: int, state: int = 0x0A, table: str = "tcp") -> None:
    """A TCP socket the process holds: fd link `socket:[INODE]` and its line in the process's own
    /proc/PID/net/TABLE (its network namespace), laid out as the kernel writes it."""
    fd_dir = procfs / str(pid) / "fd"
    fd_dir.mkdir(parents=True, exist_ok=True)
    fd = 3 + len(list(fd_dir.iterdir()))
    (fd_dir / str(fd)).symlink_to(f"socket:[{inode}]")
    net = procfs / str(pid) / "net"
    net.mkdir(exist_ok=True)
    path = net / table
    text = path.read_text() if path.exists() else _TCP_HEADER
    row = len(text.splitlines()) - 1
    address = "00000000" if table == "tcp" else "0" * 32
    text += (
        f"{row:4d}: {address}:{port:04X} {address}:0000 {state:02X} 00000000:00000000 00:00000000 "
        f"00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )
    path.write_text(text)
