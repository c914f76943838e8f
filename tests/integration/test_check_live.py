"""`ssh-access-exporter check` run for real: as root on this host, as `nobody`, and on the fixture host.

The lines asserted are the ones a user reads; the words (works, absent, fails, disabled) are a contract.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.registry import registrations
from tests.e2e import fixture, lapi
from tests.e2e.golden import ENVIRONMENT
from tests.integration.harness import NetNs, require_root_and

REPOSITORY = Path(__file__).resolve().parents[2]
CHECK = [sys.executable, "-m", "exporter", "check"]
NAMES = [r.name for r in registrations()]
LINE = re.compile(r"^(?P<name>\S+) +(?P<word>works|absent|fails|disabled)(?: +(?P<reason>.+))?$")
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
REFUSED = re.compile(r"Permission denied|Operation not permitted")


def _lines(out: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, f"not NAME WORD REASON: {line!r}"
        found[match["name"]] = (match["word"], match["reason"] or "")
    assert list(found) == NAMES, out
    return found


def _run(argv: list[str], cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def test_as_root_on_this_host() -> None:
    require_root_and()
    run = _run(CHECK)
    lines = _lines(run.stdout)
    fails = [name for name, (word, _) in lines.items() if word == "fails"]
    assert run.returncode == (1 if fails else 0), run.stdout + run.stderr
    for name in fails:
        assert lines[name][1], f"{name} fails without a reason"
    assert lines["firewall"][0] == "works", run.stdout  # root holds CAP_NET_ADMIN
    assert run.stderr == ""  # the reasons are the lines; no log


# nobody, allowed to read the checkout and its virtualenv wherever they are (a clone under /root is 0700 to
# nobody): CAP_DAC_READ_SEARCH only reads, so every refusal this test looks for still comes.
NOBODY_READING = [*NOBODY, "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def test_as_nobody_the_firewall_fails_for_want_of_cap_net_admin() -> None:
    require_root_and("setpriv")
    for user in (NOBODY, NOBODY_READING):
        probe = _run([*user, sys.executable, "-c", "import exporter.check"], cwd=Path("/"))
        if probe.returncode == 0:
            break
    else:
        pytest.fail(f"nobody cannot run {sys.executable} and the package: {probe.stderr[-300:]}")
    run = _run([*user, *CHECK], cwd=Path("/"))
    lines = _lines(run.stdout)
    word, reason = lines["firewall"]
    assert word == "fails" and REFUSED.search(reason), run.stdout
    assert reason.endswith("(needs CAP_NET_ADMIN, and CAP_NET_RAW for legacy iptables tables)")
    assert run.returncode == 1


def test_every_collector_works_on_the_fixture_host(tmp_path: Path) -> None:
    """The golden fixture host, in a network namespace of its own (the firewall reads the exporter's, empty
    there) with CrowdSec's local API stand-in: every collector works, exit 0."""
    require_root_and("ip", "nft")
    rootfs, procfs = fixture.build(tmp_path / "host")
    flags = [
        f"--path.rootfs={rootfs}",
        f"--path.procfs={procfs}",
        f"--config.file={fixture.CONFIG}",
        "--collector.authlog.files=/var/log/auth.log",
        "--collector.authlog.journal=off",
        "--collector.fail2ban.socket=",
    ]
    with NetNs(tmp_path / "netns") as netns:
        log = (tmp_path / "lapi.log").open("wb")
        api = subprocess.Popen(
            netns.command([sys.executable, "-m", "tests.e2e.lapi"]), stderr=log, cwd=REPOSITORY
        )
        try:
            netns.wait_for_port(lapi.ADDRESS[1])
            run = _run(netns.command([*ENVIRONMENT, *CHECK, *flags]))
        finally:
            api.terminate()
            api.wait(timeout=10)
            log.close()
    lines = _lines(run.stdout)
    assert {name: word for name, (word, _) in lines.items()} == dict.fromkeys(NAMES, "works"), run.stdout
    assert lines["sshd"][1] == "1 listener(s)"
    assert run.returncode == 0


def test_bad_flags_exit_2() -> None:
    run = _run([*CHECK, "--no-such-flag"])
    assert run.returncode == 2
    assert run.stderr.startswith("usage: ssh-access-exporter check [flags]")
