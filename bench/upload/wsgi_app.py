"""The WSGI app of `corral-bench upload judge`, the same under corral and Granian.

GET any path: ``ok`` (readiness). POST /echo: the whole body back. POST anything else: the
body read to its end in 64 KiB pieces and discarded; the answer is how many bytes came.
A body with a Content-Length is read up to it (PEP 3333); a chunked one until read()
gives b"".
"""

PIECE = 64 << 10


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":
        body = b"ok\n"
    else:
        echo = environ["PATH_INFO"] == "/echo"
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        left = int(length) if length else None
        parts = []
        n = 0
        while left is None or left > 0:
            chunk = stream.read(PIECE if left is None else min(PIECE, left))
            if not chunk:
                break
            n += len(chunk)
            if left is not None:
                left -= len(chunk)
            if echo:
                parts.append(chunk)
        body = b"".join(parts) if echo else str(n).encode()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]
