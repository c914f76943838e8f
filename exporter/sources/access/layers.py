"""Each layer's verdict for one address or network, from facts already read (pure: tests feed fixtures).

For a network a layer denies when it blocks any address in it: ban lists and firewall sources are
compared as ranges; TCP wrappers are evaluated for every address of a network up to WRAPPER_SWEEP
addresses, else for its first and last address and every address a rule names inside it.

fail2ban's bans and the firewall's sets (100,000 addresses each on a host under attack) are searched
through an AddressIndex, kept while they are unchanged (the database's read, the shared FirewallReader's
`indexes`), and the blocking rules' sources through one made per read (Blocking): a watched address
costs a bisection, not a pass over every ban. Several matches are listed in the bans', set's or chain's
own order, as a pass over them would list them.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from exporter.sources.access.model import LAYERS, LayerVerdict, Network, label, overlaps
from exporter.sources.authlog.records import Event
from exporter.sources.crowdsec import CrowdsecSnapshot
from exporter.sources.fail2ban.database import DbBan
from exporter.sources.firewall.addresses import AddressIndex, SetIndexes
from exporter.sources.firewall.bans import SSHGUARD_SETS
from exporter.sources.firewall.enforcement import Blocker, Enforcement, blockers
from exporter.sources.firewall.model import AddressSet, Chain, Rule, Ruleset
from exporter.sources.tcpwrappers import ClientInfo, evaluate
from exporter.sources.tcpwrappers.evaluate import AccessRules, LookupTurn
from exporter.sources.tcpwrappers.reader import TcpWrappersSnapshot
from exporter.sources.tcpwrappers.syntax import Rule as WrapperRule

WRAPPER_SWEEP = 256
MAX_EVIDENCE = 10
PENALTY_EVENTS = frozenset({"penalty_applied", "penalty_drop"})


def _matches(index: AddressIndex, network: Network) -> list[str]:
    """The index's elements that share an address with the network."""
    low, high = int(network.network_address), int(network.broadcast_address)
    return index.overlapping(network.version, low, high)


@dataclass(frozen=True)
class Fail2banFacts:
    bans: tuple[DbBan, ...] | None  # the database's current bans (or () with `lookup`); None: unreadable
    error: str = ""
    banned_in: dict[str, tuple[str, ...]] = field(default_factory=dict)  # address -> jails (socket)
    down_cause: str = ""  # why fail2ban-server is not running, when its config says (a jail without logs)
    # Every ban's address, and maybe more (the reader's holds the rows of the database's read, some of
    # them expired since); None: made from `bans` when first asked.
    addresses: AddressIndex | None = field(default=None, compare=False)
    # The current bans of some addresses from the database's read (the reader's): made for the matches
    # alone, not kept for the 100,000 bans; None: taken from `bans`.
    lookup: Callable[[Collection[str]], list[DbBan]] | None = field(default=None, compare=False)

    @cached_property
    def _index(self) -> AddressIndex:
        if self.addresses is not None:
            return self.addresses
        return AddressIndex(ban.ip for ban in self.bans or ())

    def overlapping(self, network: Network) -> list[DbBan]:
        """The current bans of an address in the network, in the database's order."""
        matched = set(_matches(self._index, network))
        if not matched:
            return []
        if self.lookup is not None:
            return self.lookup(matched)
        return [ban for ban in self.bans or () if ban.ip in matched]


@dataclass(frozen=True)
class LogLine:
    file: str
    line: int
    text: str
    event: Event

    @property
    def evidence(self) -> str:
        """`file:line: text`; the journal and a file's cut tail have no line numbers."""
        return f"{self.file}:{self.line}: {self.text}" if self.line else f"{self.file}: {self.text}"


@dataclass(frozen=True)
class PenaltyLog:
    lines: tuple[LogLine, ...] = ()  # penalty and MaxStartups events within the window
    window: float = 600.0
    error: str = ""


