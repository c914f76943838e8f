"""--web.config.file: the file's format, parsed and validated into exporter.web.settings' typed values.

Operators already write these files for node_exporter and friends, so the keys, defaults and checks follow
exporter-toolkit's docs/web-configuration.md. Where Python's `ssl` cannot do what Go's crypto/tls does, the
file is refused with a message naming the key rather than served with weaker security than it asks for.
What the settings do lives beside this module: exporter.web.tls (SSL contexts, certificate reload),
exporter.web.auth (basic auth), exporter.web.middleware (headers and auth around the app).

Differences from exporter-toolkit, each deliberate:
- the file is read once at start; certificate, key and client CA *files* are reloaded when their mtime,
  size or inode change (certificate rotation), checked on each new connection;
- `RequireAnyClientCert` (a client certificate that no CA checks) is refused: `ssl` always verifies a
  certificate it asks for; `RequestClientCert` asks for none, which grants the same access;
- `cipher_suites` and `curve_preferences` are checked against Go's names (a typo fails as in Go), then
  ignored with a warning (Go's names are not OpenSSL's, and TLS 1.3 suites are not configurable in
  `ssl`); `http2` is accepted and ignored (the server speaks HTTP/1.1);
- `rate_limit` is refused rather than silently not enforced.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from exporter.config import ConfigError, load_yaml_mapping
from exporter.sources.host.files import CONFIG_FILE_MAX_BYTES, read_regular_file
from exporter.web.auth import is_bcrypt_hash
from exporter.web.settings import (
    CLIENT_AUTH,
    EXTRA_HEADERS,
    GO_CIPHER_SUITES,
    GO_CURVES,
    TLS_VERSIONS,
    TLSServerConfig,
    WebConfig,
)

log = logging.getLogger(__name__)

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
    for ignored, known in (("cipher_suites", GO_CIPHER_SUITES), ("curve_preferences", GO_CURVES)):
        names = _strings(data.get(ignored), key + ignored)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"{key}{ignored}: {unknown[0]!r} is not a name Go's crypto/tls knows")
        if names:
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
    ca_key = "client_ca_file" if tls.client_ca_file is not None else "client_ca"
    if (tls.client_ca_file or tls.client_ca) and tls.client_auth_type == "NoClientCert":
        raise ConfigError(f"{key}{ca_key}: a client CA is configured but client_auth_type is NoClientCert")
    # exporter-toolkit: the SANs need a client that must send a certificate (RequireAnyClientCert, refused
    # above, or RequireAndVerifyClientCert); with the others a client sends none and has no name to match.
    if tls.client_allowed_sans and CLIENT_AUTH[tls.client_auth_type] != ssl.CERT_REQUIRED:
        raise ConfigError(
            f"{key}client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert (a client that "
            f"may send no certificate, as with {tls.client_auth_type}, has no name to match)"
        )
    if tls.min_version > tls.max_version:
        raise ConfigError(f"{key}min_version: is above max_version")
    return tls


def _parse_http(value: Any) -> tuple[tuple[tuple[str, str], ...], bool]:
    data = _mapping(value, "http_server_config", _HTTP_KEYS)
    http2 = _bool(data.get("http2"), "http_server_config.http2", True)
    headers = _mapping(data.get("headers"), "http_server_config.headers", EXTRA_HEADERS)
    extra = []
    for name, given in headers.items():
        key = f"http_server_config.headers.{name}"
        # `X-XSS-Protection: 0` is YAML's number 0; Go's yaml reads it as the text "0".
        number = isinstance(given, int) and not isinstance(given, bool)
        text = _string(str(given) if number else given, key)
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
        if not is_bcrypt_hash(hashed):
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
