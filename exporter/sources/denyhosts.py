"""DenyHosts: its marked entries in hosts.deny and what its work directory tracks.

DenyHosts writes each ban as a pair of lines, `# DenyHosts: <asctime> | sshd: 192.0.2.1` then
`sshd: 192.0.2.1`, and purges an entry only when the second line still matches the first. An entry
counts as a ban when that pair is intact, grouped by its daemon list (`sshd`, or `ALL` with
BLOCK_SERVICE = ALL). The work directory (/var/lib/denyhosts) keeps `name:count[:date]` lines of
addresses with failures: `hosts` (invalid users), `hosts-valid`, `hosts-root`, `hosts-restricted`.
Entries keep blocking with the daemon stopped (libwrap reads the file), so DenyHosts is "up" when
its files can be read; whether the daemon runs is reported apart.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from exporter.sources.host.files import Signature, file_signature, read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.procscan import running as running_process
from exporter.sources.host.singleflight import singleflight

DENY_DELIMITER = "# DenyHosts:"
ENTRY_DELIMITER = " | "
HOSTS_DENY = "/etc/hosts.deny"
WORK_DIR = "/var/lib/denyhosts"
CONFIG = "/etc/denyhosts.conf"
TRACKED = {"hosts": "invalid", "hosts-valid": "valid", "hosts-root": "root", "hosts-restricted": "restricted"}
PROCESS_NAMES = frozenset({"denyhosts", "denyhosts.py"})
# hosts.deny / hosts.allow: libwrap reads lines of 2 KiB at most; 16 MiB is about 200,000 DenyHosts entries
HOSTS_FILE_MAX_BYTES = 16 << 20
WORK_FILE_MAX_BYTES = 16 << 20  # `name:count[:date]` lines: hundreds of thousands of addresses


@dataclass(frozen=True)
class DenyEntries:
    banned: dict[str, int]  # daemon list -> intact marked entries
    newest: float | None  # the newest entry's time (host local time), seconds since the epoch


@dataclass(frozen=True)
class DenyhostsSnapshot:
    installed: bool
    up: bool
    running: bool
    banned: dict[str, int] = field(default_factory=dict)
    newest: float | None = None
    tracked: dict[str, int] = field(default_factory=dict)  # kind -> addresses with recorded failures
    errors: tuple[str, ...] = ()

    @property
    def error(self) -> str:
        return "; ".join(self.errors)


def _daemons(entry: str) -> str:
    head, sep, _ = entry.partition(":")
    return head.strip() if sep and head.strip() else "ALL"


def _asctime(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text.strip()))
    except (ValueError, OverflowError):
        return None


def text_lines(text: str) -> Iterator[str]:
    """The lines of `text` (cut at newlines) one at a time: splitlines held a list of millions of strings."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end == -1:
            end = size
        yield text[start:end]
        start = end + 1


def parse_hosts_deny(text: str) -> DenyEntries:
    """Intact DenyHosts pairs per daemon list, and the newest one's time."""
    banned: dict[str, int] = {}
    newest: float | None = None
    last_stamp, when = None, None  # DenyHosts writes the bans of one run with the same time: read once
    for line, following in itertools.pairwise(text_lines(text)):
        if not line.startswith(DENY_DELIMITER):
            continue
        stamp, sep, entry = line[len(DENY_DELIMITER) :].partition(ENTRY_DELIMITER)
        if not sep or following.strip() != entry.strip():
            continue  # edited by hand or half-purged: DenyHosts itself would not treat it as its own
        daemons = _daemons(entry)
        banned[daemons] = banned.get(daemons, 0) + 1
        if stamp != last_stamp:  # strptime took 14 us an entry: 0.7 s for 50,000 at each change
            last_stamp, when = stamp, _asctime(stamp)
        if when is not None and (newest is None or when > newest):
            newest = when
    return DenyEntries(banned, newest)


def count_tracked(text: str) -> int:
    """Lines of a work-directory stats file (`name:count[:date]`)."""
    return sum(1 for line in text_lines(text) if ":" in line)


class DenyhostsReader:
    def __init__(self, paths: HostPaths, work_dir: str = WORK_DIR, hosts_deny: str = HOSTS_DENY) -> None:
        self.paths = paths
        self.work_dir = work_dir
        self.hosts_deny = hosts_deny
        # hosts.deny's entries while the file is unchanged: a host under attack holds tens of thousands
        # of DenyHosts lines, and parsing them took 0.5-1.4 s a scrape (tcpwrappers reads it the same way)
        self._deny: tuple[Signature, DenyEntries] | None = None

    def _entries(self) -> DenyEntries:
        local = self.paths.root(self.hosts_deny)
        signature = file_signature(local)  # taken before the read: a change during it shows next time
        if signature is not None and self._deny is not None and self._deny[0] == signature:
            return self._deny[1]
        entries = parse_hosts_deny(read_regular_text(local, HOSTS_FILE_MAX_BYTES, paths=self.paths))
        self._deny = (signature, entries)
        return entries

    @singleflight
    def read(self) -> DenyhostsSnapshot:
        errors: list[str] = []
        entries = DenyEntries({}, None)
        try:
            entries = self._entries()
        except FileNotFoundError:
            pass  # libwrap treats a missing file as empty
        except OSError as exc:
            errors.append(f"{self.hosts_deny}: {exc.strerror or exc}")
        work = self.paths.root_or_none(self.work_dir)
        tracked: dict[str, int] = {}
        work_present = work is not None and work.is_dir()
        if work is not None and work_present:
            for name, kind in TRACKED.items():
                try:
                    text = read_regular_text(work / name, WORK_FILE_MAX_BYTES, paths=self.paths)
                    tracked[kind] = count_tracked(text)
                except FileNotFoundError:
                    tracked[kind] = 0
                except OSError as exc:
                    errors.append(f"{self.work_dir}/{name}: {exc.strerror or exc}")
        running = running_process(self.paths.procfs, PROCESS_NAMES)
        installed = running or work_present or bool(entries.banned) or self.paths.exists(CONFIG)
        return DenyhostsSnapshot(
            installed,
            installed and not errors,
            running,
            entries.banned,
            entries.newest,
            tracked,
            tuple(errors),
        )