@dataclass(frozen=True)
class Blocking:
    """The drop/reject rules on the way to sshd's ports (covering all of them, not negated), in order.

    A ban tool's iptables action adds one rule per ban (100,000 on a host under attack): the rules' source
    addresses are indexed, so a question visits the rules that match it and those matching through a set
    or every source, not every rule."""

    rules: tuple[Blocker, ...]
    sources: AddressIndex  # every rule's source addresses
    by_source: dict[str, tuple[int, ...]]  # source text -> the rules (positions) naming it
    always: tuple[int, ...]  # rules matching every source or through sets: asked about every network

    @classmethod
    def of(cls, found: Iterable[Blocker]) -> Blocking:
        rules = tuple(b for b in found if b.covers_sshd and not b.rule.negated)
        by_source: dict[str, list[int]] = {}
        always = []
        for position, blocker in enumerate(rules):
            rule = blocker.rule
            if rule.any_source or rule.source_sets:
                always.append(position)
            for text in rule.sources or ():
                by_source.setdefault(text, []).append(position)
        named = {text: tuple(positions) for text, positions in by_source.items()}
        return cls(rules, AddressIndex(named), named, tuple(always))

    def candidates(self, network: Network) -> list[Blocker]:
        """The rules that may match the network, in order (a superset of those that do)."""
        positions = set(self.always)
        for text in _matches(self.sources, network):
            positions.update(self.by_source[text])
        return [self.rules[position] for position in sorted(positions)]


@dataclass(frozen=True)
class SshdBlocking:
    """The blocking rules of some chains for some sshd ports (enforcement.blockers, then Blocking): a
    reader keeps the last one and gives it to the next facts, which use it while the chains and ports are
    the same (10,000 rules walked at every scrape cost about 10 ms of CPU though nothing changed)."""

    chains: tuple[Chain, ...]
    sshd_ports: frozenset[int]
    blockers: tuple[Blocker, ...]
    blocking: Blocking

    @classmethod
    def of(cls, chains: tuple[Chain, ...], sshd_ports: frozenset[int]) -> SshdBlocking:
        found = blockers(chains, sshd_ports)
        return cls(chains, sshd_ports, tuple(found), Blocking.of(found))

    def fits(self, chains: tuple[Chain, ...], sshd_ports: frozenset[int]) -> bool:
        """Made from these chains and ports? (the same objects when the ruleset's reader kept them: then
        a comparison by identity, element by element)"""
        return sshd_ports == self.sshd_ports and chains == self.chains


@dataclass(frozen=True)
class HostFacts:
    """What the layers need, read once; None (or False) for a layer not present or not asked for."""

    wrappers: TcpWrappersSnapshot | None = None
    fail2ban: Fail2banFacts | None = None
    sshguard: bool = False
    denyhosts: bool = False
    crowdsec: CrowdsecSnapshot | None = None
    firewall: bool = False
    ruleset: Ruleset | None = None
    firewall_error: str = ""
    sshd_ports: frozenset[int] = frozenset()
    penalties: PenaltyLog | None = None
    now: float = field(default_factory=time.time)
    # The index of each set's elements: the shared FirewallReader's, kept between reads; by default one
    # for these facts only.
    set_indexes: SetIndexes = field(default_factory=SetIndexes, compare=False)
    # The blocking rules found for earlier facts (the reader's last): used if they are these facts' own.
    known_blocking: SshdBlocking | None = field(default=None, compare=False)
    # The TCP wrappers outcomes found for earlier facts (the reader's last): used if of these facts' rules.
    known_outcomes: WrapperOutcomes | None = field(default=None, compare=False)

    @cached_property
    def wrapper_outcomes(self) -> WrapperOutcomes:
        """Each network's TCP wrappers outcome, found once for these facts' rules (or kept from earlier
        facts with the same rules)."""
        known, rules = self.known_outcomes, self.wrappers.rules if self.wrappers is not None else None
        if known is not None and rules is not None and known.rules is rules:
            return known
        return WrapperOutcomes(rules)

    @cached_property
    def sshd_blocking(self) -> SshdBlocking:
        """The ruleset's drop/reject rules on the way to sshd, found once (or kept from earlier facts)."""
        chains = self.ruleset.chains if self.ruleset is not None else ()
        known = self.known_blocking
        if known is not None and known.fits(chains, self.sshd_ports):
            return known
        return SshdBlocking.of(chains, self.sshd_ports)

    @property
    def blockers(self) -> tuple[Blocker, ...]:
        return self.sshd_blocking.blockers

    @property
    def blocking(self) -> Blocking:
        return self.sshd_blocking.blocking


# -- TCP wrappers (and the DenyHosts / sshguard entries in them) ---------------------------------


