"""Why fail2ban is down, from its own config parser: `fail2ban-client -c DIR -d` dumps the commands the
server would be started with, without talking to it.

fail2ban-server refuses to start when an enabled jail finds no log file (Debian 12's sshd jail reads
/var/log/auth.log, which only a syslog daemon writes), so the socket check alone only says "down".
The dump says which jails are enabled, which of them found no log file (a warning on stderr), and
what their filters match, so "no enabled jail guards sshd" can be told while the server is down too.
Each line is a Python literal (a list), read with ast.literal_eval: nothing in it is executed. The
parser refuses nesting past its limits with MemoryError or RecursionError ("too complex"): such a line
is skipped like any other that is not a literal. Jail names become labels, so they are made valid text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources.host.commands import run_command as run_tool
from exporter.sources.host.replies import clean_text

_NO_LOG = re.compile(r"Have not found any log file for (\S+) jail")
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


def check_config(client: Path, config_dir: Path, timeout: float = 10.0) -> ConfigCheck:
    run = run_tool(client, "-c", str(config_dir), "-d", timeout=timeout)
    if not run.ok:
        return ConfigCheck(error=(run.stderr.strip().splitlines() or ["failed"])[-1][:200])
    return parse_dump(run.stdout, run.stderr)
