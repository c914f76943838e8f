"""--web.config.file: every key of exporter-toolkit's format accepted as it documents it, every file it
refuses refused with a message that names the key, and basic auth and headers as a request meets them.

The TLS handshakes each setting changes are in tests/integration/test_web_tls.py (certificates from the
`openssl` command); here the settings are checked as parsed, and the refusals that need no certificate.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.web.auth import BasicAuth
from exporter.web.config import load_web_config, parse_web_config
from exporter.web.middleware import WebConfigMiddleware
from exporter.web.settings import TLSServerConfig, WebConfig
from exporter.web.tls import TLSContextSource

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
BASE = Path("/etc/exporter")
# The smallest complete tls_server_config; cases add their key below it.
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _tls(config: WebConfig) -> TLSServerConfig:
    assert config.tls is not None
    return config.tls


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def test_empty_file_is_plain_http_without_auth() -> None:
    assert parse_web_config("", BASE) == WebConfig()


@pytest.mark.parametrize(
    "text",
    [
        "# only a comment\n",
        "{}\n",
        "tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n",
        "tls_server_config: {}\nhttp_server_config: {headers: {}}\nbasic_auth_users: {}\n",
    ],
    ids=["comment", "empty-mapping", "null-sections", "empty-sections"],
)
def test_files_that_set_nothing_are_the_defaults(text: str) -> None:
    config = parse_web_config(text, BASE)
    assert config == WebConfig()
    assert config.http2  # exporter-toolkit's default


# Each key of the reference, given as its docs show it, and what it becomes.
ACCEPTED: list[tuple[str, str, Callable[[WebConfig], object], object]] = [
    ("cert_file-key_file-relative", TLS, lambda c: (_tls(c).cert_file, _tls(c).key_file),
     (BASE / "server.crt", BASE / "server.key")),
    ("cert_file-absolute", "tls_server_config:\n  cert_file: /abs/s.crt\n  key_file: s.key\n",
     lambda c: _tls(c).cert_file, Path("/abs/s.crt")),
    ("cert-key-inline", f"tls_server_config:\n  cert: |\n{_indent(PEM)}  key: secret-pem\n",
     lambda c: (_tls(c).cert, _tls(c).key, _tls(c).cert_file), (PEM, "secret-pem", None)),
    ("cert-inline-key_file", f"tls_server_config:\n  cert: |\n{_indent(PEM)}  key_file: s.key\n",
     lambda c: _tls(c).key_file, BASE / "s.key"),
    ("client_auth_type-default", TLS, lambda c: _tls(c).client_auth_type, "NoClientCert"),
    ("client_auth_type-NoClientCert", TLS + "  client_auth_type: NoClientCert\n",
     lambda c: _tls(c).client_auth_type, "NoClientCert"),
    ("client_auth_type-RequestClientCert", TLS + "  client_auth_type: RequestClientCert\n",
     lambda c: _tls(c).client_auth_type, "RequestClientCert"),
    ("client_auth_type-VerifyClientCertIfGiven",
     TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n",
     lambda c: (_tls(c).client_auth_type, _tls(c).client_ca_file),
     ("VerifyClientCertIfGiven", BASE / "ca.crt")),
    ("client_auth_type-RequireAndVerifyClientCert",
     TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca/ca.crt\n",
     lambda c: (_tls(c).client_auth_type, _tls(c).client_ca_file),
     ("RequireAndVerifyClientCert", BASE / "ca/ca.crt")),
    # Go then verifies against the system roots; so does the exporter (a warning says so when it starts).
    ("RequireAndVerifyClientCert-without-client-CA", TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
     lambda c: (_tls(c).client_ca_file, _tls(c).client_ca), (None, None)),
    ("client_ca-inline",
     TLS + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n{_indent(PEM)}",
     lambda c: _tls(c).client_ca, PEM),
    # A CA with RequestClientCert is accepted, as in Go (it asks for no verification).
    ("client_ca_file-with-RequestClientCert",
     TLS + "  client_auth_type: RequestClientCert\n  client_ca_file: c\n",
     lambda c: _tls(c).client_ca_file, BASE / "c"),
    ("client_allowed_sans",
     TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
     "  client_allowed_sans: [scraper.example, 192.0.2.7, 'spiffe://example/scraper']\n",
     lambda c: _tls(c).client_allowed_sans,
     ("scraper.example", "192.0.2.7", "spiffe://example/scraper")),
    ("versions-default", TLS, lambda c: (_tls(c).min_version, _tls(c).max_version),
     (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)),
    ("min_version-TLS10", TLS + "  min_version: TLS10\n", lambda c: _tls(c).min_version,
     ssl.TLSVersion.TLSv1),
    ("min_version-TLS11", TLS + "  min_version: TLS11\n", lambda c: _tls(c).min_version,
     ssl.TLSVersion.TLSv1_1),
    ("min_version-TLS13", TLS + "  min_version: TLS13\n", lambda c: _tls(c).min_version,
     ssl.TLSVersion.TLSv1_3),
    ("max_version-TLS12", TLS + "  max_version: TLS12\n", lambda c: _tls(c).max_version,
     ssl.TLSVersion.TLSv1_2),
    ("min-equals-max", TLS + "  min_version: TLS12\n  max_version: TLS12\n",
     lambda c: (_tls(c).min_version, _tls(c).max_version),
     (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)),
    ("cipher_suites",
     TLS + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n",
     lambda c: c.tls is not None, True),
    ("curve_preferences", TLS + "  curve_preferences: [X25519, CurveP256, CurveP384, CurveP521]\n",
     lambda c: c.tls is not None, True),
    ("prefer_server_cipher_suites-default", TLS, lambda c: _tls(c).prefer_server_cipher_suites,
     True),
    ("prefer_server_cipher_suites-false", TLS + "  prefer_server_cipher_suites: false\n",
     lambda c: _tls(c).prefer_server_cipher_suites, False),
    ("http2-false", "http_server_config:\n  http2: false\n", lambda c: c.http2, False),
    ("http2-true", "http_server_config:\n  http2: true\n", lambda c: c.http2, True),
    ("headers-every-one",
     "http_server_config:\n  headers:\n"
     "    Content-Security-Policy: \"default-src 'self'\"\n    X-Frame-Options: deny\n"
     "    X-Content-Type-Options: nosniff\n    X-XSS-Protection: '1; mode=block'\n"
     "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n",
     lambda c: c.headers,
     (("Content-Security-Policy", "default-src 'self'"), ("X-Frame-Options", "deny"),
      ("X-Content-Type-Options", "nosniff"), ("X-XSS-Protection", "1; mode=block"),
      ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))),
    ("X-Frame-Options-sameorigin", "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n",
     lambda c: c.headers, (("X-Frame-Options", "sameorigin"),)),
    # "Unset if blank": a blank value, even where the values are restricted, sets no header.
    ("headers-blank-unset",
     "http_server_config:\n  headers:\n    X-Frame-Options: ''\n    Content-Security-Policy:\n",
     lambda c: c.headers, ()),
    # The value OWASP recommends today; YAML reads it as a number, Go's yaml as the text "0".
    ("X-XSS-Protection-0", "http_server_config:\n  headers:\n    X-XSS-Protection: 0\n",
     lambda c: c.headers, (("X-XSS-Protection", "0"),)),
    ("basic_auth_users", f"basic_auth_users:\n  alice: '{HASH}'\n  1000: '{HASH}'\n",
     lambda c: dict(c.basic_auth_users), {"alice": HASH, "1000": HASH}),
    ("basic_auth_users-htpasswd-2y", f"basic_auth_users:\n  alice: '{HASH.replace('$2b$', '$2y$', 1)}'\n",
     lambda c: len(c.basic_auth_users), 1),
    ("basic_auth_users-2a", f"basic_auth_users:\n  alice: '{HASH.replace('$2b$', '$2a$', 1)}'\n",
     lambda c: len(c.basic_auth_users), 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "read", "expected"), [case[1:] for case in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_each_documented_key_is_accepted(
    text: str, read: Callable[[WebConfig], object], expected: object
) -> None:
    assert read(parse_web_config(text, BASE)) == expected


def test_secrets_stay_out_of_repr() -> None:
    config = parse_web_config(
        f"tls_server_config:\n  cert: c\n  key: the-private-key\nbasic_auth_users:\n  alice: '{HASH}'\n", BASE
    )
    assert "the-private-key" not in repr(config)
    assert HASH not in repr(config)


def test_load_joins_paths_to_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: tls/c.pem\n  key_file: tls/k.pem\n")
    config = load_web_config(tmp_path / "web.yml")
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "tls/c.pem"
    assert config.tls.key_file == tmp_path / "tls/k.pem"


def test_keys_that_only_tune_tls_do_not_turn_it_on() -> None:
    """As exporter-toolkit's IsEnabled: versions, suites and SANs alone leave plain HTTP."""
    text = "tls_server_config:\n  min_version: TLS13\n  prefer_server_cipher_suites: false\n"
    assert parse_web_config(text, BASE).tls is None