def _token_network(token: str) -> Network | None:
    """The addresses a client pattern names: `a.b.c.d`, `[v6]`, `a/len`, `n/m.m.m.m`, `a.b.`."""
    text = token.replace("[", "").replace("]", "")
    try:
        if text.endswith(".") and text[:-1].replace(".", "").isdigit():
            parts = text[:-1].split(".")
            return ipaddress.ip_network(".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}")
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _candidates(snapshot: TcpWrappersSnapshot, network: Network) -> list[str]:
    """Addresses whose verdicts stand for the whole network: every address of a small one; else the first
    and last, and where each network a rule names starts and where it ends (the address after it), so
    that every stretch between two boundaries is evaluated once."""
    if network.num_addresses <= WRAPPER_SWEEP:
        return [str(a) for a in network]
    first, last = int(network.network_address), int(network.broadcast_address)
    found = {first, last}
    for table in (snapshot.rules.allow, snapshot.rules.deny):
        for rule in table.rules:
            for token in rule.clients:
                named = _token_network(token)
                if named is not None and named.version == network.version and named.overlaps(network):
                    found.add(max(int(named.network_address), first))
                    found.add(min(int(named.broadcast_address) + 1, last))
    kind = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    return [str(kind(value)) for value in sorted(found)]


@dataclass(frozen=True)
class WrapperOutcome:
    verdict: str  # LayerVerdict verdict; with lookups, the one when the address has no name
    address: str
    rule: WrapperRule | None
    turns: tuple[LookupTurn, ...] = ()
    lookup: bool = False  # the outcome hangs on a name, ident or netgroup lookup

    @property
    def rank(self) -> int:
        """Worst first: a sure deny, then one hanging on a lookup, then allow, then no_match."""
        if self.lookup:
            return 1
        return {"deny": 0, "allow": 2, "no_match": 3}[self.verdict]

    @property
    def sure_deny(self) -> bool:
        return self.verdict == "deny" and not self.lookup


def _outcome(snapshot: TcpWrappersSnapshot, address: str) -> WrapperOutcome:
    found = evaluate(snapshot.rules, "sshd", client=ClientInfo(address))
    verdict: str
    turns: tuple[LookupTurn, ...] = ()
    if found.verdict in ("deny", "allow"):
        verdict, rule, lookup = found.verdict, found.rule, False
    else:  # libwrap's answer when no lookup answers: the address has no name
        verdict, rule, turns, lookup = found.if_unresolved, found.unresolved_rule, found.turns, True
    if verdict == "allow" and rule is None:
        verdict = "no_match"
    return WrapperOutcome(verdict, address, rule, turns, lookup)


def wrapper_outcome(snapshot: TcpWrappersSnapshot, network: Network) -> WrapperOutcome:
    """The worst outcome over the network's candidates (WrapperOutcome.rank)."""
    best = WrapperOutcome("no_match", label(network), None)
    for address in _candidates(snapshot, network):
        found = _outcome(snapshot, address)
        if found.rank < best.rank:
            best = found
            if found.sure_deny:
                break
    return best


class WrapperOutcomes:
    """wrapper_outcome of one set of rules, each network's found once: the tcp_wrappers, denyhosts and
    sshguard layers each ask for it, and a reader keeps this for the next facts while the wrappers reader
    gives the same rules (the same object while hosts.allow, hosts.deny and their pattern files are
    unchanged). A /24 is 256 addresses evaluated: about 3 ms a layer, at every scrape."""

    MAX_KEPT = 1024  # networks asked about (diagnose asks about any): forgotten all at once past it

    def __init__(self, rules: AccessRules | None) -> None:
        self.rules = rules
        self._found: dict[Network, WrapperOutcome] = {}

    def of(self, snapshot: TcpWrappersSnapshot, network: Network) -> WrapperOutcome:
        if snapshot.rules is not self.rules:  # another snapshot's rules: not kept
            return wrapper_outcome(snapshot, network)
        found = self._found.get(network)
        if found is None:
            if len(self._found) >= self.MAX_KEPT:
                self._found.clear()
            found = self._found[network] = wrapper_outcome(snapshot, network)
        return found


def turn_text(turn: LookupTurn) -> str:
    """`denied if the address's name matches .example.org (/etc/hosts.deny line 3)`."""
    verb = "denied" if turn.verdict == "deny" else "allowed"
    where = f"({turn.rule.file} line {turn.rule.line})"
    patterns = " ".join(turn.tokens)
    if not turn.tokens:
        return f"{verb} if sshd's own address matches {' '.join(turn.rule.daemons)} {where}"
    kind = "name, ident or netgroup" if any("@" in token for token in turn.tokens) else "name"
    clients = " ".join(turn.rule.clients)
    if not turn.matches or "except" in clients.lower().split():  # the lookup decides the whole list
        return (
            f"{verb} if a {kind} lookup makes `{clients}` {'match' if turn.matches else 'not match'} {where}"
        )
    if kind == "name":
        return f"{verb} if the address's name matches {patterns} {where}"
    return f"{verb} if a {kind} lookup matches {patterns} {where}"


