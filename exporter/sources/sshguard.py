"""sshguard's bans, read where its backends keep them: it has no query API of its own.

- nftables backend: tables `ip sshguard` / `ip6 sshguard`, set `attackers` (`nft -j list set ...`);
- ipset backend: sets `sshguard4` / `sshguard6` (`ipset list -o save NAME`);
- hosts backend: a `###sshguard###` block of `ALL : ADDR : DENY` lines in hosts.allow (under rootfs).

A set or block that does not exist is a backend not in use, not an error. Commands run only when
rootfs is this machine's root (as for `sshd -T`), each with a timeout. sshguard is "up" when its
blocker process runs and every backend present could be read; when it is not, the reason says what
failed and what each backend showed (`sshg-blocker is not running (backends: nft: no sshguard set;
ipset: not installed; /etc/hosts.allow: no ###sshguard### block)`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.denyhosts import HOSTS_FILE_MAX_BYTES, text_lines
from exporter.sources.host.commands import run_command as run_tool
from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.procscan import running as running_process
from exporter.sources.host.replies import loads_json

NFT_SETS = (("ip", "sshguard", "attackers"), ("ip6", "sshguard", "attackers"))
IPSETS = ("sshguard4", "sshguard6")
HOSTS_MARKER = "###sshguard###"
HOSTS_ALLOW = "/etc/hosts.allow"
PROCESS_NAMES = frozenset({"sshg-blocker"})
BLOCKER = "sshg-blocker"
INSTALL_MARKERS = ("/usr/sbin/sshguard", "/etc/sshguard")
TOOL_TIMEOUT = 2.0
MAX_REASON = 1000  # one tool's complaint, in the log and on the landing page
NOT_HOST_ROOT = "not run (rootfs is not this machine's root)"


@dataclass(frozen=True)
class SshguardSnapshot:
    installed: bool
    running: bool
    sets: dict[str, int] = field(default_factory=dict)  # set (or "hosts.allow") -> addresses banned
    errors: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()  # what each backend showed: its sets, none, or why it was not asked

    @property
    def up(self) -> bool:
        return self.running and not self.errors

    @property
    def error(self) -> str:
        """Why sshguard is down ("" when up): what failed, then what each backend showed."""
        if self.up:
            return ""
        reasons = [*self.errors] if self.running else [*self.errors, f"{BLOCKER} is not running"]
        shown = f" (backends: {'; '.join(self.backends)})" if self.backends else ""
        return "; ".join(reasons) + shown


def tool_reason(stderr: str, returncode: int | None) -> str:
    """A tool's complaint on one line: every line of its stderr but nft's echo of the command and the
    carets under it (`list set ip sshguard attackers` / `^^^^^^^^`); its exit status when it said nothing."""
    lines = [line.strip() for line in stderr.splitlines()]
    kept = [
        line
        for index, line in enumerate(lines)
        if line and set(line) != {"^"} and not (index + 1 < len(lines) and lines[index + 1].startswith("^"))
    ]
    if kept:
        return " ".join("; ".join(kept).split())[:MAX_REASON]
    return f"exited with status {returncode}" if returncode is not None else "did not run"


def count_nft_set(text: str) -> int:
    """Elements of `nft -j list set ...` output: addresses, prefixes, ranges (each counts once).

    ValueError for anything else (bounded decoding: `replies.loads_json`)."""
    document = loads_json(text, "nft -j")
    items = document.get("nftables", []) if isinstance(document, dict) else None
    for item in items if isinstance(items, list) else ():
        body = item.get("set") if isinstance(item, dict) else None
        if isinstance(body, dict):
            elements = body.get("elem", [])
            if not isinstance(elements, list):
                raise ValueError(f"set elements: expected a list, got {type(elements).__name__}")
            return len(elements)
    raise ValueError("no set in nft output")


def count_ipset_save(text: str, name: str) -> int:
    """Members of `ipset list -o save NAME`: its `add NAME ...` lines."""
    prefix = f"add {name} "
    return sum(1 for line in text.splitlines() if line.startswith(prefix))


def parse_hosts_block(text: str) -> int | None:
    """Addresses in hosts.allow's sshguard block; None when there is no block."""
    inside = False
    count = None
    for line in text_lines(text):
        if line.strip() == HOSTS_MARKER:
            if inside:
                return count
            inside, count = True, 0
        elif inside and line.strip().upper().startswith("ALL") and line.rstrip().upper().endswith("DENY"):
            count = (count or 0) + 1
    return count  # an unterminated block still bans what it lists


