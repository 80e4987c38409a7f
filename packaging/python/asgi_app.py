"""The plain ASGI 3 app packaging/test_python.sh serves with `python -m corral` from the
installed wheel: it answers with what its lifespan startup stored and the request's path
and body, so the check sees both the lifespan and the request go through."""

started = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                started.append("started")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = f"asgi {','.join(started)} {scope['method']} {scope['path']} {body.decode()}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})