def _rule_evidence(rule: WrapperRule) -> str:
    return f"{rule.file}:{rule.line}: {rule.text}"


def tcp_wrappers(facts: HostFacts, network: Network) -> LayerVerdict | None:
    snapshot = facts.wrappers
    if snapshot is None:
        return None
    if snapshot.error:
        return LayerVerdict("tcp_wrappers", "unknown", detail=snapshot.error)
    outcome = facts.wrapper_outcomes.of(snapshot, network)
    rule = outcome.rule
    evidence = (_rule_evidence(rule),) if rule else ()
    if snapshot.libwrap and not snapshot.honoured:
        detail = "sshd is not linked with libwrap: hosts.allow and hosts.deny do not apply to it"
        return LayerVerdict("tcp_wrappers", "no_match", evidence, detail)
    if outcome.lookup:
        return _wrapper_lookup(outcome, network)
    if outcome.verdict == "deny" and rule is not None:
        detail = f"{outcome.address} matches line {rule.line} of {rule.file}"
        return LayerVerdict("tcp_wrappers", "deny", evidence, detail, _wrapper_remedy(rule, network))
    if outcome.verdict == "allow" and rule is not None:
        return LayerVerdict("tcp_wrappers", "allow", evidence, f"allowed by line {rule.line} of {rule.file}")
    return LayerVerdict("tcp_wrappers", "no_match", detail="no rule in hosts.allow or hosts.deny matches")


def _wrapper_remedy(rule: WrapperRule, network: Network) -> tuple[str, ...]:
    return (
        f"remove line {rule.line} of {rule.file}",
        f"or let it in first: add `sshd: {label(network)}` to /etc/hosts.allow",
    )


def _wrapper_lookup(outcome: WrapperOutcome, network: Network) -> LayerVerdict:
    """The verdict when the address has no name, and which names would change it."""
    rule = outcome.rule
    lookups = tuple(turn_text(t) for t in outcome.turns) or ("a name or ident lookup may change it",)
    rules = ([rule] if rule else []) + [t.rule for t in outcome.turns]
    evidence = tuple(dict.fromkeys(_rule_evidence(r) for r in rules))
    when = f"for {outcome.address} when it has no name (no lookup answers)"
    if outcome.verdict == "deny" and rule is not None:
        detail = f"{when}: denied by line {rule.line} of {rule.file}"
        return LayerVerdict("tcp_wrappers", "deny", evidence, detail, _wrapper_remedy(rule, network), lookups)
    if outcome.verdict == "allow" and rule is not None:
        detail = f"{when}: allowed by line {rule.line} of {rule.file}"
    else:
        detail = f"{when}: no rule matches"
    return LayerVerdict("tcp_wrappers", outcome.verdict, evidence, detail, lookups=lookups)


def _marked(facts: HostFacts, network: Network, tool: str) -> WrapperRule | None:
    """The hosts.allow/deny rule `tool` wrote that denies the network, if that is what decides."""
    if facts.wrappers is None or facts.wrappers.error:
        return None
    outcome = facts.wrapper_outcomes.of(facts.wrappers, network)
    rule = outcome.rule
    if outcome.sure_deny and rule is not None and rule.marked_by == tool:
        return rule
    return None


def denyhosts(facts: HostFacts, network: Network) -> LayerVerdict | None:
    if not facts.denyhosts:
        return None
    rule = _marked(facts, network, "denyhosts")
    if rule is None:
        return LayerVerdict("denyhosts", "no_match", detail="no DenyHosts entry in hosts.deny denies it")
    remedy = (
        f"remove the `# DenyHosts:` line and line {rule.line} of {rule.file}, and the address from "
        "/var/lib/denyhosts/hosts*",
        "add it to /var/lib/denyhosts/allowed-hosts so DenyHosts does not add it again",
    )
    return LayerVerdict(
        "denyhosts", "deny", (_rule_evidence(rule),), f"DenyHosts entry at line {rule.line}", remedy
    )


# -- fail2ban -----------------------------------------------------------------------------------------


