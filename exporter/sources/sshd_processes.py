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

`parse_*` and `classify_listeners` are pure; `read_processes` is the only I/O (psutil, under
--path.procfs).
"""

from __future__ import annotations

import os
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from exporter.sources.psutil_procfs import psutil_procfs

SSHD_NAMES = frozenset({"sshd", "sshd-session", "sshd-auth"})
STAGES: tuple[str, ...] = ("accepted", "preauth", "authenticating")
DEFAULT_CONFIG = "/etc/ssh/sshd_config"

_LISTENER = re.compile(r"^(?P<argv>.*?)\s*\[listener\]\s+(?P<n>\d+) of (?P<start>\d+)-(?P<full>\d+) startups")
_SESSION = re.compile(r"@|\[postauth\]")
_PREAUTH_CHILD = re.compile(r"^(?:\[net\]|\[session-auth(?: early)?\]|\[preauth\])$")
_USER_NET = re.compile(r"^\S+ \[net\]$")
_PRIV = re.compile(r"^\S+ \[priv\]$")


@dataclass(frozen=True)
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
    match = _LISTENER.match(_strip_name(title))
    if not match:
        return None
    return ListenerTitle(match["argv"], int(match["n"]), int(match["start"]), int(match["full"]))


def config_from_argv(argv: str) -> str:
    """The `-f FILE` an sshd was started with (`-fFILE` too), else the default config path."""
    try:
        words = shlex.split(argv)
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


def _looks_like_old_listener(proc: ProcessInfo) -> bool:
    """A pre-8.2 listener keeps its plain argv: `/usr/sbin/sshd -D` (not `sshd: ...`, not `-R`)."""
    words = proc.title.split()
    return bool(words) and words[0].rsplit("/", 1)[-1] == "sshd" and "-R" not in words[1:]


def connection_stage(monitor: ProcessInfo, descendants: list[ProcessInfo]) -> str:
    """`session` when authenticated, else one of STAGES."""
    titles = [_strip_name(p.title) for p in descendants]
    if any(_SESSION.search(t) for t in titles):
        return "session"
    own = _strip_name(monitor.title)
    if any(_USER_NET.match(t) for t in titles) or _PRIV.match(own):
        return "authenticating"
    if any(_PREAUTH_CHILD.match(t) for t in titles):
        return "preauth"
    if _SESSION.search(own):  # no privilege separation: the connection process itself is the session
        return "session"
    return "accepted"


def classify_listeners(processes: list[ProcessInfo]) -> list[Listener]:
    """Find every sshd listener (several instances may run) and sort its connections into stages."""
    sshd = {p.pid: p for p in processes if _is_sshd(p)}
    children: dict[int, list[ProcessInfo]] = defaultdict(list)
    for proc in sshd.values():
        children[proc.ppid].append(proc)

    def descendants(pid: int) -> list[ProcessInfo]:
        found, todo = [], list(children.get(pid, []))
        while todo:
            proc = todo.pop()
            found.append(proc)
            todo.extend(children.get(proc.pid, []))
        return found

    listeners = []
    for proc in sshd.values():
        title = parse_listener_title(proc.title)
        if title is None and (proc.ppid in sshd or not _looks_like_old_listener(proc)):
            continue
        argv = title.argv if title else proc.title
        listener = Listener(proc.pid, config_from_argv(argv), proc.create_time, title)
        for child in children.get(proc.pid, []):
            if "-R" in child.title.split():  # <= 9.7 re-exec'd child before its first title
                listener.stages["accepted"] += 1
                continue
            stage = connection_stage(child, descendants(child.pid))
            if stage == "session":
                listener.sessions += 1
            else:
                listener.stages[stage] += 1
        listeners.append(listener)
    return sorted(listeners, key=lambda item: (item.config, item.pid))


def read_processes(procfs: Path) -> list[ProcessInfo]:
    """sshd processes under procfs. Vanishing processes and unreadable entries are skipped."""
    found: list[ProcessInfo] = []
    pids = [int(entry) for entry in os.listdir(procfs) if entry.isdigit()]  # OSError: procfs unusable
    with psutil_procfs(procfs):
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    name = proc.name()
                    if name in SSHD_NAMES:
                        title = " ".join(proc.cmdline()).strip()
                        found.append(ProcessInfo(pid, proc.ppid(), name, title, proc.create_time()))
            except (psutil.Error, OSError, ValueError, IndexError):
                continue  # gone, a zombie, or a garbage stat file: not ours to report
    return found
