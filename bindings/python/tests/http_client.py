"""One HTTP request on a connection of its own, for the front tests."""

from __future__ import annotations

import http.client
from typing import Dict, Optional, Tuple


def request(
    addr: Tuple[str, int],
    method: str = "GET",
    path: str = "/",
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    timeout: float = 20,
) -> Tuple[int, Dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body."""
    c = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()
