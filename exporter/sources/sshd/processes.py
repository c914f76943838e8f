"""sshd's processes from /proc: listeners and their connections, from process titles.

sshd rewrites its argv (setproctitle), so /proc/PID/cmdline tells the state of each process without
privileges. The listener (OpenSSH 8.2+) reads `sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups`.
Each connection is one direct child of the listener (the privileged monitor), whose title and whose own
children's titles tell how far the connection got:

| stage            | titles (7.x-9.7 `sshd`, 9.8+ `sshd-session`, 10.0+ `sshd-auth`)                   |
|------------------|------------------------------------------------------------------------------------|
| accepted         | `[accepted]` with no pre-auth child yet (banner and key exchange not started)      |
| preauth          | `[net]`, `[session-auth early]`, `[session-auth]`: key exchange, no user name yet   |
| authenticating   | `USER [net]`, `unknown [net]`, `USER [priv]` without a session: user name received |
| session (authed) | a descendant `USER@pts/N`, `USER@notty`, `USER@internal-sftp`, `USER [postauth]`   |

`parse_*` and `classify_listeners` are pure; the `read_*` functions are the I/O, under --path.procfs.
They read /proc with raw os calls rather than psutil: under a connection flood the scrape reads one
title per connection, and psutil's per-process overhead (about 100 us here) dominated the scrape.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.host.procfiles import read_proc_file
from exporter.sources.sshd.config import split_args

SSHD_NAMES = frozenset({"sshd", "sshd-session", "sshd-auth"})
STAGES: tuple[str, ...] = ("accepted", "preauth", "authenticating")
DEFAULT_CONFIG = "/etc/ssh/sshd_config"

# Searched for, not anchored after a lazy `.*?`: that form retried every position of a title full of
# blanks (quadratic), and titles are anyone's to set. sshd prints C ints: at most 10 digits.
_LISTENER = re.compile(r"\[listener\]\s++(?P<n>\d{1,10}) of (?P<start>\d{1,10})-(?P<full>\d{1,10}) startups")
_SESSION = re.compile(r"@|\[postauth\]")
_PREAUTH_CHILD = re.compile(r"^(?:\[net\]|\[session-auth(?: early)?\]|\[preauth\])$")
_USER_NET = re.compile(r"^\S+ \[net\]$")
_PRIV = re.compile(r"^\S+ \[priv\]$")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process as read from /proc: enough to build sshd's tree."""

    pid: int
    ppid: int
    name: str  # comm: sshd, sshd-session, sshd-auth
    title: str  # cmdline joined by spaces, padding stripped
    create_time: float  # seconds since the epoch


@dataclass(frozen=True)
class ListenerTitle:
    """What a listener's title says: its argv and the live MaxStartups counters."""

    argv: str
    startups: int
    start: int
    full: int


@dataclass
class Listener:
    """One sshd instance: the listener process and the connections it holds."""

    pid: int
    config: str  # host path of the config it was started with (-f), default /etc/ssh/sshd_config
    create_time: float
    title: ListenerTitle | None  # None: sshd older than 8.2, or a title we cannot read
    stages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    sessions: int = 0

    def add_connection(self, stage: str, count: int = 1) -> None:
        if stage == "session":
            self.sessions += count
        else:
            self.stages[stage] += count

    @property
    def startups(self) -> int:
        """Unauthenticated connections: from the title when sshd reports it, else counted children."""
        if self.title is not None:
            return self.title.startups
        return sum(self.stages.values())


def _strip_name(title: str) -> str:
    """`sshd: [accepted]` -> `[accepted]`; `sshd-session: root [priv]` -> `root [priv]`."""
    head, sep, rest = title.partition(": ")
    return rest.strip() if sep and head.rsplit("/", 1)[-1] in SSHD_NAMES else title.strip()


def parse_listener_title(title: str) -> ListenerTitle | None:
    """`ARGV [listener] N of START-FULL startups`; None for any other title."""
    stripped = _strip_name(title)
    match = _LISTENER.search(stripped)
    if not match:
        return None
    argv = stripped[: match.start()].rstrip()
    return ListenerTitle(argv, int(match["n"]), int(match["start"]), int(match["full"]))


