"""WSGI on corral: PEP 3333 checked from the app's side by the standard library's
wsgiref.validate, a real Flask app, errors answered with 500 and the server living on."""

from __future__ import annotations

import http.client
import os
import logging
import socket
import wsgiref.validate

import pytest

import corral
from http_client import request
import corral.wsgi




def echo_app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n)
    assert environ["wsgi.input"].read(1) == b"", "input ends at the body's end"
    out = (
        f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} q={environ['QUERY_STRING']} "
        f"len={environ.get('CONTENT_LENGTH', '')} type={environ.get('CONTENT_TYPE', '')} "
        f"x={environ.get('HTTP_X_THING', '')} proto={environ['SERVER_PROTOCOL']} body={body.decode()}"
    ).encode()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Out", "yes")])
    return [out]


def test_the_environ_and_the_reply_under_wsgiref_validate():
    with corral.wsgi.serve(wsgiref.validate.validator(echo_app), io_workers=1) as server:
        st, h, body = request(server.address, "POST", "/a%20b/c?x=1&y=2", b"hello", {"X-Thing": "1", "Content-Type": "text/plain"})
        assert st == 201 and h["x-out"] == "yes"
        assert body == b"POST /a b/c q=x=1&y=2 len=5 type=text/plain x=1 proto=HTTP/1.1 body=hello"
        st, _, body = request(server.address, "GET", "/")
        assert st == 201 and body.startswith(b"GET / q= len=")


def test_chunked_request_bodies_reach_the_app_with_their_length():
    with corral.wsgi.serve(wsgiref.validate.validator(echo_app)) as server:
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            data = b""
            while b"body=abcde" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert b"len=5" in data


def test_write_generators_and_close_are_honoured():
    closed = []

    class Body:
        def __iter__(self):
            yield b"two "
            yield b""
            yield b"three"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        return Body()

    with corral.wsgi.serve(wsgiref.validate.validator(app)) as server:
        st, h, body = request(server.address)
        assert (st, body) == (200, b"one two three")
        assert h["transfer-encoding"] == "chunked", "a body in several chunks is streamed"
    assert closed == [True]


def test_errors_are_500s_the_log_says_why_and_the_server_lives(caplog):
    def app(environ, start_response):
        p = environ["PATH_INFO"]
        if p == "/raise":
            raise RuntimeError("boom")
        if p == "/status":
            start_response("OK", [])
            return [b""]
        if p == "/headers":
            start_response("200 OK", [("Bad Header", "x")])
            return [b""]
        if p == "/str":
            start_response("200 OK", [])
            return ["not bytes"]
        if p == "/nostart":
            return [b"x"]
        if p == "/exc":
            try:
                raise ValueError("late")
            except ValueError:
                import sys

                start_response("200 OK", [])
                start_response("503 Busy", [("Retry-After", "1")], sys.exc_info())
                return [b"busy"]
        start_response("200 OK", [])
        return [b"fine"]

    with caplog.at_level(logging.ERROR, logger="corral.wsgi"):
        with corral.wsgi.serve(app) as server:
            for path in ["/raise", "/status", "/headers", "/str", "/nostart"]:
                assert request(server.address, path=path)[0] == 500, path
            st, h, body = request(server.address, path="/exc")
            assert (st, h.get("retry-after"), body) == (503, "1", b"busy")
            assert request(server.address)[2] == b"fine"
    text = caplog.text
    assert "boom" in text and "status must be" in text and "not allowed" in text and "start_response" in text


def test_a_flask_app():
    flask = pytest.importorskip("flask")
    app = flask.Flask("t")

    @app.route("/hello/<name>")
    def hello(name):
        return {"hello": name, "q": flask.request.args.get("q")}

    @app.post("/echo")
    def echo():
        return flask.request.get_data(), 202, {"X-Len": str(len(flask.request.get_data()))}

    with corral.wsgi.serve(app) as server:
        st, h, body = request(server.address, path="/hello/you?q=1")
        assert st == 200 and h["content-type"] == "application/json"
        assert flask.json.loads(body) == {"hello": "you", "q": "1"}
        big = b"z" * 300_000
        st, h, body = request(server.address, "POST", "/echo", big)
        assert (st, h["x-len"], body) == (202, "300000", big)
        assert request(server.address, path="/nope")[0] == 404


def test_options_and_stats_come_from_the_tables():
    with pytest.raises(corral.ConfigError, match="unknown option"):
        corral.wsgi.serve(echo_app, idle_timeot=1)
    with corral.wsgi.serve(echo_app, io_workers=1, idle_timeout=5.0) as server:
        request(server.address)
        assert server.stats()["replies"] == 1


def test_ten_thousand_failing_requests_leak_no_descriptors_or_memory():
    def app(environ, start_response):
        raise RuntimeError("always")

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    quiet = logging.getLogger("corral.wsgi")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        with corral.wsgi.serve(app, io_workers=1) as server:
            c = http.client.HTTPConnection(*server.address, timeout=10)

            def burst(n):
                for _ in range(n):
                    c.request("GET", "/")
                    r = c.getresponse()
                    r.read()
                    assert r.status == 500

            burst(1000)  # warm up: allocator pools, the first connection
            fd0, rss0 = fds(), rss()
            burst(10_000)
            assert fds() == fd0, "no descriptor leaked"
            assert rss() - rss0 < 16 << 20, f"memory grew by {(rss() - rss0) >> 20} MiB"
            c.close()
    finally:
        quiet.level = level


def test_threads_run_an_app_that_blocks_concurrently():
    import threading

    # Two requests meet at a barrier: they complete only if two threads run the app.
    barrier = threading.Barrier(2, timeout=20)

    def app(environ, start_response):
        barrier.wait()
        start_response("200 OK", [])
        return [b"met" if environ["wsgi.multithread"] else b"alone"]

    with corral.wsgi.serve(app, threads=2) as server:
        results = []
        clients = [threading.Thread(target=lambda: results.append(request(server.address))) for _ in range(2)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(30)
        assert [r[2] for r in results] == [b"met", b"met"]
    with pytest.raises(corral.ConfigError, match="threads"):
        corral.wsgi.serve(app, threads=0)


def test_behind_a_proxy_protocol_balancer_remote_addr_is_the_client():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}".encode()]

    with corral.wsgi.serve(app, proxy_protocol="v1") as server:
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data.endswith(b"\r\n\r\n198.51.100.2:4242"), data
        with pytest.raises(corral.ConfigError, match="proxy_trusted"):
            corral.wsgi.serve(app, proxy_protocol="v1", proxy_trusted="10.0.0.0/99")
