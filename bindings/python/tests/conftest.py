"""Helpers for corral's Python tests: blocking loopback HTTP with generous deadlines."""

from __future__ import annotations

import socket
from typing import Dict, Optional, Tuple

import pytest

DEADLINE = 30.0


def read_response(f) -> Optional[Tuple[int, Dict[str, str], bytes]]:
    """Reads one HTTP response from a socket file; None at end of stream."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers: Dict[str, str] = {}
    while True:
        h = f.readline().decode().rstrip("\r\n")
        if not h:
            break
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body


def http(address, request: bytes) -> Tuple[int, Dict[str, str], bytes]:
    with socket.create_connection(address, timeout=DEADLINE) as s:
        s.sendall(request)
        f = s.makefile("rb")
        got = read_response(f)
        assert got is not None, "the server closed without replying"
        return got


def get(address, path: str = "/") -> Tuple[int, Dict[str, str], bytes]:
    return http(address, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())


@pytest.fixture
def deadline() -> float:
    return DEADLINE