class SshguardReader:
    """Reads sshguard's backends under --path.rootfs / --path.procfs."""

    def __init__(self, paths: HostPaths, hosts_allow: str = HOSTS_ALLOW, timeout: float = TOOL_TIMEOUT):
        self.paths = paths
        self.hosts_allow = hosts_allow
        self.timeout = timeout

    def _tool(self, name: str) -> Path | str:
        """The tool's path, or why it is not run."""
        if not self.paths.is_host_root:
            return NOT_HOST_ROOT
        found = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        return Path(found) if found else "not installed"

    def _nft(self, sets: dict[str, int], errors: list[str]) -> str:
        """Reads sshguard's nft sets; says what it found."""
        nft = self._tool("nft")
        if not isinstance(nft, Path):
            return nft
        found = []
        for family, table, name in NFT_SETS:
            run = run_tool(nft, "-j", "list", "set", family, table, name, timeout=self.timeout)
            label = f"{family} {table} {name}"
            if run.ok:
                try:
                    sets[label] = count_nft_set(run.stdout)
                    found.append(label)
                except ValueError as exc:
                    errors.append(f"nft {label}: {exc}")
            elif run.returncode is None or "No such file or directory" not in run.stderr:
                errors.append(f"nft list set {label}: {tool_reason(run.stderr, run.returncode)}")
        return ", ".join(found) or "no sshguard set"

    def _ipset(self, sets: dict[str, int], errors: list[str]) -> str:
        """Reads sshguard's ipsets; says what it found."""
        ipset = self._tool("ipset")
        if not isinstance(ipset, Path):
            return ipset
        names = run_tool(ipset, "list", "-n", timeout=self.timeout)
        if not names.ok:
            errors.append(f"ipset list -n: {tool_reason(names.stderr, names.returncode)}")
            return "could not list its sets"
        found = []
        for name in IPSETS:
            if name in names.stdout.split():
                run = run_tool(ipset, "list", "-o", "save", name, timeout=self.timeout)
                if run.ok:
                    sets[name] = count_ipset_save(run.stdout, name)
                    found.append(name)
                else:
                    errors.append(f"ipset list {name}: {tool_reason(run.stderr, run.returncode)}")
        return ", ".join(found) or f"no {' or '.join(IPSETS)} set"

    def _hosts(self, sets: dict[str, int], errors: list[str]) -> str:
        """Reads the hosts.allow block; says what it found."""
        try:
            local = self.paths.root(self.hosts_allow)
            text = read_regular_text(local, HOSTS_FILE_MAX_BYTES, paths=self.paths)
        except FileNotFoundError:
            return "not found"
        except OSError as exc:
            errors.append(f"{self.hosts_allow}: {exc.strerror or exc}")
            return "could not be read"
        count = parse_hosts_block(text)
        if count is None:
            return f"no {HOSTS_MARKER} block"
        sets["hosts.allow"] = count
        return f"{HOSTS_MARKER} block"

    def read(self) -> SshguardSnapshot:
        sets: dict[str, int] = {}
        errors: list[str] = []
        backends = (
            f"nft: {self._nft(sets, errors)}",
            f"ipset: {self._ipset(sets, errors)}",
            f"{self.hosts_allow}: {self._hosts(sets, errors)}",
        )
        running = running_process(self.paths.procfs, PROCESS_NAMES)
        installed = running or bool(sets) or any(self.paths.exists(p) for p in INSTALL_MARKERS)
        return SshguardSnapshot(installed, running, sets, tuple(errors), backends)
