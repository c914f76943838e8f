"""Why fail2ban is down, from its own config parser: `fail2ban-client -c DIR -d` dumps the commands the
server would be started with, without talking to it.

fail2ban-server refuses to start when an enabled jail finds no log file (Debian 12's sshd jail reads
/var/log/auth.log, which only a syslog daemon writes), so the socket check alone only says "down".
The dump says which jails are enabled, which of them found no log file (a warning on stderr), and
what their filters match, so "no enabled jail guards sshd" can be told while the server is down too.
Each line is a Python literal (a list), read with ast.literal_eval: nothing in it is executed. The
parser refuses nesting past its limits with MemoryError or RecursionError ("too complex"): such a line
is skipped like any other that is not a literal. Jail names become labels, so they are made valid text.

When the client fails, its last line is a bare `Init of command line failed`: the reason is in the
ERROR lines before it (`Unable to read the filter 'nosuchfilter'`), some of which run on over several
lines (`File contains no section headers.` / `file: '/etc/fail2ban/jail.local', line: 1`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.host.commands import run_command as run_tool
from exporter.sources.host.replies import clean_text

_NO_LOG = re.compile(r"Have not found any log file for (\S+) jail")
# `2026-12-06 05:08:36,360 fail2ban.jailreader     [4624]: ERROR   Unable to read the filter 'x'`
_LOGGED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \S+\s+\[\d+\]: ([A-Z]+)\s+(.*)")
_GENERIC = "Init of command line failed"
_FAILURES = frozenset({"ERROR", "CRITICAL", ""})  # "": a line that is no log record
MAX_REASON = 2000
_REGEX_OPTIONS = ("prefregex", "addfailregex", "addjournalmatch")


@dataclass(frozen=True)
class ConfigCheck:
    jails: tuple[str, ...] = ()  # enabled jails, in the order the config defines them
    without_logs: frozenset[str] = frozenset()  # jails fail2ban found no log file for
    matches: dict[str, tuple[str, ...]] = field(default_factory=dict)  # jail -> regexes, journal matches
    error: str = ""


def parse_dump(stdout: str, stderr: str) -> ConfigCheck:
    jails: list[str] = []
    matches: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if not line.startswith("["):
            continue
        try:
            command = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if not isinstance(command, list) or len(command) < 2:
            continue
        if command[0] == "add" and isinstance(command[1], str):
            jails.append(clean_text(command[1]))
        elif command[0] == "set" and len(command) >= 4 and command[2] in _REGEX_OPTIONS:
            matches.setdefault(clean_text(str(command[1])), []).append(
                " ".join(str(part) for part in command[3:])
            )
    without = frozenset(_NO_LOG.findall(stderr))
    return ConfigCheck(tuple(jails), without, {jail: tuple(found) for jail, found in matches.items()})


def failure_reason(stderr: str, returncode: int | None) -> str:
    """Why fail2ban-client failed, on one line: the message of each of its ERROR records (with the lines
    that carry it on) but the bare closing one; its exit status when it said nothing."""
    records: list[tuple[str, str]] = []
    for line in stderr.splitlines():
        logged = _LOGGED.fullmatch(line.strip())
        if logged:
            records.append((logged[1], logged[2].strip()))
        elif line.strip() and records:
            level, text = records[-1]
            records[-1] = (level, f"{text} {line.strip()}")
        elif line.strip():
            records.append(("", line.strip()))
    failures = [text for level, text in records if level in _FAILURES and text != _GENERIC]
    if failures or records:
        return " ".join("; ".join(failures or [text for _, text in records]).split())[:MAX_REASON]
    return f"exited with status {returncode}" if returncode is not None else "did not run"


def check_config(client: Path, config_dir: Path, timeout: float = 10.0) -> ConfigCheck:
    run = run_tool(client, "-c", str(config_dir), "-d", timeout=timeout)
    if not run.ok:
        return ConfigCheck(error=failure_reason(run.stderr, run.returncode))
    return parse_dump(run.stdout, run.stderr)
