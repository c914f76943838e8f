"""The model of fail2ban on this host: is it up, its jails, their bans, and whether they guard sshd.

One `Fail2banReader.read()` gives a `Fail2banSnapshot`. The socket is the primary source: one fresh
connection per read, counts from `status JAIL short` (fail2ban 0.10+ answers it without building the
banned list, which costs the server about 0.34 s of CPU at 100,000 bans), settings from `get JAIL ...`.
When the socket cannot be reached the database gives what it can: the jails and their current bans
(as fail2ban would restore them), with `up` False. With no socket configured the database is the
source and `up` says whether it could be read.

"Total banned" and "Total failed" count since the server started (fail2ban keeps them in memory), so
they are counters that reset on a restart; `server_started` dates the reset.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.fail2ban.configcheck import ConfigCheck, check_config
from exporter.sources.fail2ban.database import DatabaseError, DbSnapshot, read_database
from exporter.sources.fail2ban.ports import covers, read_services
from exporter.sources.fail2ban.protocol import Connection, ProtocolError
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.replies import ReplyError, check_int, clean_text
from exporter.sources.sshd.processes import boot_time, read_process

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/fail2ban/fail2ban.sock"
DEFAULT_DB = "/var/lib/fail2ban/fail2ban.sqlite3"
DEFAULT_CONFIG_DIR = "/etc/fail2ban"
CLIENT = "/usr/bin/fail2ban-client"
CONFIG_CHECK_TTL = 60.0  # while the server is down, its config is parsed again at most this often
# Any of these under rootfs means fail2ban is installed, so "unreachable" is worth reporting.
INSTALL_MARKERS = ("/etc/fail2ban", "/usr/bin/fail2ban-server")
BACKENDS = ("file", "systemd")
PERMANENT = float("inf")


@dataclass(frozen=True)
class Jail:
    """One jail; None where the source in use cannot tell."""

    name: str
    banned: int
    permanent_bans: int | None = None  # database only
    bans_total: int | None = None  # since the server started
    failing: int | None = None  # addresses with failures within findtime
    failures_total: int | None = None  # since the server started
    bantime: float | None = None  # seconds; inf: permanent
    findtime: float | None = None
    maxretry: int | None = None
    backend: str | None = None  # file | systemd
    log_paths: tuple[str, ...] = ()
    journal_matches: tuple[str, ...] = ()
    missing_log_paths: tuple[str, ...] = ()
    guards_sshd: bool | None = None
    action_ports: tuple[str, ...] = ()  # each ban action's `port` setting
    covers_sshd_port: bool | None = None  # None: not guarding sshd, or ports unknown


@dataclass(frozen=True)
class Fail2banSnapshot:
    installed: bool
    up: bool
    source: str | None  # "socket" | "database" | None: where the jails came from
    error: str = ""  # why the socket (or database) could not be read
    version: str | None = None
    server_started: float | None = None
    db_version: int | None = None
    jails: tuple[Jail, ...] = field(default_factory=tuple)
    config: ConfigCheck | None = None  # fail2ban's own parse of its config, when the socket is unreachable

    @property
    def sshd_guarded(self) -> bool | None:
        """Does any enabled jail guard sshd? From the server, else from its config; None when unknown."""
        if self.source == "socket":
            return any(jail.guards_sshd for jail in self.jails)
        if self.config is not None and not self.config.error:
            return any(mentions_sshd(self.config.matches.get(jail, ())) for jail in self.config.jails)
        return None


def is_installed(paths: HostPaths, socket_path: str | None, db_path: str | None) -> bool:
    """fail2ban is on this host (under rootfs) when its config dir, its server binary, its socket or its
    database is there; without any of them it is absent, which is no outage."""
    return any(paths.exists(p) for p in (*INSTALL_MARKERS, socket_path, db_path) if p)


def config_reasons(config: ConfigCheck) -> list[str]:
    """What fail2ban's own parse of its config says keeps the server down (Debian 12 without rsyslog:
    the sshd jail finds no auth.log, and fail2ban-server refuses to start)."""
    if config.error:
        return [f"fail2ban-client -d: {config.error}"]
    missing = [jail for jail in config.jails if jail in config.without_logs]
    if not missing:
        return []
    jails = ", ".join(f"jail {jail}" for jail in missing)
    return [f"{jails}: no log file found (fail2ban-server refuses to start)"]


def _pairs(value: object, what: str) -> dict[str, object]:
    """fail2ban's status replies: lists of (label, value) pairs."""
    if not isinstance(value, list | tuple):
        raise ProtocolError(f"{what}: expected a list of pairs, got {type(value).__name__}")
    result: dict[str, object] = {}
    for item in value:
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ProtocolError(f"{what}: unexpected item {item!r:.80}")
        result[item[0]] = item[1]
    return result