def config_from_argv(argv: str) -> str:
    """The `-f FILE` an sshd was started with (`-fFILE` too), else the default config path."""
    try:
        words = split_args(argv)
    except ValueError:
        words = argv.split()
    for index, word in enumerate(words):
        if word == "-f" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("-f") and len(word) > 2 and not word.startswith("--"):
            return word[2:]
    return DEFAULT_CONFIG


def _is_sshd(proc: ProcessInfo) -> bool:
    return proc.name in SSHD_NAMES


# sshd runs that never listen: config test/dump (-t, -T, -G), version (-V), inetd mode (-i), and the
# <= 9.7 re-exec'd connection child (-R). Someone running `sshd -T` must not look like a second instance.
_NOT_LISTENING = frozenset({"-t", "-T", "-G", "-V", "-i", "-R"})


def _looks_like_old_listener(proc: ProcessInfo) -> bool:
    """A pre-8.2 listener keeps its plain argv: `/usr/sbin/sshd -D` (not `sshd: ...`, not `sshd -T`)."""
    words = proc.title.split()
    if not words or words[0].rsplit("/", 1)[-1] != "sshd":
        return False
    flags = {word[:2] for word in words[1:] if word.startswith("-") and not word.startswith("--")}
    return not flags & _NOT_LISTENING


def connection_stage(monitor: str, descendants: list[str]) -> str:
    """`session` when authenticated, else one of STAGES, from the titles of a connection's monitor
    and of the processes under it."""
    if not descendants and monitor.endswith("[accepted]"):
        return "accepted"  # first: the common case under a flood
    if "-R" in monitor.split():  # <= 9.7 re-exec'd child before its first title
        return "accepted"
    titles = [_strip_name(title) for title in descendants]
    if any(_SESSION.search(t) for t in titles):
        return "session"
    own = _strip_name(monitor)
    if any(_USER_NET.match(t) for t in titles) or _PRIV.match(own):
        return "authenticating"
    if any(_PREAUTH_CHILD.match(t) for t in titles):
        return "preauth"
    if _SESSION.search(own):  # no privilege separation: the connection process itself is the session
        return "session"
    return "accepted"


def as_listener(proc: ProcessInfo, parent_is_sshd: bool) -> Listener | None:
    """A Listener (no connections counted yet) when `proc` is one."""
    if parent_is_sshd and "[listener]" not in proc.title:
        return None  # a connection's process (the common case under a flood: keep it cheap)
    title = parse_listener_title(proc.title)
    if title is None and (parent_is_sshd or not _looks_like_old_listener(proc)):
        return None
    argv = title.argv if title else proc.title
    return Listener(proc.pid, config_from_argv(argv), proc.create_time, title)


def by_config(listeners: list[Listener]) -> list[Listener]:
    return sorted(listeners, key=lambda item: (item.config, item.pid))


def classify_listeners(processes: list[ProcessInfo]) -> list[Listener]:
    """Find every sshd listener (several instances may run) and sort its connections into stages."""
    sshd = {p.pid: p for p in processes if _is_sshd(p)}
    children: dict[int, list[ProcessInfo]] = defaultdict(list)
    for proc in sshd.values():
        children[proc.ppid].append(proc)

    def descendants(pid: int) -> list[str]:
        found, todo = [], list(children.get(pid, []))
        while todo:
            proc = todo.pop()
            found.append(proc.title)
            todo.extend(children.get(proc.pid, []))
        return found

    listeners = []
    for proc in sshd.values():
        listener = as_listener(proc, proc.ppid in sshd)
        if listener is not None:
            for child in children.get(proc.pid, []):
                listener.add_connection(connection_stage(child.title, descendants(child.pid)))
            listeners.append(listener)
    return by_config(listeners)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_read = read_proc_file


def boot_time(procfs: Path) -> float:
    for line in _read(f"{procfs}/stat").splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise ValueError(f"{procfs}/stat has no btime line")


def title_of(raw: bytes) -> str:
    """A cmdline as one line: setproctitle pads with NULs, argv-style titles separate words by them."""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _comm(stat: bytes) -> str:
    """/proc/PID/stat's process name (it may hold blanks and parentheses: it ends at the last `)`)."""
    return stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode("utf-8", "replace")


def _ppid_and_start(stat: bytes, btime: float) -> tuple[int, float]:
    """/proc/PID/stat's parent pid and start time (seconds since the epoch)."""
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]), btime + int(fields[19]) / CLOCK_TICKS


