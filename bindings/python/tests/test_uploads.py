"""Streamed request bodies through the Python fronts, on real sockets: uploads of any
size reach Django, Flask, FastAPI, Starlette and plain WSGI/ASGI apps as streams, in
bounded memory, with early replies, disconnects and the body limits."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import corral
from conftest import DEADLINE, read_response

try:  # at module level: FastAPI resolves the (string) annotations in these globals
    from fastapi import FastAPI, Form, UploadFile
except ImportError:  # pragma: no cover
    FastAPI = None  # type: ignore[assignment,misc]

MiB = 1 << 20


# --- clients -----------------------------------------------------------------------


def pattern(n: int) -> Iterator[bytes]:
    """`n` bytes of a repeating, position-dependent pattern, in pieces of 1 MiB."""
    block = bytes(range(256)) * (MiB // 256)
    left = n
    i = 0
    while left:
        piece = block[i % 251 :] + block[: i % 251]
        piece = piece[: min(MiB, left)]
        yield piece
        left -= len(piece)
        i += 1


def digest(n: int) -> str:
    h = hashlib.sha256()
    for p in pattern(n):
        h.update(p)
    return h.hexdigest()


def send_request(
    addr: Tuple[str, int],
    method: str,
    path: str,
    headers: Dict[str, str],
    parts: Iterator[bytes],
    chunked: bool = False,
) -> Tuple[int, Dict[str, str], bytes]:
    """Sends a request whose body comes from `parts` (chunked, or with the
    Content-Length `headers` gives) and reads the response."""
    with socket.create_connection(addr, timeout=DEADLINE) as s:
        head = f"{method} {path} HTTP/1.1\r\nHost: t\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        out = head.encode() + b"\r\n"
        # The head goes with the first piece: a small body then arrives whole.
        for p in parts:
            out += b"%x\r\n" % len(p) + p + b"\r\n" if chunked else p
            s.sendall(out)
            out = b""
        s.sendall(out + b"0\r\n\r\n" if chunked else out)
        got = read_response(s.makefile("rb"))
        assert got is not None, "the server closed without replying"
        return got


def multipart(field: str, filename: str, size: int, boundary: str = "corral-boundary-7d1f") -> Tuple[Dict[str, str], Iterator[bytes]]:
    """A multipart/form-data body with one file of `size` pattern bytes, made as it is
    sent: (headers, parts)."""
    pre = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    post = f"\r\n--{boundary}--\r\n".encode()

    def parts() -> Iterator[bytes]:
        yield pre
        yield from pattern(size)
        yield post

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(pre) + size + len(post)),
    }
    return headers, parts()


def poll(cond: Callable[[], bool], what: str) -> None:
    """Waits (polling, with a deadline) until `cond()`."""
    end = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- memory ------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class PeakRss:
    """The growth of this process's peak RSS over a block (the server runs in it):
    the kernel's high-water mark is reset first (clear_refs 5) where allowed, else
    sampled every few milliseconds."""

    def __enter__(self) -> "PeakRss":
        self.base = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.sampler: Optional[threading.Thread] = None
        except OSError:
            self.peak = self.base
            self.done = threading.Event()

            def sample() -> None:
                while not self.done.wait(0.005):
                    self.peak = max(self.peak, _status_kib("VmRSS"))

            self.sampler = threading.Thread(target=sample, daemon=True)
            self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sampler is None:
            self.peak = _status_kib("VmHWM")
        else:
            self.done.set()
            self.sampler.join()
        self.growth_mib = (self.peak - self.base) / 1024


# --- Django: a 200 MB file through request.FILES -----------------------------------

BIG = 200 * 1000 * 1000


def test_django_takes_a_200_mb_upload_in_bounded_memory():
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="corral-test-" + "k" * 40, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[])
        django.setup()
    from django.core.wsgi import get_wsgi_application
    from django.http import JsonResponse
    from django.test.utils import override_settings
    from django.urls import path

    def upload(request):
        f = request.FILES["file"]
        h = hashlib.sha256()
        for chunk in f.chunks():
            h.update(chunk)
        on_disk = hasattr(f, "temporary_file_path")
        return JsonResponse({"size": f.size, "sha256": h.hexdigest(), "on_disk": on_disk, "note": request.POST["note"]})

    urls = type("urls", (), {"urlpatterns": [path("upload", upload)]})
    with override_settings(
        ROOT_URLCONF=urls,
        FILE_UPLOAD_HANDLERS=["django.core.files.uploadhandler.TemporaryFileUploadHandler"],
    ):
        with corral.wsgi.serve(get_wsgi_application()) as server:
            headers, parts = multipart("file", "big.bin", BIG)
            with PeakRss() as rss:
                t0 = time.monotonic()
                st, _, body = send_request(server.address, "POST", "/upload", headers, parts)
                took = time.monotonic() - t0
            import json

            assert st == 200, body
            got = json.loads(body)
            assert got == {"size": BIG, "sha256": digest(BIG), "on_disk": True, "note": "hi"}
            stats = server.stats()
            assert stats["bodies_streamed"] >= 1 and stats["body_bytes_in"] >= BIG
    print(f"\n200 MB Django upload: {took:.1f} s, peak RSS growth {rss.growth_mib:.1f} MiB")
    # The body is 200 MB; the server holds about its window (64 KiB) of it at a time.
    assert rss.growth_mib < 100, f"peak RSS grew by {rss.growth_mib:.0f} MiB during a 200 MB upload"


# --- Flask -----------------------------------------------------------------------


def test_flask_request_stream_and_request_files():
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.post("/count")
    def count():
        h = hashlib.sha256()
        n = 0
        while chunk := flask.request.stream.read(64 * 1024):
            h.update(chunk)
            n += len(chunk)
        return {"n": n, "sha256": h.hexdigest()}

    @app.post("/files")
    def files():
        f = flask.request.files["file"]
        data = f.read()
        return {"name": f.filename, "n": len(data), "sha256": hashlib.sha256(data).hexdigest(), "note": flask.request.form["note"]}

    size = 20 * MiB + 7
    with corral.wsgi.serve(app) as server:
        import json

        st, _, body = send_request(server.address, "POST", "/count", {"Content-Length": str(size)}, pattern(size))
        assert st == 200 and json.loads(body) == {"n": size, "sha256": digest(size)}
        # Chunked: werkzeug reads to the end because wsgi.input_terminated is True.
        st, _, body = send_request(server.address, "POST", "/count", {}, pattern(size), chunked=True)
        assert st == 200 and json.loads(body) == {"n": size, "sha256": digest(size)}
        headers, parts = multipart("file", "f.bin", 5 * MiB)
        st, _, body = send_request(server.address, "POST", "/files", headers, parts)
        assert st == 200 and json.loads(body) == {"name": "f.bin", "n": 5 * MiB, "sha256": digest(5 * MiB), "note": "hi"}


# --- FastAPI and Starlette ---------------------------------------------------------


def test_fastapi_upload_file():
    if FastAPI is None:
        pytest.skip("fastapi is not installed")
    pytest.importorskip("multipart")
    app = FastAPI()

    @app.post("/up")
    async def up(file: UploadFile, note: str = Form()):
        h = hashlib.sha256()
        n = 0
        while chunk := await file.read(256 * 1024):
            h.update(chunk)
            n += len(chunk)
        return {"name": file.filename, "n": n, "sha256": h.hexdigest(), "note": note}

    size = 12 * MiB + 3
    with corral.asgi.serve(app) as server:
        import json

        headers, parts = multipart("file", "up.bin", size)
        st, _, body = send_request(server.address, "POST", "/up", headers, parts)
        assert st == 200, body
        assert json.loads(body) == {"name": "up.bin", "n": size, "sha256": digest(size), "note": "hi"}


def test_starlette_request_stream_loop():
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def count(request):
        h = hashlib.sha256()
        n = pieces = 0
        async for chunk in request.stream():
            h.update(chunk)
            n += len(chunk)
            pieces += bool(chunk)  # Starlette ends with b""
        return JSONResponse({"n": n, "sha256": h.hexdigest(), "pieces": pieces})

    app = Starlette(routes=[Route("/count", count, methods=["POST"])])
    size = 16 * MiB + 11
    with corral.asgi.serve(app) as server:
        import json

        for chunked in (False, True):
            headers = {} if chunked else {"Content-Length": str(size)}
            st, _, body = send_request(server.address, "POST", "/count", headers, pattern(size), chunked=chunked)
            got = json.loads(body)
            assert st == 200 and (got["n"], got["sha256"]) == (size, digest(size))
            assert got["pieces"] > 1, "the body came in one piece: it did not stream"
        # A small body still comes whole, in one message.
        st, _, body = send_request(server.address, "POST", "/count", {"Content-Length": "5"}, iter([b"hello"]))
        assert json.loads(body)["pieces"] == 1


# --- plain ASGI: early replies, disconnects, limits -------------------------------


def test_asgi_app_answering_before_reading_keeps_the_connection():
    called = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        called.append(scope["path"])
        if scope["path"] == "/deny":
            # Answers without reading the upload.
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"no"})
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok " + scope["path"].encode()})

    body = b"z" * (300 * 1024)  # over the window: it streams; under the 1 MiB discard bound
    with corral.asgi.serve(app, lifespan="off") as server:
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            f = s.makefile("rb")
            s.sendall(b"POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
            s.sendall(body)
            st, _, got = read_response(f)
            assert (st, got) == (401, b"no")
            # The rest was discarded: the same connection serves the next request.
            s.sendall(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
            st, _, got = read_response(f)
            assert (st, got) == (200, b"ok /next")
    assert called == ["/deny", "/next"]


def test_asgi_http_disconnect_when_the_client_leaves_mid_upload():
    seen: List[str] = []
    received = [0]
    done = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while True:
            msg = await receive()
            seen.append(msg["type"])
            if msg["type"] == "http.disconnect":
                done.set()
                return
            received[0] += len(msg["body"])
            if not msg["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"all"})

    with corral.asgi.serve(app, lifespan="off") as server:
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
            s.sendall(b"a" * MiB)
            poll(lambda: received[0] > 0, "the first part of the body")
        poll(done.is_set, "http.disconnect")
        assert seen[-1] == "http.disconnect" and seen.count("http.request") >= 1
        assert 0 < received[0] <= MiB


@pytest.mark.parametrize("front", ["wsgi", "asgi"])
def test_content_length_over_max_body_is_413_before_the_app(front):
    calls = []

    def wsgi_app(environ, start_response):
        calls.append(1)
        start_response("200 OK", [])
        return [b"x"]

    async def asgi_app(scope, receive, send):
        calls.append(1)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x"})

    if front == "wsgi":
        server = corral.wsgi.serve(wsgi_app, max_body=100_000)
    else:
        server = corral.asgi.serve(asgi_app, lifespan="off", max_body=100_000)
    with server:
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n")
            st, headers, body = read_response(s.makefile("rb"))
        assert (st, body) == (413, b"request body larger than max_body\n") and headers.get("connection") == "close"
        # At the limit: served (streamed, as it is over the 64 KiB window).
        st, _, _ = send_request(server.address, "POST", "/", {"Content-Length": "100000"}, iter([b"y" * 100_000]))
        assert st == 200
        assert calls == [1]


# --- plain WSGI: wsgi.input as a stream -------------------------------------------


def test_wsgi_input_readline_and_iteration_on_a_chunked_upload():
    def app(environ, start_response):
        inp = environ["wsgi.input"]
        first = inp.readline()
        capped = inp.readline(5)  # at most 5 bytes of the second line
        rest_of_second = inp.readline()
        lines = 0
        size = 0
        for line in inp:
            assert line.endswith(b"\n"), line
            lines += 1
            size += len(line)
        assert inp.read() == b"" and inp.readline() == b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        out = f"{first!r} {capped!r} {rest_of_second!r} {lines} {size} {environ.get('CONTENT_LENGTH')} {type(inp).__name__}"
        return [out.encode()]

    n = 20_000
    text = b"".join(b"line %06d of the upload\n" % i for i in range(n))

    def parts() -> Iterator[bytes]:
        # Odd-sized pieces, so lines straddle chunks.
        for i in range(0, len(text), 7777):
            yield text[i : i + 7777]

    with corral.wsgi.serve(app) as server:
        st, _, body = send_request(server.address, "POST", "/lines", {}, parts(), chunked=True)
    line = len(b"line 000000 of the upload\n")
    # A chunked upload has no CONTENT_LENGTH; its wsgi.input is a stream.
    parts_seen = [repr(b"line 000000 of the upload\n"), repr(b"line "), repr(b"000001 of the upload\n")]
    want = " ".join(parts_seen) + f" {n - 2} {len(text) - 2 * line} None BodyReader"
    assert (st, body.decode()) == (200, want)


def test_wsgi_input_read_sizes_and_a_failed_body():
    results: Dict[str, object] = {}
    failed = threading.Event()

    def app(environ, start_response):
        inp = environ["wsgi.input"]
        if environ["PATH_INFO"] == "/exact":
            a = inp.read(100_000)  # exactly that many (the body is longer)
            b = bytearray(1000)
            got = inp.readinto(b)
            rest = inp.read()
            results["exact"] = (len(a), 0 < got <= 1000, len(a) + got + len(rest), environ["CONTENT_LENGTH"])
            start_response("200 OK", [])
            return [b"ok"]
        try:
            while inp.read(65536):
                pass
        except corral.BodyError as e:
            results["error"] = (isinstance(e, OSError), str(e))
            failed.set()
            raise
        start_response("200 OK", [])
        return [b"unexpected"]

    with corral.wsgi.serve(app) as server:
        size = 3 * MiB
        st, _, body = send_request(server.address, "POST", "/exact", {"Content-Length": str(size)}, pattern(size))
        assert (st, body) == (200, b"ok")
        assert results["exact"] == (100_000, True, size, str(size))
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(b"POST /leave HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" + b"b" * 200_000)
            # The client leaves mid-body.
        poll(failed.is_set, "the read to fail")
        ok, msg = results["error"]
        assert ok and "closed before the request body ended" in msg


def test_a_slow_wsgi_upload_does_not_hold_up_other_requests():
    reading = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/up":
            reading.set()
            n = len(environ["wsgi.input"].read())
            start_response("200 OK", [])
            return [str(n).encode()]
        start_response("200 OK", [])
        return [b"quick"]

    with corral.wsgi.serve(app) as server:  # one host thread
        with socket.create_connection(server.address, timeout=DEADLINE) as up:
            up.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 400000\r\n\r\n" + b"u" * 200_000)
            poll(reading.is_set, "the upload to reach the app")
            # The upload's thread waits for the rest of the body; the host thread serves on.
            from http_client import request

            st, _, body = request(server.address, path="/other")
            assert (st, body) == (200, b"quick")
            up.sendall(b"u" * 200_000)
            st, _, body = read_response(up.makefile("rb"))
            assert (st, body) == (200, b"400000")


# --- corral.serve: Request.take_body ----------------------------------------------


def test_corral_serve_reads_a_streamed_body():
    def handler(req: corral.Request):
        if not req.body_streams:
            return corral.Response(200, body=b"whole %d" % len(req.body))
        body = req.take_body()
        assert body is not None and req.take_body() is None
        h = hashlib.sha256()
        n = 0
        with body:
            while chunk := body.read(100_000):
                h.update(chunk)
                n += len(chunk)
        return corral.Response(200, body=f"streamed {n} {h.hexdigest()} {req.body_length}".encode())

    size = 5 * MiB
    with corral.serve(handler, streams_bodies=True, heavy=["/up"]) as server:
        st, _, body = send_request(server.address, "POST", "/up", {"Content-Length": str(size)}, pattern(size))
        assert (st, body.decode()) == (200, f"streamed {size} {digest(size)} {size}")
        st, _, body = send_request(server.address, "POST", "/small", {"Content-Length": "3"}, iter([b"abc"]))
        assert (st, body) == (200, b"whole 3")
    # Without streams_bodies, bodies come whole and max_frame applies as before.
    with corral.serve(handler, max_frame=1000) as server:
        st, _, _ = send_request(server.address, "POST", "/up", {"Content-Length": "2000"}, iter([b"x" * 2000]))
        assert st == 413


# --- the command line ----------------------------------------------------------------


def test_the_command_line_takes_body_options_and_streams_in_bounded_memory(tmp_path):
    import signal
    import subprocess
    import sys

    (tmp_path / "upapp.py").write_text(
        "def app(environ, start_response):\n"
        "    n = 0\n"
        "    while chunk := environ['wsgi.input'].read(65536):\n"
        "        n += len(chunk)\n"
        "    start_response('200 OK', [])\n"
        "    return [str(n).encode()]\n"
    )
    args = ["--set", "max_body=60000000", "--set", "body_window=131072", "--set", "body_timeout=20s", "--upload-threads", "2"]
    p = subprocess.Popen(
        [sys.executable, "-m", "corral", "--port", "0", *args, "upapp:app"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on http://"), (line, p.stderr.read() if p.poll() is not None else "")
        host, port = line.strip().rsplit("/", 1)[-1].rsplit(":", 1)
        addr = (host, int(port))

        def kib(field: str) -> int:
            with open(f"/proc/{p.pid}/status") as f:
                return next(int(x.split()[1]) for x in f if x.startswith(field + ":"))

        try:
            with open(f"/proc/{p.pid}/clear_refs", "w") as f:
                f.write("5")  # the high-water mark restarts from now
        except OSError:
            pass  # then it counts from start-up: the bound below still holds
        before = kib("VmRSS")
        size = 50 * 1000 * 1000
        st, _, body = send_request(addr, "POST", "/", {"Content-Length": str(size)}, pattern(size))
        assert (st, body) == (200, str(size).encode())
        growth = (kib("VmHWM") - before) / 1024
        assert growth < 100, f"the server's peak RSS grew by {growth:.0f} MiB for a 50 MB upload"
        # max_body from --set: a Content-Length over it is refused before the app.
        with socket.create_connection(addr, timeout=DEADLINE) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 60000001\r\n\r\n")
            assert read_response(s.makefile("rb"))[0] == 413
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err


# --- bodies the engine refuses mid-way: the app hears of it, the client gets the answer


@pytest.mark.parametrize("front", ["wsgi", "asgi"])
def test_a_chunked_body_over_max_body_and_a_stalled_body_are_answered_by_the_engine(front):
    import errno

    heard: List[object] = []

    def wsgi_app(environ, start_response):
        try:
            while environ["wsgi.input"].read(65536):
                pass
        except corral.BodyError as e:
            heard.append(e.errno)
            raise
        start_response("200 OK", [])
        return [b"read it all"]

    async def asgi_app(scope, receive, send):
        if scope["type"] != "http":
            return
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                heard.append("disconnect")
                return
            if not msg["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"read it all"})

    # header_timeout=1: the workers re-check a connection's deadline within
    # min(header_timeout, idle_timeout, reply_timeout), which leaves body_timeout out
    # (core's Limits::recheck): with the defaults a stalled body is cut after ~20 s.
    opts = dict(max_body=1_000_000, body_timeout=0.3, min_body_rate=0, header_timeout=1)
    server = corral.wsgi.serve(wsgi_app, **opts) if front == "wsgi" else corral.asgi.serve(asgi_app, lifespan="off", **opts)
    with server:
        # Chunked, over max_body: 413 mid-body.
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n" % 65536 + b"c" * 65536 + b"\r\n"
            try:
                for _ in range(20):  # 1.3 MB
                    s.sendall(chunk)
            except OSError:
                pass  # the server answered and closed while we were sending
            st, _, body = read_response(s.makefile("rb"))
        assert (st, body) == (413, b"request body larger than max_body\n")
        poll(lambda: len(heard) == 1, "the app to hear of the 413")
        # Stalled: part of the body, then nothing for longer than body_timeout: 408.
        with socket.create_connection(server.address, timeout=DEADLINE) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n" + b"s" * 100_000)
            st, _, _ = read_response(s.makefile("rb"))
        assert st == 408
        poll(lambda: len(heard) == 2, "the app to hear of the 408")
        stats = server.stats()
        assert stats["bodies_too_large"] >= 1 and stats["bodies_too_slow"] == 1
    if front == "wsgi":
        assert heard == [errno.EMSGSIZE, errno.ETIMEDOUT]
    else:
        assert heard == ["disconnect", "disconnect"]
