"""The flags every view of the host shares, and the typed options built from them once.

The server and the CLI views (`diagnose`) read the same host with the same settings, so their shared
flags (`--path.*`, `--config.file`, `--log.*`, `--collector.NAME` and every `--collector.X.Y`) are
declared here only, and `Options.from_namespace` turns the parsed namespace into frozen dataclasses,
one per source, with the host paths and the config file validated. Nothing else reads a flag name: the
collectors and `diagnose` take these options, and the sources (exporter/sources/) never see a flag.
A flag is tagged with the views it changes (`add_host_flags(parser, collectors, view=...)`): `diagnose`
neither shows nor accepts the auth log follower's flags, whose defaults it reads instead; `check` takes
every collector switch but, like diagnose, neither the log flags nor the follower's (it writes no state).

Defaults live where the source defines them (`DEFAULT_SOCKET`, `WORK_DIR`, ...) or, when the source has
none, as the dataclass field's default; the flags refer to them. The flag names, defaults, choices and
help texts are a contract (README's Flags table): change them only with it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exporter.config import ConfigError, FileConfig, load_config
from exporter.flagparse import count, non_negative_seconds, positive_seconds, uid
from exporter.logsetup import LEVELS
from exporter.sources.access.reader import PENALTY_WINDOW, AccessOptions
from exporter.sources.crowdsec import BOUNCER_CONFIG, CSCLI
from exporter.sources.denyhosts import WORK_DIR
from exporter.sources.fail2ban.reader import DEFAULT_CONFIG_DIR, DEFAULT_DB, DEFAULT_SOCKET
from exporter.sources.firewall.reader import TIMEOUT as FIREWALL_TIMEOUT
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.processes import DEFAULT_CONFIG
from exporter.sources.sshd.reader import DEFAULT_BINARY

JOURNAL_MODES = ("auto", "on", "off")
LEGACY_READERS = ("python-iptables", "iptables-legacy-save")
LOG_FORMATS = ("logfmt", "json")


# The views that parse the shared flags. A flag tagged with some views only is not accepted by the
# others (nor shown in their --help): they get its default, so Options reads every flag in every view.
SERVE = "serve"
DIAGNOSE = "diagnose"
CHECK = "check"  # `check`: what each collector makes of the host; it keeps no state and no log
ALL_VIEWS = frozenset({SERVE, DIAGNOSE, CHECK})
SERVER_ONLY = frozenset({SERVE})  # how the follower reads and what it exports, not what a layer decides
COLLECTING = frozenset({SERVE, CHECK})  # views that run the collectors, so may switch any of them off
# Collectors that are no layer diagnose may leave out: it always reads sshd, and it has no watchlist.
NOT_LAYERS = frozenset({"sshd", "watchlist"})


def _dest(flag: str) -> str:
    """Where argparse keeps `--a.b-c`: it keeps the dots and turns dashes into underscores."""
    return flag.removeprefix("--").replace("-", "_")


def _value(args: argparse.Namespace, flag: str) -> object:
    return getattr(args, _dest(flag))


def _str(args: argparse.Namespace, flag: str) -> str:
    return str(_value(args, flag))


def _float(args: argparse.Namespace, flag: str) -> float:
    return float(str(_value(args, flag)))


def _int(args: argparse.Namespace, flag: str) -> int:
    return int(str(_value(args, flag)))


@dataclass(frozen=True)
class LogOptions:
    level: str = "info"
    format: str = "logfmt"

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> LogOptions:
        """Read alone too: the server sets up logging before anything else is validated."""
        return cls(_str(args, "--log.level"), _str(args, "--log.format"))


@dataclass(frozen=True)
class SshdOptions:
    binary: str = DEFAULT_BINARY
    config: str = DEFAULT_CONFIG


@dataclass(frozen=True)
class AuthlogOptions:
    files: tuple[str, ...] = ()  # empty: /var/log/auth.log and /var/log/secure when present
    journal: str = "auto"  # one of JOURNAL_MODES; auto: when there is no log file
    from_start: bool = False
    state_dir: Path | None = None
    top_offenders: int = 10


@dataclass(frozen=True)
class Fail2banOptions:
    socket: str = DEFAULT_SOCKET
    db: str = DEFAULT_DB
    socket_owner: int = 0
    timeout: float = 3.0
    config_dir: str = DEFAULT_CONFIG_DIR


@dataclass(frozen=True)
class DenyhostsOptions:
    work_dir: str = WORK_DIR


@dataclass(frozen=True)
class CrowdsecOptions:
    bouncer_config: str = BOUNCER_CONFIG
    cscli: str = CSCLI


@dataclass(frozen=True)
class FirewallOptions:
    timeout: float = FIREWALL_TIMEOUT
    legacy_reader: str = LEGACY_READERS[0]

    @property
    def use_iptc(self) -> bool:
        return self.legacy_reader == "python-iptables"


@dataclass(frozen=True)
class WatchlistOptions:
    penalty_window: float = PENALTY_WINDOW


def _seconds(value: float) -> str:
    return f"{value:g}"


class _Flags:
    """Declares flags for one view: those tagged with it are added to `group`, the others only set
    their default on the parser."""

    def __init__(self, parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, view: str) -> None:
        if view not in ALL_VIEWS:
            raise ValueError(f"no view {view!r} (one of {', '.join(sorted(ALL_VIEWS))})")
        self._parser, self._group, self._view = parser, group, view

    def add(self, flag: str, *, views: frozenset[str] = ALL_VIEWS, **kwargs: object) -> None:
        if self._view in views:
            self._group.add_argument(flag, **kwargs)  # type: ignore[arg-type]
        else:
            self._parser.set_defaults(**{_dest(flag): kwargs["default"]})


def _sshd_flags(flags: _Flags) -> None:
    flags.add("--collector.sshd.binary", default=SshdOptions.binary, help="sshd binary (under rootfs)")
    flags.add("--collector.sshd.config", default=SshdOptions.config, help="sshd config (under rootfs)")


def _authlog_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.authlog.files",
        default="",
        help="comma-separated auth log files (default: /var/log/auth.log and /var/log/secure if present)",
    )
    flags.add(
        "--collector.authlog.journal",
        choices=JOURNAL_MODES,
        default=AuthlogOptions.journal,
        help="read sshd from the systemd journal: auto = when no auth log file exists "
        f"(default {AuthlogOptions.journal})",
    )
    flags.add(
        "--collector.authlog.from-start",
        views=SERVER_ONLY,
        action="store_true",
        default=AuthlogOptions.from_start,
        help="read existing files from their start instead of their end (default: the end, like tail -F)",
    )
    flags.add(
        "--collector.authlog.state-dir",
        views=SERVER_ONLY,
        default="",
        help="directory for read positions, so a restart resumes where it stopped (default: none)",
    )
    flags.add(
        "--collector.authlog.top-offenders",
        views=SERVER_ONLY,
        type=count,
        default=AuthlogOptions.top_offenders,
        help=f"how many top failing addresses to export (0 disables; default {AuthlogOptions.top_offenders})",
    )


def _fail2ban_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.fail2ban.socket",
        default=Fail2banOptions.socket,
        help="fail2ban-server's socket (under rootfs; empty: read only the database)",
    )
    flags.add(
        "--collector.fail2ban.db",
        default=Fail2banOptions.db,
        help="fail2ban's sqlite database, read when the socket is unreachable (under rootfs; empty: never)",
    )
    flags.add(
        "--collector.fail2ban.config-dir",
        default=Fail2banOptions.config_dir,
        help="fail2ban's config, parsed by fail2ban-client -d when the server is unreachable (only with "
        "--path.rootfs=/; empty: never)",
    )
    flags.add(
        "--collector.fail2ban.socket-owner",
        type=uid,
        default=Fail2banOptions.socket_owner,
        help=f"uid the socket and its server must belong to (default {Fail2banOptions.socket_owner}, root)",
    )
    flags.add(
        "--collector.fail2ban.timeout",
        type=positive_seconds,
        default=Fail2banOptions.timeout,
        help="seconds for one whole exchange with fail2ban-server "
        f"(default {_seconds(Fail2banOptions.timeout)})",
    )


def _denyhosts_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.denyhosts.work-dir",
        default=DenyhostsOptions.work_dir,
        help="DenyHosts' WORK_DIR (under rootfs)",
    )


def _crowdsec_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.crowdsec.bouncer-config",
        default=CrowdsecOptions.bouncer_config,
        help="a bouncer's YAML config whose api_url and api_key query the local API (under rootfs; "
        "empty or unusable: run cscli)",
    )
    flags.add("--collector.crowdsec.cscli", default=CrowdsecOptions.cscli, help="cscli binary (under rootfs)")


def _firewall_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.firewall.timeout",
        type=positive_seconds,
        default=FirewallOptions.timeout,
        help="seconds for each firewall tool",
    )
    flags.add(
        "--collector.firewall.legacy-reader",
        choices=LEGACY_READERS,
        default=FirewallOptions.legacy_reader,
        help=f"how legacy tables are read, when there are any (default {FirewallOptions.legacy_reader})",
    )


def _watchlist_flags(flags: _Flags) -> None:
    flags.add(
        "--collector.watchlist.penalty-window",
        type=non_negative_seconds,
        default=WatchlistOptions.penalty_window,
        help="seconds a logged PerSourcePenalties penalty counts as keeping an address out "
        f"(default {_seconds(WatchlistOptions.penalty_window)})",
    )


# Each collector's own flags, listed in --help right after its --collector.NAME switch.
COLLECTOR_FLAGS: dict[str, Callable[[_Flags], None]] = {
    "authlog": _authlog_flags,
    "crowdsec": _crowdsec_flags,
    "denyhosts": _denyhosts_flags,
    "fail2ban": _fail2ban_flags,
    "firewall": _firewall_flags,
    "sshd": _sshd_flags,
    "watchlist": _watchlist_flags,
}


class CollectorSwitch(Protocol):
    """What a `--collector.NAME` switch is made from (exporter.registry's Registration)."""

    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def help(self) -> str: ...


SCRAPE_TIMEOUT = 8.0  # --scrape.timeout's default


def add_scrape_timeout_flag(parser: argparse.ArgumentParser) -> None:
    """--scrape.timeout, for every view that runs a collection (serve, check, textfile)."""
    parser.add_argument(
        "--scrape.timeout",
        type=positive_seconds,
        default=SCRAPE_TIMEOUT,
        help=f"seconds one collector may take before it is reported failed (default {SCRAPE_TIMEOUT:g})",
    )


def add_host_flags(
    parser: argparse.ArgumentParser, collectors: Iterable[CollectorSwitch], view: str = SERVE
) -> None:
    """Flags shared by every view that reads the host: paths, config file, logging, collectors.

    `collectors` are the registered ones (exporter.registry.registrations()): each gets its switch, with
    its default, and then its own flags. `view` (SERVE, DIAGNOSE, CHECK) keeps the flags tagged for it: the
    others are not accepted and keep their default, so --help lists only what changes that view."""
    rootfs, procfs = str(HostPaths.rootfs), str(HostPaths.procfs)
    shared = _Flags(parser, parser.add_argument_group("host"), view)
    shared.add("--path.rootfs", default=rootfs, help=f"host root filesystem mount point (default {rootfs})")
    shared.add("--path.procfs", default=procfs, help=f"procfs mount point (default {procfs})")
    shared.add(
        "--config.file",
        default=None,
        help="YAML file with the watchlist: addresses and networks that must always get in",
    )
    # diagnose prints its findings and sets up no log: these steer the server's log only.
    shared.add(
        "--log.level",
        views=SERVER_ONLY,
        default=LogOptions.level,
        choices=LEVELS,
        help="minimum level logged",
    )
    shared.add(
        "--log.format",
        views=SERVER_ONLY,
        default=LogOptions.format,
        choices=LOG_FORMATS,
        help="log line format",
    )
    flags = _Flags(parser, parser.add_argument_group("collectors"), view)
    declared = set()
    for switch in collectors:
        flags.add(
            f"--collector.{switch.name}",
            views=COLLECTING if switch.name in NOT_LAYERS else ALL_VIEWS,
            action=argparse.BooleanOptionalAction,
            default=switch.enabled,
            help=f"{switch.help} (default: {'enabled' if switch.enabled else 'disabled'})",
        )
        if switch.name in COLLECTOR_FLAGS:
            COLLECTOR_FLAGS[switch.name](flags)
            declared.add(switch.name)
    for name, add_flags in COLLECTOR_FLAGS.items():  # a collector left out still has its options read
        if name not in declared:
            add_flags(flags)


def _host_paths(args: argparse.Namespace) -> HostPaths:
    paths = HostPaths(Path(_str(args, "--path.rootfs")), Path(_str(args, "--path.procfs")))
    for name, path in (("path.rootfs", paths.rootfs), ("path.procfs", paths.procfs)):
        if not path.is_dir():
            raise ConfigError(f"{name}: {path} is not a directory")
    return paths


def _file_config(args: argparse.Namespace) -> FileConfig:
    config_file = _value(args, "--config.file")
    return load_config(Path(str(config_file)) if config_file else None)


def _authlog(args: argparse.Namespace) -> AuthlogOptions:
    files = _str(args, "--collector.authlog.files")
    state_dir = _str(args, "--collector.authlog.state-dir")
    return AuthlogOptions(
        files=tuple(f.strip() for f in files.split(",") if f.strip()),
        journal=_str(args, "--collector.authlog.journal"),
        from_start=bool(_value(args, "--collector.authlog.from-start")),
        state_dir=Path(state_dir) if state_dir else None,
        top_offenders=_int(args, "--collector.authlog.top-offenders"),
    )


@dataclass(frozen=True)
class Options:
    """Everything the shared flags say, typed and validated: what collectors and `diagnose` are built from."""

    paths: HostPaths
    config: FileConfig
    collectors: frozenset[str]  # the enabled ones
    log: LogOptions = LogOptions()
    sshd: SshdOptions = SshdOptions()
    authlog: AuthlogOptions = AuthlogOptions()
    fail2ban: Fail2banOptions = Fail2banOptions()
    denyhosts: DenyhostsOptions = DenyhostsOptions()
    crowdsec: CrowdsecOptions = CrowdsecOptions()
    firewall: FirewallOptions = FirewallOptions()
    watchlist: WatchlistOptions = WatchlistOptions()

    @classmethod
    def from_namespace(cls, args: argparse.Namespace, collectors: Iterable[CollectorSwitch]) -> Options:
        """The options of a namespace parsed with add_host_flags(parser, collectors); ConfigError (naming
        the flag or the config key) when a path is not a directory or the config file is unusable."""
        paths = _host_paths(args)
        config = _file_config(args)
        return cls(
            paths=paths,
            config=config,
            collectors=frozenset(c.name for c in collectors if _value(args, f"--collector.{c.name}")),
            log=LogOptions.from_namespace(args),
            sshd=SshdOptions(_str(args, "--collector.sshd.binary"), _str(args, "--collector.sshd.config")),
            authlog=_authlog(args),
            fail2ban=Fail2banOptions(
                socket=_str(args, "--collector.fail2ban.socket"),
                db=_str(args, "--collector.fail2ban.db"),
                socket_owner=_int(args, "--collector.fail2ban.socket-owner"),
                timeout=_float(args, "--collector.fail2ban.timeout"),
                config_dir=_str(args, "--collector.fail2ban.config-dir"),
            ),
            denyhosts=DenyhostsOptions(_str(args, "--collector.denyhosts.work-dir")),
            crowdsec=CrowdsecOptions(
                _str(args, "--collector.crowdsec.bouncer-config"), _str(args, "--collector.crowdsec.cscli")
            ),
            firewall=FirewallOptions(
                _float(args, "--collector.firewall.timeout"), _str(args, "--collector.firewall.legacy-reader")
            ),
            watchlist=WatchlistOptions(_float(args, "--collector.watchlist.penalty-window")),
        )

    def enabled(self, collector: str) -> bool:
        return collector in self.collectors

    def access(self) -> AccessOptions:
        """What `diagnose` and the watchlist ask of each layer: the collectors' own settings, and only
        the layers whose collector is on."""
        return AccessOptions(
            tcp_wrappers=self.enabled("tcpwrappers"),
            fail2ban=self.enabled("fail2ban"),
            fail2ban_socket=self.fail2ban.socket,
            fail2ban_db=self.fail2ban.db,
            fail2ban_owner=self.fail2ban.socket_owner,
            fail2ban_timeout=self.fail2ban.timeout,
            sshguard=self.enabled("sshguard"),
            denyhosts=self.enabled("denyhosts"),
            denyhosts_work_dir=self.denyhosts.work_dir,
            crowdsec=self.enabled("crowdsec"),
            crowdsec_bouncer_config=self.crowdsec.bouncer_config,
            cscli=self.crowdsec.cscli,
            firewall=self.enabled("firewall"),
            firewall_timeout=self.firewall.timeout,
            use_iptc=self.firewall.use_iptc,
            authlog=self.enabled("authlog"),
            log_files=self.authlog.files,
            journal=self.authlog.journal,
            penalty_window=self.watchlist.penalty_window,
        )
