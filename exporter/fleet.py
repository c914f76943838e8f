"""`diagnose ADDRESS --fleet=PROMETHEUS_URL`: which servers keep ADDRESS out, by which layer, and what to do.

Prometheus is the inventory: the active targets of one job (`/api/v1/targets?state=active`, filtered on
the `job` label) are the exporters to ask, so the fleet has no second list to keep in step. Each is
asked `GET /diagnose?address=ADDRESS` (served with --web.enable-diagnose) at the scheme, host and port
of its scrape URL, concurrently (at most CONCURRENCY at once, each request bounded by --fleet.timeout),
with the CA file and basic auth given here. A host is named by its `instance` label, as the alerts and
dashboards name it. No name is looked up beyond the scrape URL's own host, and no redirect is followed
(it would carry the credentials elsewhere).

Exit 1 when a host keeps the address out; else 3 when a host could not be asked or answered `unknown`
(what it could not read might deny: the fleet's answer is not sure, as `diagnose`'s exit 3); else 0;
2 on an error (bad address or flags, Prometheus unreachable or no active target of the job).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from exporter.flagparse import positive_seconds
from exporter.sources.access import parse_target

DEFAULT_JOB = "ssh-access-exporter"
CONCURRENCY = 32  # exporters asked at once
MAX_BODY = 4 << 20  # bytes read of one answer (Prometheus's target list included)

EXIT_NONE_BLOCKS = 0
EXIT_BLOCKED = 1
EXIT_ERROR = 2
EXIT_NOT_SURE = 3


class FleetError(Exception):
    """The fleet cannot be asked at all (exit 2): Prometheus unreachable, no target, a bad flag."""


@dataclass(frozen=True)
class FleetOptions:
    prometheus: str
    job: str = DEFAULT_JOB
    timeout: float = 10.0
    ca_file: str | None = None
    user: str | None = None
    password_file: str | None = None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> FleetOptions:
        return cls(
            prometheus=str(args.fleet),
            job=str(getattr(args, "fleet.job")),
            timeout=float(getattr(args, "fleet.timeout")),
            ca_file=getattr(args, "fleet.ca_file"),
            user=getattr(args, "fleet.basic_auth_user"),
            password_file=getattr(args, "fleet.basic_auth_password_file"),
        )


def add_flags(parser: argparse.ArgumentParser) -> None:
    """diagnose's --fleet.* flags (diagnose's alone: the server takes none of them)."""
    group = parser.add_argument_group("fleet (ask every exporter Prometheus scrapes instead of this host)")
    group.add_argument(
        "--fleet",
        metavar="PROMETHEUS_URL",
        default=None,
        help="Prometheus whose active targets of --fleet.job are asked at /diagnose (each exporter must "
        "enable it: see the README's Fleet diagnose); the --path.* and --collector.* flags are then unused",
    )
    group.add_argument(
        "--fleet.job", default=DEFAULT_JOB, help=f"the job label of the exporters (default {DEFAULT_JOB})"
    )
    group.add_argument(
        "--fleet.timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds for each request, to Prometheus and to each exporter (default 10)",
    )
    group.add_argument(
        "--fleet.ca-file",
        default=None,
        help="CA certificates (PEM) that verify https exporters and Prometheus",
    )
    group.add_argument("--fleet.basic-auth-user", default=None, help="basic auth user for the exporters")
    group.add_argument(
        "--fleet.basic-auth-password-file",
        default=None,
        help="file holding the basic auth password for the exporters (trailing whitespace dropped)",
    )


@dataclass(frozen=True)
class Target:
    """One exporter: its `instance` label, and where Prometheus scrapes it."""

    instance: str
    scrape_url: str

    def diagnose_url(self, address: str) -> str:
        """/diagnose at the scrape URL's scheme, host and port (its path and query are the metrics')."""
        split = urllib.parse.urlsplit(self.scrape_url)
        query = urllib.parse.urlencode({"address": address})
        return urllib.parse.urlunsplit((split.scheme, split.netloc, "/diagnose", query, ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then an HTTPError: credentials never follow it elsewhere


class Client:
    """HTTP GETs with one TLS context and no proxy from the environment (Prometheus connects directly)."""

    def __init__(self, options: FleetOptions) -> None:
        self.timeout = options.timeout
        try:
            self.tls = ssl.create_default_context(cafile=options.ca_file) if options.ca_file else None
        except (OSError, ssl.SSLError) as exc:
            raise FleetError(f"--fleet.ca-file: {exc}") from None
        self.authorization = _authorization(options)
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirect()]
        if self.tls is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.tls))
        self.opener = urllib.request.build_opener(*handlers)

    def get_json(self, url: str, authorized: bool = False) -> Any:
        """The decoded JSON answer; urllib.error.HTTPError (with its body read) for a non-2xx status."""
        headers = {"Accept": "application/json"}
        if authorized and self.authorization:
            headers["Authorization"] = self.authorization
        request = urllib.request.Request(url, headers=headers)
        with self.opener.open(request, timeout=self.timeout) as response:
            body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError(f"answer larger than {MAX_BODY} bytes")
        return json.loads(body)


def _authorization(options: FleetOptions) -> str:
    if options.user is None and options.password_file is None:
        return ""
    if options.user is None or options.password_file is None:
        raise FleetError("--fleet.basic-auth-user and --fleet.basic-auth-password-file go together")
    try:
        password = Path(options.password_file).read_text().rstrip()
    except OSError as exc:
        raise FleetError(f"--fleet.basic-auth-password-file: {exc}") from None
    token = base64.b64encode(f"{options.user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def targets(client: Client, prometheus: str, job: str) -> list[Target]:
    """The active targets of `job`, by instance (FleetError when Prometheus cannot tell)."""
    url = f"{prometheus.rstrip('/')}/api/v1/targets?state=active"
    try:
        answer = client.get_json(url)
        if answer.get("status") != "success":
            raise ValueError(f"status {answer.get('status')!r}: {answer.get('error', '')}")
        found = {
            Target(str(t["labels"]["instance"]), str(t["scrapeUrl"]))
            for t in answer["data"]["activeTargets"]
            if t.get("labels", {}).get("job") == job
        }
    except FAILURES as exc:
        raise FleetError(f"cannot list the targets of Prometheus at {prometheus}: {_reason(exc)}") from None
    if not found:
        raise FleetError(f"Prometheus at {prometheus} has no active target of job {job!r}")
    return sorted(found, key=lambda t: (t.instance, t.scrape_url))


# Why an exporter's /diagnose answers with these statuses, when its body does not say.
EXPORTER_HINTS = {
    401: "unauthorized (--fleet.basic-auth-user, --fleet.basic-auth-password-file)",
    404: "no /diagnose (is the exporter started with --web.enable-diagnose?)",
    503: "busy: another diagnosis is running (Retry-After)",
}
# What one request may raise: the network, TLS, HTTP framing, a body that is not the JSON expected.
FAILURES = (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, AttributeError)


def _reason(exc: BaseException, hints: dict[int, str] | None = None) -> str:
    """What went wrong, in the words an operator acts on."""
    if isinstance(exc, urllib.error.HTTPError):
        hints = hints or {}
        detail = ""
        with contextlib.suppress(OSError, ValueError, AttributeError):  # an error body is optional
            detail = str(json.loads(exc.read(MAX_BODY)).get("error", ""))
        return f"HTTP {exc.code}: {detail or hints.get(exc.code, exc.reason)}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def ask(client: Client, target: Target, address: str) -> dict[str, Any]:
    """One host's entry of the answer (`blocked`, `layers` with their remedy, `host`); raises when the
    exporter cannot be asked or its answer is not a diagnosis."""
    answer = client.get_json(target.diagnose_url(address), authorized=True)
    if not isinstance(answer, dict) or answer.get("outcome") not in ("gets_in", "kept_out", "unknown"):
        raise ValueError("the answer is not a diagnosis")
    remedy = answer.get("remedy", {})
    layers = [{**layer, "remedy": remedy.get(layer["layer"], [])} for layer in answer["layers"]]
    host = {**answer["host"], "outcome": answer["outcome"], "unread": answer["unread"]}
    return {
        "instance": target.instance,
        "blocked": answer["outcome"] == "kept_out",
        "layers": layers,
        "host": host,
    }


def fleet_diagnosis(address: str, options: FleetOptions) -> dict[str, Any]:
    """The fleet's answer: `{"address", "blocked", "hosts": [...], "unreachable": [...]}`."""
    client = Client(options)
    found = targets(client, options.prometheus, options.job)
    hosts: list[dict[str, Any]] = []
    unreachable: list[dict[str, str]] = []

    def one(target: Target) -> tuple[Target, dict[str, Any] | None, str]:
        try:
            return target, ask(client, target, address), ""
        except FAILURES as exc:
            return target, None, _reason(exc, EXPORTER_HINTS)

    with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(found))) as pool:
        for target, host, error in pool.map(one, found):
            if host is None:
                unreachable.append({"instance": target.instance, "error": error})
            else:
                hosts.append(host)
    return {
        "address": address,
        "blocked": any(host["blocked"] for host in hosts),
        "hosts": hosts,
        "unreachable": unreachable,
    }