def test_client_auth_type_alone_turns_tls_on_and_then_needs_a_cert() -> None:
    with pytest.raises(ConfigError, match=r"^tls_server_config\.cert_file: missing"):
        parse_web_config("tls_server_config:\n  client_auth_type: NoClientCert\n", BASE)


@pytest.mark.parametrize("key", ["cipher_suites", "curve_preferences"])
def test_ignored_tls_keys_warn_naming_the_key(key: str, caplog: pytest.LogCaptureFixture) -> None:
    value = "[TLS_AES_128_GCM_SHA256]" if key == "cipher_suites" else "[X25519]"
    with caplog.at_level(logging.WARNING):
        parse_web_config(f"{TLS}  {key}: {value}\n", BASE)
    assert [getattr(r, "key", None) for r in caplog.records] == [f"tls_server_config.{key}"]


# Every file the reference refuses, and the ones this exporter refuses where Python's ssl cannot do what
# the file asks: (id, text, what the message must contain; it starts with the key where there is one).
REFUSED: list[tuple[str, str, str]] = [
    # The file itself
    ("not-yaml", "tls_server_config: [\n", "not valid YAML"),
    ("top-level-list", "- a\n", "top level must be a mapping"),
    ("top-level-scalar", "just text\n", "top level must be a mapping"),
    ("unknown-top-key", "tls_server_conf: {}\n", "tls_server_conf: unknown key"),
    # Go's strict YAML refuses a key given twice; the last one silently winning would hide a mistake
    ("repeated-top-key", "basic_auth_users: {}\nbasic_auth_users: {}\n", "basic_auth_users: given twice"),
    ("repeated-tls-key", TLS + "  cert_file: other.crt\n", "tls_server_config.cert_file: given twice"),
    ("repeated-header",
     "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Frame-Options: deny\n",
     "http_server_config.headers.X-Frame-Options: given twice"),
    ("repeated-user", f"basic_auth_users:\n  alice: '{HASH}'\n  alice: '{HASH}'\n",
     "basic_auth_users.alice: given twice"),
    ("repeated-user-number-and-text", f"basic_auth_users:\n  1000: '{HASH}'\n  '1000': '{HASH}'\n",
     "basic_auth_users.1000: given twice"),
    # Unknown keys in each section
    ("unknown-tls-key", TLS + "  cert_fil: a\n", "tls_server_config.cert_fil: unknown key"),
    ("unknown-http-key", "http_server_config:\n  http3: true\n", "http_server_config.http3: unknown key"),
    # Wrong types
    ("tls-not-mapping", "tls_server_config: [a]\n", "tls_server_config: must be a mapping"),
    ("http-not-mapping", "http_server_config: true\n", "http_server_config: must be a mapping"),
    ("headers-not-mapping", "http_server_config:\n  headers: [X-Frame-Options]\n",
     "http_server_config.headers: must be a mapping"),
    ("cert_file-number", "tls_server_config:\n  cert_file: 1\n  key_file: b\n",
     "tls_server_config.cert_file: must be a string"),
    ("key-list", "tls_server_config:\n  cert_file: a\n  key: [b]\n",
     "tls_server_config.key: must be a string"),
    ("client_auth_type-bool", TLS + "  client_auth_type: true\n",
     "tls_server_config.client_auth_type: must be a string"),
    ("client_allowed_sans-string", TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
     "  client_allowed_sans: scraper.example\n", "tls_server_config.client_allowed_sans: must be a list"),
    ("cipher_suites-string", TLS + "  cipher_suites: TLS_AES_128_GCM_SHA256\n",
     "tls_server_config.cipher_suites: must be a list"),
    ("curve_preferences-numbers", TLS + "  curve_preferences: [29]\n",
     "tls_server_config.curve_preferences: must be a list of strings"),
    ("min_version-number", TLS + "  min_version: 1.2\n", "tls_server_config.min_version: must be a string"),
    ("prefer_server_cipher_suites-text", TLS + "  prefer_server_cipher_suites: yes please\n",
     "tls_server_config.prefer_server_cipher_suites: must be true or false"),
    ("http2-text", "http_server_config:\n  http2: sometimes\n",
     "http_server_config.http2: must be true or false"),
    ("header-list", "http_server_config:\n  headers:\n    Content-Security-Policy: [a]\n",
     "http_server_config.headers.Content-Security-Policy: must be a string"),
    ("basic_auth_users-list", "basic_auth_users: [alice]\n", "basic_auth_users: must be a mapping"),
    # Certificate and key
    ("cert_file-without-key", "tls_server_config:\n  cert_file: a\n", "tls_server_config.key_file: missing"),
    ("cert-without-key", "tls_server_config:\n  cert: a\n", "tls_server_config.key_file: missing"),
    ("key_file-without-cert", "tls_server_config:\n  key_file: a\n", "tls_server_config.cert_file: missing"),
    ("key-without-cert", "tls_server_config:\n  key: a\n", "tls_server_config.cert_file: missing"),
    ("client_ca-alone", "tls_server_config:\n  client_ca_file: ca.crt\n",
     "tls_server_config.cert_file: missing"),
    ("cert-and-cert_file", TLS + "  cert: c\n", "tls_server_config.cert: give either cert or cert_file"),
    ("key-and-key_file", TLS + "  key: k\n", "tls_server_config.key: give either key or key_file"),
    ("client_ca-and-client_ca_file",
     TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca: c\n  client_ca_file: ca.crt\n",
     "tls_server_config.client_ca: give either client_ca or client_ca_file"),
    # Client authentication
    ("client_auth_type-unknown", TLS + "  client_auth_type: Nope\n",
     "tls_server_config.client_auth_type: 'Nope' is not one of NoClientCert, RequestClientCert"),
    ("client_auth_type-wrong-case", TLS + "  client_auth_type: requireandverifyclientcert\n",
     "tls_server_config.client_auth_type: 'requireandverifyclientcert' is not one of"),
    ("RequireAnyClientCert-unsupported", TLS + "  client_auth_type: RequireAnyClientCert\n",
     "tls_server_config.client_auth_type: RequireAnyClientCert (a client certificate no CA checks) is not "
     "supported; use RequireAndVerifyClientCert"),
    ("RequireClientCert-unsupported", TLS + "  client_auth_type: RequireClientCert\n",
     "tls_server_config.client_auth_type: RequireClientCert (a client certificate no CA checks) is not "
     "supported"),
    ("client_ca_file-with-NoClientCert", TLS + "  client_ca_file: ca.crt\n",
     "tls_server_config.client_ca_file: a client CA is configured but client_auth_type is NoClientCert"),
    ("client_ca-with-NoClientCert", TLS + "  client_auth_type: NoClientCert\n  client_ca: c\n",
     "tls_server_config.client_ca: a client CA is configured but client_auth_type is NoClientCert"),
    ("sans-with-NoClientCert", TLS + "  client_allowed_sans: [scraper.example]\n",
     "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert"),
    ("sans-with-RequestClientCert",
     TLS + "  client_auth_type: RequestClientCert\n  client_allowed_sans: [x]\n",
     "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert"),
    # The reference refuses it: a client that sends no certificate has no SAN to match.
    ("sans-with-VerifyClientCertIfGiven",
     TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
     "  client_allowed_sans: [x]\n",
     "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert"),
    # Versions, suites, curves
    ("min_version-unknown", TLS + "  min_version: TLS14\n",
     "tls_server_config.min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13"),
    ("max_version-openssl-spelling", TLS + "  max_version: TLSv1.3\n",
     "tls_server_config.max_version: 'TLSv1.3' is not one of"),
    ("min_version-unknown-without-tls", "tls_server_config:\n  min_version: SSL3\n",
     "tls_server_config.min_version: 'SSL3' is not one of"),
    ("min-above-max", TLS + "  min_version: TLS13\n  max_version: TLS12\n",
     "tls_server_config.min_version: is above max_version"),
    ("cipher_suites-unknown",
     TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256, ECDHE-RSA-AES128-GCM-SHA256]\n",
     "tls_server_config.cipher_suites: 'ECDHE-RSA-AES128-GCM-SHA256' is not a name Go's crypto/tls knows"),
    ("curve_preferences-unknown", TLS + "  curve_preferences: [X25519, P-256]\n",
     "tls_server_config.curve_preferences: 'P-256' is not a name Go's crypto/tls knows"),
    # HTTP headers: only the five the reference lets a file set, with its values where it restricts them
    ("header-Server", "http_server_config:\n  headers:\n    Server: me\n",
     "http_server_config.headers.Server: unknown key"),
    ("header-Content-Type", "http_server_config:\n  headers:\n    Content-Type: text/html\n",
     "http_server_config.headers.Content-Type: unknown key"),
    ("header-WWW-Authenticate", "http_server_config:\n  headers:\n    WWW-Authenticate: Bearer\n",
     "http_server_config.headers.WWW-Authenticate: unknown key"),
    ("header-wrong-case", "http_server_config:\n  headers:\n    x-frame-options: deny\n",
     "http_server_config.headers.x-frame-options: unknown key"),
    ("X-Frame-Options-allow", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "http_server_config.headers.X-Frame-Options: 'allow' is not one of deny, sameorigin"),
    ("X-Frame-Options-upper-case", "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
     "http_server_config.headers.X-Frame-Options: 'DENY' is not one of deny, sameorigin"),
    ("X-Content-Type-Options-other", "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
     "http_server_config.headers.X-Content-Type-Options: 'sniff' is not one of nosniff"),
    # Basic auth
    ("hash-plaintext", "basic_auth_users:\n  alice: s3cret\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-null", "basic_auth_users:\n  alice:\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-sha512-crypt", "basic_auth_users:\n  alice: '$6$salt$abc'\n",
     "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-truncated", f"basic_auth_users:\n  alice: '{HASH[:-1]}'\n",
     "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-cost-too-low", f"basic_auth_users:\n  alice: '{HASH[:4]}03{HASH[6:]}'\n",
     "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-cost-too-high", f"basic_auth_users:\n  alice: '{HASH[:4]}32{HASH[6:]}'\n",
     "basic_auth_users.alice: not a bcrypt hash"),
    ("hash-unknown-version", f"basic_auth_users:\n  alice: '$2z${HASH[4:]}'\n",
     "basic_auth_users.alice: not a bcrypt hash"),
    # Not supported by this exporter (README: rate limiting belongs to a reverse proxy)
    ("rate_limit", "rate_limit:\n  interval: 1s\n  burst: 10\n",
     "rate_limit: not supported by this exporter; rate-limit in a reverse proxy"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_refused_file_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_web_config(text, BASE)
    assert message in str(info.value)
    first = message.split(" ", maxsplit=1)[0]
    if first.endswith(":"):  # a key: it leads the message, so the operator sees it first
        assert str(info.value).startswith(first)


def test_unreadable_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^web\.config\.file: cannot read .*missing\.yml"):
        load_web_config(tmp_path / "missing.yml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_file_without_read_permission_names_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("{}\n")
    config.chmod(0)
    with pytest.raises(ConfigError, match=r"^web\.config\.file: cannot read"):
        load_web_config(config)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^web\.config\.file: cannot read .*not a regular file"):
        load_web_config(tmp_path)


def test_a_web_config_that_is_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "web.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_web_config(fifo)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_bytes(b"basic_auth_users:\n  \xe9l\xe8ve: x\n")
    with pytest.raises(ConfigError, match=r"^web\.config\.file: cannot read"):
        load_web_config(config)


def test_an_empty_file_on_disk_is_plain_http(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("")
    assert load_web_config(config) == WebConfig()


def test_errors_in_a_loaded_file_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("- a\n")
    with pytest.raises(ConfigError, match=str(config)):
        load_web_config(config)


# Certificates that cannot be used are refused when the context is built (at start), naming the key;
# working certificates are in tests/integration/test_web_tls.py.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
         r"^tls_server_config\.cert_file: cannot read .*missing\.crt"),
        ("tls_server_config:\n  cert: not a certificate\n  key: not a key\n",
         r"^tls_server_config\.cert: cannot load the certificate and key"),
    ],
    ids=["missing-files", "inline-garbage"],
)  # fmt: skip
def test_unusable_certificates_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    tls = parse_web_config(text, tmp_path).tls
    assert tls is not None
    with pytest.raises(ConfigError, match=message):
        TLSContextSource(tls)


