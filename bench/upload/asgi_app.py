"""The ASGI app of `corral-bench upload judge`, the same under corral, Granian and uvicorn.

GET any path: ``ok`` (readiness). POST /echo: the whole body back. POST anything else: the
body read to its end and discarded; the answer is how many bytes came, so the client can
check that none were lost.
"""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    echo = scope["path"] == "/echo"
    parts = []
    n = 0
    more = True
    while more:
        m = await receive()
        if m["type"] == "http.disconnect":
            return
        chunk = m.get("body", b"")
        n += len(chunk)
        if echo and chunk:
            parts.append(chunk)
        more = m.get("more_body", False)
    if scope["method"] == "GET":
        body = b"ok\n"
    elif echo:
        body = b"".join(parts)
    else:
        body = str(n).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