def _expiry(ban: DbBan) -> str:
    if ban.expires is None:
        return "permanent"
    return "until " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ban.expires))


def fail2ban(facts: HostFacts, network: Network) -> LayerVerdict | None:
    found = facts.fail2ban
    if found is None:
        return None
    from_db = found.overlapping(network)
    jails: dict[str, list[str]] = {}
    socket = found.banned_in.get(label(network))
    if socket is not None:  # the server's own answer: its database may lag or be gone
        for jail in socket:
            jails[jail] = [f"jail {jail}: {b.ip} banned, {_expiry(b)}" for b in from_db if b.jail == jail]
            jails[jail] = jails[jail] or [f"jail {jail}: {label(network)} banned (fail2ban-server)"]
    elif found.bans is not None:
        for ban in from_db:
            jails.setdefault(ban.jail, []).append(f"jail {ban.jail}: {ban.ip} banned, {_expiry(ban)}")
    else:
        detail = "; ".join(filter(None, (found.error or "fail2ban could not be read", found.down_cause)))
        return LayerVerdict("fail2ban", "unknown", detail=detail)
    # From the database while the server did not answer: say so, a stopped fail2ban bans no one new.
    fallback = "; ".join(filter(None, (found.error, found.down_cause))) if socket is None else ""
    source = f" (from its database: {fallback})" if fallback else ""
    if not jails:
        return LayerVerdict("fail2ban", "no_match", detail=f"not banned in any jail{source}")
    addresses = sorted({b.ip for b in from_db} or {label(network)})
    remedy = tuple(f"fail2ban-client set {jail} unbanip {a}" for jail in sorted(jails) for a in addresses)
    remedy += (f"add {label(network)} to ignoreip in /etc/fail2ban/jail.local so it is not banned again",)
    evidence = tuple(line for jail in sorted(jails) for line in jails[jail])
    detail = "banned in jail " + ", ".join(sorted(jails)) + source
    return LayerVerdict("fail2ban", "deny", evidence[:MAX_EVIDENCE], detail, remedy)


# -- firewall and the sets ban tools fill ------------------------------------------------------------


def _family_fits(family: str, network: Network) -> bool:
    return family in ("inet", "netdev") or family == f"ipv{network.version}"


def _where(chain: Chain) -> str:
    return f"{chain.backend} {chain.family} table {chain.table} chain {chain.name}"


def _set_hits(facts: HostFacts, found: AddressSet, network: Network) -> list[str]:
    """The set's elements that share an address with the network, in the set's order."""
    if not _family_fits(found.family, network):
        return []
    hits = _matches(facts.set_indexes.get(found.key, found.elements), network)
    if len(hits) < 2:
        return hits
    matched = set(hits)
    return [element for element in found.elements if element in matched]


def _unlist(found: AddressSet, element: str) -> str:
    if found.backend == "nft":
        return f"nft delete element {found.table} {found.name} {{ {element} }}"
    return f"ipset del {found.name} {element}"


def _rule_hits(
    facts: HostFacts, rule: Rule, sets: dict[str, AddressSet], network: Network
) -> Iterator[tuple[str, str]]:
    """(what matches the network, how to undo it) for one blocking rule."""
    if rule.any_source:
        yield "every source", "delete the rule, or accept the address before it"
    for source in rule.sources or ():
        if overlaps(network, source):
            yield f"source {source}", "delete the rule, or accept the address before it"
    for key in rule.source_sets:
        address_set = sets.get(key)
        if address_set is not None:
            for element in _set_hits(facts, address_set, network):
                yield f"set {address_set.key}, which holds {element}", _unlist(address_set, element)


def firewall(facts: HostFacts, network: Network) -> LayerVerdict | None:
    if not facts.firewall:
        return None
    if facts.ruleset is None:
        return LayerVerdict("firewall", "unknown", detail=facts.firewall_error or "firewall not read")
    sets = {s.key: s for s in facts.ruleset.sets}
    evidence: list[str] = []
    remedy: list[str] = []
    for blocker in facts.blocking.candidates(network):
        rule = blocker.rule
        if not _family_fits(blocker.chain.family, network):
            continue
        for hit, undo in _rule_hits(facts, rule, sets, network):
            evidence.append(f"{_where(blocker.chain)}: {rule.verdict} from {hit}")
            if undo not in remedy:
                remedy.append(undo)
    ports = ",".join(str(p) for p in sorted(facts.sshd_ports)) or "any port"
    if not evidence:
        detail = f"no drop/reject rule for it on sshd's ports ({ports})"
        return LayerVerdict("firewall", "no_match", detail=detail)
    detail = f"dropped or rejected on its way to sshd's ports ({ports})"
    return LayerVerdict("firewall", "deny", tuple(evidence[:MAX_EVIDENCE]), detail, tuple(remedy))