def exit_code(answer: dict[str, Any]) -> int:
    if answer["blocked"]:
        return EXIT_BLOCKED
    unsure = any(host["host"]["outcome"] == "unknown" for host in answer["hosts"])
    return EXIT_NOT_SURE if answer["unreachable"] or unsure else EXIT_NONE_BLOCKS


def _why_kept_out(host: dict[str, Any]) -> str:
    """`LAYER (EVIDENCE): to do: REMEDY` for each denying layer; else the host-wide causes."""
    parts = []
    unsure = {unread["layer"] for unread in host["host"]["unread"]}  # a deny that hangs on a name lookup
    for layer in host["layers"]:
        if layer["verdict"] != "deny" or layer["layer"] in unsure:
            continue
        text = layer["layer"]
        if layer["evidence"]:
            text += f" ({'; '.join(layer['evidence'])})"
        if layer["remedy"]:
            text += f": to do: {'; '.join(layer['remedy'])}"
        parts.append(text)
    parts += host["host"]["keeps_everyone_out"]
    return " | ".join(parts) or "kept out"


def as_text(answer: dict[str, Any], out: TextIO) -> None:
    """The hosts that keep it out first (one line each: layer, evidence, remedy), then the others."""
    hosts, unreachable = answer["hosts"], answer["unreachable"]
    blocked = [host for host in hosts if host["blocked"]]
    total = len(hosts) + len(unreachable)
    verdict = (
        f"KEPT OUT by {len(blocked)} of {total} host(s)"
        if blocked
        else f"kept out by none of {total} host(s)"
    )
    out.write(f"{answer['address']}: {verdict}\n")
    for host in blocked:
        out.write(f"  kept out   {host['instance']}: {_why_kept_out(host)}\n")
    for host in hosts:
        if host["blocked"]:
            continue
        if host["host"]["outcome"] == "unknown":
            unread = ", ".join(f"{u['layer']} ({u['reason']})" for u in host["host"]["unread"])
            out.write(f"  not sure   {host['instance']}: nothing read denies; could not read: {unread}\n")
        else:
            out.write(f"  gets in    {host['instance']}\n")
    for host in unreachable:
        out.write(f"  not asked  {host['instance']}: {host['error']}\n")


def main(address: str, options: FleetOptions, as_json: bool) -> int:
    try:
        parse_target(address)
    except ValueError:
        print(f"ssh-access-exporter diagnose: {address!r} is not an address or network", file=sys.stderr)
        return EXIT_ERROR
    try:
        answer = fleet_diagnosis(address, options)
    except FleetError as exc:
        print(f"ssh-access-exporter diagnose: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        as_text(answer, sys.stdout)
    return exit_code(answer)
