"""--web.config.file: TLS, basic auth and extra headers, in the Prometheus exporter-toolkit format.

Operators already write these files for node_exporter and friends, so the keys, defaults and checks follow
exporter-toolkit's docs/web-configuration.md. Where Python's `ssl` cannot do what Go's crypto/tls does, the
file is refused with a message naming the key rather than served with weaker security than it asks for.

Differences from exporter-toolkit, each deliberate:
- the file is read once at start; certificate, key and client CA *files* are reloaded when their mtime,
  size or inode change (certificate rotation), checked on each new connection;
- `RequireAnyClientCert` (a client certificate that no CA checks) is refused: `ssl` always verifies a
  certificate it asks for; `RequestClientCert` asks for none, which grants the same access;
- `cipher_suites` and `curve_preferences` are accepted and ignored with a warning (Go's names are not
  OpenSSL's, and TLS 1.3 suites are not configurable in `ssl`); `http2` is accepted and ignored;
- `rate_limit` is refused rather than silently not enforced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config import ConfigError, load_yaml_mapping
from exporter.sources.host.files import CONFIG_FILE_MAX_BYTES, read_regular_file

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# client_auth_type -> what the server asks of clients; None: refused (see the module docstring).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": None,
    "RequireClientCert": None,  # exporter-toolkit's old spelling of RequireAnyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Headers exporter-toolkit lets a web config set, with the only values allowed where it restricts them.
EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
# bcrypt checks at once: one per core, as each is pure CPU; more would only slow every one of them.
BCRYPT_CONCURRENCY = max(2, os.cpu_count() or 2)
_BCRYPT_HASH = re.compile(r"^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_HTTP_KEYS = ("http2", "headers")


@dataclass(frozen=True)
class TLSServerConfig:
    """tls_server_config with relative paths already joined to the web config file's directory."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    prefer_server_cipher_suites: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        """The files whose change means the SSLContext must be rebuilt."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True)
class WebConfig:
    """The validated web config file; `tls` None means plain HTTP, no users means no basic auth."""

    tls: TLSServerConfig | None = None
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    basic_auth_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def _mapping(value: Any, key: str, known: Iterable[str]) -> dict[str, Any]:
    """A YAML mapping whose keys all belong to `known`; null is an empty mapping, as in Go's yaml."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a mapping")
    known = tuple(known)
    for name in value:
        if name not in known:
            raise ConfigError(f"{key}.{name}: unknown key (known: {', '.join(known)})")
    return value


def _string(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string, not {value!r}")
    return value


def _bool(value: Any, key: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, not {value!r}")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key}: must be a list of strings")
    return tuple(value)


def _path(value: Any, key: str, base: Path) -> Path | None:
    """exporter-toolkit joins relative paths to the web config file's directory, not the working one."""
    text = _string(value, key)
    return None if text is None else base / text


def _tls_version(value: Any, key: str, default: ssl.TLSVersion) -> ssl.TLSVersion:
    text = _string(value, key)
    if text is None:
        return default
    if text not in TLS_VERSIONS:
        raise ConfigError(f"{key}: {text!r} is not one of {', '.join(TLS_VERSIONS)}")
    return TLS_VERSIONS[text]


