"""`ssh-access-exporter check [--json]`: can each collector read this host, with these privileges?

One collection runs exactly as the server's first scrape would (the same Options and Context, every
enabled collector through ScrapeCollector with its deadline), then each of the registered collectors
gets one line, its name, one word and why:

    authlog      works     reads /var/log/auth.log
    crowdsec     absent    none of /etc/crowdsec, /usr/bin/cscli, ... under /
    fail2ban     fails     socket /run/fail2ban/fail2ban.sock: Permission denied; ...
    watchlist    disabled

The words are a contract (outside checks grep them):
  works     the collector read its source (its reason, when there is one, says what it found);
  absent    the collector's source is not on this host, which is no fault: nothing to report;
  fails     the source is there but cannot be read (the reason is the collector's own message, or a ban
            tool's reason for being down): the server would report `collector_success 0` or
            `ban_source_up 0`;
  disabled  switched off with --no-collector.NAME (or off by default).
Exit 0 when no enabled collector fails, 1 when one does, 2 on bad flags or config.

When a source counts as absent, per collector (decided from what each exposes, not from guesses):
  fail2ban, sshguard, denyhosts, crowdsec: the ban tool's own rule (BanCollector.state: `absent` when
      none of its install markers, files, processes or sets is there); down is `fails`;
  sshd: neither the binary (--collector.sshd.binary under rootfs) nor a listener process is there; an
      installed sshd that is not running works (the server reports it: that is a metric, not a read
      failure), and the line says so;
  tcpwrappers: neither /etc/hosts.allow nor /etc/hosts.deny exists and no sshd binary is linked with
      libwrap;
  watchlist: --config.file holds no watchlist entry;
  authlog: never absent: with no source sshd's lines reach nothing, the issue-14 rule, so it fails;
  firewall: never absent: every Linux host has a packet filter to read, so it works or fails.

`collect_once` and `host_collectors` are shared with `textfile`, which writes that one collection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import NoReturn, TextIO

from prometheus_client.metrics_core import Metric

from exporter.collectors.families.bans import BanCollector
from exporter.config import ConfigError
from exporter.flagparse import FlagParser
from exporter.options import CHECK, CollectorSwitch, Options, add_host_flags, add_scrape_timeout_flag
from exporter.registry import Collector, Context, PartialFailureError, build_collectors, registrations
from exporter.scrape import Collection, CollectorStatus, ScrapeCollector
from exporter.sources import crowdsec, denyhosts, sshguard
from exporter.sources.fail2ban import reader as fail2ban

WORKS, ABSENT, FAILS, DISABLED = "works", "absent", "fails", "disabled"
EXIT_OK, EXIT_FAILS = 0, 1
_SPACE = re.compile(r"\s+")


class _Recorder:
    """A collector as ScrapeCollector runs it, keeping what it yielded (its families stand for what it
    found) and whether its run is still going (cut off by the deadline: its thread cannot be joined)."""

    def __init__(self, inner: Collector) -> None:
        self.inner = inner
        self.families: list[Metric] = []
        self.running = False

    def collect(self) -> Iterator[Metric]:
        self.running = True
        try:
            for metric in self.inner.collect():
                self.families.append(metric)
                yield metric
        except PartialFailureError as exc:
            self.families.extend(exc.families)
            raise
        finally:
            self.running = False


@dataclass(frozen=True)
class OneCollection:
    """One scrape of the built collectors: what /metrics would have exposed, and per collector its status
    and families."""

    collection: Collection
    yielded: dict[str, list[Metric]]
    overran: bool  # a collector was cut off at the deadline and still runs

    @property
    def status(self) -> dict[str, CollectorStatus]:
        return self.collection.status


@contextmanager
def host_collectors(options: Options) -> Iterator[dict[str, Collector]]:
    """The enabled collectors built as the server builds them, closed (followers stopped, state saved)
    on leaving. ConfigError when a factory refuses its options."""
    context = Context(options)
    try:
        collectors = build_collectors(context)
        try:
            yield collectors
        finally:
            for collector in collectors.values():
                close = getattr(collector, "close", None)
                if callable(close):
                    close()
    finally:
        context.close()


def collect_once(collectors: dict[str, Collector], timeout: float) -> OneCollection:
    """One collection through ScrapeCollector, each collector with the server's deadline."""
    recorders = {name: _Recorder(collector) for name, collector in collectors.items()}
    scraper = ScrapeCollector(dict(recorders), timeout=timeout)
    try:
        for _ in scraper.collect():
            pass
    finally:
        scraper.close()
    collection = scraper.last_collection()
    assert collection is not None  # collect() ran to its end
    yielded = {name: recorder.families for name, recorder in recorders.items()}
    return OneCollection(collection, yielded, any(r.running for r in recorders.values()))


