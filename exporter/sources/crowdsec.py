"""CrowdSec's active decisions, from its local API or `cscli decisions list -o json`.

The local API (`GET /v1/decisions` with `X-Api-Key`) is asked with the key and URL of a bouncer's
config (the firewall bouncer's by default: its `api_url` and `api_key`); without one, cscli is run
(only when rootfs is this machine's root, with a timeout). The API answers a list of decisions, cscli
a list of alerts that carry theirs; both answer `null` when there are none. Simulated decisions
block nothing and are left out.

Both answers are another program's output: the API exchange has one deadline for all of it (connect,
send, every read) and a size cap, and the JSON is decoded through `replies.loads_json` (depth, numbers
and text bounded before anything walks it).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.sources.host.commands import run_command as run_tool
from exporter.sources.host.files import read_regular_text
from exporter.sources.host.paths import HostPaths
from exporter.sources.host.replies import Deadline, ReplyError, loads_json
from exporter.sources.host.singleflight import singleflight
from exporter.sources.host.yamltext import YAMLSyntaxError, parse_yaml

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

BOUNCER_CONFIG = "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
CSCLI = "/usr/bin/cscli"
INSTALL_MARKERS = ("/etc/crowdsec",)
TIMEOUT = 3.0
MAX_API_BYTES = 256 * 1024 * 1024  # community blocklists are large, but not this large
MAX_CONFIG_BYTES = 1024 * 1024  # a bouncer config is a few hundred bytes


class CrowdsecError(Exception):
    """The API or cscli could not be asked, or answered something else than decisions."""


def _literal_host(url: str) -> str:
    """The API URL with `localhost` as 127.0.0.1; any other host name is refused (nothing is resolved)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a port out of range raises here, not later
    except ValueError as exc:
        raise CrowdsecError(f"local API {url}: {exc}") from None
    if host == "localhost":
        netloc = parts.netloc.replace("localhost", "127.0.0.1", 1)
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CrowdsecError(f"local API {url}: host names are not resolved, give an address") from None
    return url


# -- one HTTP exchange under one deadline -------------------------------------------------------------


class _DeadlineSocket(socket.socket):
    """A socket whose every send and read waits at most until the exchange's deadline.

    A timeout per operation lets a server that sends a byte a second hold the exchange for ever;
    http.client reads through `recv_into` and sends through `sendall`, so both get only the time left.
    """

    deadline: Deadline

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(self.deadline.remaining())
        return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        self.settimeout(self.deadline.remaining())
        super().sendall(data, flags)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """The same over TLS (one SSL read or write waits at most its socket timeout in all)."""

    deadline: Deadline

    def recv_into(self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0) -> int:
        self.settimeout(self.deadline.remaining())
        return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        self.settimeout(self.deadline.remaining())
        super().sendall(data, flags)


def _connect(parts: urllib.parse.SplitResult, deadline: Deadline) -> socket.socket:
    """A connection to the API's literal address; for https, TLS verified as urllib does."""
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.remaining())
        sock.connect((host, parts.port or (443 if tls else 80)))
        if not tls:
            return sock
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        wrapped = context.wrap_socket(sock, server_hostname=host)  # the handshake waits the time left
    except BaseException:
        sock.close()
        raise
    if not isinstance(wrapped, _DeadlineSSLSocket):  # pragma: no cover - sslsocket_class says it is
        wrapped.close()
        raise TypeError("TLS socket without a deadline")
    wrapped.deadline = deadline
    return wrapped


