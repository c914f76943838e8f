"""Reads the facts every layer needs, once per question, through the same sources as the collectors.

The options are the collectors' own (exporter.options builds them from the same settings), so `diagnose`
and the watchlist read exactly what the collectors read; a layer whose collector is switched off is not
asked. PerSourcePenalties come from the end of the auth log files (the last TAIL_BYTES of each, through
the live framing and classification, read as it grows: logtail), kept for `penalty_window` seconds.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.access.layers import (
    Fail2banFacts,
    HostFacts,
    LogLine,
    PenaltyLog,
    SshdBlocking,
    WrapperOutcomes,
    verdicts,
)
from exporter.sources.access.logtail import TAIL_BYTES, LogTail, after, events_of
from exporter.sources.access.model import LayerVerdict, Network, label
from exporter.sources.authlog.journal import journal_matches, parse_journal_json
from exporter.sources.authlog.tail import configured_log_files, default_log_files
from exporter.sources.crowdsec import BOUNCER_CONFIG, CSCLI, CrowdsecReader
from exporter.sources.denyhosts import WORK_DIR, DenyhostsReader
from exporter.sources.fail2ban.database import DatabaseError, DbBan, ban_rows
from exporter.sources.fail2ban.protocol import Connection, ProtocolError
from exporter.sources.fail2ban.reader import (
    DEFAULT_DB,
    DEFAULT_SOCKET,
    INSTALL_MARKERS,
    Fail2banReader,
    config_reasons,
)
from exporter.sources.firewall.reader import TIMEOUT, FirewallError, FirewallReader
from exporter.sources.host.commands import run_command
from exporter.sources.host.files import open_regular_file
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.procscan import running
from exporter.sources.host.replies import clean_text
from exporter.sources.sshguard import INSTALL_MARKERS as SSHGUARD_MARKERS
from exporter.sources.sshguard import PROCESS_NAMES as SSHGUARD_PROCESSES
from exporter.sources.tcpwrappers.reader import FILES, TcpWrappersReader

log = logging.getLogger(__name__)
PENALTY_WINDOW = 600.0


@dataclass(frozen=True)
class AccessOptions:
    """Which layers to ask and where their sources are (defaults: the sources' own)."""

    tcp_wrappers: bool = True
    fail2ban: bool = True
    fail2ban_socket: str = DEFAULT_SOCKET
    fail2ban_db: str = DEFAULT_DB
    fail2ban_owner: int = 0
    fail2ban_timeout: float = 3.0  # one whole exchange with fail2ban-server, as the collector's
    fail2ban_config_dir: str | None = None  # asks fail2ban-client -d why the server is down; None: not asked
    # Ask fail2ban-server (`banned ADDR...`) even when its database answers. diagnose does; the watchlist
    # does not at every scrape: with 100,000 bans the question costs the server 0.1-0.3 s, and the
    # database it writes each ban to gives the same answer. It asks when the database cannot be read.
    fail2ban_ask_server: bool = True
    sshguard: bool = True
    denyhosts: bool = True
    denyhosts_work_dir: str = WORK_DIR
    crowdsec: bool = True
    crowdsec_bouncer_config: str = BOUNCER_CONFIG
    cscli: str = CSCLI
    firewall: bool = True
    firewall_timeout: float = TIMEOUT
    use_iptc: bool = True
    authlog: bool = True
    log_files: tuple[str, ...] = ()  # empty: /var/log/auth.log, /var/log/secure when present
    journal: str = "auto"  # auto: when there is no log file (as the authlog collector)
    penalty_window: float = PENALTY_WINDOW
    timeout: float = 3.0


def read_log_tail(
    path: Path, name: str, since: float, tail_bytes: int = TAIL_BYTES, *, paths: HostPaths | None = None
) -> list[LogLine]:
    """Penalty and MaxStartups events after `since` in the last `tail_bytes` of one log file (a regular
    file, opened inside `paths.rootfs`: a FIFO or a link out of the rootfs is an OSError)."""
    with os.fdopen(open_regular_file(path, paths=paths), "rb") as stream:
        return after(LogTail(name, tail_bytes).events(stream), since)


def journal_lines(output: str, since: float) -> list[LogLine]:
    """The events of `journalctl -o json` output (one entry a line)."""
    records = [parse_journal_json(line)[0] for line in output.splitlines()]
    texts = [record.message if record else "" for record in records]
    return events_of(records, texts, "journal", [0] * len(records), since)


def read_journal(paths: HostPaths, since: float, timeout: float) -> list[LogLine]:
    """sshd's journal entries since `since` (journalctl --root for another rootfs)."""
    found = shutil.which("journalctl", path="/usr/bin:/bin")
    if found is None:
        raise OSError("journalctl not found")
    root = [] if paths.is_host_root else [f"--root={paths.rootfs}"]
    args = ["--output=json", "--no-pager", "--all", "--quiet", f"--since=@{int(since)}", *root]
    run = run_command(found, *args, *journal_matches(), timeout=timeout)
    if not run.ok:
        raise OSError(f"journalctl: {run.stderr.strip()[:200] or run.returncode}")
    return journal_lines(run.stdout, since)


class AccessReader:
    """Gathers HostFacts under --path.rootfs; `sshd_ports` tells which ports sshd listens on;
    `firewall_reader`, `wrappers` and `denyhosts` are the context's shared ones (the watchlist, diagnose),
    else its own."""

    def __init__(
        self,
        paths: HostPaths,
        options: AccessOptions | None = None,
        sshd_ports: Callable[[], frozenset[int]] | None = None,
        firewall_reader: FirewallReader | None = None,
        wrappers: TcpWrappersReader | None = None,
        denyhosts: DenyhostsReader | None = None,
    ) -> None:
        self.paths = paths
        self.options = options or AccessOptions()
        self.sshd_ports = sshd_ports or frozenset
        self.wrappers = wrappers or TcpWrappersReader(paths)
        # Kept, as the wrappers': it parses hosts.deny's DenyHosts entries again only when the file changed
        # (50,000 entries: about 0.5 s, at every scrape while a new reader was made each time).
        self.denyhosts = denyhosts or DenyhostsReader(paths, self.options.denyhosts_work_dir)
        self.firewall_reader = firewall_reader or FirewallReader(
            paths, self.options.firewall_timeout, self.options.use_iptc
        )
        self._log_tails: dict[Path, LogTail] = {}
        # The last check's blocking rules and TCP wrappers outcomes, for the next facts (HostFacts).
        self._blocking: SshdBlocking | None = None
        self._outcomes: WrapperOutcomes | None = None

    def _log_lines(self, local: Path, since: float) -> list[LogLine]:
        """A file's events after `since`; what the file gained since the last read is read (each scrape on
        a busy host), the whole tail only when it was replaced, shrank or rewritten (logtail)."""
        tail = self._log_tails.get(local)
        if tail is None:
            tail = self._log_tails[local] = LogTail(self.paths.unroot(local))
        with os.fdopen(open_regular_file(local, paths=self.paths), "rb") as stream:
            return after(tail.events(stream), since)

    def _present(self, host_path: str) -> bool:
        """Something is at the path, readable or not: a link loop too (libwrap denies on a hosts.deny it
        cannot open), so the layer is asked and says it cannot read it, rather than being skipped."""
        local = self.paths.root_or_none(host_path)
        return local is None or local.exists() or local.is_symlink()

    def _exists(self, paths: Iterable[str]) -> bool:
        return any(self.paths.exists(p) for p in paths if p)

    def _fail2ban(self, networks: Sequence[Network], now: float) -> Fail2banFacts | None:
        o = self.options
        if not o.fail2ban or not self._exists((*INSTALL_MARKERS, o.fail2ban_socket, o.fail2ban_db)):
            return None
        bans: tuple[DbBan, ...] | None = None
        index, lookup, errors, down = None, None, [], ""
        database = self.paths.root_or_none(o.fail2ban_db) if o.fail2ban_db else None
        if database is not None and database.exists():
            try:  # the bans and the index of the same read (kept while the database is unchanged)
                rows, stamp = ban_rows(database, int(now)), int(now)
                bans, index = (), rows.index
                lookup = functools.partial(rows.bans, None, stamp)
            except DatabaseError as exc:
                errors.append(f"database: {exc}")
        banned_in: dict[str, tuple[str, ...]] = {}
        single = [n for n in networks if n.num_addresses == 1]
        ask = o.fail2ban_ask_server or bans is None
        if o.fail2ban_socket and single and ask:  # `banned ADDR...` asks the server about single addresses
            try:
                with Connection(
                    self.paths.root(o.fail2ban_socket), o.fail2ban_timeout, o.fail2ban_owner
                ) as conn:
                    reply = conn.request("banned", *(label(n) for n in single))
                if isinstance(reply, list) and len(reply) == len(single):
                    for network, jails in zip(single, reply, strict=True):
                        names = jails if isinstance(jails, list) else []
                        banned_in[label(network)] = tuple(clean_text(str(j)) for j in names)
            except (FileNotFoundError, ConnectionRefusedError):
                errors.append(f"fail2ban-server is not running (nothing answers on {o.fail2ban_socket})")
                down = self._fail2ban_down_cause()
            except (OSError, ProtocolError) as exc:
                errors.append(f"socket {o.fail2ban_socket}: {exc}")
        if bans is None and not errors:
            errors.append(f"neither {o.fail2ban_socket} nor {o.fail2ban_db} could be read")
        elif bans is None and database is not None and not database.exists():
            errors.append(f"no database at {o.fail2ban_db}")
        return Fail2banFacts(bans, "; ".join(errors), banned_in, down, index, lookup)

    def _fail2ban_down_cause(self) -> str:
        """Why fail2ban-server is not running, as the collector says it (fail2ban-client -d: an enabled
        jail without a log file keeps the server from starting); "" when not asked (fail2ban_config_dir
        None: the watchlist, at every scrape) or nothing is known."""
        o = self.options
        if o.fail2ban_config_dir is None:
            return ""
        check = Fail2banReader(self.paths, config_dir=o.fail2ban_config_dir, timeout=o.timeout).config_check()
        return "; ".join(config_reasons(check)) if check is not None else ""

    def _penalties(self, now: float) -> PenaltyLog | None:
        o = self.options
        if not o.authlog:
            return None
        files = (
            configured_log_files(self.paths, o.log_files) if o.log_files else default_log_files(self.paths)
        )
        journal = o.journal == "on" or (o.journal == "auto" and not files)
        if not files and not journal:
            return None
        lines: list[LogLine] = []
        errors = []
        if journal:
            try:
                lines.extend(read_journal(self.paths, now - o.penalty_window, o.timeout))
            except OSError as exc:
                errors.append(str(exc))
        for local in files:
            try:
                lines.extend(self._log_lines(local, now - o.penalty_window))
            except OSError as exc:
                errors.append(f"{self.paths.unroot(local)}: {exc.strerror or exc}")
        return PenaltyLog(tuple(lines), o.penalty_window, "; ".join(errors))

    def read(self, networks: Sequence[Network] = ()) -> HostFacts:
        """Every asked-for layer's facts; `networks` lets fail2ban's server answer for single addresses."""
        o = self.options
        now = time.time()
        wrappers = None
        if o.tcp_wrappers and any(self._present(f) for f in FILES):
            wrappers = self.wrappers.read()
        ruleset, firewall_error = None, ""
        if o.firewall or o.sshguard:
            try:
                ruleset = self.firewall_reader.read()
            except (FirewallError, OSError) as exc:
                firewall_error = str(exc)
        sshguard = o.sshguard and (
            self._exists(SSHGUARD_MARKERS) or running(self.paths.procfs, SSHGUARD_PROCESSES)
        )
        crowdsec = None
        if o.crowdsec:
            crowdsec = CrowdsecReader(self.paths, o.crowdsec_bouncer_config, o.cscli, o.timeout).read()
        return HostFacts(
            wrappers=wrappers,
            fail2ban=self._fail2ban(networks, now),
            sshguard=sshguard,
            denyhosts=o.denyhosts and self.denyhosts.read().installed,
            crowdsec=crowdsec,
            firewall=o.firewall,
            ruleset=ruleset,
            firewall_error=firewall_error,
            sshd_ports=self.sshd_ports() if ruleset is not None else frozenset(),
            penalties=self._penalties(now),
            now=now,
            set_indexes=self.firewall_reader.indexes,
            known_blocking=self._blocking,
            known_outcomes=self._outcomes,
        )

    def check(self, networks: Sequence[Network]) -> dict[Network, list[LayerVerdict]]:
        """Each network's layer verdicts from one read of the host."""
        facts = self.read(networks)
        found = {network: verdicts(facts, network) for network in networks}
        if facts.ruleset is not None:  # found by the firewall or sshguard layer: kept for the next check
            self._blocking = facts.sshd_blocking
        if facts.wrappers is not None:
            self._outcomes = facts.wrapper_outcomes
        return found