@dataclass(frozen=True)
class Finding:
    collector: str
    status: str  # WORKS, ABSENT, FAILS or DISABLED
    reason: str = ""


def _samples(families: Iterable[Metric], name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, float(s.value)) for f in families if f.name == name for s in f.samples]


def _none_of(options: Options, things: Iterable[str]) -> str:
    listed = ", ".join(dict.fromkeys(t for t in things if t))
    return f"none of {listed} under {options.paths.rootfs}"


def _ban_absent(name: str, options: Options) -> str:
    """What each ban tool's reader looked for and did not find (its `installed` rule, in words)."""
    if name == "fail2ban":
        return _none_of(options, (*fail2ban.INSTALL_MARKERS, options.fail2ban.socket, options.fail2ban.db))
    if name == "sshguard":
        return (f"{_none_of(options, sshguard.INSTALL_MARKERS)}, no {sshguard.BLOCKER} process, "
                "no sshguard set or hosts.allow block")  # fmt: skip
    if name == "denyhosts":
        marked = f"no DenyHosts entries in {denyhosts.HOSTS_DENY}"
        return f"{_none_of(options, (denyhosts.CONFIG, options.denyhosts.work_dir))}, no process, {marked}"
    if name == "crowdsec":
        c = options.crowdsec
        return _none_of(options, (*crowdsec.INSTALL_MARKERS, c.cscli, c.bouncer_config))
    return "not installed"


def _sshd(families: list[Metric], options: Options) -> tuple[str, str]:
    listeners = sum(v for _, v in _samples(families, "ssh_access_sshd_listeners"))
    activated = any(v for _, v in _samples(families, "ssh_access_sshd_socket_activated"))
    binary = options.sshd.binary
    if not listeners and not activated and not options.paths.exists(binary):
        return ABSENT, f"no {binary} under {options.paths.rootfs} and no sshd listener process"
    if listeners:
        return WORKS, f"{listeners:g} listener(s)"
    if activated:
        return WORKS, "socket-activated: no listener process until the first connection"
    return WORKS, "sshd is not running (no listener process)"


def _authlog(families: list[Metric], _options: Options) -> tuple[str, str]:
    read = [labels["source"] for labels, v in _samples(families, "ssh_access_authlog_source_up") if v]
    return WORKS, f"reads {', '.join(read)}" if read else ""


def _tcpwrappers(families: list[Metric], options: Options) -> tuple[str, str]:
    mtimes = _samples(families, "ssh_access_tcpwrappers_file_modification_timestamp_seconds")
    files = [labels["file"] for labels, _ in mtimes]
    binaries = _samples(families, "ssh_access_tcpwrappers_sshd_binary_libwrap")
    linked = [labels["binary"] for labels, v in binaries if v]
    if not files and not linked:
        return ABSENT, (f"no /etc/hosts.allow or /etc/hosts.deny under {options.paths.rootfs}, "
                        "no sshd linked with libwrap")  # fmt: skip
    if not linked:
        return WORKS, "sshd is not linked with libwrap: hosts.allow and hosts.deny do not apply to it"
    return WORKS, f"reads {', '.join(files)}" if files else ""


def _watchlist(_families: list[Metric], options: Options) -> tuple[str, str]:
    if not options.config.watchlist:
        return ABSENT, "no watchlist entries (--config.file)"
    return WORKS, f"{len(options.config.watchlist)} watched address(es) or network(s)"


# For a collector that ran to its end: absent, or works with what it found (the rules of the docstring).
_RULES: dict[str, Callable[[list[Metric], Options], tuple[str, str]]] = {
    "authlog": _authlog,
    "sshd": _sshd,
    "tcpwrappers": _tcpwrappers,
    "watchlist": _watchlist,
}


