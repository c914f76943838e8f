"""Running host tools (sshd -T, nft, ipset, cscli, fail2ban-client) the one safe way.

An argv list (never a shell), a timeout, no stdin, a minimal C-locale environment so output is
parseable, and no exception: a missing binary, a failure or a hang comes back as a result to report.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 5.0
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one run."""

    returncode: int | None  # None: it could not be started or timed out
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_command(binary: Path | str, *args: str, timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
    """Run `binary args...`; never raises."""
    try:
        proc = subprocess.run(
            [str(binary), *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=_ENV,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CommandResult(None, "", f"{binary} timed out after {timeout:g}s")
    except OSError as exc:
        return CommandResult(None, "", f"{binary}: {exc.strerror or exc}")
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)
