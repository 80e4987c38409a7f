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


@pytest.mark.parametrize("case", load(), ids=lambda c: c["name"])
def test_case(case):
    with corral.serve(handler, protocol=case["protocol"], io_workers=1, cpu_threads=0, **case["opts"]) as server:
        with socket.create_connection(server.address, timeout=30) as s:
            s.sendall(case["send"])
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
    got = re.sub(rb"(^|\n)date: [^\r\n]*\r\n", rb"\1", got)
    assert got == case["expect"]
