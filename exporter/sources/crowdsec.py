"""CrowdSec's active decisions, from its local API or `cscli decisions list -o json`.

The local API (`GET /v1/decisions` with `X-Api-Key`) is asked with the key and URL of a bouncer's
config (the firewall bouncer's by default: its `api_url` and `api_key`); without one, cscli is run
(only when rootfs is this machine's root, with a timeout). The API answers a list of decisions, cscli
a list of alerts that carry theirs; both answer `null` when there are none. Simulated decisions
block nothing and are left out.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.paths import HostPaths
from exporter.sources.commands import run_command as run_tool
from exporter.sources.singleflight import singleflight
from exporter.sources.yamltext import YAMLSyntaxError, parse_yaml

BOUNCER_CONFIG = "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
CSCLI = "/usr/bin/cscli"
INSTALL_MARKERS = ("/etc/crowdsec",)
TIMEOUT = 3.0


# The local API is asked directly: no proxy from the environment (the key would go to it), no name lookups.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_API_BYTES = 256 * 1024 * 1024  # community blocklists are large, but not this large


def _literal_host(url: str) -> str:
    """The API URL with `localhost` as 127.0.0.1; any other host name is refused (nothing is resolved)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost":
        netloc = parts.netloc.replace("localhost", "127.0.0.1", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CrowdsecError(f"local API {url}: host names are not resolved, give an address") from None
    return url


class CrowdsecError(Exception):
    """The API or cscli could not be asked, or answered something else than decisions."""


@dataclass(frozen=True)
class Decision:
    scenario: str
    origin: str
    action: str  # ban, captcha, ...
    scope: str  # Ip, Range, ...
    value: str

    @property
    def ssh_related(self) -> bool:
        return "ssh" in self.scenario.lower()


@dataclass(frozen=True)
class CrowdsecSnapshot:
    installed: bool
    up: bool
    via: str | None = None  # "api" | "cscli"
    decisions: tuple[Decision, ...] = ()
    error: str = ""
    banned: dict[str, int] = field(default_factory=dict)  # scenario -> distinct banned values


def _decision(item: Any) -> Decision | None:
    if not isinstance(item, dict):
        raise CrowdsecError(f"unexpected decision: {str(item)[:80]}")
    if item.get("simulated"):
        return None
    return Decision(
        str(item.get("scenario", "")),
        str(item.get("origin", "")),
        str(item.get("type", "")),
        str(item.get("scope", "")),
        str(item.get("value", "")),
    )


def _listed(document: Any) -> list[Any]:
    if document is None:
        return []
    if not isinstance(document, list):
        raise CrowdsecError(f"expected a list, got {type(document).__name__}")
    return document


def parse_api_decisions(text: str) -> tuple[Decision, ...]:
    """`GET /v1/decisions`: a list of decisions, or null."""
    found = (_decision(item) for item in _listed(json.loads(text)))
    return tuple(d for d in found if d is not None)


def parse_cscli_alerts(text: str) -> tuple[Decision, ...]:
    """`cscli decisions list -o json`: a list of alerts, each with its decisions, or null."""
    decisions = []
    for alert in _listed(json.loads(text)):
        if not isinstance(alert, dict):
            raise CrowdsecError(f"unexpected alert: {str(alert)[:80]}")
        for item in _listed(alert.get("decisions")):
            decision = _decision(item)
            if decision is not None:
                decisions.append(decision)
    return tuple(decisions)


def banned_per_scenario(decisions: tuple[Decision, ...]) -> dict[str, int]:
    """Distinct banned values (addresses or ranges) per scenario."""
    values: dict[str, set[str]] = {}
    for decision in decisions:
        if decision.action == "ban":
            values.setdefault(decision.scenario, set()).add(decision.value)
    return {scenario: len(found) for scenario, found in values.items()}


def read_bouncer_config(path: Path) -> tuple[str, str] | None:
    """(api_url, api_key) from a bouncer's YAML config; None when it has no usable pair."""
    try:
        data = parse_yaml(path.read_text())
    except (OSError, YAMLSyntaxError):
        return None
    if not isinstance(data, dict) or not data.get("api_url") or not data.get("api_key"):
        return None
    return str(data["api_url"]).rstrip("/"), str(data["api_key"])


class CrowdsecReader:
    def __init__(
        self,
        paths: HostPaths,
        bouncer_config: str = BOUNCER_CONFIG,
        cscli: str = CSCLI,
        timeout: float = TIMEOUT,
    ) -> None:
        self.paths = paths
        self.bouncer_config = bouncer_config
        self.cscli = cscli
        self.timeout = timeout

    def _api(self, url: str, key: str) -> tuple[Decision, ...]:
        url = _literal_host(url)
        request = urllib.request.Request(f"{url}/v1/decisions", headers={"X-Api-Key": key})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_API_BYTES + 1)
        except (OSError, urllib.error.URLError, ValueError) as exc:  # HTTPError is an URLError
            raise CrowdsecError(f"local API {url}: {exc}") from exc
        if len(body) > MAX_API_BYTES:
            raise CrowdsecError(f"local API {url}: answer larger than {MAX_API_BYTES} bytes")
        try:
            return parse_api_decisions(body.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise CrowdsecError(f"local API {url}: {exc}") from exc

    def _cscli(self) -> tuple[Decision, ...]:
        binary = self.paths.root(self.cscli)
        if not self.paths.is_host_root or not binary.exists():
            raise CrowdsecError(f"no bouncer config and no runnable {self.cscli}")
        run = run_tool(binary, "decisions", "list", "-o", "json", timeout=self.timeout)
        if not run.ok:
            raise CrowdsecError(f"cscli: {run.stderr.strip()[:200]}")
        try:
            return parse_cscli_alerts(run.stdout)
        except ValueError as exc:
            raise CrowdsecError(f"cscli: {exc}") from exc

    @singleflight
    def read(self) -> CrowdsecSnapshot:
        bouncer = read_bouncer_config(self.paths.root(self.bouncer_config)) if self.bouncer_config else None
        markers = (*INSTALL_MARKERS, self.cscli)
        installed = bouncer is not None or any(self.paths.root(p).exists() for p in markers if p)
        if not installed:
            return CrowdsecSnapshot(False, False)
        try:
            decisions = self._api(*bouncer) if bouncer else self._cscli()
        except CrowdsecError as exc:
            return CrowdsecSnapshot(True, False, error=str(exc))
        via = "api" if bouncer else "cscli"
        return CrowdsecSnapshot(True, True, via, decisions, banned=banned_per_scenario(decisions))
