"""The metric contract: every family the exporter exposes, read from the golden scrape (expected.prom), plus
the few only a running daemon makes the exporter expose (DAEMON_ONLY), plus Prometheus' own `up`.

Alert rules, dashboards and the README's Metrics section are checked against this (test_deploy.py,
test_dashboards.py), so a name they use is one the exporter really exposes, with no hand-kept list to
forget: a family the code adds or drops changes expected.prom (`make e2e-update`), and with it the contract.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.golden import EXPECTED

STANDARD = frozenset({"up"})  # Prometheus' own series for every target

_SOCKET = (
    "needs fail2ban-server answering on its socket: the golden scrape reads fail2ban's database only "
    "(--collector.fail2ban.socket=), which keeps bans but no jail settings or counters since start"
)
_CONFIG_CHECK = (
    "needs `fail2ban-client -d` on the host's own config, run only with --path.rootfs=/ while the socket "
    "is unreachable"
)
# Families the fixture host cannot produce, each with the reason. tests/unit/test_deploy.py checks that
# the collectors do emit each (from snapshots) and that none of them is in the golden file, so the set
# never keeps a family the fixture has learnt to produce.
DAEMON_ONLY: dict[str, str] = {
    "ssh_access_sshd_config_valid": (
        "needs `sshd -t` (a real sshd with its host keys), run only with --path.rootfs=/"
    ),
    "ssh_access_fail2ban_version_info": _SOCKET,
    "ssh_access_fail2ban_server_start_time_seconds": _SOCKET,
    "ssh_access_fail2ban_sshd_guarded": _SOCKET,
    "ssh_access_fail2ban_jail_guards_sshd": _SOCKET,
    "ssh_access_fail2ban_jail_covers_sshd_port": _SOCKET,
    "ssh_access_fail2ban_jail_log_files_missing": _SOCKET,
    "ssh_access_fail2ban_jail_info": _SOCKET,
    "ssh_access_fail2ban_jail_bans_total": _SOCKET,
    "ssh_access_fail2ban_jail_failures_total": _SOCKET,
    "ssh_access_fail2ban_jail_failing_addresses": _SOCKET,
    "ssh_access_fail2ban_jail_bantime_seconds": _SOCKET,
    "ssh_access_fail2ban_jail_findtime_seconds": _SOCKET,
    "ssh_access_fail2ban_jail_maxretry": _SOCKET,
    "ssh_access_fail2ban_config_valid": _CONFIG_CHECK,
    "ssh_access_fail2ban_config_jail_log_missing": _CONFIG_CHECK,
}


def exposition_families(text: str) -> frozenset[str]:
    """Family names as the exposition's TYPE lines write them (counters with `_total`)."""
    return frozenset(
        line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ") and len(line.split()) > 2
    )


def promql_names(text: str) -> frozenset[str]:
    """Every name PromQL can select in an exposition: the families (a family without samples counts: its
    TYPE line names it) and each sample's name."""
    names = set(exposition_families(text))
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def golden_text() -> str:
    return EXPECTED.read_text()


def golden_families() -> frozenset[str]:
    return exposition_families(golden_text())


def known_families() -> frozenset[str]:
    """The contract's families: the golden file's and the daemon-only ones."""
    return golden_families() | DAEMON_ONLY.keys()


def exported_names() -> frozenset[str]:
    """Every name the exporter exposes, as PromQL selects it."""
    return promql_names(golden_text()) | DAEMON_ONLY.keys()


def known_names() -> frozenset[str]:
    """Every name a rule or a dashboard may select."""
    return exported_names() | STANDARD


# PromQL: the metric names an expression selects, to check rules and dashboards against the contract.
_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # string literals (label values, regexes)
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\boffset\s+-?[0-9a-z]+"),
    re.compile(r"\$\{?\w+\}?"),  # Grafana variables
)
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (function and aggregation names left out)."""
    for pattern in _STRIP:
        expr = pattern.sub(" ", expr)
    return {
        m.group(1)
        for m in _IDENTIFIER.finditer(expr)
        if m.group(2) is None and m.group(1).lower() not in _KEYWORDS
    }
