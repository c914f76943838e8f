"""What each ban tool says is banned now, address by address, for the enforcement cross-check.

- fail2ban: its database's current bans per enabled jail (`bips`; the socket's banned lists would cost
  the server about 0.34 s of CPU per 100,000 bans);
- sshguard: the members of its own sets (nft `ip/ip6 sshguard attackers`, ipsets `sshguard4/6`), named
  as the sshguard collector names them: they block only while a rule references them;
- CrowdSec: active `ban` decisions per scenario from its local API or cscli.
A tool that is not installed or cannot be read contributes nothing (its own collector reports it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from exporter.sources.crowdsec import CrowdsecReader
from exporter.sources.fail2ban.database import DatabaseError, current_addresses
from exporter.sources.firewall.model import AddressSet
from exporter.sources.host.paths import HostPaths
from exporter.sources.sshguard import IPSETS, NFT_SETS

log = logging.getLogger(__name__)
SSHGUARD_SETS = {f"{family} {table} {name}" for family, table, name in NFT_SETS} | {
    f"ipset {name}" for name in IPSETS
}


@dataclass(frozen=True)
class Bans:
    source: str  # fail2ban | sshguard | crowdsec
    jail: str  # jail, set or scenario, as the source's collector labels it
    addresses: frozenset[str]


def sshguard_bans(sets: Iterable[AddressSet]) -> list[Bans]:
    return [
        Bans("sshguard", s.key.removeprefix("ipset "), frozenset(s.elements))
        for s in sets
        if s.key in SSHGUARD_SETS
    ]


def fail2ban_bans(paths: HostPaths, db_path: str) -> list[Bans]:
    database = paths.root_or_none(db_path) if db_path else None
    if database is None or not database.exists():
        return []
    try:
        jails = current_addresses(database)
    except DatabaseError as exc:
        log.debug("fail2ban database unreadable", extra={"err": str(exc)})
        return []
    return [Bans("fail2ban", jail, addresses) for jail, addresses in sorted(jails.items())]


def crowdsec_bans(reader: CrowdsecReader) -> list[Bans]:
    snapshot = reader.read()
    if not snapshot.up:
        return []
    scenarios: dict[str, set[str]] = {}
    for decision in snapshot.decisions:
        if decision.action == "ban":
            scenarios.setdefault(decision.scenario, set()).add(decision.value)
    return [Bans("crowdsec", name, frozenset(values)) for name, values in sorted(scenarios.items())]


def unenforced(bans: Iterable[Bans], blocks: Callable[[str], bool]) -> dict[tuple[str, str], int]:
    """{(source, jail): banned addresses `blocks` says nothing blocks}."""
    return {(b.source, b.jail): sum(1 for a in b.addresses if not blocks(a)) for b in bans}
