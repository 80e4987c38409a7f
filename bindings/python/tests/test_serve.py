"""Serve: corral does the I/O on its threads and calls Python only to compute."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket

import pytest

import corral

from conftest import get, http, read_response


def test_sync_handler_with_response_headers_and_keep_alive(deadline):
    def handler(req: corral.Request) -> corral.Response:
        return corral.Response(201, body=f"{req.method} {req.path} {req.seq}", headers={"x-served-by": "corral"})

    with corral.serve(handler, io_workers=2, cpu_threads=1) as server:
        with socket.create_connection(server.address, timeout=deadline) as s:
            s.sendall(b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            f = s.makefile("rb")
            st, headers, body = read_response(f)
            assert (st, body, headers["x-served-by"]) == (201, b"GET /a 0", "corral")
            st, _, body = read_response(f)
            assert (st, body) == (201, b"POST /b 1")


def test_request_fields():
    seen = {}

    def handler(req):
        seen.update(
            method=req.method,
            path=req.path,
            header=req.header("x-a"),
            headers=req.headers,
            body=req.body,
            peer=req.peer,
            is_http=req.is_http,
        )
        return b"ok"

    with corral.serve(handler) as server:
        st, _, body = http(server.address, b"PUT /p?q=1 HTTP/1.1\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc")
        assert (st, body) == (200, b"ok")
    assert seen["method"] == "PUT" and seen["path"] == "/p?q=1" and seen["body"] == b"abc"
    assert seen["header"] == b"1" and ("X-A", b"1") in seen["headers"]
    assert seen["peer"][0] == "127.0.0.1" and seen["is_http"]


def test_heavy_requests_run_on_the_cpu_pool_by_a_native_rule(deadline):
    data = b"x" * (1 << 20)

    def handler(req):
        if req.path.startswith("/hash"):
            return hashlib.sha256(data).hexdigest()  # releases the GIL
        return "light"

    with corral.serve(handler, heavy=["/hash"], io_workers=2, cpu_threads=2) as server:
        for _ in range(4):
            assert get(server.address, "/hash")[2] == hashlib.sha256(data).hexdigest().encode()
        assert get(server.address, "/")[2] == b"light"
        st = server.stats()
        assert st["cpu_submitted"] == 4
        assert st["latency_heavy_count"] == 4


def test_min_bytes_rule_with_the_lines_protocol(deadline):
    with corral.serve(lambda r: r.body.upper(), protocol="lines", heavy={"min_bytes": 5}) as server:
        with socket.create_connection(server.address, timeout=deadline) as s:
            s.sendall(b"abc\nabcdefgh\n")
            f = s.makefile("rb")
            assert f.readline() == b"ABC\n"
            assert f.readline() == b"ABCDEFGH\n"
        assert server.stats()["cpu_submitted"] == 1


def test_a_handler_exception_is_logged_answered_500_and_serving_goes_on(caplog):
    def handler(req):
        if req.path == "/boom":
            raise RuntimeError("boom")
        return "fine"

    with caplog.at_level(logging.ERROR, logger="corral"):
        with corral.serve(handler) as server:
            assert get(server.address, "/boom")[0] == 500
            assert get(server.address, "/")[2] == b"fine"
    assert any("handler failed" in r.message and r.exc_info for r in caplog.records)


def test_a_bad_return_type_is_an_error_reply(caplog):
    with caplog.at_level(logging.ERROR, logger="corral"):
        with corral.serve(lambda r: 42) as server:
            assert get(server.address, "/")[0] == 500
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)


def test_returning_none_closes_the_connection(deadline):
    with corral.serve(lambda r: None) as server:
        with socket.create_connection(server.address, timeout=deadline) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert s.recv(100) == b""


@pytest.mark.asyncio
async def test_async_handler_runs_on_the_given_loop():
    loop = asyncio.get_running_loop()
    on_loop = []

    async def handler(req):
        on_loop.append(asyncio.get_running_loop() is loop)
        await asyncio.sleep(0)
        return corral.Response(200, body=req.path)

    server = corral.serve(handler, loop=loop)
    try:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"GET /async HTTP/1.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(6) == b"/async"
        writer.close()
        await writer.wait_closed()
    finally:
        await asyncio.to_thread(server.close)
    assert on_loop == [True]


def test_async_handler_without_a_loop_is_refused():
    async def handler(req):
        return b""

    with pytest.raises(corral.ConfigError, match="loop"):
        corral.serve(handler)


def test_stats_and_prometheus():
    with corral.serve(lambda r: b"x", io_workers=2) as server:
        get(server.address)
        st = server.stats()
        assert st["worker_requests"] == 1 and st["replies"] == 1 and len(st["workers"]) == 2
        assert "corral_replies_total 1" in server.prometheus()
        report = server.close()
        assert report["requests_completed"] == 1 and report["clean"]


def test_the_backend_option_and_which_backend_runs(deadline):
    # auto: io_uring where the probe passes, else epoll with a fallback flag (the log says why).
    with corral.serve(lambda r: b"x", backend="auto", io_workers=1) as server:
        assert get(server.address)[0] == 200
        st = server.stats()
        assert st["io_uring"] + st["io_uring_fallback"] == 1
    with corral.serve(lambda r: b"x", backend="epoll") as server:
        assert server.stats()["io_uring"] == 0 and server.stats()["io_uring_fallback"] == 0
    with pytest.raises(corral.ConfigError, match="unknown backend \"kqueue\": use epoll, io_uring, auto"):
        corral.serve(lambda r: b"", backend="kqueue")
    with pytest.raises(corral.ConfigError, match="thread-per-connection"):
        corral.serve(lambda r: b"", backend="io_uring", model="thread-per-connection")


def test_bad_options():
    with pytest.raises(corral.ConfigError, match="protocol"):
        corral.serve(lambda r: b"", protocol="smtp")
    with pytest.raises(corral.ConfigError, match="heavy"):
        corral.serve(lambda r: b"", heavy={"paths": []})
    with pytest.raises(ValueError, match="io_workers"):
        corral.serve(lambda r: b"", io_workers=0)
    with pytest.raises(corral.ConfigError, match="reply_timeout"):
        corral.serve(lambda r: b"", reply_timeout=0.00001)
    with pytest.raises(corral.ConfigError, match="io_slice"):
        corral.serve(lambda r: b"", io_slice=0.00001)


def test_admission_options_reach_the_engine(deadline):
    with corral.serve(lambda r: b"x", max_requests_per_connection=2, max_connections_per_ip=10) as server:
        with socket.create_connection(server.address, timeout=deadline) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n" * 3)
            f = s.makefile("rb")
            assert read_response(f)[0] == 200
            st, headers, _ = read_response(f)
            assert headers.get("connection") == "close"
            assert read_response(f) is None


def test_request_proxy_gives_the_header_and_its_tlvs():
    seen = []

    def handler(req):
        seen.append((req.peer, req.proxy))
        return b"ok"

    header = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + (18).to_bytes(2, "big")
    header += bytes([203, 0, 113, 7, 10, 0, 0, 1]) + (12345).to_bytes(2, "big") + (80).to_bytes(2, "big")
    header += b"\x02\x00\x03a.b"  # PP2_TYPE_AUTHORITY
    with corral.serve(handler, proxy_protocol="v2") as server:
        with socket.create_connection(server.address, timeout=10) as s:
            s.sendall(header + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass
    (peer, proxy), = seen
    assert peer == ("203.0.113.7", 12345)
    assert proxy == {"version": 2, "source": ("203.0.113.7", 12345), "destination": ("10.0.0.1", 80), "tlvs": [(2, b"a.b")]}
