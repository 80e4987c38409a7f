"""TLS on the Python front: the ASGI scope (scheme https / wss, the ``tls`` extension),
the WSGI environ (``wsgi.url_scheme``, ``HTTPS``), ``Request.tls``, and the command
line's uvicorn flags, each with Python's ``ssl`` client over loopback and a certificate
made for the test by the ``openssl`` command."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
from typing import Any, Dict, Tuple

import pytest

import corral
import corral.asgi
import corral.wsgi
from cli_server import start_cli
from conftest import DEADLINE, read_response

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> Tuple[str, str]:
    """A self-signed P-256 certificate for localhost and 127.0.0.1, and its key."""
    d = tmp_path_factory.mktemp("tls")
    crt, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=DEADLINE,
    )
    return crt, key


def client(cert: Tuple[str, str], version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cert[0])
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def https(address, ctx: ssl.SSLContext, request: bytes) -> Tuple[int, Dict[str, str], bytes]:
    with socket.create_connection(address, timeout=DEADLINE) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(request)
            got = read_response(s.makefile("rb"))
            assert got is not None, "the server closed without replying"
            return got


GET = b"GET /p?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
seen: Dict[str, Any] = {}


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    seen[scope["type"]] = scope
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


@pytest.mark.parametrize("version, number", [(ssl.TLSVersion.TLSv1_2, 0x0303), (ssl.TLSVersion.TLSv1_3, 0x0304)])
def test_asgi_scope_is_https_with_the_tls_extension(cert, version, number):
    seen.clear()
    with corral.asgi.serve(asgi_app, tls_cert=cert[0], tls_key=cert[1], io_workers=1) as server:
        ctx = client(cert, version)
        st, _, body = https(server.address, ctx, GET)
        assert (st, body) == (200, b"https")
        stats = server.stats()
    tls = seen["http"]["extensions"]["tls"]
    assert tls["tls_version"] == number
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None and tls["client_cert_error"] is None
    assert tls["server_cert"] is None
    # The suite Python's client agreed on, by its IANA number (0x1301..0x1303, 0xC02B..).
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    assert stats["tls_handshakes"] >= 1


def test_asgi_websocket_over_tls_is_wss_and_keeps_the_tls_extension(cert):
    seen.clear()
    with corral.asgi.serve(asgi_app, tls_cert=cert[0], tls_key=cert[1], io_workers=1) as server:
        with socket.create_connection(server.address, timeout=DEADLINE) as raw:
            with client(cert).wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(
                    b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                status = s.makefile("rb").readline()
    assert status.startswith(b"HTTP/1.1 101"), status
    scope = seen["websocket"]
    assert scope["scheme"] == "wss"
    assert scope["extensions"]["tls"]["tls_version"] == 0x0304
    assert "websocket.http.response" in scope["extensions"]


def test_plain_asgi_has_no_tls_extension(cert):
    seen.clear()
    with corral.asgi.serve(asgi_app, io_workers=1) as server:
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(GET)
            st, _, body = read_response(s.makefile("rb"))
    assert (st, body) == (200, b"http")
    assert "tls" not in seen["http"].get("extensions", {})


def wsgi_app(environ, start_response):
    body = f"{environ['wsgi.url_scheme']} {environ.get('HTTPS', '-')}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_wsgi_url_scheme_and_https(cert):
    with corral.wsgi.serve(wsgi_app, tls_cert=cert[0], tls_key=cert[1]) as server:
        assert https(server.address, client(cert), GET)[2] == b"https on"
    with corral.wsgi.serve(wsgi_app) as server:
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(GET)
            assert read_response(s.makefile("rb"))[2] == b"http -"


def test_request_tls_names_version_suite_sni_and_alpn(cert):
    got: Dict[str, Any] = {}

    def handler(req):
        got["tls"] = req.tls
        return b"ok"

    with corral.serve(handler, tls_cert=cert[0], tls_key=cert[1]) as server:
        ctx = client(cert)
        ctx.set_alpn_protocols(["http/1.1"])
        assert https(server.address, ctx, GET)[:3:2] == (200, b"ok")
    t = got["tls"]
    assert t["version"] == "1.3" and t["cipher_suite"].startswith("TLS13_")
    assert t["sni"] == "localhost" and t["alpn"] == "http/1.1" and t["resumed"] is False


APP = textwrap.dedent(
    """
    def app(environ, start_response):
        body = environ["wsgi.url_scheme"].encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    """
)


def test_cli_serves_tls_with_uvicorns_flags(tmp_path, cert):
    (tmp_path / "tlsapp.py").write_text(APP)
    p, addr = start_cli(tmp_path, "--ssl-certfile", cert[0], "--ssl-keyfile", cert[1], "tlsapp:app")
    try:
        assert https(addr, client(cert), GET)[2] == b"https"
    finally:
        p.terminate()
        _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 0, err


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--ssl-keyfile-password", "encrypted private keys are not read"),
        ("--ssl-cert-reqs", "'x' is not 0 (none), 1 (optional) or 2 (required)"),
    ],
)
def test_cli_refuses_the_ssl_flags_it_cannot_honour(tmp_path, cert, flag, says):
    (tmp_path / "tlsapp.py").write_text(APP)
    args = ["--ssl-certfile", cert[0], "--ssl-keyfile", cert[1], flag, "x", "tlsapp:app"]
    r = subprocess.run([sys.executable, "-m", "corral", "--port", "0", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 2, r.stderr
    assert f"corral: {flag}: {says}" in r.stderr


def test_cli_needs_both_certfile_and_keyfile(tmp_path, cert):
    r = subprocess.run([sys.executable, "-m", "corral", "--port", "0", "--ssl-certfile", cert[0], "tlsapp:app"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 2 and "needs both --ssl-certfile" in r.stderr, r.stderr