def test_bcrypt_check_and_cache() -> None:
    auth = BasicAuth({"alice": HASH, "bob": HASH})
    assert auth.check("alice", b"s3cret")
    assert auth.bcrypt_calls == 1
    assert auth.check("alice", b"s3cret")
    assert auth.bcrypt_calls == 1  # served from the cache
    assert not auth.check("alice", b"wrong")
    assert not auth.check("alice", b"wrong")
    assert auth.bcrypt_calls == 3  # failures are never cached
    assert not auth.check("mallory", b"s3cret")  # unknown users still pay a bcrypt run
    assert auth.bcrypt_calls == 4
    assert auth.check("bob", b"s3cret")
    assert auth.bcrypt_calls == 5  # the cache is per user


@pytest.mark.parametrize("version", ["$2a$", "$2b$", "$2y$"])
def test_every_accepted_hash_version_verifies(version: str) -> None:
    auth = BasicAuth({"alice": HASH.replace("$2b$", version, 1)})
    assert auth.check("alice", b"s3cret")
    assert not auth.check("alice", b"s3cre")


def test_passwords_past_72_bytes_are_truncated_like_go() -> None:
    long = b"x" * 80
    auth = BasicAuth({"u": bcrypt.hashpw(long[:72], bcrypt.gensalt(rounds=4)).decode()})
    assert auth.check("u", long)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Basic " + base64.b64encode(b"alice:s3cret").decode(), True),
        ("basic " + base64.b64encode(b"alice:s3cret").decode(), True),
        ("Basic " + base64.b64encode(b"alice:s3cret:x").decode(), False),
        ("Basic " + base64.b64encode(b"alice").decode(), False),
        ("Basic " + base64.b64encode(b"Alice:s3cret").decode(), False),
        ("Basic !!!", False),
        ("Bearer abc", False),
        ("", False),
        (None, False),
    ],
)
def test_authorization_header(header: str | None, ok: bool) -> None:
    assert BasicAuth({"alice": HASH}).check_header(header) is ok