def read_process(procfs: Path, pid: int, btime: float, only_sshd: bool = True) -> ProcessInfo | None:
    """One process from stat and cmdline; None when it is not sshd's (and only_sshd is set)."""
    stat = _read(f"{procfs}/{pid}/stat", short_read_is_eof=True)
    name = _comm(stat)
    if only_sshd and name not in SSHD_NAMES:
        return None
    ppid, create_time = _ppid_and_start(stat, btime)
    title = title_of(_read(f"{procfs}/{pid}/cmdline", short_read_is_eof=True))
    return ProcessInfo(pid, ppid, name, title, create_time)


FileId = tuple[int, int]  # (st_dev, st_ino): a file's identity, whatever path names it
_UIDS = re.compile(rb"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", re.MULTILINE)


def file_id(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class ListenerCheck:
    """Whether a listener candidate is trusted, and what to say about it ("" when nothing)."""

    trusted: bool
    reason: str


def check_listener(
    procfs: Path, listener: Listener, btime: float, binary: FileId, binary_path: str
) -> ListenerCheck:
    """Trusted when the listener's process runs as root (every uid 0) the executable `binary`. Titles
    are anyone's to set, and a listener's title decides which config the exporter reads and the
    startups it reports: only a process root started from the configured sshd may do that.

    The executable is compared by identity (device, inode), not by the path /proc/PID/exe names,
    which under --path.rootfs is the host's path, not ours. Looking at another user's exe takes
    ptrace rights (root with CAP_SYS_PTRACE, as the systemd unit has): without them (not root, a
    container without that capability) the owner alone decides, and the reason says so. Every file
    is opened through one descriptor of /proc/PID, so all are that process's (a pid reused since
    fails them), and its start time must be the one the title was read with.

    A binary replaced since the listener started (a package upgrade without a restart) has another
    inode: the kernel then names the executable `BINARY (deleted)`, and root's process running what was
    `binary_path` is still sshd. Refusing it would report sshd down on a host that serves logins."""
    try:
        directory = os.open(f"{procfs}/{listener.pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        return ListenerCheck(False, f"gone ({exc.strerror})")
    try:
        uids = _UIDS.search(_read("status", short_read_is_eof=True, dir_fd=directory))
        if uids is None or any(uid != b"0" for uid in uids.groups()):
            owner = uids.group(1).decode() if uids else "unknown"
            return ListenerCheck(False, f"runs as uid {owner}, not root")
        try:
            same_binary = file_id(os.stat("exe", dir_fd=directory)) == binary
            caveat = ""
            if not same_binary and os.readlink("exe", dir_fd=directory) == f"{binary_path} (deleted)":
                same_binary = True
                caveat = (
                    f"runs {binary_path} as it was before being replaced: restart sshd to run the new one"
                )
        except PermissionError:
            same_binary = True
            caveat = (
                "root's process, trusted on its owner alone: its executable needs CAP_SYS_PTRACE to compare"
            )
        _, create_time = _ppid_and_start(_read("stat", short_read_is_eof=True, dir_fd=directory), btime)
    except (OSError, ValueError, IndexError) as exc:
        return ListenerCheck(False, f"cannot be checked ({getattr(exc, 'strerror', None) or exc})")
    finally:
        os.close(directory)
    if not same_binary:
        return ListenerCheck(False, "runs another executable than the configured sshd binary")
    if abs(create_time - listener.create_time) > 0.5:
        return ListenerCheck(False, "exited meanwhile")
    return ListenerCheck(True, caveat)


def read_processes(procfs: Path, skip: Collection[int] = ()) -> list[ProcessInfo]:
    """Every sshd process under procfs but those in `skip`: a full scan. Vanished or garbage entries
    are skipped."""
    btime = boot_time(procfs)  # OSError / ValueError: procfs unusable, the collector fails
    found = []
    for entry in os.listdir(procfs):
        if entry.isdigit() and int(entry) not in skip:
            try:
                proc = read_process(procfs, int(entry), btime)
            except (OSError, ValueError, IndexError):
                continue  # gone, or not a stat file we understand: not ours to report
            if proc is not None:
                found.append(proc)
    return found


def read_children(procfs: Path, pid: int) -> list[int]:
    """Direct children from /proc/PID/task/PID/children (sshd's processes are single-threaded)."""
    return [int(child) for child in _read(f"{procfs}/{pid}/task/{pid}/children").split()]
