"""Certificates on the Python front: client certificates (mutual TLS) seen by ASGI (the
``tls`` extension's ``client_cert_chain`` and ``client_cert_name``), WSGI
(``SSL_CLIENT_VERIFY``, ``SSL_CLIENT_S_DN``, ``SSL_CLIENT_CERT``) and ``Request.tls``;
certificates chosen by SNI; and the command line's uvicorn TLS flags. Python's ``ssl``
client over loopback, with a CA and certificates made for the test by ``openssl``."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pytest

import corral
import corral.asgi
import corral.wsgi
from cli_server import start_cli
from conftest import DEADLINE, read_response

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=DEADLINE)


class Pki:
    """A CA in ``dir`` and the leaves it signs (P-256 keys, two days: made per run)."""

    def __init__(self, dir: Path, name: str) -> None:
        self.dir = dir
        self.ca, self.ca_key = str(dir / "ca.pem"), str(dir / "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")

    def leaf(self, file: str, subject: str, ext: str) -> Tuple[str, str]:
        crt, key, csr, extfile = (str(self.dir / f"{file}.{x}") for x in ("pem", "key", "csr", "ext"))
        Path(extfile).write_text(ext + "\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", subject)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-days", "2", "-out", crt, "-extfile", extfile)
        return crt, key

    def server(self, file: str, *names: str) -> Tuple[str, str]:
        sans = ",".join(f"IP:{n}" if n[0].isdigit() else f"DNS:{n}" for n in names)
        return self.leaf(file, f"/CN={names[0]}", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth")

    def client(self, file: str, subject: str) -> Tuple[str, str]:
        return self.leaf(file, subject, "extendedKeyUsage=clientAuth")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"), "corral test CA")


@pytest.fixture(scope="module")
def server_pair(pki) -> Tuple[str, str]:
    return pki.server("server", "localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def alice(pki) -> Tuple[str, str]:
    return pki.client("alice", "/O=Corral Test/CN=alice")


@pytest.fixture(scope="module")
def mallory(tmp_path_factory) -> Tuple[str, str]:
    return Pki(tmp_path_factory.mktemp("other"), "another CA").client("mallory", "/CN=mallory")


def client(pki: Pki, cert: Optional[Tuple[str, str]] = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def https(address, ctx: ssl.SSLContext, request: bytes, name: str = "localhost"):
    with socket.create_connection(address, timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(request)
            got = read_response(s.makefile("rb"))
            assert got is not None, "the server closed without replying"
            return got


GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def pem_of(path: str) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(Path(path).read_text()))


def test_asgi_sees_the_verified_client_certificate(pki, server_pair, alice):
    seen: Dict[str, Any] = {}

    async def app(scope, receive, send):
        seen["tls"] = scope["extensions"]["tls"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with corral.asgi.serve(app, tls_cert=server_pair[0], tls_key=server_pair[1], tls_client_ca=pki.ca) as server:
        assert https(server.address, client(pki, alice), GET)[0] == 200
    tls = seen["tls"]
    assert tls["client_cert_name"] == "CN=alice,O=Corral Test"
    # The chain as the client sent it: OpenSSL's client adds the CA it trusts after its own.
    chain = [ssl.PEM_cert_to_DER_cert(c) for c in tls["client_cert_chain"]]
    assert chain == [ssl.PEM_cert_to_DER_cert(Path(p).read_text()) for p in (alice[0], pki.ca)]
    assert tls["client_cert_error"] is None


def wsgi_app(environ, start_response):
    keys = ("SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN")
    body = " ".join(environ.get(k, "-") for k in keys).encode()
    cert = environ.get("SSL_CLIENT_CERT")
    body += b" cert" if cert and cert.startswith("-----BEGIN CERTIFICATE-----") else b" -"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_wsgi_has_mod_ssl_client_variables_and_optional_lets_a_client_without_one_in(pki, server_pair, alice):
    opts = dict(tls_cert=server_pair[0], tls_key=server_pair[1], tls_client_ca=pki.ca, tls_client_auth="optional")
    with corral.wsgi.serve(wsgi_app, **opts) as server:
        assert https(server.address, client(pki, alice), GET)[2] == b"SUCCESS CN=alice,O=Corral Test cert"
        assert https(server.address, client(pki), GET)[2] == b"NONE - -"


def test_request_tls_has_the_client_chain_and_name(pki, server_pair, alice):
    got: Dict[str, Any] = {}

    def handler(req):
        got["tls"] = req.tls
        return b"ok"

    with corral.serve(handler, tls_cert=server_pair[0], tls_key=server_pair[1], tls_client_ca=pki.ca) as server:
        assert https(server.address, client(pki, alice), GET)[0] == 200
    assert got["tls"]["client_cert_name"] == "CN=alice,O=Corral Test"
    assert got["tls"]["client_cert_chain"][0] == pem_of(alice[0])


def wait_until(cond) -> None:
    """Waits for ``cond`` (the engine counts a refused handshake once its alert is out,
    a moment after the client read it), failing after the deadline."""
    end = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < end, "not before the deadline"
        time.sleep(0.005)


def refused(address, ctx: ssl.SSLContext) -> str:
    """The error Python's client meets when the server refuses its certificate (TLS 1.3:
    the alert comes after the client's side of the handshake, on the first read)."""
    try:
        https(address, ctx, GET)
    except (ssl.SSLError, ConnectionError) as e:
        return str(e)
    raise AssertionError("served")


