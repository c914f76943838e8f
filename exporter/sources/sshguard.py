"""sshguard's bans, read where its backends keep them: it has no query API of its own.

- nftables backend: tables `ip sshguard` / `ip6 sshguard`, set `attackers` (`nft -j list set ...`);
- ipset backend: sets `sshguard4` / `sshguard6` (`ipset list -o save NAME`);
- hosts backend: a `###sshguard###` block of `ALL : ADDR : DENY` lines in hosts.allow (under rootfs).

A set or block that does not exist is a backend not in use, not an error. Commands run only when
rootfs is this machine's root (as for `sshd -T`), each with a timeout. sshguard is "up" when its
blocker process runs and every backend present could be read.
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
INSTALL_MARKERS = ("/usr/sbin/sshguard", "/etc/sshguard")
TOOL_TIMEOUT = 2.0


@dataclass(frozen=True)
class SshguardSnapshot:
    installed: bool
    running: bool
    sets: dict[str, int] = field(default_factory=dict)  # set (or "hosts.allow") -> addresses banned
    errors: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        return self.running and not self.errors

    @property
    def error(self) -> str:
        return "; ".join(self.errors)


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

    def _tool(self, name: str) -> Path | None:
        if not self.paths.is_host_root:
            return None
        found = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        return Path(found) if found else None

    def _nft(self, sets: dict[str, int], errors: list[str]) -> None:
        nft = self._tool("nft")
        if nft is None:
            return
        for family, table, name in NFT_SETS:
            run = run_tool(nft, "-j", "list", "set", family, table, name, timeout=self.timeout)
            label = f"{family} {table} {name}"
            if run.ok:
                try:
                    sets[label] = count_nft_set(run.stdout)
                except ValueError as exc:
                    errors.append(f"nft {label}: {exc}")
            elif run.returncode is None or "No such file or directory" not in run.stderr:
                errors.append(f"nft {label}: {run.stderr.strip()[:200]}")

    def _ipset(self, sets: dict[str, int], errors: list[str]) -> None:
        ipset = self._tool("ipset")
        if ipset is None:
            return
        names = run_tool(ipset, "list", "-n", timeout=self.timeout)
        if not names.ok:
            errors.append(f"ipset list -n: {names.stderr.strip()[:200]}")
            return
        for name in IPSETS:
            if name in names.stdout.split():
                run = run_tool(ipset, "list", "-o", "save", name, timeout=self.timeout)
                if run.ok:
                    sets[name] = count_ipset_save(run.stdout, name)
                else:
                    errors.append(f"ipset {name}: {run.stderr.strip()[:200]}")

    def _hosts(self, sets: dict[str, int], errors: list[str]) -> None:
        try:
            local = self.paths.root(self.hosts_allow)
            text = read_regular_text(local, HOSTS_FILE_MAX_BYTES, paths=self.paths)
        except FileNotFoundError:
            return
        except OSError as exc:
            errors.append(f"{self.hosts_allow}: {exc.strerror or exc}")
            return
        count = parse_hosts_block(text)
        if count is not None:
            sets["hosts.allow"] = count

    def read(self) -> SshguardSnapshot:
        sets: dict[str, int] = {}
        errors: list[str] = []
        self._nft(sets, errors)
        self._ipset(sets, errors)
        self._hosts(sets, errors)
        running = running_process(self.paths.procfs, PROCESS_NAMES)
        installed = running or bool(sets) or any(self.paths.exists(p) for p in INSTALL_MARKERS)
        return SshguardSnapshot(installed, running, sets, tuple(errors))
