"""--web.config.file end to end: the real exporter behind TLS, client certificates and basic auth, and
each tls_server_config setting as a TLS client meets it (the exporter's server in process).

Certificates come from the `openssl` command in tmp_path; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.registry import registrations
from exporter.web.app import make_http_server
from exporter.web.config import load_web_config
from exporter.web.server import Limits
from exporter.web.tls import TLSContextSource
from tests.integration.harness import Exporter
from tests.net import free_port

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def _no_collectors() -> list[str]:
    """The web layer is under test, not the collectors: no sshd or log reading needed."""
    return [f"--no-collector.{reg.name}" for reg in registrations()]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class PKI:
    """A CA in `dir` and certificates it signed (NAME.crt / NAME.key)."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def issue(self, name: str, san: str, usage: str) -> tuple[Path, Path]:
        (self.dir / f"{name}.ext").write_text(
            f"subjectAltName={san}\nextendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature\n"
            "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=self.dir,
        )  # fmt: skip
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def client_context(self, cert: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            context.load_cert_chain(self.dir / f"{cert}.crt", self.dir / f"{cert}.key")
        return context


def make_pki(directory: Path) -> PKI:
    directory.mkdir(parents=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN=test CA {directory.name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    pki = PKI(directory)
    pki.issue("server", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    pki.issue("scraper", "DNS:scraper.test", "clientAuth")
    pki.issue("stranger", "DNS:stranger.test", "clientAuth")
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    return make_pki(tmp_path / "pki")


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _status(exporter: Exporter, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(exporter.url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15, context=exporter.tls) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def _refused(url: str, context: ssl.SSLContext | None) -> bool:
    """True when the request fails below HTTP: handshake refused, connection dropped."""
    try:
        with urllib.request.urlopen(url, timeout=15, context=context):
            return False
    except urllib.error.HTTPError:
        return False
    except (OSError, http.client.HTTPException):
        return True


def _run_exporter(config: Path) -> subprocess.CompletedProcess[str]:
    """The exporter with this web config, for configs that must stop it before it listens."""
    command = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{free_port()}"]
    command += [f"--web.config.file={config}", *_no_collectors()]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_https_with_basic_auth(pki: PKI) -> None:
    # Relative paths: the exporter runs from the test's working directory and must resolve them next to
    # the web config file.
    config = pki.dir / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        f"basic_auth_users:\n  prometheus: '{HASH}'\n"
    )
    tls = pki.client_context()
    with Exporter(
        f"--web.config.file={config}",
        *_no_collectors(),
        tls=tls,
        headers=_auth("prometheus", PASSWORD),
    ) as exporter:
        text = exporter.text()
        assert "ssh_access_build_info" in text or "process_" in text
        status, headers = _status(exporter, _auth("prometheus", PASSWORD))
        assert status == 200
        assert headers["X-Content-Type-Options"] == "nosniff"

        status, headers = _status(exporter, _auth("prometheus", "wrong"))
        assert status == 401
        assert headers["WWW-Authenticate"] == "Basic"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert _status(exporter, _auth("nobody", PASSWORD))[0] == 401
        assert _status(exporter, {})[0] == 401

        assert _refused(exporter.url.replace("https://", "http://"), None)
        # A client that does not trust the CA refuses the server.
        assert _refused(exporter.url, ssl.create_default_context())
        assert exporter.proc.poll() is None  # refused handshakes do not hurt the server


def test_client_certificates_required_and_verified(pki: PKI) -> None:
    config = pki.dir / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        "  client_allowed_sans: [scraper.test]\n"
    )
    with Exporter(f"--web.config.file={config}", *_no_collectors(), tls=pki.client_context("scraper")) as exp:
        assert "process_" in exp.text()
        assert _refused(exp.url, pki.client_context())  # no client certificate
        assert _refused(exp.url, pki.client_context("stranger"))  # right CA, SAN not allowed
        other = make_pki(pki.dir.parent / "other")
        foreign = ssl.create_default_context(cafile=pki.ca)
        foreign.load_cert_chain(other.dir / "scraper.crt", other.dir / "scraper.key")
        assert _refused(exp.url, foreign)  # allowed SAN, but signed by a CA the server does not trust
        assert "process_" in exp.text()
    # Control: without client_allowed_sans the same stranger certificate is accepted.
    config.write_text(config.read_text().replace("  client_allowed_sans: [scraper.test]\n", ""))
    with Exporter(
        f"--web.config.file={config}", *_no_collectors(), tls=pki.client_context("stranger")
    ) as exp:
        assert "process_" in exp.text()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("  client_auth: x\n", "tls_server_config.client_auth: unknown key"),
        (
            "  client_auth_type: RequireAnyClientCert\n",
            "tls_server_config.client_auth_type: RequireAnyClientCert",
        ),
        ("rate_limit:\n  interval: 1s\n  burst: 5\n", "rate_limit: not supported"),
    ],
    ids=["unknown-key", "RequireAnyClientCert", "rate_limit"],
)
def test_refused_file_exits_2_naming_the_key(tmp_path: Path, lines: str, message: str) -> None:
    """What the README says is not supported stops the start, with the key in the message."""
    config = tmp_path / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n" + lines)
    result = _run_exporter(config)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_certificate_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
    result = _run_exporter(config)
    assert result.returncode == 2
    assert "tls_server_config.cert_file" in result.stderr


def test_rotated_certificate_is_picked_up(pki: PKI) -> None:
    config = pki.dir / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    tls = load_web_config(config).tls
    assert tls is not None
    source = TLSContextSource(tls)
    first = source.context()
    assert source.context() is first  # unchanged files: no rebuild per connection
    rotated = make_pki(pki.dir.parent / "rotated")
    for name in ("server.crt", "server.key"):
        staged = pki.dir / f".{name}.new"
        shutil.copy(rotated.dir / name, staged)
        staged.replace(pki.dir / name)
    second = source.context()
    assert second is not first
    (pki.dir / "server.key").write_text("half-written\n")
    assert source.context() is second  # a broken file keeps the last good context


def test_bad_certificate_is_a_config_error(pki: PKI) -> None:
    config = pki.dir / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: scraper.key\n")
    tls = load_web_config(config).tls
    assert tls is not None
    with pytest.raises(ConfigError, match=r"^tls_server_config\.cert_file: cannot load"):
        TLSContextSource(tls)


def test_tls_keep_alive_and_handshake_deadline(pki: PKI) -> None:
    """Requests share one TLS connection; a client that never finishes its handshake is dropped."""
    config = pki.dir / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    tls = load_web_config(config).tls
    assert tls is not None

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['wsgi.url_scheme']} {environ['PATH_INFO']}\n".encode()]

    server = make_http_server("127.0.0.1:0", app, TLSContextSource(tls), Limits(handshake_timeout=0.5))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address
        connection = http.client.HTTPSConnection(host, port, context=pki.client_context(), timeout=10)
        for path in ("/a", "/b"):
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200 and response.read() == f"https {path}\n".encode()
        assert len(server.connections) == 1
        connection.close()
        with socket.create_connection((host, port), timeout=10) as stalled:
            stalled.sendall(b"\x16\x03\x01\x02\x00")  # the start of a ClientHello, then nothing
            started = time.monotonic()
            assert stalled.recv(1024) == b""
            assert time.monotonic() - started < 3
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _hello(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]