def sshguard(facts: HostFacts, network: Network) -> LayerVerdict | None:
    if not facts.sshguard:
        return None
    rule = _marked(facts, network, "sshguard")
    if rule is not None:
        fix = (f"remove line {rule.line} of {rule.file} (sshguard's block)",)
        return LayerVerdict(
            "sshguard", "deny", (_rule_evidence(rule),), "in sshguard's hosts.allow block", fix
        )
    if facts.ruleset is None:
        detail = facts.firewall_error or "its sets could not be read"
        return LayerVerdict("sshguard", "unknown", detail=detail)
    referenced = Enforcement(facts.blockers, ()).referenced
    listed = [
        (s, e) for s in facts.ruleset.sets if s.key in SSHGUARD_SETS for e in _set_hits(facts, s, network)
    ]
    if not listed:
        return LayerVerdict("sshguard", "no_match", detail="not in sshguard's sets or hosts.allow block")
    evidence = tuple(f"set {s.key} holds {e}" for s, e in listed)
    if not any(s.key in referenced for s, _ in listed):
        return LayerVerdict("sshguard", "no_match", evidence, "listed, but no drop/reject rule uses the set")
    remedy = (
        *(_unlist(s, e) for s, e in listed),
        "add it to sshguard's whitelist (WHITELIST_FILE in /etc/sshguard/sshguard.conf)",
    )
    return LayerVerdict("sshguard", "deny", evidence[:MAX_EVIDENCE], "banned by sshguard", remedy)


# -- CrowdSec --------------------------------------------------------------------------------------------


def crowdsec(facts: HostFacts, network: Network) -> LayerVerdict | None:
    snapshot = facts.crowdsec
    if snapshot is None or not snapshot.installed:
        return None
    if not snapshot.up:
        return LayerVerdict("crowdsec", "unknown", detail=snapshot.error or "CrowdSec could not be asked")
    hits = [
        d
        for d in snapshot.decisions
        if d.action == "ban" and d.scope.lower() in ("ip", "range") and overlaps(network, d.value)
    ]
    if not hits:
        return LayerVerdict("crowdsec", "no_match", detail="no active ban decision covers it")
    evidence = tuple(f"{d.scope} {d.value}: ban by {d.scenario} ({d.origin})" for d in hits)
    remedy = (
        *(f"cscli decisions delete --{'range' if '/' in d.value else 'ip'} {d.value}" for d in hits),
        "add it to a CrowdSec allowlist so it is not banned again",
    )
    return LayerVerdict(
        "crowdsec", "deny", evidence[:MAX_EVIDENCE], f"{len(hits)} active ban decision(s)", remedy
    )


# -- sshd's PerSourcePenalties --------------------------------------------------------------------------


def sshd_penalty(facts: HostFacts, network: Network) -> LayerVerdict | None:
    log = facts.penalties
    if log is None:
        return None
    if log.error:
        return LayerVerdict("sshd_penalty", "unknown", detail=log.error)
    hits = [
        line
        for line in log.lines
        if line.event.event in PENALTY_EVENTS and line.event.address and overlaps(network, line.event.address)
    ]
    minutes = round(log.window / 60)
    if not hits:
        return LayerVerdict("sshd_penalty", "no_match", detail=f"no penalty in the last {minutes} minutes")
    evidence = tuple(h.evidence for h in hits[-MAX_EVIDENCE:])
    remedy = ("add it to PerSourcePenaltyExemptList in sshd_config (OpenSSH 9.8+) and reload sshd",)
    detail = f"penalised by sshd {len(hits)} time(s) in the last {minutes} minutes"
    return LayerVerdict("sshd_penalty", "deny", evidence, detail, remedy)


CHECKS = (tcp_wrappers, fail2ban, sshguard, denyhosts, crowdsec, firewall, sshd_penalty)
assert tuple(check.__name__ for check in CHECKS) == LAYERS


def verdicts(facts: HostFacts, network: Network) -> list[LayerVerdict]:
    """Every present layer's verdict, in contract order."""
    return [found for check in CHECKS if (found := check(facts, network)) is not None]