def _parse_tls(value: Any, base: Path) -> TLSServerConfig | None:
    data = _mapping(value, "tls_server_config", _TLS_KEYS)
    key = "tls_server_config."
    tls = TLSServerConfig(
        cert_file=_path(data.get("cert_file"), key + "cert_file", base),
        key_file=_path(data.get("key_file"), key + "key_file", base),
        cert=_string(data.get("cert"), key + "cert"),
        key=_string(data.get("key"), key + "key"),
        client_auth_type=_string(data.get("client_auth_type"), key + "client_auth_type") or "NoClientCert",
        client_ca_file=_path(data.get("client_ca_file"), key + "client_ca_file", base),
        client_ca=_string(data.get("client_ca"), key + "client_ca"),
        client_allowed_sans=_strings(data.get("client_allowed_sans"), key + "client_allowed_sans"),
        min_version=_tls_version(data.get("min_version"), key + "min_version", ssl.TLSVersion.TLSv1_2),
        max_version=_tls_version(data.get("max_version"), key + "max_version", ssl.TLSVersion.TLSv1_3),
        prefer_server_cipher_suites=_bool(
            data.get("prefer_server_cipher_suites"), key + "prefer_server_cipher_suites", True
        ),
    )
    for ignored in ("cipher_suites", "curve_preferences"):
        if _strings(data.get(ignored), key + ignored):
            log.warning("web config key ignored: OpenSSL's defaults apply", extra={"key": key + ignored})
    # As exporter-toolkit's TLSConfig.IsEnabled: any of these turns TLS on, and then it must be complete.
    enabling = ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type")
    if not any(data.get(name) for name in enabling):
        return None
    for name in ("cert", "key", "client_ca"):
        if data.get(name) and data.get(name + "_file"):
            raise ConfigError(f"{key}{name}: give either {name} or {name}_file, not both")
    if tls.cert_file is None and tls.cert is None:
        raise ConfigError(f"{key}cert_file: missing (one of cert_file or cert is needed for TLS)")
    if tls.key_file is None and tls.key is None:
        raise ConfigError(f"{key}key_file: missing (one of key_file or key is needed for TLS)")
    if tls.client_auth_type not in CLIENT_AUTH:
        raise ConfigError(
            f"{key}client_auth_type: {tls.client_auth_type!r} is not one of {', '.join(CLIENT_AUTH)}"
        )
    if CLIENT_AUTH[tls.client_auth_type] is None:
        raise ConfigError(
            f"{key}client_auth_type: {tls.client_auth_type} (a client certificate no CA checks) is not "
            "supported; use RequireAndVerifyClientCert with client_ca_file"
        )
    has_ca = tls.client_ca_file is not None or tls.client_ca is not None
    if has_ca and tls.client_auth_type == "NoClientCert":
        raise ConfigError(
            f"{key}client_ca_file: a client CA is configured but client_auth_type is NoClientCert"
        )
    if tls.client_allowed_sans and CLIENT_AUTH[tls.client_auth_type] == ssl.CERT_NONE:
        raise ConfigError(
            f"{key}client_allowed_sans: needs client_auth_type VerifyClientCertIfGiven or "
            "RequireAndVerifyClientCert (only a verified certificate's names can be trusted)"
        )
    if tls.min_version > tls.max_version:
        raise ConfigError(f"{key}min_version: is above max_version")
    return tls


def _parse_http(value: Any) -> tuple[tuple[tuple[str, str], ...], bool]:
    data = _mapping(value, "http_server_config", _HTTP_KEYS)
    http2 = _bool(data.get("http2"), "http_server_config.http2", True)
    headers = _mapping(data.get("headers"), "http_server_config.headers", EXTRA_HEADERS)
    extra = []
    for name, raw in headers.items():
        key = f"http_server_config.headers.{name}"
        text = _string(raw, key)
        if text is None:  # "Unset if blank"
            continue
        allowed = EXTRA_HEADERS[name]
        if allowed and text not in allowed:
            raise ConfigError(f"{key}: {text!r} is not one of {', '.join(allowed)}")
        extra.append((name, text))
    return tuple(extra), http2


