"""The break test's rootfs escape, end to end through the readers that name host files.

`etc/hosts.deny -> /l1 -> ... -> /l40 -> /outside`: resolution inside --path.rootfs stopped after 40 links
and the kernel followed the 41st from the exporter's own root, so `diagnose` printed the outside file's
line as evidence and the metrics carried its mtime (pointed at /etc/shadow: its line count and mtime).
Now the path is refused as the host would refuse it (ELOOP), and the layer says it cannot read it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.collectors.tcpwrappers import TcpWrappersCollector
from exporter.sources.access import AccessOptions, AccessReader, parse_target
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers.reader import TcpWrappersReader

OUTSIDE_LINE = "sshd: 192.0.2.66\n"


@pytest.fixture
def escaping_rootfs(tmp_path: Path) -> HostPaths:
    rootfs, outside = tmp_path / "rootfs", tmp_path / "outside"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "proc").mkdir()
    outside.write_text(OUTSIDE_LINE)
    os.utime(outside, (1_600_000_000, 1_600_000_000))
    os.symlink("/l1", rootfs / "etc/hosts.deny")
    for n in range(1, 41):
        os.symlink(f"/l{n + 1}", rootfs / f"l{n}")
    os.symlink(str(outside), rootfs / "l41")
    return HostPaths(rootfs, rootfs / "proc")


def test_tcpwrappers_collector_reads_nothing_outside(escaping_rootfs: HostPaths) -> None:
    reader = TcpWrappersReader(escaping_rootfs, binaries=())
    with pytest.raises(OSError, match="symbolic links"):
        list(TcpWrappersCollector(reader).collect())  # the collector fails, with the reason
    rules = reader.read().rules
    assert not any("192.0.2.66" in str(rule) for table in (rules.allow, rules.deny) for rule in table.general)
    # as libwrap: a hosts.deny it cannot open (but for ENOENT) matches, so everyone is denied
    assert evaluate(rules, client=ClientInfo("192.0.2.1")).verdict == "deny"


def test_diagnose_says_the_layer_cannot_be_read(escaping_rootfs: HostPaths) -> None:
    options = AccessOptions(firewall=False, sshguard=False, crowdsec=False, authlog=False)
    network = parse_target("192.0.2.66")
    layers = {v.layer: v for v in AccessReader(escaping_rootfs, options).check([network])[network]}
    wrappers = layers["tcp_wrappers"]
    assert wrappers.verdict == "unknown" and "symbolic links" in wrappers.detail, wrappers
    assert not any("192.0.2.66" in line for line in wrappers.evidence)