def _int(value: object, what: str) -> int:
    """A count or setting as an integer that fits in 64 bits (so float() of it cannot overflow)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProtocolError(f"{what}: not a number: {value!r:.80}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{what}: not a finite number: {value!r}")
    try:
        return check_int(int(value), what)
    except ReplyError as exc:
        raise ProtocolError(str(exc)) from None
    except ValueError as exc:
        raise ProtocolError(f"{what}: not a number: {value!r:.80}") from exc


def _strings(value: object) -> tuple[str, ...]:
    """As the server sent them: jail and action names go back to it in later requests."""
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if item)
    return ()


def _texts(value: object) -> tuple[str, ...]:
    """The same as valid text, for what leaves the reader (labels must encode as UTF-8)."""
    return tuple(clean_text(item) for item in _strings(value))


def bantime_seconds(value: int) -> float:
    """fail2ban's bantime: negative means forever."""
    return PERMANENT if value < 0 else float(value)


def mentions_sshd(texts: tuple[str, ...]) -> bool:
    """A filter regex or journal match that selects sshd's lines (`sshd`, `sshd-session`, ssh.service)."""
    return any("sshd" in text or "ssh.service" in text for text in texts)


def parse_jail_status(name: str, reply: object) -> Jail:
    """`status JAIL short` (or plain `status JAIL`): counts, backend and what the filter reads."""
    sections = _pairs(reply, f"status {name}")
    filt = _pairs(sections.get("Filter", []), f"status {name} Filter")
    actions = _pairs(sections.get("Actions", []), f"status {name} Actions")
    backend = "systemd" if "Journal matches" in filt else "file" if "File list" in filt else None
    return Jail(
        name=clean_text(name),
        banned=_int(actions.get("Currently banned"), "Currently banned"),
        bans_total=_int(actions.get("Total banned"), "Total banned"),
        failing=_int(filt.get("Currently failed"), "Currently failed"),
        failures_total=_int(filt.get("Total failed"), "Total failed"),
        backend=backend,
        log_paths=_texts(filt.get("File list", ())),
        journal_matches=_texts(filt.get("Journal matches", ())),
    )


def jail_names(reply: object) -> tuple[str, ...]:
    """`status`: [("Number of jail", n), ("Jail list", "a, b")]."""
    listed = _pairs(reply, "status").get("Jail list", "")
    return tuple(name.strip() for name in str(listed).split(",") if name.strip())


def _tree_signature(directory: Path) -> tuple[tuple[str, int], ...] | None:
    """(path, mtime) of every file under directory; None when it cannot be listed."""
    if not directory.is_dir():
        return None
    files = []
    try:
        for root, _, names in os.walk(directory):
            for name in names:
                path = os.path.join(root, name)
                files.append((path, os.stat(path).st_mtime_ns))
    except OSError:
        return None
    return tuple(sorted(files))