def _parse_users(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError("basic_auth_users: must be a mapping of user name to bcrypt hash")
    users = []
    for user, hashed in value.items():
        # YAML reads `1000: ...` as a number; Go's yaml makes it the string "1000", and so do we.
        if isinstance(user, bool) or not isinstance(user, str | int):
            raise ConfigError(f"basic_auth_users.{user}: a user name must be a string")
        key = f"basic_auth_users.{user}"
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            raise ConfigError(f'{key}: not a bcrypt hash ($2y$10$... as `htpasswd -nBC 10 ""` prints)')
        users.append((str(user), hashed))
    return tuple(users)


def parse_web_config(text: str, base: Path, origin: str = "web config") -> WebConfig:
    """Validate YAML text into a WebConfig; relative paths are joined to `base`."""
    data = load_yaml_mapping(text, origin, _TOP_KEYS)
    if data is None:
        return WebConfig()
    if data.get("rate_limit") is not None:
        raise ConfigError("rate_limit: not supported by this exporter; rate-limit in a reverse proxy")
    headers, http2 = _parse_http(data.get("http_server_config"))
    return WebConfig(
        tls=_parse_tls(data.get("tls_server_config"), base),
        headers=headers,
        http2=http2,
        basic_auth_users=_parse_users(data.get("basic_auth_users")),
    )


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the file named by --web.config.file."""
    try:
        text = read_regular_file(path, CONFIG_FILE_MAX_BYTES).decode("utf-8")  # a FIFO must not hang start-up
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"web.config.file: cannot read {path}: {exc}") from None
    return parse_web_config(text, path.parent, origin=str(path))


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server-side SSLContext; a file that cannot be read or used is a ConfigError naming its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    key = "tls_server_config."
    with tempfile.TemporaryDirectory(prefix="web-config-") as private:
        # ssl loads certificates and keys only from files: inline PEM goes through a private temp dir.
        cert_file = tls.cert_file or _write_private(Path(private) / "cert.pem", tls.cert or "")
        key_file = tls.key_file or _write_private(Path(private) / "key.pem", tls.key or "")
        for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"{key}{name}: cannot read {path}")
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as exc:
            name = "cert_file" if tls.cert_file else "cert"
            raise ConfigError(f"{key}{name}: cannot load the certificate and key: {exc}") from None
    verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if verify_mode is None:  # refused by _parse_tls; a hand-built config gets the same answer
        raise ConfigError(f"{key}client_auth_type: {tls.client_auth_type} is not supported")
    context.verify_mode = verify_mode
    if context.verify_mode != ssl.CERT_NONE:
        try:
            if tls.client_ca_file is not None:
                context.load_verify_locations(cafile=tls.client_ca_file)
            elif tls.client_ca is not None:
                context.load_verify_locations(cadata=tls.client_ca)
            else:
                # Go verifies client certificates against the system roots when no client CA is given.
                log.warning("client certificates are verified against the system CAs (no client_ca_file)")
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (ssl.SSLError, OSError) as exc:
            name = "client_ca_file" if tls.client_ca_file else "client_ca"
            raise ConfigError(f"{key}{name}: cannot load the client CA: {exc}") from None
    return context


def _write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def _stamp(paths: Iterable[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class TLSContextSource:
    """The current SSLContext, rebuilt when a certificate, key or CA file changes (cert rotation).

    Built once here so a bad file fails the start; a bad file later is logged and the last good
    context keeps serving, as a half-written certificate during rotation must not take scrapes down.
    """

    def __init__(self, tls: TLSServerConfig) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._stamps = _stamp(tls.files)
        self._context = build_ssl_context(tls)
        self._allowed_sans = {_normalize_san(name) for name in tls.client_allowed_sans}

    def context(self) -> ssl.SSLContext:
        stamps = _stamp(self.tls.files)
        with self._lock:
            if stamps != self._stamps:
                self._stamps = stamps  # a failed rebuild is retried only after the next change
                try:
                    self._context = build_ssl_context(self.tls)
                    log.info("reloaded TLS certificates", extra={"files": ",".join(map(str, self.tls.files))})
                except ConfigError as exc:
                    log.error("cannot reload TLS certificates, keeping the old ones", extra={"err": str(exc)})
            return self._context

    def peer_allowed(self, tls: ssl.SSLObject | ssl.SSLSocket) -> bool:
        """client_allowed_sans: the verified client certificate must carry one of the listed names."""
        if not self._allowed_sans:
            return True
        sans = (tls.getpeercert() or {}).get("subjectAltName", ())
        names = {_normalize_san(str(pair[1])) for pair in sans if isinstance(pair, tuple) and len(pair) == 2}
        return bool(names & self._allowed_sans)


def _normalize_san(name: str) -> str:
    """IP addresses compare by value (ssl prints IPv6 SANs uncompressed and upper case)."""
    try:
        return str(ipaddress.ip_address(name.strip()))
    except ValueError:
        return name.strip()


class BasicAuth:
    """Checks Basic credentials against bcrypt hashes; a success is remembered, bcrypt being slow.

    The cache holds, per user, an HMAC (with a per-process random key) of the hash and the password that
    last verified, so no password is kept in memory and the comparison is constant-time.

    Timing tells no user names: a check the cache does not answer runs one bcrypt per cost the file
    uses (the user's own hash at its cost, a decoy at each other cost; decoys alone for an unknown
    user), so every user, known or not, costs the same whatever costs the file mixes. bcrypt releases the
    GIL: up to BCRYPT_CONCURRENCY checks run side by side, so wrong passwords do not queue a good login
    behind them one by one, and a flood of them takes no more cores than that.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = {user: hashed.encode() for user, hashed in users.items()}
        # A decoy per cost: a salt with a hash part that never matches; bcrypt does the full work anyway.
        self._decoys = {cost: _decoy_hash(cost) for cost in sorted({_cost(h) for h in self.users.values()})}
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._bcrypt_slots = threading.BoundedSemaphore(BCRYPT_CONCURRENCY)
        self.bcrypt_calls = 0

    def check(self, user: str, password: bytes) -> bool:
        hashed = self.users.get(user)
        # bcrypt reads 72 bytes at most; Go's CompareHashAndPassword (and htpasswd) ignore the rest too.
        password = password[:72]
        digest = hmac.new(self._key, (hashed or b"") + b"\0" + password, hashlib.sha256).digest()
        if hashed is not None:
            with self._lock:
                cached = self._verified.get(user)
            if cached is not None and hmac.compare_digest(cached, digest):
                return True
        if not self._bcrypt(password, hashed):
            return False
        with self._lock:
            self._verified[user] = digest
        return True

    def _bcrypt(self, password: bytes, hashed: bytes | None) -> bool:
        """True when `hashed` (None: an unknown user) matches; as long for every user (see the class)."""
        import bcrypt  # noqa: PLC0415 (imported when basic auth is first used)

        own_cost = _cost(hashed) if hashed is not None else None
        ok = False
        with self._bcrypt_slots:
            with self._lock:
                self.bcrypt_calls += 1
            for cost, decoy in self._decoys.items():
                real = hashed if hashed is not None and cost == own_cost else None
                try:
                    matched = bcrypt.checkpw(password, real or decoy)
                except ValueError:
                    matched = False
                ok = ok or (matched and real is not None)
        return ok

    def check_header(self, authorization: str | None) -> bool:
        """The `Authorization: Basic base64(user:password)` request header."""
        if not authorization:
            return False
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        if not sep:
            return False
        return self.check(user.decode("utf-8", errors="surrogateescape"), password)


def _cost(hashed: bytes) -> int:
    """The cost of a hash `_BCRYPT_HASH` accepted: `$2y$10$...` -> 10."""
    return int(hashed[4:6])


def _decoy_hash(cost: int) -> bytes:
    """A bcrypt hash of that cost that no password matches (its hash part is not bcrypt's output)."""
    import bcrypt  # noqa: PLC0415 (as in BasicAuth._bcrypt)

    return bcrypt.gensalt(rounds=cost) + b"." * 31


class WebConfigMiddleware:
    """Wraps the WSGI app: extra response headers on every answer, then basic auth when users exist."""

    def __init__(self, app: WSGIApp, config: WebConfig) -> None:
        self.app = app
        self.headers = config.headers
        self.auth = BasicAuth(dict(config.basic_auth_users)) if config.basic_auth_users else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            extra = [(name, value) for name, value in self.headers if name.lower() not in present]
            return start_response(status, headers + extra, exc_info)

        if self.auth is not None and not self.auth.check_header(environ.get("HTTP_AUTHORIZATION")):
            start(
                "401 Unauthorized",
                [("WWW-Authenticate", "Basic"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"Unauthorized\n"]
        return self.app(environ, start)
