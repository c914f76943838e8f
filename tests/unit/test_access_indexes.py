"""The watchlist and diagnose search bans and sets through indexes kept between reads, with the evidence
and remedies (and their order) a pass over every ban and element gave."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from pathlib import Path

import pytest

from exporter.sources.access import AccessOptions, AccessReader, HostFacts, layers, parse_target, verdicts
from exporter.sources.access.layers import Fail2banFacts, wrapper_outcome
from exporter.sources.access.model import Network
from exporter.sources.fail2ban import database
from exporter.sources.fail2ban.database import DbBan
from exporter.sources.firewall import addresses, enforcement
from exporter.sources.firewall.enforcement import Blocker
from exporter.sources.firewall.model import AddressSet, Chain, Rule, Ruleset
from exporter.sources.firewall.reader import FirewallReader
from exporter.sources.host.paths import HostPaths
from exporter.sources.tcpwrappers.reader import TcpWrappersSnapshot
from tests.builders import V4_SCHEMA, make_db

NOW = 1_790_000_000
# Neither in address order: several matches are listed as the set and the database hold them.
ELEMENTS = ("192.0.2.9", "198.51.100.7", "192.0.2.3", "192.0.2.0/30", "192.0.2.128-192.0.2.130")
SET = AddressSet("nft", "ipv4", "inet f2b-table", "addr-set-sshd", ELEMENTS)
RULESET = Ruleset(
    (
        Chain("nft", "inet", "inet f2b-table", "f2b-chain", "input", "accept",
              (Rule("reject", source_sets=(SET.key,), ports=((22, 22),)),)),
    ),
    (SET,),
)  # fmt: skip
BANS = (
    DbBan("sshd", "192.0.2.9", NOW, NOW + 600),
    DbBan("recidive", "192.0.2.3", NOW, None),
    DbBan("sshd", "198.51.100.7", NOW, NOW + 600),
    DbBan("sshd", "192.0.2.3", NOW, NOW + 600),
)


class FedFirewall(FirewallReader):
    """The shared reader with a ruleset instead of nft's."""

    def read(self) -> Ruleset:
        self.indexes.retain(found.key for found in RULESET.sets)
        return RULESET


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each AddressIndex made."""
    sizes: list[int] = []

    class Counted(addresses.AddressIndex):
        def __init__(self, elements: object) -> None:
            super().__init__(elements)  # type: ignore[arg-type]
            sizes.append(len(self))

    monkeypatch.setattr(addresses, "AddressIndex", Counted)
    monkeypatch.setattr(database, "AddressIndex", Counted)
    return sizes


def test_set_matches_keep_the_set_order() -> None:
    facts = HostFacts(firewall=True, ruleset=RULESET, sshd_ports=frozenset({22}))
    found = verdicts(facts, parse_target("192.0.2.0/24"))[0]
    where = "nft inet table inet f2b-table chain f2b-chain: reject from set inet f2b-table addr-set-sshd"
    held = ("192.0.2.9", "192.0.2.3", "192.0.2.0/30", "192.0.2.128-192.0.2.130")
    assert found.evidence == tuple(f"{where}, which holds {element}" for element in held)
    assert found.remedy == tuple(f"nft delete element inet f2b-table addr-set-sshd {{ {e} }}" for e in held)
    single = verdicts(facts, parse_target("192.0.2.129"))[0]
    assert single.evidence == (f"{where}, which holds 192.0.2.128-192.0.2.130",)
    assert verdicts(facts, parse_target("192.0.2.4"))[0].verdict == "no_match"


def test_fail2ban_matches_keep_the_database_order() -> None:
    facts = HostFacts(fail2ban=Fail2banFacts(BANS))
    found = verdicts(facts, parse_target("192.0.2.0/24"))[0]
    assert found.evidence == (
        "jail recidive: 192.0.2.3 banned, permanent",
        "jail sshd: 192.0.2.9 banned, until 2026-09-21T14:23:20Z",
        "jail sshd: 192.0.2.3 banned, until 2026-09-21T14:23:20Z",
    )
    assert found.remedy[:4] == (
        "fail2ban-client set recidive unbanip 192.0.2.3",
        "fail2ban-client set recidive unbanip 192.0.2.9",
        "fail2ban-client set sshd unbanip 192.0.2.3",
        "fail2ban-client set sshd unbanip 192.0.2.9",
    )
    assert verdicts(facts, parse_target("192.0.2.4"))[0].verdict == "no_match"


def test_the_watchlist_builds_each_index_once(tmp_path: Path, built: list[int]) -> None:
    """The set's index is the shared FirewallReader's, the bans' that of the database's read: a scrape
    with nothing changed builds none."""
    (tmp_path / "proc").mkdir()
    rows = [(ban.ip, ban.jail, ban.time, -1 if ban.expires is None else 10**9) for ban in BANS]
    make_db(tmp_path / "f2b.sqlite3", V4_SCHEMA, [("sshd", 1), ("recidive", 1)], rows)
    paths = HostPaths(tmp_path, tmp_path / "proc")
    options = AccessOptions(sshguard=False, crowdsec=False, authlog=False, fail2ban_socket="",
                            fail2ban_db="/f2b.sqlite3")  # fmt: skip
    firewall = FedFirewall(paths)
    reader = AccessReader(paths, options, lambda: frozenset({22}), firewall)
    watchlist = [parse_target(text) for text in ("192.0.2.3", "192.0.2.0/24", "198.51.100.7", "203.0.113.1")]
    first = reader.check(watchlist)
    assert sorted(built) == [4, len(ELEMENTS)]  # the bans' addresses, the set's elements
    assert reader.check(watchlist) == first
    assert len(built) == 2
    layers = {v.layer: v for v in first[parse_target("192.0.2.3")]}
    assert layers["fail2ban"].evidence == (
        "jail recidive: 192.0.2.3 banned, permanent",
        "jail sshd: 192.0.2.3 banned, until 2058-05-30T16:00:00Z",
    )
    assert layers["firewall"].verdict == "deny"
    assert {v.layer: v.verdict for v in first[parse_target("203.0.113.1")]} == {
        "fail2ban": "no_match",
        "firewall": "no_match",
    }


class SwappedFirewall(FirewallReader):
    """The shared reader with a ruleset the test sets (each read a copy: equal, not the same objects)."""

    ruleset = RULESET

    def read(self) -> Ruleset:
        return copy.deepcopy(self.ruleset)


def test_the_blocking_rules_are_found_again_only_when_the_chains_or_ports_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 iptables rules walked at every scrape cost about 10 ms: the watchlist keeps what it found
    while the ruleset's chains and sshd's ports are the same, and its verdicts stay those of a fresh walk."""
    walks: list[int] = []

    def counted(chains: Iterable[Chain], ports: frozenset[int]) -> list[Blocker]:
        walks.append(1)
        return enforcement.blockers(chains, ports)

    monkeypatch.setattr(layers, "blockers", counted)
    (tmp_path / "proc").mkdir()
    paths = HostPaths(tmp_path, tmp_path / "proc")
    options = AccessOptions(sshguard=False, crowdsec=False, authlog=False, fail2ban=False, tcp_wrappers=False)
    ports = [22]
    firewall = SwappedFirewall(paths)
    reader = AccessReader(paths, options, lambda: frozenset(ports), firewall)
    watchlist = [parse_target("192.0.2.9")]
    first = reader.check(watchlist)
    assert first[watchlist[0]][0].verdict == "deny" and len(walks) == 1
    assert reader.check(watchlist) == first and len(walks) == 1  # equal chains: kept
    moved = (Rule("reject", source_sets=(SET.key,), ports=((80, 80),)),)  # the rule now for another port
    firewall.ruleset = Ruleset((dataclasses.replace(RULESET.chains[0], rules=moved),), (SET,))
    assert reader.check(watchlist)[watchlist[0]][0].verdict == "no_match" and len(walks) == 2
    ports[0] = 2222  # sshd moved: the set's rule is for port 22 only
    firewall.ruleset = RULESET
    assert reader.check(watchlist)[watchlist[0]][0].verdict == "no_match" and len(walks) == 3
    ports[0] = 22
    assert reader.check(watchlist) == first and len(walks) == 4


