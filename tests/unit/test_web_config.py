"""--web.config.file: exporter-toolkit's keys, errors that name the key, relative paths, basic auth."""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.web.auth import BasicAuth
from exporter.web.config import load_web_config, parse_web_config
from exporter.web.middleware import WebConfigMiddleware
from exporter.web.settings import WebConfig

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
BASE = Path("/etc/exporter")


def test_empty_file_is_plain_http_without_auth() -> None:
    assert parse_web_config("", BASE) == WebConfig()


def test_full_config_parses() -> None:
    config = parse_web_config(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"
        "  key_file: /abs/server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: ca/ca.crt\n"
        "  client_allowed_sans: [scraper.example]\n"
        "  min_version: TLS13\n"
        "http_server_config:\n"
        "  http2: false\n"
        "  headers:\n"
        "    X-Frame-Options: deny\n"
        "    Content-Security-Policy: \"default-src 'self'\"\n"
        "    X-XSS-Protection: ''\n"
        f"basic_auth_users:\n  alice: '{HASH}'\n  1000: '{HASH}'\n",
        BASE,
    )
    assert config.tls is not None
    # Relative paths are relative to the web config file's directory, as in exporter-toolkit.
    assert config.tls.cert_file == BASE / "server.crt"
    assert config.tls.key_file == Path("/abs/server.key")
    assert config.tls.client_ca_file == BASE / "ca/ca.crt"
    assert config.tls.min_version == ssl.TLSVersion.TLSv1_3
    assert config.tls.max_version == ssl.TLSVersion.TLSv1_3
    assert config.headers == (("X-Frame-Options", "deny"), ("Content-Security-Policy", "default-src 'self'"))
    assert not config.http2
    assert dict(config.basic_auth_users) == {"alice": HASH, "1000": HASH}
    assert HASH not in repr(config)


def test_load_joins_paths_to_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: tls/c.pem\n  key_file: tls/k.pem\n")
    config = load_web_config(tmp_path / "web.yml")
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "tls/c.pem"


def test_client_auth_type_alone_turns_tls_on_and_then_needs_a_cert() -> None:
    with pytest.raises(ConfigError, match=r"^tls_server_config\.cert_file: missing"):
        parse_web_config("tls_server_config:\n  client_auth_type: NoClientCert\n", BASE)


def test_no_tls_keys_means_no_tls() -> None:
    assert parse_web_config("tls_server_config:\n  min_version: TLS13\n", BASE).tls is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tls_server_conf: {}\n", "tls_server_conf"),
        ("rate_limit: {burst: 1}\n", "rate_limit"),
        ("tls_server_config:\n  cert_fil: a\n", "tls_server_config.cert_fil"),
        ("tls_server_config: [a]\n", "tls_server_config"),
        ("tls_server_config:\n  cert_file: a\n", "tls_server_config.key_file"),
        ("tls_server_config:\n  key_file: a\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cert: c\n", "tls_server_config.cert"),
        ("tls_server_config:\n  cert_file: 1\n  key_file: b\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Nope\n", "client_auth_type"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
            "tls_server_config.client_auth_type",
        ),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n", "client_ca_file"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
            "tls_server_config.client_allowed_sans",
        ),
        ("tls_server_config:\n  min_version: TLS14\n", "tls_server_config.min_version"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
            "tls_server_config.min_version",
        ),
        ("tls_server_config:\n  prefer_server_cipher_suites: yes please\n", "prefer_server_cipher_suites"),
        ("http_server_config:\n  http3: true\n", "http_server_config.http3"),
        ("http_server_config:\n  headers:\n    Server: me\n", "http_server_config.headers.Server"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "headers.X-Frame-Options"),
        ("basic_auth_users: [alice]\n", "basic_auth_users"),
        ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice"),
        ("- a\n", "top level"),
        ("tls_server_config: [\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_web_config(text, BASE)
    assert key in str(info.value)


def test_unreadable_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^web\.config\.file: cannot read"):
        load_web_config(tmp_path / "missing.yml")


def test_ignored_cipher_suites_warn(caplog: pytest.LogCaptureFixture) -> None:
    parse_web_config("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", BASE)
    assert [getattr(r, "key", None) for r in caplog.records] == ["tls_server_config.cipher_suites"]


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


def test_go_style_2y_hashes_verify() -> None:
    auth = BasicAuth({"alice": HASH.replace("$2b$", "$2y$", 1)})
    assert auth.check("alice", b"s3cret")


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
        ("Basic !!!", False),
        ("Bearer abc", False),
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
        f"basic_auth_users:\n  alice: '{HASH}'\n",
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


def test_middleware_without_users_passes_through() -> None:
    status, _, body = _call(WebConfigMiddleware(_inner, WebConfig()), {})
    assert status.startswith("200")
    assert body == b"metrics"


def test_a_web_config_that_is_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "web.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_web_config(fifo)