def test_a_certificate_from_another_ca_or_none_is_refused_and_counted(pki, server_pair, mallory):
    with corral.serve(lambda req: b"ok", tls_cert=server_pair[0], tls_key=server_pair[1], tls_client_ca=pki.ca) as server:
        assert "UNKNOWN_CA" in refused(server.address, client(pki, mallory)).upper()
        assert "CERTIFICATE_REQUIRED" in refused(server.address, client(pki)).upper()
        wait_until(lambda: server.stats()["tls_handshake_failures"] == 2)


def test_each_server_name_gets_its_certificate(pki, server_pair, tmp_path):
    site = pki.server("site", "api.example.test")
    seen = []

    def handler(req):
        seen.append(req.tls["sni"])
        return b"ok"

    with corral.serve(handler, tls_cert=server_pair[0], tls_key=server_pair[1],
                      tls_sni_certs=f"{site[0]}:{site[1]}") as server:
        for name in ("api.example.test", "localhost"):
            with socket.create_connection(server.address, timeout=DEADLINE) as raw:
                with client(pki).wrap_socket(raw, server_hostname=name) as s:
                    presented = s.getpeercert()
                    s.sendall(GET)
                    assert read_response(s.makefile("rb"))[0] == 200
            assert dict(x[0] for x in presented["subject"])["commonName"] == name
    assert seen == ["api.example.test", "localhost"]


def presented_cn(address, pki: Pki) -> str:
    """The common name of the certificate a new connection is shown (no resumption:
    each call is a new context)."""
    with socket.create_connection(address, timeout=DEADLINE) as raw:
        with client(pki).wrap_socket(raw, server_hostname="localhost") as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


def test_reload_tls_serves_the_new_files_and_keeps_the_old_on_a_bad_one(pki, tmp_path):
    first = pki.leaf("first", "/CN=first", "subjectAltName=DNS:localhost")
    second = pki.leaf("second", "/CN=second", "subjectAltName=DNS:localhost")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)
    with corral.serve(lambda req: b"ok", tls_cert=cert, tls_key=key) as server:
        assert presented_cn(server.address, pki) == "first"
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        server.reload_tls()
        assert presented_cn(server.address, pki) == "second"
        Path(cert).write_text("not a certificate\n")
        with pytest.raises(corral.ConfigError, match=f"tls_cert: {cert} holds no PEM certificate"):
            server.reload_tls()
        assert presented_cn(server.address, pki) == "second"
    with corral.serve(lambda req: b"ok") as plain:
        with pytest.raises(corral.ConfigError, match="serves no TLS"):
            plain.reload_tls()