def test_tcp_wrappers_outcomes_are_found_again_only_when_the_rules_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watched /24 is 256 addresses run through hosts.allow and hosts.deny, by the tcp_wrappers,
    denyhosts and sshguard layers each: each network's outcome is found once while the files are the
    same, and again (with its new verdict) once they change."""
    found: list[Network] = []

    def counted(snapshot: TcpWrappersSnapshot, network: Network) -> layers.WrapperOutcome:
        found.append(network)
        return wrapper_outcome(snapshot, network)

    monkeypatch.setattr(layers, "wrapper_outcome", counted)
    (tmp_path / "proc").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts.allow").write_text("")
    deny = tmp_path / "etc/hosts.deny"
    deny.write_text("sshd: 192.0.2.128/25\n")
    paths = HostPaths(tmp_path, tmp_path / "proc")
    options = AccessOptions(sshguard=False, crowdsec=False, authlog=False, fail2ban=False, firewall=False)
    reader = AccessReader(paths, options)
    watchlist = [parse_target("192.0.2.0/24"), parse_target("203.0.113.1")]
    first = reader.check(watchlist)
    assert [v.verdict for v in first[watchlist[0]] if v.layer == "tcp_wrappers"] == ["deny"]
    assert found == watchlist
    assert reader.check(watchlist) == first and found == watchlist  # the same rules: kept
    deny.write_text("sshd: 198.51.100.0/24\n")
    again = reader.check(watchlist)
    assert [v.verdict for v in again[watchlist[0]] if v.layer == "tcp_wrappers"] == ["no_match"]
    assert found == watchlist * 2


def test_rule_sources_are_found_in_rule_order() -> None:
    """One rule per ban (fail2ban's iptables actions), a set rule and a catch-all between them: each
    matching rule once, in the chain's order, whichever way it matches."""
    rules = (
        Rule("reject", sources=("192.0.2.9/32",)),
        Rule("drop", sources=("198.51.100.0/24", "192.0.2.0/28")),
        Rule("reject", source_sets=(SET.key,)),
        Rule("reject", sources=("192.0.2.9",), negated=True),  # all but it: never counted
        Rule("drop", sources=("192.0.2.3/32",)),
        Rule("drop", ports=((80, 80),)),  # not sshd's port
        Rule("drop"),
    )
    chain = Chain("legacy", "ipv4", "filter", "INPUT", "input", "accept", rules)
    facts = HostFacts(firewall=True, ruleset=Ruleset((chain,), (SET,)), sshd_ports=frozenset({22}))
    where = "legacy ipv4 table filter chain INPUT"
    found = verdicts(facts, parse_target("192.0.2.9"))[0]
    assert found.evidence == (
        f"{where}: reject from source 192.0.2.9/32",
        f"{where}: drop from source 192.0.2.0/28",
        f"{where}: reject from set inet f2b-table addr-set-sshd, which holds 192.0.2.9",
        f"{where}: drop from every source",
    )
    assert found.remedy == (
        "delete the rule, or accept the address before it",
        "nft delete element inet f2b-table addr-set-sshd { 192.0.2.9 }",
    )
    network = verdicts(facts, parse_target("192.0.2.0/29"))[0]
    assert [line.removeprefix(f"{where}: ") for line in network.evidence] == [
        "drop from source 192.0.2.0/28",
        "reject from set inet f2b-table addr-set-sshd, which holds 192.0.2.3",
        "reject from set inet f2b-table addr-set-sshd, which holds 192.0.2.0/30",
        "drop from source 192.0.2.3/32",
        "drop from every source",
    ]
