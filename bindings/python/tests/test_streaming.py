"""Streamed responses through the WSGI and ASGI fronts, over real sockets: chunked and
length-framed bodies, a large download to a client that does not read (the host goes
on serving others meanwhile: the stream is parked, not blocking), a client that leaves
mid-response (WSGI: the iterable is closed; ASGI: send raises OSError), http.disconnect
when the client leaves while the app waits, and FastAPI's StreamingResponse."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading

import pytest

import corral
import corral.asgi
import corral.wsgi
from http_client import request

BIG = 24 << 20  # larger than the socket buffers and the write high-water mark together
PART = 64 << 10


def pattern(i: int) -> bytes:
    return bytes([i % 251]) * PART


def expected_big() -> bytes:
    return b"".join(pattern(i) for i in range(BIG // PART))


def slow_download(address) -> tuple:
    """A client that asks for /big and then reads nothing: its socket, and the body
    bytes that came with the head."""
    slow = socket.create_connection(address, timeout=30)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    slow.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    return slow, read_head(slow).split(b"\r\n\r\n", 1)[1]


def read_head(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


# --- WSGI ---------------------------------------------------------------------------

left = threading.Event()
closed_after_leaving = threading.Event()


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/parts":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"part {i};".encode() for i in range(100))
    if path == "/sized":
        start_response("200 OK", [("Content-Length", "12")])
        return iter([b"abc", b"def", b"ghi", b"jkl", b"never sent"])
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (pattern(i) for i in range(BIG // PART))
    if path == "/forever":

        class Forever:
            def __iter__(self):
                i = 0
                while True:
                    i += 1
                    yield pattern(i)

            def close(self):
                closed_after_leaving.set()

        start_response("200 OK", [])
        return Forever()
    if path == "/breaks":

        def gen():
            yield b"fine "
            yield b"so far"
            raise RuntimeError("the app broke mid-body (expected in this test)")

        start_response("200 OK", [])
        return gen()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_wsgi_a_body_in_parts_is_chunked_and_a_declared_length_is_kept():
    with corral.wsgi.serve(wsgi_app) as server:
        st, h, body = request(server.address, path="/parts")
        assert (st, h.get("transfer-encoding")) == (200, "chunked")
        assert body == b"".join(f"part {i};".encode() for i in range(100))
        st, h, body = request(server.address, path="/sized")
        assert (h["content-length"], body) == ("12", b"abcdefghijkl")
        st, h, body = request(server.address)
        assert (h["content-length"], body) == ("5", b"hello"), "one chunk: sent whole, with its length"


def test_wsgi_a_client_that_does_not_read_does_not_hold_the_host_thread():
    with corral.wsgi.serve(wsgi_app, write_high_water=256 << 10) as server:
        slow, first = slow_download(server.address)
        # The one host thread has parked the download: others are served meanwhile.
        for _ in range(20):
            assert request(server.address)[2] == b"hello"
        buf = bytearray(first)
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"\r\n0\r\n\r\n"):
                break
        slow.close()
        body = dechunk(bytes(buf))
        assert hashlib.sha256(body).digest() == hashlib.sha256(expected_big()).digest()
        assert server.stats()["replies"] >= 21


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        n = int(data[pos:end], 16)
        if n == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + n]
        pos = end + 2 + n + 2


def test_wsgi_a_client_that_leaves_mid_response_closes_the_iterable():
    closed_after_leaving.clear()
    with corral.wsgi.serve(wsgi_app, write_high_water=64 << 10) as server:
        s = socket.create_connection(server.address, timeout=30)
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        read_head(s)
        s.recv(1 << 16)
        s.close()
        assert closed_after_leaving.wait(30), "the iterable's close() is called once the client is gone"
        assert request(server.address)[2] == b"hello"


def test_wsgi_an_app_that_breaks_mid_body_cuts_the_body_and_the_server_lives(caplog):
    with caplog.at_level(logging.ERROR, logger="corral.wsgi"):
        with corral.wsgi.serve(wsgi_app) as server:
            s = socket.create_connection(server.address, timeout=30)
            s.sendall(b"GET /breaks HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            assert b"transfer-encoding: chunked" in data and b"so far" in data
            assert not data.endswith(b"0\r\n\r\n"), "no end chunk: the client sees the body is cut off"
            assert request(server.address)[2] == b"hello"
    assert "the app broke mid-body" in caplog.text


# --- ASGI ---------------------------------------------------------------------------

events: dict = {}


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    path = scope["path"]
    if path == "/parts":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(100):
            await send({"type": "http.response.body", "body": f"part {i};".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(BIG).encode())]})
        for i in range(BIG // PART):
            await send({"type": "http.response.body", "body": pattern(i), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/forever":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            i = 0
            while True:
                i += 1
                await send({"type": "http.response.body", "body": pattern(i), "more_body": True})
        except OSError as e:
            events["send_error"] = e
            events["forever"].set()
    elif path == "/poll":
        await receive()  # the body
        events["poll"] = await receive()  # waits until the client leaves
        events["polled"].set()
    else:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})


def test_asgi_more_body_is_chunked_and_a_content_length_is_kept():
    with corral.asgi.serve(asgi_app) as server:
        st, h, body = request(server.address, path="/parts")
        assert (st, h.get("transfer-encoding")) == (200, "chunked")
        assert body == b"".join(f"part {i};".encode() for i in range(100))
        st, h, body = request(server.address, path="/big")
        assert h["content-length"] == str(BIG) and body == expected_big()


def test_asgi_send_waits_for_a_slow_client_while_the_loop_serves_others():
    with corral.asgi.serve(asgi_app, write_high_water=256 << 10) as server:
        slow, body = slow_download(server.address)
        for _ in range(20):
            assert request(server.address)[2] == b"hello"
        while len(body) < BIG:
            chunk = slow.recv(1 << 20)
            assert chunk
            body += chunk
        slow.close()
        assert hashlib.sha256(body).digest() == hashlib.sha256(expected_big()).digest()


def test_asgi_a_client_that_leaves_makes_send_raise_and_receive_say_disconnect():
    events.clear()
    events["forever"], events["polled"] = threading.Event(), threading.Event()
    with corral.asgi.serve(asgi_app, write_high_water=64 << 10) as server:
        s = socket.create_connection(server.address, timeout=30)
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        read_head(s)
        s.close()
        assert events["forever"].wait(30), "send raised once the client was gone"
        assert isinstance(events["send_error"], OSError)

        s = socket.create_connection(server.address, timeout=30)
        s.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not events["polled"].wait(0.2), "receive() does not answer http.disconnect early"
        s.close()
        assert events["polled"].wait(30)
        assert events["poll"] == {"type": "http.disconnect"}
        assert request(server.address)[2] == b"hello"


def test_fastapi_streaming_response():
    fastapi = pytest.importorskip("fastapi")
    from fastapi.responses import StreamingResponse

    app = fastapi.FastAPI()

    @app.get("/stream")
    async def stream():
        async def gen():
            for i in range(50):
                yield f"line {i}\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(gen(), media_type="text/plain")

    with corral.asgi.serve(app) as server:
        st, h, body = request(server.address, path="/stream")
        assert (st, h["transfer-encoding"]) == (200, "chunked")
        assert body == b"".join(f"line {i}\n".encode() for i in range(50))


def test_graceful_shutdown_under_load_loses_no_request():
    """Clients on keep-alive connections send request after request while the server
    closes: every request framed is answered (200, never an error), the report's count
    matches what the clients read, and nothing was aborted."""
    import http.client

    server = corral.wsgi.serve(wsgi_app)
    addr = server.address
    seen = [0] * 6
    started = threading.Barrier(len(seen) + 1)

    def client(i: int) -> None:
        c = http.client.HTTPConnection(*addr, timeout=30)
        first = True
        try:
            while True:
                c.request("GET", "/")
                r = c.getresponse()
                assert r.status == 200 and r.read() == b"hello"
                seen[i] += 1
                if first:
                    first = False
                    started.wait(30)
                if r.getheader("connection") == "close":
                    return
        except (ConnectionError, http.client.RemoteDisconnected):
            return  # closed between two requests: the next one was never framed
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(seen))]
    for t in threads:
        t.start()
    started.wait(30)
    report = server.close(20)
    for t in threads:
        t.join(30)
    assert report["clean"] and report["requests_aborted"] == 0, report
    assert report["requests_completed"] == sum(seen), (report, seen)
