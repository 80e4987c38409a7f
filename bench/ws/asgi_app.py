"""The ASGI app of `corral-bench ws judge`, the same under corral, Granian and uvicorn.

Websocket routes: ``/ws`` sends every message back to its sender; ``/broadcast`` sends
every message to every client connected to ``/broadcast``, its sender included, awaiting
each send in turn (as Granian's own websocket benchmark app does). Other websocket paths
are refused (``websocket.close`` before accept: the server answers 403).
HTTP: ``GET`` any path answers ``ok`` (the judge's readiness probe).
"""

# The send callables of the clients connected to /broadcast. One event loop runs the
# app, so the set needs no lock; it is copied before each fan-out because a client may
# leave while a send is awaited.
members = set()


async def lifespan(receive, send):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(receive, send):
    more = True
    while more:
        m = await receive()
        if m["type"] == "http.disconnect":
            return
        more = m.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"ok\n"})


def reply(m):
    """The outgoing message carrying what `m` (a websocket.receive) carried."""
    if m.get("bytes") is not None:
        return {"type": "websocket.send", "bytes": m["bytes"]}
    return {"type": "websocket.send", "text": m.get("text", "")}


async def echo(receive, send):
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send(reply(m))


async def broadcast(receive, send):
    members.add(send)
    try:
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            out = reply(m)
            for member in list(members):
                try:
                    await member(out)
                except Exception:
                    # That client went away mid-send: its own loop sees the disconnect.
                    members.discard(member)
    finally:
        members.discard(send)


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(receive, send)
        return
    if kind == "http":
        await http(receive, send)
        return
    if kind != "websocket":
        return
    route = {"/ws": echo, "/broadcast": broadcast}.get(scope["path"])
    m = await receive()
    if m["type"] != "websocket.connect":
        return
    if route is None:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    await route(receive, send)