def http_get(url: str, headers: dict[str, str], timeout: float, max_bytes: int) -> bytes:
    """The body of a 200 answer to `GET url`, all of it within `timeout` seconds and `max_bytes`.

    The URL's host is a literal address; no proxy from the environment (the key would go to it), no
    redirects. Errors: OSError (TimeoutError past the deadline), http.client.HTTPException, CrowdsecError.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CrowdsecError(f"not an http or https URL: {url}")
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    try:
        conn.sock = _connect(
            parts, Deadline(timeout, f"no complete answer within {timeout:g}s")
        )  # http.client speaks over it, never connects itself
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        conn.request("GET", target, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        if response.status != 200:
            raise CrowdsecError(f"HTTP {response.status} {response.reason[:80]}")
        body = response.read(max_bytes + 1)
    except TimeoutError:  # the deadline's own, or a read that waited out the time left
        raise TimeoutError(f"no complete answer within {timeout:g}s") from None
    finally:
        conn.close()
    if len(body) > max_bytes:
        raise CrowdsecError(f"answer larger than {max_bytes} bytes")
    return body


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


def _text(item: dict[str, Any], key: str) -> str:
    found = item.get(key, "")
    if not isinstance(found, str):
        raise CrowdsecError(f"decision {key}: expected text, got {type(found).__name__}")
    return found


def _decision(item: Any) -> Decision | None:
    if not isinstance(item, dict):
        raise CrowdsecError(f"unexpected decision: {type(item).__name__}")
    if item.get("simulated"):
        return None
    return Decision(*(_text(item, key) for key in ("scenario", "origin", "type", "scope", "value")))


def _listed(document: Any) -> list[Any]:
    if document is None:
        return []
    if not isinstance(document, list):
        raise CrowdsecError(f"expected a list, got {type(document).__name__}")
    return document


def _document(text: str, what: str) -> Any:
    """The decoded answer, its depth, numbers and strings bounded; CrowdsecError when it is not JSON."""
    try:
        return loads_json(text, what)
    except ReplyError as exc:
        raise CrowdsecError(str(exc)) from None


def parse_api_decisions(text: str) -> tuple[Decision, ...]:
    """`GET /v1/decisions`: a list of decisions, or null."""
    found = (_decision(item) for item in _listed(_document(text, "decisions")))
    return tuple(d for d in found if d is not None)


def parse_cscli_alerts(text: str) -> tuple[Decision, ...]:
    """`cscli decisions list -o json`: a list of alerts, each with its decisions, or null."""
    decisions = []
    for alert in _listed(_document(text, "alerts")):
        if not isinstance(alert, dict):
            raise CrowdsecError(f"unexpected alert: {type(alert).__name__}")
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


def read_bouncer_config(path: Path, paths: HostPaths | None = None) -> tuple[str, str] | None:
    """(api_url, api_key) from a bouncer's YAML config; None when it has no usable pair.

    Read through the bounded reader (a regular file inside rootfs, at most MAX_CONFIG_BYTES). PyYAML's
    recursive composer reports nesting past Python's limit as RecursionError: a config it cannot take.
    """
    try:
        data = parse_yaml(read_regular_text(path, MAX_CONFIG_BYTES, paths=paths))
    except (OSError, YAMLSyntaxError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    url, key = data.get("api_url"), data.get("api_key")
    if not (isinstance(url, str) and url and isinstance(key, str) and key):
        return None  # a number, a list or a web of aliases is no URL or key (str() of the last never ends)
    return url.rstrip("/"), key


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
        try:
            body = http_get(f"{url}/v1/decisions", {"X-Api-Key": key}, self.timeout, MAX_API_BYTES)
            return parse_api_decisions(body.decode())
        except (OSError, http.client.HTTPException, ValueError, CrowdsecError) as exc:
            raise CrowdsecError(f"local API {url}: {exc}") from exc  # UnicodeDecodeError is a ValueError

    def _cscli(self) -> tuple[Decision, ...]:
        binary = self.paths.root_or_none(self.cscli)
        if not self.paths.is_host_root or binary is None or not binary.exists():
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
        config = self.paths.root_or_none(self.bouncer_config) if self.bouncer_config else None
        bouncer = read_bouncer_config(config, self.paths) if config else None
        markers = (*INSTALL_MARKERS, self.cscli)
        installed = bouncer is not None or any(self.paths.exists(p) for p in markers if p)
        if not installed:
            return CrowdsecSnapshot(False, False)
        try:
            decisions = self._api(*bouncer) if bouncer else self._cscli()
        except CrowdsecError as exc:
            return CrowdsecSnapshot(True, False, error=str(exc))
        via = "api" if bouncer else "cscli"
        return CrowdsecSnapshot(True, True, via, decisions, banned=banned_per_scenario(decisions))
