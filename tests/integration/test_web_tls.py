"""--web.config.file end to end: the real exporter behind TLS, client certificates and basic auth.

Certificates come from the `openssl` command in tmp_path; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
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


def test_unknown_key_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth: x\n")
    result = _run_exporter(config)
    assert result.returncode == 2
    assert "tls_server_config.client_auth" in result.stderr


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