APP = textwrap.dedent(
    """
    def app(environ, start_response):
        body = " ".join(environ.get(k, "-") for k in ("SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN")).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    """
)


def stop(p) -> str:
    p.terminate()
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 0, err
    return err


def test_cli_maps_uvicorns_client_certificate_and_cipher_flags(tmp_path, pki, server_pair, alice):
    (tmp_path / "tlsapp.py").write_text(APP)
    p, addr = start_cli(tmp_path, "--ssl-certfile", server_pair[0], "--ssl-keyfile", server_pair[1],
                        "--ssl-ca-certs", pki.ca, "--ssl-cert-reqs", "1",
                        "--ssl-ciphers", "TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", "tlsapp:app")
    try:
        assert https(addr, client(pki, alice), GET)[2] == b"SUCCESS CN=alice,O=Corral Test"
        assert https(addr, client(pki), GET)[2] == b"NONE -"
        with socket.create_connection(addr, timeout=DEADLINE) as raw:
            with client(pki).wrap_socket(raw, server_hostname="localhost") as s:
                assert s.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    finally:
        stop(p)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--ssl-cert-reqs", "2"], "--ssl-cert-reqs: 2 (required) needs --ssl-ca-certs"),
        (["--ssl-cert-reqs", "0", "--ssl-ca-certs", "CA"], "0 (none) asks for no client certificate"),
        (["--ssl-ciphers", "HIGH:!aNULL"], "OpenSSL cipher-string keywords and operators"),
        (["--ssl-ciphers", "AES128-SHA"], "unknown TLS cipher suite \"AES128-SHA\""),
    ],
)
def test_cli_refuses_ssl_flags_that_do_not_map(tmp_path, pki, server_pair, flags, says):
    (tmp_path / "tlsapp.py").write_text(APP)
    flags = [pki.ca if f == "CA" else f for f in flags]
    args = ["--ssl-certfile", server_pair[0], "--ssl-keyfile", server_pair[1], *flags, "tlsapp:app"]
    r = subprocess.run([sys.executable, "-m", "corral", "--port", "0", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr, r.stderr


def test_cli_reloads_the_certificates_on_sighup(tmp_path, pki):
    (tmp_path / "tlsapp.py").write_text(APP)
    first = pki.leaf("hup1", "/CN=first", "subjectAltName=DNS:localhost")
    second = pki.leaf("hup2", "/CN=second", "subjectAltName=DNS:localhost")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)
    p, addr = start_cli(tmp_path, "--ssl-certfile", cert, "--ssl-keyfile", key, "tlsapp:app")
    try:
        assert presented_cn(addr, pki) == "first"
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: presented_cn(addr, pki) == "second")
        Path(key).write_text("broken\n")
        p.send_signal(signal.SIGHUP)
        assert presented_cn(addr, pki) == "second"
    finally:
        err = stop(p)
    assert "SIGHUP: TLS certificates reloaded" in err
    assert f"SIGHUP: TLS certificates not reloaded, the ones before serve on: tls_key: {key}" in err


def test_the_supervisor_passes_sighup_to_every_worker(tmp_path, pki):
    (tmp_path / "tlsapp.py").write_text(APP)
    first = pki.leaf("sup1", "/CN=first", "subjectAltName=DNS:localhost")
    second = pki.leaf("sup2", "/CN=second", "subjectAltName=DNS:localhost")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)
    p, addr = start_cli(tmp_path, "--workers", "2", "--ssl-certfile", cert, "--ssl-keyfile", key, "tlsapp:app")
    try:
        wait_until(lambda: presented_cn(addr, pki) == "first")
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        p.send_signal(signal.SIGHUP)
        # Connections land on either worker (SO_REUSEPORT): sixteen in a row on the new
        # certificate leave a worker that did not reload a chance of 2^-16.
        wait_until(lambda: all(presented_cn(addr, pki) == "second" for _ in range(16)))
    finally:
        stop(p)
