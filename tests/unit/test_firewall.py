"""Firewall parsers and the enforcement check on fixture outputs of nft -j, iptables-legacy-save, ipset.

Fixtures were made with the real tools in a network namespace (tests/fixtures/firewall/).
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.collectors.firewall import FirewallCollector, families, owner
from exporter.sources.fail2ban.database import current_addresses
from exporter.sources.firewall import ipset, legacy_entries, nft
from exporter.sources.firewall.bans import Bans, UnenforcedCounts, fail2ban_bans, sshguard_bans
from exporter.sources.firewall.enforcement import Blocker, Enforcement, blockers
from exporter.sources.firewall.iptables import IptablesError, complement, parse_rule, parse_save
from exporter.sources.firewall.model import Chain, Rule, Ruleset, parse_ports
from exporter.sources.firewall.reader import FirewallError, FirewallReader
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshd.reader import SshdReader
from tests.builders import firewall_fixture, fixture_ruleset
from tests.exposition import promtool_check, render, samples, value


def _chain(ruleset: Ruleset, table: str, name: str) -> Chain:
    return next(c for c in ruleset.chains if c.table == table and c.name == name)


# -- parsers -----------------------------------------------------------------------------------------
def test_legacy_save_chains_policies_and_rules() -> None:
    chains = {
        (c.table, c.name): c
        for c in parse_save(firewall_fixture("iptables-legacy-save.txt"), "legacy", "ipv4")
    }
    assert set(chains) == {
        ("raw", "PREROUTING"),
        ("raw", "OUTPUT"),
        ("filter", "INPUT"),
        ("filter", "FORWARD"),
        ("filter", "OUTPUT"),
        ("filter", "f2b-sshd"),
        ("filter", "unused"),
    }
    inp = chains[("filter", "INPUT")]
    assert (inp.hook, inp.policy, len(inp.rules)) == ("input", "drop", 5)
    ipset_rule, jump, lab, negated, udp = inp.rules
    assert ipset_rule == Rule("reject", source_sets=("ipset f2b-sshd",), ports=((2222, 2222),))
    assert (jump.verdict, jump.target, jump.ports) == ("jump", "f2b-sshd", ((22, 22), (2222, 2222)))
    assert (lab.verdict, lab.sources, lab.ports) == ("drop", ("203.0.113.0/24",), ((2222, 2222),))
    assert negated.negated and negated.sources is None
    assert udp.ports == ()  # udp never reaches sshd
    assert chains[("filter", "f2b-sshd")].rules[0].sources == ("192.0.2.30",)
    assert chains[("filter", "f2b-sshd")].hook is None


def test_save_counters_and_quoted_comments() -> None:
    rule = '[12:720] -A INPUT -s 192.0.2.1/32 -m comment --comment "a -j b" -j DROP'
    text = f"*filter\n:INPUT ACCEPT [5:300]\n{rule}\nCOMMIT\n"
    (chain,) = parse_save(text, "legacy", "ipv4")
    assert (chain.rules[0].packets, chain.rules[0].bytes, chain.rules[0].verdict) == (12, 720, "drop")


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "*filter\n-A INPUT -j DROP\n",
        "*filter\n:INPUT ACCEPT [0:0]\n[x:y] -A INPUT -j DROP\nCOMMIT\n",
        "-A INPUT -j DROP\n",
        "*filter\n:INPUT\nCOMMIT\n",
    ],
)
def test_save_garbage_is_an_error(text: str) -> None:
    with pytest.raises(IptablesError):
        parse_save(text, "legacy", "ipv4")


def test_rule_tokens() -> None:
    assert parse_rule(["-p", "tcp", "!", "--dport", "22", "-j", "DROP"], ()).ports == ((0, 21), (23, 65535))
    assert parse_rule(["-m", "set", "!", "--match-set", "x", "src", "-j", "DROP"], ()).negated
    assert parse_rule(["-m", "set", "--match-set", "x", "dst", "-j", "DROP"], ()).source_sets == ()
    assert parse_rule(["-j", "LOG"], ()).verdict == ""
    assert parse_rule(["-g", "mine"], {"mine"}) == Rule("goto", "mine")
    assert parse_rule(["-p", "sctp", "--dport", "22", "-j", "DROP"], ()).ports == ()


def test_ports_and_complement() -> None:
    assert parse_ports("22,2222:2223,ssh") == ((22, 22), (2222, 2223))
    assert parse_ports("1000-1002") == ((1000, 1002),)
    assert complement(((0, 10), (65535, 65535))) == ((11, 65534),)


def test_nft_ruleset() -> None:
    found = nft.parse_ruleset(firewall_fixture("nft-ruleset.json"))
    assert not found.compat
    sets = {s.key: s for s in found.sets}
    assert sets["inet f2b-table addr-set-sshd"].elements == ("192.0.2.10", "192.0.2.11")
    assert sets["inet f2b-table addr6-set-sshd"].family == "ipv6"
    assert sets["ip sshguard attackers"].elements == ("198.51.100.0/24", "203.0.113.5-203.0.113.9")
    chains = {(c.table, c.name): c for c in found.chains}
    f2b = chains[("inet f2b-table", "f2b-chain")]
    assert (f2b.hook, f2b.family) == ("input", "inet")
    assert f2b.rules[0] == Rule(
        "reject", source_sets=("inet f2b-table addr-set-sshd",), ports=((22, 22), (2222, 2222))
    )
    generic = chains[("inet generic", "ssh")]
    assert generic.rules[0].sources == ("192.0.2.50", "192.0.2.64/26")
    assert (generic.rules[0].packets, generic.rules[0].bytes) == (7, 420)
    assert generic.rules[1].negated
    assert chains[("inet generic", "in")].policy == "drop"
    assert chains[("inet generic", "in")].rules[2].ports == ()  # udp


def test_nft_marks_iptables_nft_tables() -> None:
    rule = {
        "family": "ip",
        "table": "filter",
        "chain": "INPUT",
        "expr": [{"xt": {"type": "match", "name": "set"}}],
    }
    text = json.dumps(
        {"nftables": [{"chain": {"family": "ip", "table": "filter", "name": "INPUT"}}, {"rule": rule}]}
    )
    assert nft.parse_ruleset(text).compat == {("ip", "filter")}


@pytest.mark.parametrize(
    "text", ["", "[]", '{"nftables": 5}', '{"nftables": [5]}', '{"nftables": [{"rule": {"family": "ip"}}]}']
)
def test_nft_garbage_is_an_error(text: str) -> None:
    with pytest.raises(nft.NftError):
        nft.parse_ruleset(text)


def _counted_rule(counter: str) -> str:
    rule = '{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"counter": %s}, {"drop": null}]}}'
    return '{"nftables": [%s]}' % (rule % counter)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"nftables": [' + "[" * 100_000 + "]" * 100_000 + "]}",
            "nested 100002 levels deep",
        ),  # RecursionError
        (
            _counted_rule('{"packets": Infinity, "bytes": 0}'),
            "Infinity is not a JSON number",
        ),  # OverflowError
        (_counted_rule('{"packets": 1e999, "bytes": 0}'), "number out of range"),  # OverflowError
        (_counted_rule('{"packets": 1%s, "bytes": 0}' % ("0" * 400)), "integer of 401 digits"),
    ],
)
def test_nft_json_a_decoder_or_counter_would_choke_on_is_an_nft_error(text: str, error: str) -> None:
    with pytest.raises(nft.NftError, match=error):
        nft.parse_ruleset(text)


def test_nft_names_are_valid_text() -> None:
    body = {"family": "inet", "table": "f2b\ud800", "name": "s", "type": "ipv4_addr", "elem": ["192.0.2.1"]}
    text = json.dumps({"nftables": [{"set": body}]})  # json escapes the surrogate as \ud800
    assert [s.key for s in nft.parse_ruleset(text).sets] == ["inet f2b\ufffd s"]


def test_ipset_save() -> None:
    sets = {s.name: s for s in ipset.parse_save(firewall_fixture("ipset-save.txt"))}
    assert set(sets) == {"f2b-sshd", "f2b-sshd6", "sshguard4"}  # hash:ip,port is not an address set
    assert sets["f2b-sshd"].elements == ("192.0.2.20",)
    assert (sets["f2b-sshd6"].family, sets["sshguard4"].elements) == ("ipv6", ("198.51.100.128/25",))
    assert ipset.parse_save("") == []
    with pytest.raises(ipset.IpsetError):
        ipset.parse_save("Name: f2b-sshd\nType: hash:ip\n")


# -- enforcement -------------------------------------------------------------------------------------
def test_blockers_follow_jumps_and_sshd_ports() -> None:
    ruleset = fixture_ruleset()
    found = {
        (b.chain.backend, b.chain.table, b.chain.name, b.rule.sources or b.rule.source_sets): b.covers_sshd
        for b in blockers(ruleset.chains, frozenset({2222}))
    }
    assert found[("legacy", "filter", "f2b-sshd", ("192.0.2.30",))] is True  # through the multiport jump
    assert found[("legacy", "filter", "INPUT", ("ipset f2b-sshd",))] is True
    assert found[("legacy", "raw", "PREROUTING", ("192.0.2.98",))] is True
    assert found[("nft", "inet generic", "ssh", ("192.0.2.50", "192.0.2.64/26"))] is True
    assert not any(key[2] == "unused" for key in found)  # nothing jumps there
    assert found[("legacy", "filter", "INPUT", ("203.0.113.0/24",))] is True
    ports_22 = {(b.chain.name, b.rule.sources): b for b in blockers(ruleset.chains, frozenset({22}))}
    assert ("ssh", ("192.0.2.50", "192.0.2.64/26")) not in ports_22  # the jump admits 2222 only


def test_enforcement_answers_per_address() -> None:
    ruleset = fixture_ruleset()
    enforcement = Enforcement(blockers(ruleset.chains, frozenset({2222})), ruleset.sets)
    blocked = [
        "192.0.2.10",
        "2001:db8::10",
        "2001:DB8:0::10",
        "192.0.2.20",
        "192.0.2.30",
        "192.0.2.50",
        "192.0.2.70",
        "198.51.100.200",
        "203.0.113.7",
        "203.0.113.200",
        "2001:db8::30",
    ]
    assert [a for a in blocked if enforcement.unblocked([a])] == []
    # 2001:db8::20's ipset has no rule (nor has crowdsec's set: 203.0.113.77 is blocked by a legacy rule)
    for address in ("2001:db8::20", "192.0.2.1", "192.0.2.200", "not an address"):
        assert enforcement.unblocked([address]) == 1, address
    assert "ip crowdsec crowdsec-blacklists-crowdsec" not in enforcement.referenced
    assert "ip sshguard attackers" in enforcement.referenced


def test_sshd_ports_the_ban_does_not_cover_leave_it_unenforced() -> None:
    ruleset = fixture_ruleset()
    # sshd on 2222 and 2200: fail2ban's nft rule covers 22 and 2222 only
    enforcement = Enforcement(blockers(ruleset.chains, frozenset({2222, 2200})), ruleset.sets)
    assert enforcement.unblocked(["192.0.2.10"]) == 1
    assert enforcement.unblocked(["198.51.100.7"]) == 0  # sshguard's rule has no port match


def test_a_rule_without_source_blocks_everyone_of_its_family() -> None:
    chain = Chain("nft", "ipv4", "ip t", "in", "input", "accept", (Rule("drop", ports=((22, 22),)),))
    enforcement = Enforcement(blockers([chain], frozenset({22})), [])
    assert enforcement.unblocked(["192.0.2.1"]) == 0 and enforcement.unblocked(["2001:db8::1"]) == 1


def test_jump_loops_end() -> None:
    a = Chain(
        "nft",
        "inet",
        "inet t",
        "a",
        "input",
        "accept",
        (Rule("jump", "b"), Rule("drop", sources=("192.0.2.1",))),
    )
    b = Chain("nft", "inet", "inet t", "b", None, None, (Rule("jump", "a"),))
    assert len(blockers([a, b], frozenset())) == 1


# -- bans and the collector --------------------------------------------------------------------------
def _fail2ban_db(path: Path, bans: list[tuple[str, str, int]]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE fail2banDb(version INTEGER); INSERT INTO fail2banDb VALUES (4);"
        "CREATE TABLE jails(name TEXT, enabled INTEGER); INSERT INTO jails VALUES ('sshd', 1), ('old', 0);"
        "CREATE TABLE bips(ip TEXT, jail TEXT, timeofban INTEGER, bantime INTEGER, bancount INTEGER,"
        " data JSON);"
    )
    now = int(time.time())
    conn.executemany(
        "INSERT INTO bips VALUES (?, ?, ?, ?, 1, '{}')",
        [(ip, jail, now - age, 600) for ip, jail, age in bans],
    )
    conn.commit()
    conn.close()


def test_fail2ban_current_addresses(tmp_path: Path) -> None:
    db = tmp_path / "f2b.sqlite3"
    _fail2ban_db(db, [("192.0.2.10", "sshd", 10), ("192.0.2.9", "sshd", 5000), ("192.0.2.8", "old", 1)])
    assert current_addresses(db) == {"sshd": ("192.0.2.10",)}
    (bans,) = fail2ban_bans(HostPaths(tmp_path), "/f2b.sqlite3")
    assert bans == Bans("fail2ban", "sshd", ("192.0.2.10",))
    assert fail2ban_bans(HostPaths(tmp_path), "/missing") == []
    (tmp_path / "bad").write_text("not sqlite")
    assert fail2ban_bans(HostPaths(tmp_path), "/bad") == []


def test_unenforced_and_sshguard_sets() -> None:
    ruleset = fixture_ruleset()
    enforcement = Enforcement(blockers(ruleset.chains, frozenset({2222})), ruleset.sets)
    guard = sshguard_bans(ruleset.sets)
    assert {b.jail for b in guard} == {"ip sshguard attackers", "sshguard4"}
    bans = [*guard, Bans("fail2ban", "sshd", frozenset({"192.0.2.10", "192.0.2.1", "2001:db8::20"}))]
    counts = UnenforcedCounts()(bans, enforcement)
    assert counts == {
        ("sshguard", "ip sshguard attackers"): 0,
        ("sshguard", "sshguard4"): 0,
        ("fail2ban", "sshd"): 2,
    }


def test_families_render_cleanly() -> None:
    ruleset = fixture_ruleset()
    bans = [Bans("fail2ban", "sshd", frozenset({"192.0.2.10"}))]
    text = render(families(ruleset, frozenset({2222}), bans))
    assert promtool_check(text) is None
    found = samples(text)
    labels = {"backend": "nft", "family": "inet", "table": "inet generic", "chain": "ssh"}
    assert value(found, "ssh_access_firewall_sshd_blocked_packets_total", **labels) == 7
    assert value(found, "ssh_access_firewall_sshd_blocking_rules", **labels) == 2  # and the negated reject
    assert (
        value(found, "ssh_access_firewall_input_policy", **{**labels, "chain": "in", "policy": "drop"}) == 1
    )
    assert value(found, "ssh_access_unenforced_bans", source="fail2ban", jail="sshd") == 0
    assert (
        value(
            found,
            "ssh_access_firewall_set_entries",
            backend="ipset",
            family="ipv4",
            table="",
            set="f2b-sshd",
            owner="fail2ban",
        )
        == 1
    )
    assert (
        value(
            found,
            "ssh_access_firewall_set_blocking",
            backend="nft",
            family="ipv4",
            table="ip crowdsec",
            set="crowdsec-blacklists-crowdsec",
        )
        == 0
    )
    assert (
        value(
            found,
            "ssh_access_firewall_chain_blocked_addresses",
            backend="legacy",
            family="ipv4",
            table="filter",
            chain="f2b-sshd",
        )
        == 2
    )
    assert not any("192.0.2" in str(key) for key in found)  # never an address in a label


def test_owner() -> None:
    assert [
        owner("filter", "f2b-sshd"),
        owner("inet f2b-table", "addr6-set-x"),
        owner("ip sshguard", "attackers"),
        owner("", "crowdsec6-blacklists"),
        owner("inet filter", "input"),
    ] == ["fail2ban", "fail2ban", "sshguard", "crowdsec", ""]


def test_missing_nft_fails_the_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exporter.sources.firewall.reader.TOOL_PATH", str(tmp_path))
    procfs = tmp_path / "proc"
    (procfs / "net").mkdir(parents=True)
    (procfs / "net" / "ip_tables_names").write_text("")
    collector = FirewallCollector(FirewallReader(HostPaths(tmp_path, procfs)), None)
    with pytest.raises(FirewallError, match="nft not found"):
        list(collector.collect())


def test_a_failing_or_hanging_tool_fails_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporter.sources.firewall.reader.TOOL_PATH", str(tmp_path))
    nft_tool = tmp_path / "nft"
    procfs = tmp_path / "proc"
    (procfs / "net").mkdir(parents=True)
    reader = FirewallReader(HostPaths(tmp_path, procfs), timeout=0.5)
    for script, message in (
        ("echo 'Operation not permitted' >&2; exit 1", "Operation not permitted"),
        ("sleep 5", "timed out"),
        ("echo '{'", "not nft JSON"),
    ):
        nft_tool.write_text(f"#!/bin/sh\n{script}\n")
        nft_tool.chmod(0o755)
        with pytest.raises(FirewallError, match=message):
            reader.read()


def test_sshd_ports_from_the_config_file_without_running_sshd(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    config = tmp_path / "etc" / "ssh" / "sshd_config"
    config.parent.mkdir(parents=True)
    config.write_text("Port 2200\nPort 2201\n")
    reader = SshdReader(HostPaths(tmp_path, tmp_path / "proc"), "/usr/sbin/sshd", "/etc/ssh/sshd_config")
    assert reader.ports() == {2200, 2201}
    config.unlink()
    assert reader.ports() == frozenset()


def test_python_iptables_loads_without_setuptools() -> None:
    """iptc imports `distutils.sysconfig`; in a virtualenv that was all of setuptools (31 MB resident)."""
    script = (
        "import sys\n"
        "from exporter.sources.firewall.iptables import load_iptc\n"
        "assert load_iptc() is not None\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'setuptools', 'pkg_resources'}))\n"
        "print(sys.modules.get('distutils', 'absent'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    loaded, distutils = out.splitlines()
    assert loaded == "[]"
    assert distutils == "absent"  # not left blocked for whoever imports it later


def test_a_legacy_blob_not_laid_out_as_x_tables_writes_it_is_a_layout_error() -> None:
    """The kernel's blob is trusted only as far as its layout checks out: anything else (cut short, an
    entry of no size, no end) is LayoutError, and the table is read through libiptc instead."""
    chunks = random.Random(16)
    blobs = [bytes(112), bytes(50), b"\xff" * 300, *(chunks.randbytes(n) for n in (0, 90, 113, 4096) * 50)]
    for family in ("ipv4", "ipv6"):
        for data in blobs:
            blob = legacy_entries.TableBlob(family, {"INPUT": 0}, {"INPUT": 0}, data)
            try:
                found = legacy_entries.layout(blob)
            except legacy_entries.LayoutError:
                continue
            assert found.holds(blob)


def test_blockers_are_found_again_only_when_more_than_counters_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scrape on a host with 10,000 rules walked them all though only counters had moved; the kept
    answer still reports this read's counters, and a rule that changed is walked again."""
    from exporter.sources.firewall import enforcement  # noqa: PLC0415

    walks: list[frozenset[int]] = []
    walk = enforcement._walk

    def counted_walk(chains: tuple[Chain, ...], ports: frozenset[int]) -> dict[tuple[int, int], Blocker]:
        walks.append(ports)
        return walk(chains, ports)

    monkeypatch.setattr(enforcement, "_walk", counted_walk)
    drop = Rule("drop", "", ("192.0.2.1",), (), ((22, 22),))
    other = Rule("drop", "", ("192.0.2.2",), (), ((80, 80),))

    def ruleset(packets: int, ports: tuple[tuple[int, int], ...] = ((22, 22),)) -> tuple[Chain, ...]:
        counted = Rule("drop", "", ("192.0.2.1",), (), ports, packets=packets)
        jump = Rule("", "ssh", None, (), None, packets=packets)
        return (
            Chain("legacy", "ipv4", "filter", "INPUT", "input", "accept", (jump, other)),
            Chain("legacy", "ipv4", "filter", "ssh", rules=(drop, other, counted)),
        )

    first = blockers(ruleset(1), frozenset({22}))
    assert [(b.chain.name, b.rule.packets) for b in first] == [("ssh", 0), ("ssh", 1)]
    again = blockers(ruleset(7), frozenset({22}))
    assert [(b.chain.name, b.rule.packets) for b in again] == [("ssh", 0), ("ssh", 7)]  # the same rule twice
    assert len(walks) == 1
    assert [b.rule.packets for b in blockers(ruleset(7, ((80, 80),)), frozenset({22}))] == [0]
    assert blockers(ruleset(7), frozenset({2222})) == []
    assert len(walks) == 3
