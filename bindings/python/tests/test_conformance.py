"""The cross-language conformance cases (tests/conformance/cases.txt) against the
Python front."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Dict, List

import pytest

import corral

CASES = Path(__file__).resolve().parents[3] / "tests" / "conformance" / "cases.txt"


def unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            e = s[i + 1]
            if e == "x":
                out.append(int(s[i + 2 : i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "\\": b"\\"}[e]
            i += 2
            continue
        out += c.encode()
        i += 1
    return bytes(out)


def load() -> List[Dict]:
    cases, cur = [], None
    for line in CASES.read_text().splitlines():
        if line.startswith("case "):
            cur = {"name": line[5:].strip(), "send": b"", "expect": b"", "opts": {}}
        elif line.startswith("protocol "):
            cur["protocol"] = line.split()[1]
        elif line.startswith(("max_frame ", "max_header ")):
            k, v = line.split()
            cur["opts"][k] = int(v)
        elif line.startswith("send "):
            cur["send"] += unescape(line[5:])
        elif line.startswith("expect "):
            cur["expect"] += unescape(line[7:])
        elif line.strip() == "end":
            cases.append(cur)
    return cases


def handler(req: corral.Request):
    if req.is_http:
        return corral.Response(200, body=f"{req.method} {req.path} ".encode() + req.body)
    return req.body.upper()


def wsgi_app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n)
    start_response("200 OK", [])
    return [f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} ".encode() + body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = (await receive())["body"]
    target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": f"{scope['method']} ".encode() + target + b" " + body})


def start(front, case):
    opts = dict(io_workers=1, **case["opts"])
    if front == "wsgi":
        return corral.wsgi.serve(wsgi_app, **opts)
    if front == "asgi":
        return corral.asgi.serve(asgi_app, lifespan="off", **opts)
    return corral.serve(handler, protocol=case["protocol"], cpu_threads=0, **opts)


FRONTS = [(f, c) for c in load() for f in ("serve", "wsgi", "asgi") if f == "serve" or c["protocol"] == "http"]


@pytest.mark.parametrize("front,case", FRONTS, ids=lambda x: x if isinstance(x, str) else x["name"])
def test_case(front, case):
    if front != "serve" and "max_frame" in case["opts"] and case["protocol"] == "http":
        # WSGI and ASGI stream request bodies: max_body limits them, not max_frame
        # (test_uploads.py has their 413).
        pytest.skip("max_frame does not limit bodies on a front that streams them")
    with start(front, case) as server:
        with socket.create_connection(server.address, timeout=30) as s:
            s.sendall(case["send"])
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
    got = re.sub(rb"(^|\n)date: [^\r\n]*\r\n", rb"\1", got)
    assert got == case["expect"]
