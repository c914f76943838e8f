"""The reference for TCP wrappers: Debian's `tcpdmatch`, run inside an empty network namespace.

tcpdmatch reads hosts.allow and hosts.deny from its working directory. A hostname pattern makes it
look the client up; in a namespace with nothing but loopback that lookup fails at once and nothing
leaves the machine.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.integration.harness import NetNs

VERDICTS = {"granted": "allow", "denied": "deny", "delegated": "deny"}  # delegated: `twist`


def tcpdmatch_verdicts(
    netns: NetNs, directory: Path, addresses: Sequence[str], daemon: str = "sshd"
) -> list[str]:
    """One `tcpdmatch -d DAEMON ADDRESS` per address (one shell for all), as allow/deny."""
    script = "; ".join(f"tcpdmatch -d {shlex.quote(daemon)} {shlex.quote(a)} 2>/dev/null" for a in addresses)
    run = subprocess.run(
        netns.command(["sh", "-c", script]),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = [line.split()[-1] for line in run.stdout.splitlines() if line.startswith("access:")]
    assert len(found) == len(addresses), run.stdout + run.stderr
    return [VERDICTS[v] for v in found]
