"""ASGI 3 on corral: the scope, receive/send, errors answered 500, lifespan with state,
and a real FastAPI app."""


import contextlib
import logging

import pytest

import corral
from http_client import request
import corral.asgi




seen = {}


async def raw_app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    seen["scope"] = scope
    msg = await receive()
    await send({"type": "http.response.start", "status": 207, "headers": [(b"x-a", b"1"), (b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"got " + msg["body"], "more_body": True})
    await send({"type": "http.response.body", "body": b" ok"})
    seen["after"] = await receive()
    try:
        await send({"type": "http.response.body", "body": b"late"})
    except OSError as e:
        seen["late"] = e


def test_scope_receive_send_and_disconnect_after_the_response(caplog):
    with caplog.at_level(logging.INFO, logger="corral.asgi"):
        with corral.asgi.serve(raw_app, io_workers=1) as server:
            addr = server.address
            st, h, body = request(server.address, "POST", "/a%20b?x=1", b"hello", {"X-Thing": "T"})
            assert (st, h["x-a"], body) == (207, "1", b"got hello ok")
    s = seen["scope"]
    assert s["type"] == "http" and s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (s["method"], s["path"], s["raw_path"], s["query_string"]) == ("POST", "/a b", b"/a%20b", b"x=1")
    assert (b"x-thing", b"T") in [tuple(x) for x in s["headers"]]
    assert s["http_version"] == "1.1" and s["client"][0] == "127.0.0.1" and s["server"] == addr
    assert type(s) is dict
    assert seen["after"] == {"type": "http.disconnect"}
    assert isinstance(seen["late"], OSError)
    assert "does not support ASGI lifespan" in caplog.text


async def broken_app(scope, receive, send):
    if scope["type"] != "http":
        return
    p = scope["path"]
    if p == "/raise":
        raise ValueError("boom")
    if p == "/order":
        await send({"type": "http.response.body", "body": b"x"})
    if p == "/nothing":
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"fine"})


def test_errors_are_500s_and_the_server_lives(caplog):
    with caplog.at_level(logging.ERROR, logger="corral.asgi"):
        with corral.asgi.serve(broken_app) as server:
            for p in ["/raise", "/order", "/nothing"]:
                assert request(server.address, path=p)[0] == 500, p
            assert request(server.address)[2] == b"fine"
    assert "boom" in caplog.text and "before http.response.start" in caplog.text and "without completing" in caplog.text


def test_lifespan_state_reaches_scopes_and_a_failed_startup_stops_serve():
    events = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                events.append(m["type"])
                if m["type"] == "lifespan.startup":
                    scope["state"]["db"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["state"]["db"].encode()})

    with corral.asgi.serve(app) as server:
        assert request(server.address)[2] == b"ready"
    assert events == ["lifespan.startup", "lifespan.shutdown"]

    async def failing(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(corral.asgi.LifespanFailed, match="no database"):
        corral.asgi.serve(failing)


def test_a_fastapi_app_with_lifespan_state():
    fastapi = pytest.importorskip("fastapi")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield {"greeting": "hello"}

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.get("/items/{item}")
    async def item(request: fastapi.Request, item: int, q: str = ""):
        return {"item": item, "q": q, "greeting": request.state.greeting}

    @app.post("/echo")
    async def echo(request: fastapi.Request):
        return {"len": len(await request.body())}

    with corral.asgi.serve(app) as server:
        st, h, body = request(server.address, path="/items/7?q=x")
        assert st == 200 and h["content-type"] == "application/json"
        import json

        assert json.loads(body) == {"item": 7, "q": "x", "greeting": "hello"}
        assert json.loads(request(server.address, "POST", "/echo", b"z" * 100_000)[2]) == {"len": 100_000}
        assert request(server.address, path="/items/notanint")[0] == 422


def test_the_app_runs_on_a_loop_the_caller_owns():
    """``loop=`` from another thread, and ``await start()`` on the loop itself: the app
    runs on that loop (its lifespan too), and the server closes without stopping it."""
    import asyncio
    import threading

    where = {}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                where[msg["type"]] = asyncio.get_running_loop()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        where["request"] = asyncio.get_running_loop()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"on your loop"})

    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        with corral.asgi.serve(app, loop=loop) as server:
            assert server.loop is loop
            assert request(server.address)[2] == b"on your loop"
        assert where["request"] is loop and where["lifespan.startup"] is loop and where["lifespan.shutdown"] is loop
        assert loop.is_running(), "closing the server leaves the caller's loop running"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()

    async def main():
        server = await corral.asgi.start(app)
        with pytest.raises(corral.Error, match="aclose"):
            server.close()
        with pytest.raises(corral.ConfigError, match="start"):
            corral.asgi.serve(app, loop=asyncio.get_running_loop())
        got = await asyncio.get_running_loop().run_in_executor(None, request, server.address)
        report = await server.aclose()
        return got, report

    where.clear()
    got, report = asyncio.run(main())
    assert got[2] == b"on your loop" and report["requests_completed"] == 1
    assert "lifespan.shutdown" in where