@contextlib.contextmanager
def _serving(pki: PKI, tls_lines: str) -> Iterator[int]:
    """The exporter's HTTP server with `tls_server_config:` + tls_lines from pki.dir/web.yml; its port."""
    config = pki.dir / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + tls_lines)
    tls = load_web_config(config).tls
    assert tls is not None
    server = make_http_server("127.0.0.1:0", _hello, TLSContextSource(tls), Limits(handshake_timeout=5))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _get(port: int, context: ssl.SSLContext) -> int | None:
    """The status of GET / over HTTPS; None when TLS refuses the client (in TLS 1.3 the server's refusal of
    a client certificate arrives after the client's handshake, so only a request shows it)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _client(pki: PKI, cert: str | None) -> ssl.SSLContext:
    """A client trusting pki's CA, with no certificate, pki's NAME, or `foreign:NAME` (another CA's)."""
    if cert is None or not cert.startswith("foreign:"):
        return pki.client_context(cert)
    other = pki.dir.parent / "foreign"
    if not other.exists():
        make_pki(other)
    context = pki.client_context()
    name = cert.removeprefix("foreign:")
    context.load_cert_chain(other / f"{name}.crt", other / f"{name}.key")
    return context


def _ca_inline(pki: PKI) -> str:
    return "  client_ca: |\n" + "".join(f"    {line}\n" for line in pki.ca.read_text().splitlines())


# client_auth_type, each value, with the client CA given as a file, inline, or not at all: (id, lines after
# cert_file/key_file, client certificate: None, a name pki issued, or foreign:NAME; answered or refused).
IF_GIVEN = "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
REQUIRE = "  client_auth_type: RequireAndVerifyClientCert\n"
CA_FILE = "  client_ca_file: ca.crt\n"
CLIENT_AUTH_CASES = [
    ("NoClientCert-none", "  client_auth_type: NoClientCert\n", None, True),
    ("NoClientCert-cert", "  client_auth_type: NoClientCert\n", "scraper", True),
    ("RequestClientCert-none", "  client_auth_type: RequestClientCert\n", None, True),
    ("RequestClientCert-foreign", "  client_auth_type: RequestClientCert\n", "foreign:scraper", True),
    ("VerifyIfGiven-none", IF_GIVEN, None, True),
    ("VerifyIfGiven-good", IF_GIVEN, "scraper", True),
    ("VerifyIfGiven-foreign", IF_GIVEN, "foreign:scraper", False),
    ("RequireAndVerify-none", REQUIRE + CA_FILE, None, False),
    ("RequireAndVerify-good", REQUIRE + CA_FILE, "scraper", True),
    ("RequireAndVerify-foreign", REQUIRE + CA_FILE, "foreign:scraper", False),
    ("RequireAndVerify-inline-CA-good", REQUIRE + "{ca_inline}", "scraper", True),
    ("RequireAndVerify-inline-CA-foreign", REQUIRE + "{ca_inline}", "foreign:scraper", False),
    ("RequireAndVerify-inline-CA-none", REQUIRE + "{ca_inline}", None, False),
    # No client CA: as Go, the system's CAs verify, and they do not know the test CA.
    ("RequireAndVerify-no-CA", REQUIRE, "scraper", False),
]


@pytest.mark.parametrize(
    ("lines", "cert", "answered"),
    [case[1:] for case in CLIENT_AUTH_CASES],
    ids=[c[0] for c in CLIENT_AUTH_CASES],
)
def test_client_auth_type(pki: PKI, lines: str, cert: str | None, answered: bool) -> None:
    with _serving(pki, lines.format(ca_inline=_ca_inline(pki))) as port:
        assert (_get(port, _client(pki, cert)) == 200) is answered


def test_client_verification_without_a_client_ca_warns(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), _serving(pki, "  client_auth_type: RequireAndVerifyClientCert\n"):
        pass
    assert any("system CAs" in record.getMessage() for record in caplog.records)


SAN_CASES = [
    ("dns-allowed", "[scraper.test]", "scraper", "DNS:scraper.test", True),
    ("dns-other", "[scraper.test]", "stranger", "DNS:stranger.test", False),
    ("dns-exact-not-suffix", "[test]", "scraper", "DNS:scraper.test", False),
    ("ipv6-any-spelling", "['2001:0db8:0:0::7']", "ipclient", "IP:2001:db8::7", True),
    ("ipv4", "['192.0.2.7', other.test]", "ipclient", "IP:192.0.2.7", True),
    ("uri", "['spiffe://example.test/scraper']", "uriclient", "URI:spiffe://example.test/scraper", True),
    ("email", "[scraper@example.test]", "mailclient", "email:scraper@example.test", True),
    ("one-of-several", "[a.test, scraper.test, b.test]", "scraper", "DNS:scraper.test", True),
]


@pytest.mark.parametrize(
    ("allowed", "cert", "san", "answered"), [case[1:] for case in SAN_CASES], ids=[c[0] for c in SAN_CASES]
)
def test_client_allowed_sans(pki: PKI, allowed: str, cert: str, san: str, answered: bool) -> None:
    """Exact match against the certificate's DNS, IP, URI or e-mail SANs, as exporter-toolkit matches."""
    if not (pki.dir / f"{cert}.crt").exists():
        pki.issue(cert, san, "clientAuth")
    lines = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    with _serving(pki, lines + f"  client_allowed_sans: {allowed}\n") as port:
        assert (_get(port, pki.client_context(cert)) == 200) is answered
        assert _get(port, pki.client_context()) is None  # no certificate, no name


def _version(port: int, context: ssl.SSLContext) -> str | None:
    """The TLS version a handshake agrees, None when the server refuses the client's versions."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.version()
    except (OSError, ssl.SSLError):
        return None


def _client_versions(pki: PKI, lowest: ssl.TLSVersion, highest: ssl.TLSVersion) -> ssl.SSLContext:
    context = pki.client_context()
    context.minimum_version, context.maximum_version = lowest, highest
    return context


V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("lines", "client", "agreed"),
    [
        ("", (V12, V13), "TLSv1.3"),
        ("", (V12, V12), "TLSv1.2"),  # default min_version TLS12
        ("  min_version: TLS13\n", (V12, V12), None),
        ("  min_version: TLS13\n", (V12, V13), "TLSv1.3"),
        ("  max_version: TLS12\n", (V12, V13), "TLSv1.2"),
        ("  max_version: TLS12\n", (V13, V13), None),
        ("  min_version: TLS12\n  max_version: TLS12\n", (V12, V13), "TLSv1.2"),
        # Older versions may be allowed; a TLS 1.2 client still agrees its version.
        ("  min_version: TLS10\n", (V12, V12), "TLSv1.2"),
        ("  min_version: TLS11\n  max_version: TLS12\n", (V12, V13), "TLSv1.2"),
    ],
    ids=["default", "default-tls12-client", "min13-refuses-12", "min13", "max12", "max12-refuses-13-only",
         "min12-max12", "min10", "min11-max12"],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_min_and_max_version(
    pki: PKI, lines: str, client: tuple[ssl.TLSVersion, ssl.TLSVersion], agreed: str | None
) -> None:
    with _serving(pki, lines) as port:
        assert _version(port, _client_versions(pki, *client)) == agreed


@pytest.mark.parametrize(
    ("lines", "chosen"),
    [
        ("", "ECDHE-ECDSA-AES256-GCM-SHA384"),  # OpenSSL's order: AES-256 before AES-128
        ("  prefer_server_cipher_suites: true\n", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("  prefer_server_cipher_suites: false\n", "ECDHE-ECDSA-AES128-GCM-SHA256"),  # the client's first
    ],
    ids=["default", "true", "false"],
)
def test_prefer_server_cipher_suites(pki: PKI, lines: str, chosen: str) -> None:
    """The server's order (OpenSSL's) decides unless the file sets false; then the client's first choice
    wins. `false` was ignored: Python's server contexts prefer the server's order from the start."""
    client = _client_versions(pki, V12, V12)
    client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    with (
        _serving(pki, lines) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None and cipher[0] == chosen


@pytest.mark.parametrize(
    "lines",
    [
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n",
        "  curve_preferences: [CurveP521]\n",
    ],
    ids=["cipher_suites", "curve_preferences"],
)
def test_ignored_tls_settings_leave_openssls_defaults(pki: PKI, lines: str) -> None:
    """README: accepted and ignored. A TLS 1.2 client offering a suite or curve the list leaves out is still
    served: the list restricts nothing."""
    client = _client_versions(pki, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with _serving(pki, lines) as port:
        assert _get(port, client) == 200


@pytest.mark.parametrize("http2", ["true", "false"])
def test_http2_is_ignored_and_http11_served(pki: PKI, http2: str) -> None:
    """README: http2 is ignored. A client offering h2 by ALPN gets no protocol chosen and HTTP/1.1."""
    config = pki.dir / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"http_server_config:\n  http2: {http2}\n"
    )
    web = load_web_config(config)
    assert web.tls is not None
    server = make_http_server("127.0.0.1:0", _hello, TLSContextSource(web.tls))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = pki.client_context()
        client.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert tls.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_inline_cert_and_key(pki: PKI) -> None:
    def inline(key: str, path: Path) -> str:
        return f"  {key}: |\n" + "".join(f"    {line}\n" for line in path.read_text().splitlines())

    config = pki.dir / "inline.yml"
    config.write_text(
        "tls_server_config:\n"
        + inline("cert", pki.dir / "server.crt")
        + inline("key", pki.dir / "server.key")
        + "  client_auth_type: RequireAndVerifyClientCert\n"
        + _ca_inline(pki)
    )
    tls = load_web_config(config).tls
    assert tls is not None
    assert tls.files == ()  # nothing to watch for rotation
    server = make_http_server("127.0.0.1:0", _hello, TLSContextSource(tls))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert _get(port, pki.client_context("scraper")) == 200
        assert _get(port, pki.client_context()) is None
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing.crt\n",
         r"^tls_server_config\.client_ca_file: cannot load the client CA"),
        ("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
         r"^tls_server_config\.client_ca_file: cannot load the client CA"),
        ("  client_auth_type: RequireAndVerifyClientCert\n  client_ca: not a certificate\n",
         r"^tls_server_config\.client_ca: cannot load the client CA"),
    ],
    ids=["missing", "no-certificate-in-it", "inline-garbage"],
)  # fmt: skip
def test_unusable_client_ca_names_the_key(pki: PKI, lines: str, message: str) -> None:
    config = pki.dir / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + lines)
    tls = load_web_config(config).tls
    assert tls is not None
    with pytest.raises(ConfigError, match=message):
        TLSContextSource(tls)