# What each collector's source needs when the reason is a refused permission (README, Permissions).
NEEDS = {
    "authlog": "needs root, CAP_DAC_READ_SEARCH or the adm group to read the auth log or journal",
    "crowdsec": "needs root for cscli's config or the bouncer's key",
    "denyhosts": "needs root to read its work directory",
    "fail2ban": "needs root: fail2ban's socket (0700) and database (0600) are root's",
    "firewall": "needs CAP_NET_ADMIN, and CAP_NET_RAW for legacy iptables tables",
    "sshguard": "needs CAP_NET_ADMIN to list nft sets and ipsets",
    "tcpwrappers": "needs read access to hosts.allow, hosts.deny and the sshd binary",
}
_REFUSED = re.compile(r"Permission denied|Operation not permitted|you must be root", re.IGNORECASE)
# ScrapeCollector words a raised error `TypeName: message`: the type says nothing to the reader.
_ERROR_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception): ")


def _reason(name: str, text: str) -> str:
    """One line, without the exception's type, and what is needed when a permission was refused."""
    line = _ERROR_TYPE.sub("", _SPACE.sub(" ", text).strip())
    if _REFUSED.search(line) and name in NEEDS:
        line = f"{line} ({NEEDS[name]})"
    return line


def classify(name: str, collector: Collector, status: CollectorStatus, families: list[Metric],
             options: Options) -> Finding:  # fmt: skip
    """The verdict of one enabled collector after its run."""
    if status.success is not True:
        return Finding(name, FAILS, _reason(name, status.error or "no result"))
    if isinstance(collector, BanCollector) and collector.state is not None:
        state = collector.state
        if state.status == "absent":
            return Finding(name, ABSENT, _ban_absent(name, options))
        if state.status == "down":
            return Finding(name, FAILS, _reason(name, state.reason))
        return Finding(name, WORKS)
    rule = _RULES.get(name)
    word, reason = rule(families, options) if rule else (WORKS, "")
    return Finding(name, word, _reason(name, reason))


def check(options: Options, names: Sequence[str], timeout: float) -> tuple[list[Finding], bool]:
    """Every registered collector's finding (`names`, in order), and whether a run overran its deadline."""
    with host_collectors(options) as collectors:
        once = collect_once(collectors, timeout)
        findings = [
            classify(name, collectors[name], once.status[name], once.yielded[name], options)
            if name in collectors
            else Finding(name, DISABLED)
            for name in names
        ]
    return findings, once.overran


def render(findings: Sequence[Finding]) -> str:
    """The aligned lines: NAME, the word, the reason."""
    width = max((len(f.collector) for f in findings), default=0)
    words = max(len(word) for word in (WORKS, ABSENT, FAILS, DISABLED))
    return "".join(
        f"{f'{f.collector:<{width}}  {f.status:<{words}}  {f.reason}'.rstrip()}\n" for f in findings
    )


def exit_code(findings: Iterable[Finding]) -> int:
    return EXIT_FAILS if any(f.status == FAILS for f in findings) else EXIT_OK


def check_parser(collectors: Iterable[CollectorSwitch]) -> FlagParser:
    parser = FlagParser(
        prog="ssh-access-exporter check",
        description="For each collector: does it work on this host with these privileges (works, absent, "
        "fails, disabled, and why). Exit 0 when no enabled collector fails, 1 when one does, 2 on bad flags.",
        allow_abbrev=False,
    )
    parser.add_argument("--json", action="store_true", help='print {"collectors": [{"collector", "status", '
                        '"reason"}]}')  # fmt: skip
    add_scrape_timeout_flag(parser)
    add_host_flags(parser, collectors, CHECK)
    return parser


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    switches = registrations()
    parser = check_parser(switches)
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # the reasons are printed; nothing else to say
    try:
        options = Options.from_namespace(args, switches)
        findings, overran = check(options, [s.name for s in switches], float(getattr(args, "scrape.timeout")))
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    stream = out or sys.stdout
    if args.json:
        stream.write(json.dumps({"collectors": [asdict(f) for f in findings]}) + "\n")
    else:
        stream.write(render(findings))
    code = exit_code(findings)
    if overran and out is None:
        exit_now(code)
    return code


def exit_now(code: int) -> NoReturn:
    """Ends the process without joining threads: a collector cut off at its deadline still hangs in a
    read (a dead peer's socket, say), and Python would wait for its pool thread at exit forever."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
