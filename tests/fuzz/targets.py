"""Every parser of outside text, as one fuzz target each: bytes in, the parser's documented errors allowed.

One table serves both fuzzers: the hypothesis properties in tests/unit/test_fuzz_*.py (run by `make test`)
and the coverage-guided atheris runs (`make fuzz`, tests/fuzz/run.py). A target feeds the bytes to its
parser the way the exporter's own caller does (decoded as the reader decodes them, the same follow-up
calls), and `allowed` is what that caller catches: any other exception escaping is a finding, and so is a
failed assertion (the fast auth-log paths disagreeing with the general one).

`seeds` are the fixture files (tests/fixtures/...) an atheris corpus starts from.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.config import ConfigError, parse_config
from exporter.sources.authlog import stats
from exporter.sources.authlog.classify import SSHD_IDENTS, classify
from exporter.sources.authlog.fast import fastscan, linescan
from exporter.sources.authlog.framing import Framer, parse_line
from exporter.sources.authlog.journal import parse_journal_json
from exporter.sources.authlog.ops import Op
from exporter.sources.authlog.stats import Stats
from exporter.sources.crowdsec import CrowdsecError, parse_api_decisions, parse_cscli_alerts
from exporter.sources.fail2ban.protocol import END, ProtocolError, decode
from exporter.sources.firewall import ipset, iptables, nft
from exporter.sources.sshd.config import EffectiveConfig, parse_config_files, parse_sshd_t
from exporter.sources.sshd.processes import (
    config_from_argv,
    connection_stage,
    parse_listener_title,
    title_of,
)
from exporter.sources.sshd.sockets import listening_inodes, parse_proc_net_tcp
from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from exporter.sources.tcpwrappers.reader import summarize
from exporter.sources.tcpwrappers.syntax import TooManyRulesError, pattern_tokens
from exporter.web.config import parse_web_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = 1795500000.0
MAIN_CONFIG = "/etc/ssh/sshd_config"
Scanner = Callable[[str, Framer, Callable[[], float]], list[Op]]
CLIENTS = ("192.0.2.7", "2001:db8::9", "::ffff:198.51.100.8")


@dataclass(frozen=True)
class Target:
    """One parser: `run` takes the raw bytes; exceptions of `allowed` are the parser saying no."""

    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...] = ()
    seeds: tuple[str, ...] = ()  # globs under tests/fixtures

    def __call__(self, data: bytes) -> None:
        with contextlib.suppress(*self.allowed):
            self.run(data)


def _text(data: bytes) -> str:
    """As the tailers and readers decode what they read."""
    return data.decode("utf-8", "replace")


def _clock() -> float:
    return NOW


# ---- auth log --------------------------------------------------------------------------------------


def authlog_lines(data: bytes) -> None:
    """Framing (stateless and stateful) and classify on every line."""
    framer = Framer(clock=_clock)
    lines = _text(data).split("\n")
    for line, record in zip(lines, framer.parse_many(lines), strict=True):
        alone = parse_line(line)
        for found in (alone, record):
            if found is not None:
                classify(found)


def newline_lines(text: str) -> list[str]:
    """`\\n`-separated lines with their newline, as the tailers cut them (not str.splitlines: `\\r`,
    `\\x1c` and friends stay inside a line)."""
    pieces = text.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def counted(text: str, scanner: Scanner | None) -> object:
    """What Stats holds after the text: fed as records (framing + classify) when `scanner` is None, else
    through feed_text with that chunk scanner in place of the compiled-or-not default."""
    counts, framer = Stats(clock=_clock), Framer(clock=_clock)
    if scanner is None:
        counts.feed_batch(framer.parse_many(newline_lines(text)), "f")
    else:
        default, stats.scan = stats.scan, scanner  # type: ignore[assignment]  # a def, set as tests do
        try:
            counts.feed_text(text, "f", framer)
        finally:
            stats.scan = default
    return counts.snapshot(now=NOW), list(counts.pid_map().items()), counts.latest_time


def authlog_fastpaths(data: bytes) -> None:
    """Both chunk scanners count exactly what framing + classify count, whatever the text."""
    text = _text(data)
    general = counted(text, None)
    for scanner in (fastscan.scan, linescan.scan):
        assert counted(text, scanner) == general, f"{scanner.__module__} disagrees on {text[:300]!r}"


def journal_json(data: bytes) -> None:
    record, _ = parse_journal_json(data)
    if record is not None and (record.ident is None or record.ident in SSHD_IDENTS):
        classify(record)


# ---- tcp wrappers ----------------------------------------------------------------------------------


def tcpwrappers(data: bytes) -> None:
    """hosts.deny text, every `/path` pattern file the same text, evaluated for a few clients."""
    text = _text(data)
    table = parse_table(text, "/etc/hosts.deny")
    patterns = pattern_tokens(text)
    rules = AccessRules(parse_table("", "/etc/hosts.allow"), table, lambda _path: patterns)
    summarize(rules)
    for address in CLIENTS:
        evaluate(rules, client=ClientInfo(address, server_address="203.0.113.1"))


# ---- sshd ------------------------------------------------------------------------------------------


def sshd_config(data: bytes) -> None:
    """The text as the main file and as every file an Include names (Include loops included)."""
    text = _text(data)
    parsed = parse_config_files(MAIN_CONFIG, lambda _path: text, lambda pattern: [pattern])
    if parsed.files and not parsed.aborted:
        EffectiveConfig.from_options(parsed.options, "file", None, tuple(parsed.files))


def sshd_t(data: bytes) -> None:
    EffectiveConfig.from_options(parse_sshd_t(_text(data)), "sshd_t", None, (MAIN_CONFIG,))


def sshd_titles(data: bytes) -> None:
    """A /proc/PID/cmdline as the process reader reads it, then every title parser."""
    title = title_of(data)
    parsed = parse_listener_title(title)
    config_from_argv(parsed.argv if parsed else title)
    connection_stage(title, title.split(" "))


def proc_net_tcp(data: bytes) -> None:
    parse_proc_net_tcp(data)
    listening_inodes(data)


# ---- peers' replies --------------------------------------------------------------------------------


def fail2ban_reply(data: bytes) -> None:
    """A framed reply; whatever decodes must print in bounded time (messages repr it)."""
    repr(decode(data if data.endswith(END) else data + END))


def crowdsec_api(data: bytes) -> None:
    parse_api_decisions(_text(data))


def crowdsec_cscli(data: bytes) -> None:
    parse_cscli_alerts(_text(data))


def nft_json(data: bytes) -> None:
    nft.parse_ruleset(_text(data))


def ipset_save(data: bytes) -> None:
    ipset.parse_save(_text(data))


def iptables_save(data: bytes) -> None:
    iptables.parse_save(_text(data), "legacy", "ipv4")


# ---- the exporter's own files ----------------------------------------------------------------------


def web_config(data: bytes) -> None:
    parse_web_config(data.decode("utf-8"), Path("/nonexistent"))


def config_file(data: bytes) -> None:
    parse_config(data.decode("utf-8"))


TARGETS: dict[str, Target] = {
    "authlog_lines": Target(authlog_lines, seeds=("authlog/*.log",)),
    "authlog_fastpaths": Target(authlog_fastpaths, seeds=("authlog/*.log",)),
    "journal_json": Target(journal_json),  # the journal fixture is export format: seeds built below
    # TooManyRulesError: the reader reports the file unreadable (tcpwrappers/reader.py).
    "tcpwrappers": Target(tcpwrappers, (TooManyRulesError,), ("denyhosts/etc/hosts.deny",)),
    # ValueError, IndexError: the sshd reader logs the config as unreadable (sshd/reader.py).
    "sshd_config": Target(sshd_config, (ValueError, IndexError), ("sshd_config/*/etc/ssh/sshd_config",)),
    "sshd_t": Target(sshd_t, (ValueError, IndexError), ("sshd_config/valid/etc/ssh/sshd_config",)),
    "sshd_titles": Target(sshd_titles),
    "proc_net_tcp": Target(proc_net_tcp),
    # TimeoutError: the session's deadline (none here); ProtocolError: what the readers catch.
    "fail2ban_reply": Target(fail2ban_reply, (ProtocolError,)),
    # the reader wraps ValueError (a UnicodeDecodeError too) and CrowdsecError into its own error.
    "crowdsec_api": Target(crowdsec_api, (CrowdsecError, ValueError), ("crowdsec/api_*.json",)),
    "crowdsec_cscli": Target(crowdsec_cscli, (CrowdsecError, ValueError), ("crowdsec/cscli_*.json",)),
    "nft_json": Target(nft_json, (nft.NftError,), ("firewall/nft-*.json",)),
    "ipset_save": Target(ipset_save, (ipset.IpsetError,), ("firewall/ipset-*.txt",)),
    "iptables_save": Target(iptables_save, (iptables.IptablesError,), ("firewall/*tables-*.txt",)),
    # UnicodeDecodeError: load_*config reports the file unreadable; ConfigError: start-up refuses it.
    "web_config": Target(web_config, (ConfigError, UnicodeDecodeError)),
    "config_file": Target(config_file, (ConfigError, UnicodeDecodeError)),
}


def seed_inputs(name: str) -> list[bytes]:
    """The fixture files a target's corpus starts from, and a few built here where no fixture exists."""
    found = [path.read_bytes() for pattern in TARGETS[name].seeds for path in sorted(FIXTURES.glob(pattern))]
    return found + [s.encode() if isinstance(s, str) else s for s in _BUILT_SEEDS.get(name, ())]


