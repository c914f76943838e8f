"""Reads the packet filter of the exporter's own network namespace, never changing it.

- Legacy iptables only when legacy tables exist (`/proc/net/ip_tables_names`, `ip6_tables_names`):
  python-iptables, else `iptables-legacy-save -c` when it cannot be loaded.
- nftables (native, and iptables-nft) through `nft -j list ruleset`. Tables with iptables-nft's `xt`
  expressions are replaced by `iptables-nft-save -c`'s view of them. Set elements are listed again only
  when the ruleset generation moved (exporter.sources.firewall.generation): otherwise `nft -j -t` (rules
  and counters, sets without their elements) and the elements of the last listing, except for sets
  whose elements change without a commit (timeouts, dynamic sets), which are listed each time. A ban
  tool's 100,000-element set costs `nft` about 0.6 s of CPU to print; unchanged, it costs nothing.
- ipsets through `ipset list -o save`, only when ip_set is loaded (`/sys/module/ip_set`) or built into
  the kernel: a host without it has no ipsets, and asking would load the module.

Every command has a timeout and a minimal environment. A tool that is needed but missing, fails or
times out raises FirewallError: the collector reports it, never a half-read ruleset.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.sources.firewall import ipset, nft
from exporter.sources.firewall.addresses import SetIndexes
from exporter.sources.firewall.generation import nft_generation
from exporter.sources.firewall.iptables import IptablesError, parse_save, read_iptc
from exporter.sources.firewall.model import AddressSet, Chain, Ruleset
from exporter.sources.host.commands import run_command as run_tool
from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.singleflight import singleflight

log = logging.getLogger(__name__)
TIMEOUT = 5.0
TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
MODULES_BUILTIN_MAX_BYTES = 4 << 20  # a distribution kernel lists a few hundred built-in modules (~50 KB)
LEGACY = (
    ("ipv4", "ip_tables_names", "iptables-legacy-save"),
    ("ipv6", "ip6_tables_names", "ip6tables-legacy-save"),
)
NFT_COMPAT = {"ip": "iptables-nft-save", "ip6": "ip6tables-nft-save"}


class FirewallError(Exception):
    """The firewall could not be read completely."""


@dataclass(frozen=True)
class _Listed:
    """The nft sets of the last whole listing, and the generation read before it."""

    generation: int
    sets: dict[str, AddressSet]


class FirewallReader:
    """One per process (the context's): the collectors and the watchlist share its reads, its last
    listing of nft set elements and the lookup index of each set (`indexes`)."""

    def __init__(
        self, paths: HostPaths, timeout: float = TIMEOUT, use_iptc: bool = True, generation: bool = True
    ) -> None:
        self.paths = paths
        self.timeout = timeout
        self.use_iptc = use_iptc
        self.generation: Callable[[], int | None] = nft_generation if generation else lambda: None
        self.indexes = SetIndexes()
        self._listed: _Listed | None = None

    def _run(self, tool: str, *args: str) -> str:
        found = shutil.which(tool, path=TOOL_PATH)
        if found is None:
            raise FirewallError(f"{tool} not found in {TOOL_PATH}")
        run = run_tool(Path(found), *args, timeout=self.timeout)
        if not run.ok:
            raise FirewallError(f"{tool} {' '.join(args)}: {run.stderr.strip()[:200] or run.returncode}")
        return run.stdout

    def legacy_tables(self, names_file: str) -> tuple[str, ...]:
        """Legacy tables that exist now; reading this file creates nothing."""
        try:
            return tuple(self.paths.proc("net", names_file).read_text().split())
        except FileNotFoundError:  # the module is not loaded: no legacy tables
            return ()
        except OSError as exc:
            raise FirewallError(f"/proc/net/{names_file}: {exc.strerror or exc}") from exc

    def _module_loaded(self, name: str) -> bool:
        if self.paths.exists(f"/sys/module/{name}"):
            return True
        try:
            release = self.paths.proc("sys", "kernel", "osrelease").read_text().strip()
            local = self.paths.root(f"/lib/modules/{release}/modules.builtin")
            builtin = read_regular_text(local, MODULES_BUILTIN_MAX_BYTES, paths=self.paths)
        except OSError:
            return False
        return f"/{name}.ko" in builtin

    def _legacy(self, family: str, tables: tuple[str, ...], save: str) -> list[Chain]:
        if self.use_iptc:
            try:
                return read_iptc(tables, family)
            except Exception as exc:  # ImportError, or python-iptables' own errors: the save tool decides
                log.debug("python-iptables unavailable, using %s", save, extra={"err": str(exc)})
        try:
            return parse_save(self._run(save, "-c"), "legacy", family)
        except IptablesError as exc:
            raise FirewallError(f"{save}: {exc}") from exc

    def _nft_json(self, *args: str) -> nft.NftRuleset:
        try:
            return nft.parse_ruleset(self._run("nft", "-j", *args))
        except nft.NftError as exc:
            raise FirewallError(f"nft: {exc}") from exc

    def _nft_listing(self) -> nft.NftRuleset:
        """The ruleset with every set's elements: from nft when the generation moved, else the rules
        from a terse listing with the elements of the last listing (volatile sets listed again)."""
        generation, listed = self.generation(), self._listed
        if generation is not None and listed is not None and listed.generation == generation:
            terse = self._nft_json("-t", "list", "ruleset")
            if all(found.key in listed.sets for found in terse.sets):
                sets = tuple(
                    self._nft_set(found) if found.key in terse.volatile else listed.sets[found.key]
                    for found in terse.sets
                )
                return dataclasses.replace(terse, sets=sets)
        ruleset = self._nft_json("list", "ruleset")
        if generation is not None:
            self._listed = _Listed(generation, {found.key: found for found in ruleset.sets})
        return ruleset

    def _nft_set(self, found: AddressSet) -> AddressSet:
        family, _, table = found.table.partition(" ")
        listed = self._nft_json("list", "set", family, table, found.name).sets
        return listed[0] if listed else found

    def _nft(self) -> tuple[list[Chain], list[AddressSet]]:
        ruleset = self._nft_listing()
        chains = [c for c in ruleset.chains if tuple(c.table.split(" ", 1)) not in ruleset.compat]
        for family in sorted({family for family, _ in ruleset.compat}):
            save = NFT_COMPAT.get(family)
            if save is None:
                continue
            try:
                compat = parse_save(self._run(save, "-c"), "nft", nft.FAMILIES[family])
            except IptablesError as exc:
                raise FirewallError(f"{save}: {exc}") from exc
            chains.extend(
                dataclasses.replace(c, table=nft.table_label(family, c.table))
                for c in compat
                if (family, c.table) in ruleset.compat
            )
        return chains, list(ruleset.sets)

    @singleflight
    def read(self) -> Ruleset:
        chains: list[Chain] = []
        sets: list[AddressSet] = []
        legacy: list[str] = []
        for family, names_file, save in LEGACY:
            tables = self.legacy_tables(names_file)
            legacy.extend(f"{family} {table}" for table in tables)
            if tables:
                chains.extend(self._legacy(family, tables, save))
        found, nft_sets = self._nft()
        chains.extend(found)
        sets.extend(nft_sets)
        if self._module_loaded("ip_set"):
            try:
                sets.extend(ipset.parse_save(self._run("ipset", "list", "-o", "save")))
            except ipset.IpsetError as exc:
                raise FirewallError(f"ipset: {exc}") from exc
        self.indexes.retain(found.key for found in sets)
        return Ruleset(tuple(chains), tuple(sets), tuple(legacy))