def _call(app: WebConfigMiddleware, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body: Iterable[bytes] = app(environ, start_response)
    return seen["status"], seen["headers"], b"".join(body)


def _inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Frame-Options", "sameorigin")])
    return [b"metrics"]


def test_middleware_auth_and_headers() -> None:
    config = parse_web_config(
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n    X-Frame-Options: deny\n"
        f"basic_auth_users:\n  alice: '{HASH}'\n  1000: '{HASH}'\n",
        BASE,
    )
    app = WebConfigMiddleware(_inner, config)
    status, headers, body = _call(app, {})
    assert status.startswith("401")
    assert headers["WWW-Authenticate"] == "Basic"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body != b"metrics"
    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    status, headers, body = _call(app, {"HTTP_AUTHORIZATION": good})
    assert status.startswith("200")
    assert body == b"metrics"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "sameorigin"  # the app's own header wins, as in Go
    numeric = "Basic " + base64.b64encode(b"1000:s3cret").decode()  # a user YAML read as a number
    assert _call(app, {"HTTP_AUTHORIZATION": numeric})[0].startswith("200")


def test_the_gate_lets_a_verified_login_through_at_once_and_leaves_the_rest_to_bcrypt() -> None:
    """What the HTTP server asks in its event loop: only credentials the cache cannot answer wait for a
    bcrypt (outside the workers), and the middleware answers by the gate's verdict, with no second one."""
    app = WebConfigMiddleware(_inner, WebConfig(basic_auth_users=(("alice", HASH),)))
    assert app.gate is not None and app.auth is not None
    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    wrong = "Basic " + base64.b64encode(b"alice:wrong").decode()
    none: dict[str, Any] = {}
    assert app.gate.decided(none) and _call(app, none)[0].startswith("401")
    first: dict[str, Any] = {"HTTP_AUTHORIZATION": good}
    assert not app.gate.decided(first)  # not verified yet: a bcrypt decides
    app.gate.check(first)
    assert _call(app, first)[0].startswith("200")
    bad: dict[str, Any] = {"HTTP_AUTHORIZATION": wrong}
    assert not app.gate.decided(bad)
    app.gate.check(bad)
    assert _call(app, bad)[0].startswith("401")
    calls = app.auth.bcrypt_calls
    again: dict[str, Any] = {"HTTP_AUTHORIZATION": good}
    assert app.gate.decided(again) and _call(app, again)[0].startswith("200")
    assert app.auth.bcrypt_calls == calls == 2


def test_middleware_without_users_passes_through() -> None:
    status, _, body = _call(WebConfigMiddleware(_inner, WebConfig()), {})
    assert status.startswith("200")
    assert body == b"metrics"
