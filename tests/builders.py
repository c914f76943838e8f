"""Test data builders that several test files share: fixture firewalls, ELF binaries, journal lines,
fail2ban databases.

Shared here, not imported from one test module into another: a test module stays a test module, and
pytest collects each once.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client.metrics_core import Metric

from exporter.sources.firewall import ipset, nft
from exporter.sources.firewall.iptables import parse_save
from exporter.sources.firewall.model import Ruleset

FIREWALL_FIXTURES = Path(__file__).parent / "fixtures" / "firewall"


def firewall_fixture(name: str) -> str:
    """The text of one saved tool output (nft -j, iptables-legacy-save, ipset save) from the fixtures."""
    return (FIREWALL_FIXTURES / name).read_text()


def fixture_ruleset() -> Ruleset:
    """Every fixture firewall in one Ruleset: iptables-legacy (v4 and v6), nft and ipset, as one host."""
    chains = parse_save(firewall_fixture("iptables-legacy-save.txt"), "legacy", "ipv4")
    chains += parse_save(firewall_fixture("ip6tables-legacy-save.txt"), "legacy", "ipv6")
    found = nft.parse_ruleset(firewall_fixture("nft-ruleset.json"))
    return Ruleset(
        (*chains, *found.chains), (*found.sets, *ipset.parse_save(firewall_fixture("ipset-save.txt")))
    )


def elf(needed: list[str]) -> bytes:
    """A minimal 64-bit little-endian ELF: one PT_LOAD, one PT_DYNAMIC with DT_NEEDED and DT_STRTAB."""
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in needed)
    offsets = [1 + sum(len(n) + 1 for n in needed[:i]) for i in range(len(needed))]
    dynamic = b"".join(struct.pack("<qQ", 1, o) for o in offsets) + struct.pack(
        "<qQqQ", 5, 0x1000 + 64 + 112, 0, 0
    )
    header = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    )
    size = 64 + 112 + len(strtab) + len(dynamic)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x1000, 0x1000, size, size, 0x1000)
    dyn = struct.pack("<IIQQQQQQ", 2, 6, 64 + 112 + len(strtab), 0, 0, len(dynamic), len(dynamic), 8)
    return header + load + dyn + strtab + dynamic


def journal_entry(**fields: object) -> str:
    """One line of `journalctl -o json`: an sshd failed password unless `fields` say otherwise."""
    base: dict[str, object] = {
        "__CURSOR": "s=abc;i=1",
        "__REALTIME_TIMESTAMP": "1795464088821031",
        "_HOSTNAME": "vm",
        "_PID": "17684",
        "_COMM": "sshd",
        "SYSLOG_IDENTIFIER": "sshd",
        "MESSAGE": "Failed password for root from 192.0.2.7 port 22 ssh2",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


# fail2ban's sqlite schemas: version 4 (bips, bantime per row) and version 2 (bans only)
V4_SCHEMA = """
CREATE TABLE fail2banDb(version INTEGER);
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
                  bancount INTEGER NOT NULL default 1, data JSON);
CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
                  bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail));
INSERT INTO fail2banDb VALUES (4);
"""
V2_SCHEMA = """
CREATE TABLE fail2banDb(version INTEGER);
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, data JSON);
INSERT INTO fail2banDb VALUES (2);
"""


def make_db(
    path: Path, schema: str, jails: Sequence[tuple[str, int]], rows: Sequence[tuple[object, ...]]
) -> Path:
    """A fail2ban database at `path` in `schema` (V4_SCHEMA or V2_SCHEMA) with these jails and ban rows."""
    with sqlite3.connect(path) as conn:
        conn.executescript(schema)
        conn.executemany("INSERT INTO jails VALUES (?, ?)", jails)
        if "bips" in schema:
            conn.executemany("INSERT INTO bips(ip, jail, timeofban, bantime) VALUES (?, ?, ?, ?)", rows)
        else:
            conn.executemany("INSERT INTO bans(jail, ip, timeofban) VALUES (?, ?, ?)", rows)
    conn.close()
    return path


# Layers a fixture host made by wrapped_sshd_host does not have (the firewall would be the test machine's
# own, the others would look for daemons).
OFFLINE_LAYERS = (
    "--no-collector.firewall",
    "--no-collector.sshguard",
    "--no-collector.crowdsec",
    "--no-collector.authlog",
)


def wrapped_sshd_host(root: Path, deny: str) -> list[str]:
    """A host tree under `root`: hosts.deny holding `deny`, and a listening sshd linked with libwrap (so
    hosts.deny applies to it); returns the exporter's flags for it (rootfs, procfs, OFFLINE_LAYERS)."""
    from tests.procfs_tree import add_binary, add_process, make_procfs, set_children  # noqa: PLC0415

    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts.deny").write_text(deny)
    procfs = make_procfs(root / "proc")
    binary = add_binary(root)
    binary.write_bytes(elf(["libwrap.so.0", "libc.so.6"]))
    add_process(procfs, 900, 1, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", exe=binary)
    set_children(procfs, 900, [])
    return [f"--path.rootfs={root}", f"--path.procfs={procfs}", *OFFLINE_LAYERS]


class HeldCollector:
    """A collector that counts its runs and can be held in each (clear `release`) until released: to show
    which requests share a run and which wait for one. A subclass says what a run yields (`families`)."""

    hold_s = 10.0  # the longest a run is held

    def __init__(self) -> None:
        self.runs = 0
        self.release = threading.Event()
        self.release.set()

    def collect(self) -> Iterator[Metric]:
        self.runs += 1
        self.release.wait(self.hold_s)
        yield from self.families()

    def families(self) -> Iterator[Metric]:
        raise NotImplementedError
