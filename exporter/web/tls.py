"""tls_server_config as SSL contexts: built from the settings, rebuilt when a certificate file changes.

A file that cannot be used is a ConfigError naming its key at start; after start, a bad file is logged
and the last good context keeps serving (certificate rotation writes files one at a time).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from exporter.config import ConfigError
from exporter.web.settings import CLIENT_AUTH, TLSServerConfig

log = logging.getLogger(__name__)


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server-side SSLContext; a file that cannot be read or used is a ConfigError naming its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    # Python's server contexts start with the server's order; `false` must clear it, not leave it.
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
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
    verify_mode = CLIENT_AUTH.get(tls.client_auth_type)
    if verify_mode is None:  # refused by the parser; a hand-built config gets the same answer
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
