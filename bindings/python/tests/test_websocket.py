"""Websockets through corral's Python fronts, over real loopback sockets with the
`websockets` client: the ASGI websocket scope (FastAPI, a raw app, Django Channels),
the denial extension, close codes both ways, back-pressure both ways, `corral.serve`'s
own websocket API with topics, and the command line's websocket flags."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.responses import Response
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import corral
import corral.asgi
from cli_server import start_cli
from corral.asgi_ws import MAX_QUEUE

DEADLINE = 60.0
MIB = 1 << 20


def run(coro):
    """Runs a client coroutine to its end, within the deadline."""
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def client(address, path, **kw):
    host, port = address
    kw.setdefault("open_timeout", DEADLINE)
    return connect(f"ws://{host}:{port}{path}", proxy=None, **kw)


async def until(predicate, what):
    """Polls `predicate` (a check of state another thread changes) until it holds."""
    end = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# -- a FastAPI app --------------------------------------------------------------------

api = FastAPI()
seen: dict = {}


@api.websocket("/echo")
async def echo(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await ws.send_text(msg["text"])
            else:
                await ws.send_bytes(msg["bytes"])
    except WebSocketDisconnect:
        pass


@api.websocket("/proto")
async def proto(ws: WebSocket):
    offered = ws.scope["subprotocols"]
    await ws.accept(subprotocol="chat.v2" if "chat.v2" in offered else None, headers=[(b"x-room", b"lobby")])
    await ws.send_json({"offered": offered})
    await ws.close()


@api.websocket("/refuse")
async def refuse(ws: WebSocket):
    await ws.close(code=1008)


@api.websocket("/deny")
async def deny(ws: WebSocket):
    await ws.send_denial_response(Response(b"who are you?", status_code=401, headers={"x-why": "no token"}))


@api.websocket("/wait-close")
async def wait_close(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect as e:
        seen["disconnect"] = (e.code, e.reason)
        seen["closed"].set()


@api.websocket("/server-close")
async def server_close(ws: WebSocket):
    await ws.accept()
    await ws.send_text("bye soon")
    await ws.close(code=4002, reason="done here")


def test_fastapi_echo_of_text_and_bytes():
    async def go(addr):
        async with client(addr, "/echo") as c:
            for m in ["hello", "héllo wörld", "", b"\x00\x01\xff", b""]:
                await c.send(m)
                assert await c.recv() == m

    with corral.asgi.serve(api) as server:
        run(go(server.address))
        stats = server.stats()
    assert stats["ws_opened"] == 1 and stats["ws_messages_in"] == 5 and stats["ws_messages_out"] == 5


def test_subprotocol_selection_and_accept_headers():
    async def go(addr):
        async with client(addr, "/proto", subprotocols=["chat.v1", "chat.v2"]) as c:
            assert c.subprotocol == "chat.v2"
            assert c.response.headers["x-room"] == "lobby"
            assert await c.recv() == '{"offered":["chat.v1","chat.v2"]}'

    with corral.asgi.serve(api) as server:
        run(go(server.address))


def test_close_before_accept_is_403_and_the_denial_extension_sends_its_response():
    async def go(addr):
        with pytest.raises(InvalidStatus) as refused:
            async with client(addr, "/refuse"):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as denied:
            async with client(addr, "/deny"):
                pass
        r = denied.value.response
        assert (r.status_code, r.headers["x-why"], r.body) == (401, "no token", b"who are you?")

    with corral.asgi.serve(api) as server:
        run(go(server.address))


def test_the_app_sees_the_clients_close_code_and_reason():
    seen["closed"] = threading.Event()

    async def go(addr):
        async with client(addr, "/wait-close") as c:
            await c.close(code=4001, reason="client leaves")

    with corral.asgi.serve(api) as server:
        run(go(server.address))
        assert seen["closed"].wait(DEADLINE)
    assert seen["disconnect"] == (4001, "client leaves")


def test_the_client_sees_the_servers_close_code_and_reason():
    async def go(addr):
        async with client(addr, "/server-close") as c:
            assert await c.recv() == "bye soon"
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4002, "done here")

    with corral.asgi.serve(api) as server:
        run(go(server.address))


def test_a_one_mib_message_each_way():
    big_bytes = os.urandom(MIB)
    big_text = "ü" * (MIB // 2)

    async def go(addr):
        async with client(addr, "/echo", max_size=4 * MIB) as c:
            await c.send(big_bytes)
            assert await c.recv() == big_bytes
            await c.send(big_text)
            assert await c.recv() == big_text

    with corral.asgi.serve(api) as server:
        run(go(server.address))


# -- a raw ASGI app: the scope, the ends of the app's call, send after a close --------

raw: dict = {}


async def raw_app(scope, receive, send):
    if scope["type"] == "lifespan":
        msg = await receive()
        scope["state"]["from_lifespan"] = 42
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"http " + scope["path"].encode()})
        return
    path = scope["path"]
    assert (await receive()) == {"type": "websocket.connect"}
    if path == "/no-answer":
        return
    if path == "/raise-early":
        raise RuntimeError("before accepting")
    await send({"type": "websocket.accept"})
    if path == "/raise-late":
        raise RuntimeError("after accepting")
    if path == "/scope":
        raw["scope"] = scope
        await send({"type": "websocket.send", "text": "scoped"})
        raw["disconnect"] = await receive()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as e:
            raw["late"] = e
        raw["done"].set()


def test_the_websocket_scope_and_send_after_the_client_left():
    raw["done"] = threading.Event()

    async def go(addr):
        async with client(addr, "/scope?room=1", subprotocols=["a", "b"], additional_headers={"X-Thing": "T"}) as c:
            assert await c.recv() == "scoped"
            await c.close(code=1000)

    with corral.asgi.serve(raw_app) as server:
        addr = server.address
        run(go(addr))
        assert raw["done"].wait(DEADLINE)
    s = raw["scope"]
    assert s["type"] == "websocket" and s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (s["scheme"], s["http_version"], s["root_path"]) == ("ws", "1.1", "")
    assert (s["path"], s["raw_path"], s["query_string"]) == ("/scope", b"/scope", b"room=1")
    assert s["subprotocols"] == ["a", "b"] and "method" not in s
    assert (b"x-thing", b"T") in [tuple(h) for h in s["headers"]]
    assert s["client"][0] == "127.0.0.1" and s["server"] == addr
    assert s["extensions"] == {"websocket.http.response": {}}
    assert s["state"] == {"from_lifespan": 42}
    assert raw["disconnect"] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    assert isinstance(raw["late"], corral.asgi.ClientDisconnected) and isinstance(raw["late"], OSError)


def test_an_app_that_does_not_answer_gets_403_one_that_raises_500_or_1011():
    async def go(addr):
        for path, status in [("/no-answer", 403), ("/raise-early", 500)]:
            with pytest.raises(InvalidStatus) as e:
                async with client(addr, path):
                    pass
            assert e.value.response.status_code == status, path
        async with client(addr, "/raise-late") as c:
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1011

    with corral.asgi.serve(raw_app) as server:
        run(go(server.address))


def test_with_ws_off_an_upgrade_request_is_plain_http():
    async def go(addr):
        with pytest.raises(InvalidStatus) as e:
            async with client(addr, "/plain"):
                pass
        assert (e.value.response.status_code, e.value.response.body) == (200, b"http /plain")

    with corral.asgi.serve(raw_app, ws=False) as server:
        run(go(server.address))


def test_closing_the_server_closes_its_websockets_with_1001():
    heard = {}
    opened = threading.Event()
    done = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        opened.set()
        heard["msg"] = await receive()
        done.set()

    server = corral.asgi.serve(app, lifespan="off")

    async def go():
        async with client(server.address, "/") as c:
            assert await asyncio.to_thread(opened.wait, DEADLINE)
            report = await asyncio.to_thread(server.close, DEADLINE)
            assert report["clean"]
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1001

    run(go())
    assert done.wait(DEADLINE)
    assert heard["msg"]["type"] == "websocket.disconnect" and heard["msg"]["code"] == 1001


# -- back-pressure both ways ----------------------------------------------------------

flood: dict = {}


async def flood_app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"] == "/send":
        for i in range(flood["count"]):
            await send({"type": "websocket.send", "bytes": bytes([i]) * MIB})
            flood["sent"] = i + 1
        await receive()
    else:
        # Does not receive until told: the engine must stop reading the socket.
        await asyncio.get_running_loop().run_in_executor(None, flood["release"].wait, DEADLINE)
        got = []
        while len(got) < flood["count"]:
            m = await receive()
            assert m["type"] == "websocket.receive", m
            got.append(m["bytes"])
        flood["got"] = got
        await send({"type": "websocket.send", "text": "all read"})
        await receive()


def test_send_waits_for_a_client_that_does_not_read():
    # 50 MiB to a client that reads one message at a time: the app's sends must wait for
    # the client, so what it has sent stays within a bound of what the client read
    # (the kernel's socket buffers, ws_max_backpressure and the client's own buffer).
    flood.update(count=50, sent=0)
    bound = 16

    async def go(addr):
        async with client(addr, "/send", max_size=2 * MIB, max_queue=1, compression=None) as c:
            for k in range(1, flood["count"] + 1):
                assert await c.recv() == bytes([k - 1]) * MIB
                assert flood["sent"] <= k + bound, f"the app sent {flood['sent']} MiB while the client had read {k}"

    with corral.asgi.serve(flood_app) as server:
        run(go(server.address))
        stats = server.stats()
    assert flood["sent"] == 50 and stats["ws_dropped"] == 0 and stats["ws_messages_out"] == 50


def test_a_full_receive_queue_stops_reading_and_the_app_then_reads_all_in_order():
    count = 800
    flood.update(count=count, release=threading.Event())
    sent = [i.to_bytes(4, "big") + b"x" * (64 << 10) for i in range(count)]

    async def go(server):
        async with client(server.address, "/recv", compression=None) as c:

            async def send_all():
                for m in sent:
                    await c.send(m)

            sender = asyncio.ensure_future(send_all())
            await until(lambda: server.stats()["ws_messages_in"] >= MAX_QUEUE, "the receive queue to fill")
            # The engine stops reading: the count stays put while the client is blocked.
            before = server.stats()["ws_messages_in"]
            for _ in range(20):
                await asyncio.sleep(0.02)
                assert not sender.done(), ("the client sent everything: the server kept reading", server.stats()["ws_messages_in"], before)
            after = server.stats()["ws_messages_in"]
            assert after == before and after <= 4 * MAX_QUEUE, (before, after)
            flood["release"].set()
            await sender
            assert await c.recv() == "all read"

    with corral.asgi.serve(flood_app) as server:
        try:
            run(go(server))
        finally:
            flood["release"].set()
    assert flood["got"] == sent


# -- Django Channels ------------------------------------------------------------------


def test_a_django_channels_consumer_with_the_in_memory_layer():
    pytest.importorskip("channels")
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="corral-test-" + "k" * 40, ALLOWED_HOSTS=["*"], INSTALLED_APPS=[])
        import django

        django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.layers import channel_layers
    from channels.routing import URLRouter
    from django.test import override_settings
    from django.urls import path

    class Room(AsyncWebsocketConsumer):
        async def connect(self):
            await self.channel_layer.group_add("room", self.channel_name)
            await self.accept()

        async def disconnect(self, code):
            await self.channel_layer.group_discard("room", self.channel_name)

        async def receive(self, text_data=None, bytes_data=None):
            if text_data.startswith("all:"):
                await self.channel_layer.group_send("room", {"type": "room.message", "text": text_data[4:]})
            else:
                await self.send(text_data="echo " + text_data)

        async def room_message(self, event):
            await self.send(text_data="room " + event["text"])

    app = URLRouter([path("ws/room", Room.as_asgi())])

    async def go(addr):
        async with client(addr, "/ws/room") as a, client(addr, "/ws/room") as b:
            await a.send("hi")
            assert await a.recv() == "echo hi"
            await b.send("all:news")
            assert await a.recv() == "room news"
            assert await b.recv() == "room news"

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        channel_layers.backends.clear()
        with corral.asgi.serve(app, lifespan="off") as server:
            run(go(server.address))


# -- corral.serve's own websocket API -------------------------------------------------


def test_serve_websockets_with_topics():
    opened = []
    closed = []
    all_open = threading.Event()
    all_closed = threading.Event()

    class News:
        def on_open(self, ws):
            assert ws.subscribe("news") and not ws.subscribe("news")
            assert ws.send("welcome") > 0
            opened.append(ws)
            if len(opened) == 3:
                all_open.set()

        def on_message(self, ws, data):
            if data == "fan out":
                n = ws.publish("news", b"from a peer")
                ws.send(f"published to {n}")
            else:
                ws.send(data)

        def on_close(self, ws, code, reason):
            closed.append((code, reason, ws.send("late")))
            if len(closed) == 3:
                all_closed.set()

    def handler(request):
        if request.websocket is not None:
            protocol = "v2" if "v2" in request.websocket else None
            return corral.Upgrade(News(), protocol=protocol, headers=[("x-served-by", "corral")])
        return "plain " + request.path

    async def go(server):
        async with client(server.address, "/n", subprotocols=["v1", "v2"]) as a, client(
            server.address, "/n"
        ) as b, client(server.address, "/n") as c:
            assert a.subprotocol == "v2" and b.subprotocol is None
            assert a.response.headers["x-served-by"] == "corral"
            for x in (a, b, c):
                assert await x.recv() == "welcome"
            assert await asyncio.to_thread(all_open.wait, DEADLINE)
            assert server.subscribers("news") == 3
            assert server.publish("news", "to everyone") == 3
            for x in (a, b, c):
                assert await x.recv() == "to everyone"
            await a.send("fan out")
            assert await a.recv() == "published to 2"
            assert await b.recv() == b"from a peer" and await c.recv() == b"from a peer"
            await b.send(b"echo me")
            assert await b.recv() == b"echo me"
            for x in (a, b, c):
                await x.close(code=4000, reason="later")
        assert await asyncio.to_thread(all_closed.wait, DEADLINE)

    with corral.serve(handler) as server:
        run(go(server))
        assert server.subscribers("news") == 0
    assert sorted(closed) == [(4000, "later", 0)] * 3
    assert len({ws.id for ws in opened}) == 3 and all(not ws.is_open for ws in opened)


def test_serve_an_async_handler_upgrades_and_its_callbacks_run_on_its_loop():
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    threads = set()

    class Echo:
        def on_message(self, ws, data):
            threads.add(threading.get_ident())
            ws.send(data[::-1])

    async def handler(request):
        if request.websocket is not None:
            return corral.Upgrade(Echo())
        return "plain"

    async def go(addr):
        async with client(addr, "/") as c:
            await c.send("abc")
            assert await c.recv() == "cba"
            await c.send(b"\x01\x02")
            assert await c.recv() == b"\x02\x01"

    try:
        with corral.serve(handler, loop=loop) as server:
            run(go(server.address))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(DEADLINE)
        loop.close()
    assert threads == {runner.ident}


def test_serve_a_handler_that_raises_closes_its_socket_with_1011(caplog):
    class Broken:
        def on_message(self, ws, data):
            raise ValueError("broken handler")

    def handler(request):
        return corral.Upgrade(Broken()) if request.websocket is not None else "plain"

    async def go(addr):
        async with client(addr, "/") as c:
            await c.send("x")
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1011

    with corral.serve(handler) as server:
        run(go(server.address))
    assert "broken handler" in caplog.text


# -- the command line -----------------------------------------------------------------

CLI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"http " + scope["path"].encode()})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": m.get("text") or ""})
"""


def cli(tmp_path, *args):
    (tmp_path / "wsapp.py").write_text(textwrap.dedent(CLI_APP))
    return start_cli(tmp_path, *args, "wsapp:app")


def stop(p):
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 0, err


def test_cli_websocket_flags(tmp_path):
    p, addr = cli(tmp_path, "--ws-max-size", "1000", "--ws-per-message-deflate", "false",
                  "--ws-ping-interval", "0.5", "--ws-ping-timeout", "5")

    async def limited():
        async with client(addr, "/ws") as c:
            assert "sec-websocket-extensions" not in c.response.headers  # deflate off
            await c.send("x" * 1000)
            assert await c.recv() == "x" * 1000
            await c.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1009

    try:
        run(limited())
    finally:
        stop(p)

    p, addr = cli(tmp_path, "--ws", "none")

    async def plain():
        with pytest.raises(InvalidStatus) as e:
            async with client(addr, "/ws"):
                pass
        assert (e.value.response.status_code, e.value.response.body) == (200, b"http /ws")

    try:
        run(plain())
    finally:
        stop(p)

    r = subprocess.run([sys.executable, "-m", "corral", "--ws-ping-timeout", "-1", "wsapp:app"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 2 and "ws_ping_timeout" in r.stderr