_BUILT_SEEDS: dict[str, tuple[str | bytes, ...]] = {
    "journal_json": (
        '{"__CURSOR":"s=1","MESSAGE":"Invalid user a from 192.0.2.7 port 22","SYSLOG_IDENTIFIER":"sshd",'
        '"_PID":"42","__REALTIME_TIMESTAMP":"1795500000000000"}\n',
    ),
    "sshd_titles": (
        b"sshd: /usr/sbin/sshd -D -f /etc/ssh/sshd_config [listener] 0 of 10-100 startups\0\0",
        b"sshd-session: root [priv]\0",
        b"/usr/sbin/sshd\0-D\0",
    ),
    "proc_net_tcp": (
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        b"   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1\n"
        b"   1: 0100007F:0016 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 0 1\n",
    ),
    "fail2ban_reply": (
        pickle.dumps((0, [["Currently failed", 1], ["Banned IP list", ["192.0.2.7"]]]), 4) + END,
        pickle.dumps((0, ["sshd"]), 4) + END,
    ),
    "web_config": (
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS12\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "basic_auth_users:\n  alice: $2y$10$abcdefghijklmnopqrstuuUuVBeaBOi.HuU0nhUjj6GrzPU6rqnaW\n",
    ),
    "config_file": ("watchlist:\n  - 192.0.2.7\n  - 2001:db8::/32\n",),
    "tcpwrappers": (
        "sshd: 192.0.2.7 198.51.100.0/255.255.255.0 [2001:db8::]/32 .example. /etc/pat\n"
        "ALL EXCEPT sshd: KNOWN : spawn /bin/true\nsshd: 203.0.113. \\\n  192.0.2.* : deny\n",
    ),
}