class Fail2banReader:
    """Reads fail2ban through its socket, else its database, under --path.rootfs."""

    def __init__(
        self,
        paths: HostPaths,
        socket_path: str | None = DEFAULT_SOCKET,
        db_path: str | None = DEFAULT_DB,
        *,
        owner_uid: int = 0,
        timeout: float = 3.0,
        sshd_ports: Callable[[], frozenset[int]] | None = None,
        sshd_ports_ttl: float = 30.0,
        config_dir: str | None = DEFAULT_CONFIG_DIR,
        client: str = CLIENT,
    ) -> None:
        self.paths = paths
        self.socket_path = socket_path or None
        self.db_path = db_path or None
        self.owner_uid = owner_uid
        self.timeout = timeout
        self._sshd_ports = sshd_ports
        self._sshd_ports_ttl = sshd_ports_ttl
        self._sshd_ports_cache: tuple[float, frozenset[int]] | None = None
        self._services: dict[str, int] | None = None
        self._bantimes: dict[str, int] = {}  # from the last socket read, for the database fallback
        self.config_dir = config_dir or None
        self.client = client
        self._config_cache: tuple[object, float, ConfigCheck] | None = None

    # -- socket --------------------------------------------------------------------------------
    def _jail(self, conn: Connection, name: str) -> Jail:
        jail = parse_jail_status(name, conn.request("status", name, "short"))
        bantime = _int(conn.request("get", name, "bantime"), "bantime")
        self._bantimes[name] = bantime
        regexes = _strings(conn.request("get", name, "prefregex"))
        if not mentions_sshd(regexes):
            regexes += _strings(conn.request("get", name, "failregex"))
        guards = mentions_sshd(regexes) or mentions_sshd(jail.journal_matches)
        missing = tuple(p for p in jail.log_paths if not self.paths.exists(p))
        specs = self._action_ports(conn, name)
        return Jail(
            **{
                **jail.__dict__,
                "bantime": bantime_seconds(bantime),
                "findtime": float(_int(conn.request("get", name, "findtime"), "findtime")),
                "maxretry": _int(conn.request("get", name, "maxretry"), "maxretry"),
                "missing_log_paths": missing,
                "guards_sshd": guards,
                "action_ports": specs,
                "covers_sshd_port": self._covers_sshd(specs) if guards else None,
            }
        )

    @staticmethod
    def _action_ports(conn: Connection, name: str) -> tuple[str, ...]:
        """Each action's port setting; `*-allports` actions block every port whatever it says."""
        specs = []
        for action in _strings(conn.request("get", name, "actions")):
            if "allports" in action:
                specs.append("all")
                continue
            properties = _strings(conn.request("get", name, "actionproperties", action))
            if "port" in properties:  # asking for a missing one would answer a pickled exception
                specs.append(clean_text(str(conn.request("get", name, "action", action, "port"))))
        return tuple(specs)

    def _covers_sshd(self, specs: tuple[str, ...]) -> bool | None:
        wanted = self.sshd_ports()
        if self._services is None:
            self._services = read_services(self.paths.root("/etc/services"), self.paths)
        return covers(specs, wanted, self._services)

    def sshd_ports(self) -> frozenset[int]:
        """sshd's ports, cached for a while: they change when sshd restarts, not per scrape."""
        if self._sshd_ports is None:
            return frozenset()
        now = time.monotonic()
        if self._sshd_ports_cache is None or now - self._sshd_ports_cache[0] > self._sshd_ports_ttl:
            self._sshd_ports_cache = (now, self._sshd_ports())
        return self._sshd_ports_cache[1]

    def _started(self, pid: int) -> float | None:
        if pid <= 0:
            return None
        try:
            proc = read_process(self.paths.procfs, pid, boot_time(self.paths.procfs), only_sshd=False)
        except (OSError, ValueError, IndexError):
            return None
        return proc.create_time if proc else None

    def read_socket(self, path: Path) -> Fail2banSnapshot:
        with Connection(path, self.timeout, self.owner_uid) as conn:
            version = clean_text(str(conn.request("version")))
            jails = tuple(self._jail(conn, name) for name in jail_names(conn.request("status")))
            pid = conn.peer_pid
        return Fail2banSnapshot(True, True, "socket", "", version, self._started(pid), None, jails)

    # -- config (server down) --------------------------------------------------------------------
    def config_check(self) -> ConfigCheck | None:
        """fail2ban-client's parse of the config (only when rootfs is /), cached on the files and a TTL."""
        client = self.paths.root_or_none(self.client)
        if self.config_dir is None or not self.paths.is_host_root or client is None or not client.exists():
            return None
        signature = _tree_signature(Path(self.config_dir))
        if signature is None:
            return None
        now = time.monotonic()
        cached = self._config_cache
        if cached is None or cached[0] != signature or now - cached[1] > CONFIG_CHECK_TTL:
            self._config_cache = cached = (
                signature,
                now,
                check_config(client, Path(self.config_dir), self.timeout),
            )
        return cached[2]

    # -- database ------------------------------------------------------------------------------
    def read_db(self, path: Path) -> DbSnapshot:
        return read_database(path, self._bantimes)

    def _installed(self) -> bool:
        return is_installed(self.paths, self.socket_path, self.db_path)

    def read(self) -> Fail2banSnapshot:
        errors = []
        config = None
        if self.socket_path:
            try:
                return self.read_socket(self.paths.root(self.socket_path))
            except (FileNotFoundError, ConnectionRefusedError):
                errors.append(f"fail2ban-server is not running (nothing answers on {self.socket_path})")
            except (OSError, ProtocolError) as exc:
                errors.append(f"socket {self.socket_path}: {type(exc).__name__}: {exc}")
            config = self.config_check()
            if config is not None:
                errors.extend(config_reasons(config))
        database = self.paths.root_or_none(self.db_path) if self.db_path else None
        if database is not None and database.exists():
            try:
                db = self.read_db(database)
            except DatabaseError as exc:
                errors.append(f"database: {exc}")
            else:
                # A clean stop marks every jail disabled (and unbans): only a crashed server's jails remain.
                jails = tuple(
                    Jail(j.name, j.current_bans, permanent_bans=j.permanent_bans)
                    for j in db.jails
                    if j.enabled
                )
                up = self.socket_path is None  # database-only mode: reading it is reaching fail2ban
                error = "; ".join(errors)
                return Fail2banSnapshot(
                    True, up, "database", error, db_version=db.version, jails=jails, config=config
                )
        elif self.db_path and not self.socket_path:
            errors.append(f"database {self.db_path}: not found")
        return Fail2banSnapshot(self._installed(), False, None, "; ".join(errors), config=config)
