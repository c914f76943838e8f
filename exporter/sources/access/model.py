"""The per-address model: one verdict per layer, with the evidence a person needs to act on it.

A layer is something that can keep a client out of sshd before or during authentication: TCP
wrappers, a ban tool, the packet filter, sshd's own PerSourcePenalties. Each answers `deny`, `allow`
(a rule lets the address in explicitly), `no_match` (nothing about the address) or `unknown` (the
layer could not be read). A layer not present on the host is left out rather than reported as
`no_match`, so "absent" and "present but silent" stay apart.

TCP wrappers may hang on a name lookup (`.example.org`, KNOWN, PARANOID, ident, netgroups), which we never
make: the verdict is then libwrap's when the address has no name (no lookup answers, as `tcpdmatch`
without DNS says), and `lookups` says which names would change it. Such a verdict is not sure, so it
neither `blocks` nor counts as read (`unread`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from exporter.sources.firewall.addresses import span

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Contract order (`diagnose --json` layers, `ssh_access_watched_address_blocked{layer}`).
LAYERS = ("tcp_wrappers", "fail2ban", "sshguard", "denyhosts", "crowdsec", "firewall", "sshd_penalty")
VERDICTS = ("deny", "allow", "no_match", "unknown")
__all__ = ["LAYERS", "VERDICTS", "LayerVerdict", "Network", "label", "overlaps", "parse_target", "span"]


@dataclass(frozen=True)
class LayerVerdict:
    """One layer's answer for one address or network; `remedy` is advice for people (diagnose's text `to do`
    and its JSON `remedy` key, for a layer that denies), left out of equality: it is not the answer."""

    layer: str
    verdict: str  # one of VERDICTS
    evidence: tuple[str, ...] = ()
    detail: str = ""
    remedy: tuple[str, ...] = field(default=(), compare=False)
    lookups: tuple[str, ...] = ()  # what a name lookup would change (`denied if the address's name ...`)

    @property
    def blocks(self) -> bool:
        """Surely denies: not when the deny holds only if the address has no name."""
        return self.verdict == "deny" and not self.lookups

    @property
    def unread(self) -> str | None:
        """Why this layer's answer is not known for sure; None when it is."""
        if self.verdict == "unknown":
            return self.detail or "could not be read"
        if self.lookups:
            return "depends on a name lookup: " + "; ".join(self.lookups)
        return None


def parse_target(text: str) -> Network:
    """An address or CIDR network as the operator writes it (host bits allowed, as in the watchlist)."""
    return ipaddress.ip_network(text.strip().removeprefix("[").replace("]", ""), strict=False)


def label(network: Network) -> str:
    """A single address prints as an address, a network in CIDR form."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def overlaps(network: Network, text: str) -> bool:
    """Does the address, prefix or range `text` share an address with `network`?"""
    found = span(text)
    if found is None:
        return False
    version, first, last = found
    low, high = int(network.network_address), int(network.broadcast_address)
    return version == network.version and first <= high and low <= last
