"""CrowdSec's active decisions, from its local API or `cscli decisions list -o json`.

The local API (`GET /v1/decisions` with `X-Api-Key`) is asked with the key and URL of a bouncer's
config (the firewall bouncer's by default: its `api_url` and `api_key`); without one, cscli is run
(only when rootfs is this machine's root, with a timeout). The API answers a list of decisions, cscli
a list of alerts that carry theirs; both answer `null` when there are none. Simulated decisions
block nothing and are left out.

Both answers are another program's output: the API exchange has one deadline for all of it (connect,
send, every read) and a size cap, and the JSON is decoded through `replies.loads_json` (depth, numbers
and text bounded before anything walks it).

When neither answers, the error keeps the whole chain of causes: cscli's fatal line reads `Unable to
list decisions : performing request: ...: could not get jwt token: Post ...: dial tcp 127.0.0.1:8080:
connect: connection refused`, and the cause is at its end; the local API's refusals carry their
reason in the body (`{"message": "access forbidden"}`).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
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
from exporter.sources.host.singleflight import MAX_AGE, reused_for
from exporter.sources.host.yamltext import YAMLSyntaxError, parse_yaml

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

BOUNCER_CONFIG = "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"
CSCLI = "/usr/bin/cscli"
INSTALL_MARKERS = ("/etc/crowdsec",)
TIMEOUT = 3.0
MAX_API_BYTES = 256 * 1024 * 1024  # community blocklists are large, but not this large
MAX_CONFIG_BYTES = 1024 * 1024  # a bouncer config is a few hundred bytes
MAX_ERROR_BODY = 4096  # the local API's error answers are one short JSON object
MAX_REASON = 2000  # a reason in the log and on the landing page: cscli's chain of causes is ~300
QUIET_LEVELS = frozenset({"trace", "debug", "info"})  # cscli's log lines that are no reason


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
    port = parts.port or (443 if tls else 80)
    try:
        sock.settimeout(deadline.remaining())
        try:
            sock.connect((host, port))
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            raise CrowdsecError(f"connect to {where}: {exc.strerror or exc}") from exc
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
            raise CrowdsecError(_refusal(response))
        body = response.read(max_bytes + 1)
    except TimeoutError:  # the deadline's own, or a read that waited out the time left
        raise TimeoutError(f"no complete answer within {timeout:g}s") from None
    finally:
        conn.close()
    if len(body) > max_bytes:
        raise CrowdsecError(f"answer larger than {max_bytes} bytes")
    return body


def _refusal(response: http.client.HTTPResponse) -> str:
    """`HTTP 403 Forbidden: access forbidden`: the status, and the API's own `message` when it gave one."""
    status = f"HTTP {response.status} {response.reason[:80]}".rstrip()
    try:
        document = json.loads(response.read(MAX_ERROR_BODY))
    except (OSError, http.client.HTTPException, ValueError, RecursionError):
        return status
    message = document.get("message") if isinstance(document, dict) else None
    return f"{status}: {bounded(message)}" if isinstance(message, str) and message else status


def bounded(text: str, limit: int = MAX_REASON) -> str:
    """The text whole when it fits; else its start and its end, where a chain of causes ends."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


_LOGRUS_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _logged(line: str) -> tuple[str, str]:
    """(level, message) of one of cscli's log lines: JSON (`-o json`), logrus text or plain text.

    The message is `msg`, followed by `error` when the line has one (logrus's WithError)."""
    fields: dict[str, object] = {}
    if line.startswith("{"):
        try:
            found = json.loads(line)
        except (ValueError, RecursionError):
            found = None
        fields = found if isinstance(found, dict) else {}
    elif "msg=" in line:
        for key, value in _LOGRUS_FIELD.findall(line):
            try:
                fields[key] = json.loads(value) if value.startswith('"') else value
            except ValueError:
                fields[key] = value
    message = fields.get("msg")
    if not isinstance(message, str):
        return "", line
    error = fields.get("error")
    if isinstance(error, str) and error and error not in message:
        message = f"{message}: {error}"
    level = fields.get("level")
    return (level if isinstance(level, str) else ""), message


def cscli_reason(stderr: str, returncode: int | None) -> str:
    """Why cscli failed, whole: the message of every line of its stderr that is no chatter (info,
    debug), in order, on one line; its exit status when it said nothing."""
    messages = []
    for line in stderr.splitlines():
        if line.strip():
            level, message = _logged(line.strip())
            if level.lower() not in QUIET_LEVELS and message not in messages:
                messages.append(message)
    if messages:
        return bounded("; ".join(messages))
    return f"exited with status {returncode}" if returncode is not None else "did not run"


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
    """(api_url, api_key) from a bouncer's YAML config; None when there is no such file.

    CrowdsecError says why a config that is there cannot be used (cscli is asked then, and when it
    fails too both reasons are kept). Read through the bounded reader (a regular file inside rootfs, at
    most MAX_CONFIG_BYTES). PyYAML's recursive composer reports nesting past Python's limit as
    RecursionError: a config it cannot take.
    """
    try:
        data = parse_yaml(read_regular_text(path, MAX_CONFIG_BYTES, paths=paths))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CrowdsecError(f"{exc.strerror or exc}") from None
    except YAMLSyntaxError as exc:
        raise CrowdsecError(f"not YAML: {bounded(str(exc), 200)}") from None
    except RecursionError:
        raise CrowdsecError("nested too deep") from None
    url, key = (data.get("api_url"), data.get("api_key")) if isinstance(data, dict) else (None, None)
    if not (isinstance(url, str) and url and isinstance(key, str) and key):
        # a number, a list or a web of aliases is no URL or key (str() of the last never ends)
        raise CrowdsecError("no api_url and api_key")
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
        if not self.paths.is_host_root:
            raise CrowdsecError(
                f"no usable bouncer config, and {self.cscli} runs only when rootfs is this machine's root"
            )
        if binary is None or not binary.exists():
            raise CrowdsecError(f"no usable bouncer config and no runnable {self.cscli}")
        run = run_tool(binary, "decisions", "list", "-o", "json", timeout=self.timeout)
        if not run.ok:
            raise CrowdsecError(f"cscli: {cscli_reason(run.stderr, run.returncode)}")
        try:
            return parse_cscli_alerts(run.stdout)
        except ValueError as exc:
            raise CrowdsecError(f"cscli: {exc}") from exc

    def _bouncer(self) -> tuple[tuple[str, str] | None, str]:
        """The bouncer's (api_url, api_key), or why there is none to use ("" when it has no config)."""
        config = self.paths.root_or_none(self.bouncer_config) if self.bouncer_config else None
        try:
            return (read_bouncer_config(config, self.paths) if config else None), ""
        except CrowdsecError as exc:
            return None, f"bouncer config {self.bouncer_config}: {exc}"

    @reused_for(MAX_AGE)  # the crowdsec and firewall collectors and the watchlist, one after another
    def read(self) -> CrowdsecSnapshot:
        bouncer, unusable = self._bouncer()
        markers = (*INSTALL_MARKERS, self.cscli)
        installed = bouncer is not None or bool(unusable) or any(self.paths.exists(p) for p in markers if p)
        if not installed:
            return CrowdsecSnapshot(False, False)
        try:
            decisions = self._api(*bouncer) if bouncer else self._cscli()
        except CrowdsecError as exc:
            return CrowdsecSnapshot(True, False, error=f"{unusable}; {exc}" if unusable else str(exc))
        via = "api" if bouncer else "cscli"
        return CrowdsecSnapshot(True, True, via, decisions, banned=banned_per_scenario(decisions))
