"""A real sshd (Debian's, linked with libwrap) refuses exactly whom the evaluator says it refuses.

sshd runs in a network namespace whose private mount namespace bind-mounts the test's own hosts.allow
and hosts.deny over /etc (`sshd: 127.0.0.1` in hosts.deny): the host's files are never written, so
tests running at the same time (and the host's own sshd) see them unchanged; the test checks that
/etc/hosts.deny is byte for byte what it was. The collector runs in the same mount namespace, so it
reads what sshd reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.tcpwrappers import AccessRules, ClientInfo, evaluate, parse_table
from tests.exposition import samples, value
from tests.integration.harness import NetNs, Sshd, require_root_and, ssh_password_attempt

HOSTS_ALLOW = Path("/etc/hosts.allow")
HOSTS_DENY = Path("/etc/hosts.deny")
DENY = "# the live test's own hosts.deny\nsshd: 127.0.0.1\n"

PROBE = """
import json, socket, sys
source, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
try:
    data = sock.recv(64)
    print(json.dumps({"outcome": "banner" if data.startswith(b"SSH-") else "closed", "data": data.decode()}))
except ConnectionResetError:
    print(json.dumps({"outcome": "reset", "data": ""}))
"""

COLLECT = """
from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers.reader import TcpWrappersReader
from tests.exposition import render
print(render(TcpWrappersCollector(TcpWrappersReader(HostPaths())).collect()))
"""


def _host_file(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.fixture
def wrapped(tmp_path: Path) -> Iterator[tuple[NetNs, Sshd, dict[Path, Path]]]:
    require_root_and("/usr/sbin/sshd", "ip", "ssh", "sshpass")
    if not HOSTS_DENY.exists():
        pytest.skip("/etc/hosts.deny is missing (package tcpd or libwrap0 provides it)")
    before = _host_file(HOSTS_DENY)
    files = tmp_path / "etc"
    files.mkdir()
    (files / "hosts.deny").write_text(DENY)
    (files / "hosts.allow").write_text("")
    binds = {HOSTS_DENY: files / "hosts.deny"}
    if HOSTS_ALLOW.exists():  # a bind mount needs its target; a missing hosts.allow is empty anyway
        binds[HOSTS_ALLOW] = files / "hosts.allow"
    try:
        with NetNs(tmp_path / "ns") as netns, Sshd(tmp_path / "sshd", netns=netns, binds=binds) as sshd:
            yield netns, sshd, binds
    finally:
        assert _host_file(HOSTS_DENY) == before, "the host's /etc/hosts.deny changed"


def _probe(netns: NetNs, source: str, port: int) -> dict[str, str]:
    run = netns.run([sys.executable, "-c", PROBE, source, str(port)])
    assert run.returncode == 0, run.stderr
    result: dict[str, str] = json.loads(run.stdout)
    return result


def test_sshd_refuses_whom_the_evaluator_denies(wrapped: tuple[NetNs, Sshd, dict[Path, Path]]) -> None:
    netns, sshd, _ = wrapped
    rules = AccessRules(parse_table("", str(HOSTS_ALLOW)), parse_table(DENY, str(HOSTS_DENY)))
    denied = evaluate(rules, "sshd", client=ClientInfo("127.0.0.1"))
    allowed = evaluate(rules, "sshd", client=ClientInfo("127.0.0.2"))
    assert (denied.verdict, denied.file, denied.line) == ("deny", str(HOSTS_DENY), 2)
    assert allowed.verdict == "allow" and allowed.rule is None

    assert _probe(netns, "127.0.0.2", sshd.port)["outcome"] == "banner"
    refused = _probe(netns, "127.0.0.1", sshd.port)
    assert refused["outcome"] in ("reset", "closed") and not refused["data"], refused
    # sshd holds a refused connection about 5 s before the reset: longer than the helper's ConnectTimeout
    options = [
        "BatchMode=yes",
        "ConnectTimeout=20",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
    ]
    ssh = [
        "ssh",
        "-b",
        "127.0.0.1",
        "-p",
        str(sshd.port),
        *(f"-o{o}" for o in options),
        "nobody@127.0.0.1",
        "true",
    ]
    run = netns.run(ssh)
    assert run.returncode == 255 and "kex_exchange_identification" in run.stderr, run.stderr
    assert "Permission denied" in ssh_password_attempt(netns, sshd.port, source="127.0.0.2")


def test_collector_reads_what_sshd_reads(wrapped: tuple[NetNs, Sshd, dict[Path, Path]]) -> None:
    netns, _, binds = wrapped
    cwd = Path(__file__).resolve().parents[2]
    command = netns.command([sys.executable, "-c", COLLECT], binds=binds)
    run = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    found = samples(run.stdout)
    assert value(found, "ssh_access_tcpwrappers_sshd_honoured") == 1
    assert value(found, "ssh_access_tcpwrappers_sshd_binary_libwrap", binary="/usr/sbin/sshd") == 1
    assert value(found, "ssh_access_tcpwrappers_rules", file=str(HOSTS_DENY), verdict="deny") == 1
    assert value(found, "ssh_access_tcpwrappers_rules", file=str(HOSTS_ALLOW), verdict="allow") == 0
    assert value(found, "ssh_access_tcpwrappers_sshd_denies_everyone") == 0
