#!/usr/bin/env python3
"""A WebSocket conformance runner that plays the Autobahn testsuite's case families (1-7, 9,
12, 13) against a server's echo endpoint; Autobahn's own `wstest` needs Python 2.

    python3 tests/ws/autobahn.py ws://127.0.0.1:PORT/ws [--families 1,2,6] [--case 6.4.1]
                                 [--quick] [--json out.json] [--timeout 10] [--list] [-v]

The server under test must echo every text and binary message back unchanged, answer pings,
and follow RFC 6455 (and RFC 7692 when it accepts permessage-deflate). Python 3.11, standard
library only.

Invariants:
- Every case opens its own TCP connection and runs against one deadline; every wait in this
  file is bounded by that deadline (or a shorter window inside it), so a silent server costs
  at most the deadline per case and the runner never hangs.
- Every frame the client sends is masked with a fresh random key; broken frames are broken
  only in the way a case says (reserved bits, opcodes, lengths, payloads).
- While sending, the client keeps reading, so a server that answers mid-send can never
  deadlock the two; a server that resets the connection mid-send just ends the send.
- Outcomes: PASS (what the RFC requires), NON-STRICT (behaviour the RFC allows but not the
  preferred one), FAIL, UNIMPLEMENTED (the server declined permessage-deflate). The exit
  status is 2 if the server cannot be reached or does not complete a plain handshake; 1 if
  any case failed or the run stopped early (5 connections in a row failed); else 0.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import select
import socket
import struct
import sys
import time
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PASS, NON_STRICT, FAIL, UNIMPLEMENTED = "PASS", "NON-STRICT", "FAIL", "UNIMPLEMENTED"
SEVERITY = {PASS: 0, NON_STRICT: 1, FAIL: 2}
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Codes a peer may put in a close frame (RFC 6455 7.4.1 and the IANA registry: 1012-1014).
SENDABLE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
# Chopped sends are spaced so the server reads partial frames rather than one coalesced
# buffer; this paces writes, it does not wait for the server.
OCTET_PACE = 0.001
FRAME_PACE = 0.02
# How long a server may take to react before a "should happen promptly" check (fail-fast
# UTF-8, pongs between fragments) falls back to the lenient path.
PROMPT_WINDOW = 2.0
DEFLATE_TAIL = b"\x00\x00\xff\xff"
KOSME = "κόσμε".encode()


class HandshakeError(Exception):
    """The opening handshake did not produce a valid WebSocket connection."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"


def die(message: str) -> None:
    """Stops the run before any case: the server cannot be tested at all (exit status 2)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def parse_target(url: str) -> Target:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        die(f"autobahn.py: expected a ws://HOST:PORT/PATH url, got {url!r} (wss is not supported)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.hostname, parts.port or 80, path)


# ---------------------------------------------------------------------------------------
# Frames and permessage-deflate


def mask(data: bytes, key: bytes) -> bytes:
    """XORs data with the 4-byte key; done on one big integer so 16 MiB takes milliseconds."""
    if not data:
        return b""
    n = len(data)
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keystream, "little")).to_bytes(n, "little")


def build_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame; rsv is the 3-bit RSV1..RSV3 field (4 = RSV1)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


@dataclass(frozen=True)
class F:
    """One frame a case sends, as written (nothing checks that it is legal)."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0


@dataclass
class DeflateParams:
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def __str__(self) -> str:
        flags = [k for k in ("server_no_context_takeover", "client_no_context_takeover") if getattr(self, k)]
        bits = [f"{k}={getattr(self, k)}" for k in ("server_max_window_bits", "client_max_window_bits")]
        return "; ".join(flags + bits)


def parse_extensions(value: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """'a; x=1; y, b' -> [('a', [('x', '1'), ('y', None)]), ('b', [])]."""
    elements = []
    for element in value.split(","):
        if not element.strip():
            continue
        name, *params = (p.strip() for p in element.split(";"))
        parsed = []
        for param in params:
            key, sep, val = param.partition("=")
            parsed.append((key.strip().lower(), val.strip().strip('"') if sep else None))
        elements.append((name.lower(), parsed))
    return elements


def window_bits(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and 8 <= int(value) <= 15 else None


def accept_offer(response: list, offer: list) -> DeflateParams | str:
    """The agreed parameters if `response` validly accepts `offer` (RFC 7692 section 7),
    else the reason it does not."""
    asked = dict(offer)
    got: dict[str, str | None] = {}
    for key, val in response:
        if key in got:
            return f"parameter {key} appears twice"
        got[key] = val
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if val is not None:
                return f"{key} must not have a value"
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            bits = window_bits(val)
            if bits is None:
                return f"{key}={val} is not a window size 8..15"
            if key == "client_max_window_bits" and key not in asked:
                return "client_max_window_bits in the response but not in the offer"
            if asked.get(key) is not None and bits > int(asked[key]):
                return f"{key}={bits} is larger than the offered {asked[key]}"
        else:
            return f"unknown parameter {key}"
    for key in ("server_no_context_takeover", "server_max_window_bits"):
        if key in asked and key not in got:
            return f"the offer asked for {key} and the response does not grant it"
    return DeflateParams(
        "server_no_context_takeover" in got,
        "client_no_context_takeover" in got,
        int(got.get("server_max_window_bits") or 15),
        int(got.get("client_max_window_bits") or 15),
    )


class Deflate:
    """permessage-deflate for one connection: compresses what the client sends, inflates
    what the server sends, honouring the agreed context takeover and window sizes."""

    def __init__(self, params: DeflateParams):
        self.params = params
        self._compressor = None
        self._decompressor = None

    def compress(self, data: bytes) -> bytes:
        if self._compressor is None or self.params.client_no_context_takeover:
            # zlib refuses raw deflate with an 8-bit window; its 9-bit window never emits a
            # distance beyond 250 (window minus lookahead), which an 8-bit decoder accepts.
            bits = max(9, self.params.client_max_window_bits)
            self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(DEFLATE_TAIL) else out

    def inflate(self, data: bytes) -> bytes:
        """Inflates one message; raises zlib.error when it needs more window than agreed."""
        bits = self.params.server_max_window_bits
        if self._decompressor is None or self.params.server_no_context_takeover:
            # A fresh inflater has an empty window, so a server that kept its context anyway
            # produces back-references this one rejects.
            self._decompressor = zlib.decompressobj(-max(9, bits))
        # With bounded output per call, zlib checks every distance against the window it
        # holds, so a server compressing with a bigger window than agreed is caught.
        limit = 64 if bits < 15 else 0
        out, pending = [], data + DEFLATE_TAIL
        while True:
            chunk = self._decompressor.decompress(pending, limit)
            pending = self._decompressor.unconsumed_tail
            if not chunk and not pending:
                return b"".join(out)
            out.append(chunk)


# ---------------------------------------------------------------------------------------
# The client connection


class Conn:
    """One client connection under one deadline. Events it reports from the server:
    ("message", opcode, data), ("pong", data), ("close", code or None, reason),
    ("dropped", why) (the connection ended without a close frame), ("timeout",),
    ("bad", what) (the server itself broke the protocol)."""

    def __init__(self, target: Target, deadline: float, offers: tuple[str, ...] = ()):
        self.deadline = deadline
        self.inbuf = bytearray()
        self.peer_gone: str | None = None
        self.write_error: str | None = None
        self.close_sent = False
        self.deflate: Deflate | None = None
        self.decline_reason = ""
        self._fragments: tuple[int, list[bytes], bool] | None = None
        wait = max(0.1, deadline - time.monotonic())
        self.sock = socket.create_connection((target.host, target.port), timeout=wait)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        try:
            self._handshake(target, offers)
        except HandshakeError:
            self.sock.close()
            raise

    def abort(self) -> None:
        self.sock.close()

    # -- handshake

    def _handshake(self, target: Target, offers: tuple[str, ...]) -> None:
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {target.path} HTTP/1.1",
            f"Host: {target.hostport}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if offers:
            lines.append("Sec-WebSocket-Extensions: " + ", ".join(offers))
        if not self.send_bytes(("\r\n".join(lines) + "\r\n\r\n").encode()):
            raise HandshakeError(f"could not send the request: {self.write_error}")
        while b"\r\n\r\n" not in self.inbuf:
            if len(self.inbuf) > 65536 or self.peer_gone or not self._read_some(self.deadline):
                raise HandshakeError(f"no complete response head ({self.peer_gone or 'timed out'})")
        head, _, rest = bytes(self.inbuf).partition(b"\r\n\r\n")
        self.inbuf = bytearray(rest)
        status, *header_lines = head.decode("latin-1").split("\r\n")
        if status.split(" ")[1:2] != ["101"]:
            raise HandshakeError(f"expected status 101, got {status!r}")
        headers: dict[str, list[str]] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        self._check_upgrade(headers, key)
        extensions = ", ".join(headers.get("sec-websocket-extensions", []))
        if extensions:
            self._negotiate(extensions, offers)
        elif offers:
            self.decline_reason = "the response has no Sec-WebSocket-Extensions"

    @staticmethod
    def _check_upgrade(headers: dict[str, list[str]], key: bytes) -> None:
        upgrade = ",".join(headers.get("upgrade", [])).lower()
        connection = {t.strip().lower() for t in ",".join(headers.get("connection", [])).split(",")}
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if upgrade.strip() != "websocket":
            raise HandshakeError(f"Upgrade header is {upgrade!r}, expected websocket")
        if "upgrade" not in connection:
            raise HandshakeError(f"Connection header lacks upgrade: {sorted(connection)}")
        if headers.get("sec-websocket-accept") != [accept]:
            raise HandshakeError(f"Sec-WebSocket-Accept is {headers.get('sec-websocket-accept')}, expected {accept}")

    def _negotiate(self, extensions: str, offers: tuple[str, ...]) -> None:
        if not offers:
            raise HandshakeError(f"server sent Sec-WebSocket-Extensions: {extensions} although none was offered")
        elements = parse_extensions(extensions)
        if len(elements) != 1 or elements[0][0] != "permessage-deflate":
            raise HandshakeError(f"expected one permessage-deflate in the response, got {extensions!r}")
        reasons = []
        for offer in offers:
            agreed = accept_offer(elements[0][1], parse_extensions(offer)[0][1])
            if isinstance(agreed, DeflateParams):
                self.deflate = Deflate(agreed)
                return
            reasons.append(agreed)
        raise HandshakeError(f"response {extensions!r} accepts none of the offers: {'; '.join(reasons)}")

    # -- bytes in and out

    def _recv(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as e:
            self.peer_gone = f"connection reset ({e.strerror or e})"
            return
        if data:
            self.inbuf += data
        else:
            self.peer_gone = "TCP connection closed"

    def _read_some(self, until: float) -> bool:
        """Waits (at most until `until`) for bytes or the end of the connection."""
        wait = min(until, self.deadline) - time.monotonic()
        if self.peer_gone or wait <= 0:
            return False
        readable, _, _ = select.select([self.sock], [], [], wait)
        if readable:
            self._recv()
        return bool(readable)

    def send_bytes(self, data: bytes) -> bool:
        """Writes all of data before the deadline, taking in what the server sends meanwhile.
        False once the connection refuses more (the server may legitimately have failed it)."""
        view, off = memoryview(data), 0
        while off < len(view) and not self.write_error:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                self.write_error = "the deadline passed while sending (the server stopped reading)"
                break
            readers = [] if self.peer_gone else [self.sock]
            readable, writable, _ = select.select(readers, [self.sock], [], wait)
            if readable:
                self._recv()
                if self._server_closing():
                    # The server has failed or closed the connection; the rest is moot and
                    # the close frame wants an answer now.
                    self.write_error = "stopped sending: the server sent a close frame"
                    break
            if writable:
                try:
                    off += self.sock.send(view[off : off + (1 << 20)])
                except BlockingIOError:
                    pass
                except OSError as e:
                    self.write_error = f"send failed: {e.strerror or e}"
        return not self.write_error

    def _server_closing(self) -> bool:
        """Whether a close frame is among the unread bytes (headers are walked, not consumed)."""
        buf, pos = self.inbuf, 0
        while pos + 2 <= len(buf):
            if buf[pos] & 0x0F == CLOSE:
                return True
            n, head = buf[pos + 1] & 0x7F, 2
            if n >= 126:
                head = 4 if n == 126 else 10
                if pos + head > len(buf):
                    return False
                n = int.from_bytes(buf[pos + 2 : pos + head], "big")
            pos += head + (4 if buf[pos + 1] & 0x80 else 0) + n
        return False

    def pause(self, seconds: float) -> None:
        """Lets `seconds` pass while still taking in what the server sends."""
        until = min(time.monotonic() + seconds, self.deadline)
        while time.monotonic() < until and not self.peer_gone:
            self._read_some(until)

    def send_chunks(self, data: bytes, chop: int | None = None, pace: float = 0.0) -> bool:
        step = chop or len(data) or 1
        for i in range(0, len(data), step):
            if not self.send_bytes(data[i : i + step]):
                return False
            if pace:
                self.pause(pace)
        return True

    # -- frames out

    def send_frames(self, frames: list[F], mode: str = "one") -> bool:
        """mode: "one" (all frames in one write), "frame" (one write per frame, paced) or
        "octet" (every byte its own write, paced)."""
        if any(f.opcode == CLOSE for f in frames):
            self.close_sent = True
        wire = [build_frame(f.opcode, f.payload, f.fin, f.rsv) for f in frames]
        if mode == "one":
            return self.send_bytes(b"".join(wire))
        for data in wire:
            ok = self.send_chunks(data, 1, OCTET_PACE) if mode == "octet" else self.send_chunks(data)
            if not ok:
                return False
            if mode == "frame":
                self.pause(FRAME_PACE)
        return True

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, **chunking) -> bool:
        if opcode == CLOSE:
            self.close_sent = True
        return self.send_chunks(build_frame(opcode, payload, fin, rsv), **chunking)

    def send_close(self, code: int | None = 1000, reason: bytes = b"") -> bool:
        return self.send_frame(CLOSE, close_payload(code, reason))

    def send_message(self, opcode: int, data: bytes, fragment: int | None = None) -> bool:
        """A data message, compressed when permessage-deflate is on, optionally split into
        frames of `fragment` payload bytes (RSV1 only on the first, as RFC 7692 says)."""
        rsv = 0
        if self.deflate:
            data, rsv = self.deflate.compress(data), 4
        step = fragment or len(data) or 1
        pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        frames = [
            F(opcode if i == 0 else CONT, p, i == len(pieces) - 1, rsv if i == 0 else 0) for i, p in enumerate(pieces)
        ]
        return self.send_frames(frames)

    # -- events in

    def _next_frame(self, until: float) -> tuple[bool, int, int, bool, bytes] | None:
        while True:
            frame = self._parse_frame()
            if frame is not None:
                return frame
            if not self._read_some(until):
                return None

    def _parse_frame(self) -> tuple[bool, int, int, bool, bytes] | None:
        buf = self.inbuf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        masked = bool(b1 & 0x80)
        key = bytes(buf[pos : pos + 4]) if masked else b""
        pos += len(key) if masked else 0
        if (masked and len(key) < 4) or len(buf) < pos + n:
            return None
        payload = bytes(buf[pos : pos + n])
        del buf[: pos + n]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, mask(payload, key) if masked else payload

    def next_event(self, until: float | None = None) -> tuple:
        """The next event from the server, answering its pings on the way."""
        until = self.deadline if until is None else until
        while True:
            frame = self._next_frame(until)
            if frame is None:
                if self.peer_gone and not self.inbuf:
                    return ("dropped", self.peer_gone)
                if self.peer_gone:
                    return ("bad", f"connection ended inside a frame ({len(self.inbuf)} bytes left)")
                return ("timeout",)
            event = self._on_frame(*frame)
            if event is not None:
                return event

    def _on_frame(self, fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes) -> tuple | None:
        if masked:
            return ("bad", "server sent a masked frame")
        if opcode >= 8:
            return self._on_control(fin, rsv, opcode, payload)
        compressed = bool(rsv & 4) and self.deflate is not None and opcode != CONT
        if rsv and not compressed:
            return ("bad", f"server set reserved bits {rsv:03b} on opcode {opcode}")
        if opcode == CONT:
            if self._fragments is None:
                return ("bad", "server sent a continuation frame with no message to continue")
            self._fragments[1].append(payload)
        elif opcode in (TEXT, BINARY):
            if self._fragments is not None:
                return ("bad", "server started a new message inside a fragmented one")
            self._fragments = (opcode, [payload], compressed)
        else:
            return ("bad", f"server sent reserved opcode {opcode}")
        return self._message_done() if fin else None

    def _message_done(self) -> tuple:
        opcode, parts, compressed = self._fragments
        self._fragments = None
        data = b"".join(parts)
        if compressed:
            try:
                data = self.deflate.inflate(data)
            except zlib.error as e:
                return (
                    "bad",
                    f"cannot inflate the server's message with the agreed parameters ({self.deflate.params}): {e}",
                )
        if opcode == TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                return ("bad", f"server sent a text message that is not valid UTF-8 ({e.reason} at byte {e.start})")
        return ("message", opcode, data)

    def _on_control(self, fin: bool, rsv: int, opcode: int, payload: bytes) -> tuple | None:
        if not fin or len(payload) > 125 or rsv:
            return (
                "bad",
                f"server sent an invalid control frame (opcode {opcode}, fin {fin}, rsv {rsv}, {len(payload)} bytes)",
            )
        if opcode == PING:
            if not self.close_sent:
                self.send_frame(PONG, payload)
            return None
        if opcode == PONG:
            return ("pong", payload)
        if opcode == CLOSE:
            return self._on_close(payload)
        return ("bad", f"server sent reserved opcode {opcode}")

    @staticmethod
    def _on_close(payload: bytes) -> tuple:
        if not payload:
            return ("close", None, b"")
        if len(payload) == 1:
            return ("bad", "server sent a close frame with a 1-byte payload")
        code = struct.unpack_from("!H", payload)[0]
        if code not in SENDABLE_CODES and not 3000 <= code <= 4999:
            return ("bad", f"server sent close code {code}, which may not be sent")
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return ("bad", "server sent a close reason that is not valid UTF-8")
        return ("close", code, payload[2:])


# ---------------------------------------------------------------------------------------
# Judging


Verdict = tuple[str, str]


def worst(*verdicts: Verdict) -> Verdict:
    top = max(SEVERITY[v[0]] for v in verdicts)
    outcome = next(v[0] for v in verdicts if SEVERITY[v[0]] == top)
    return outcome, "; ".join(v[1] for v in verdicts if v[1])


def describe(ev: tuple) -> str:
    kind = ev[0]
    if kind == "message":
        name = "text" if ev[1] == TEXT else "binary"
        shown = f" {ev[2][:32]!r}{'...' if len(ev[2]) > 32 else ''}" if len(ev[2]) <= 64 else ""
        return f"{name} message of {len(ev[2])} bytes{shown}"
    if kind == "pong":
        return f"pong {ev[1]!r}" if len(ev[1]) <= 32 else f"pong of {len(ev[1])} bytes"
    if kind == "close":
        return "close with no code" if ev[1] is None else f"close {ev[1]}" + (f" {ev[2][:32]!r}" if ev[2] else "")
    if kind == "dropped":
        return f"no close frame ({ev[1]})"
    if kind == "timeout":
        return "nothing before the deadline"
    return f"a protocol violation by the server: {ev[1]}"


def mismatch(want: tuple, got: tuple) -> str:
    text = f"expected {describe(want)}, got {describe(got)}"
    if want[0] == got[0] == "message" and want[1] == got[1] and len(want[2]) == len(got[2]):
        first = next(i for i, (a, b) in enumerate(zip(want[2], got[2], strict=True)) if a != b)
        text += f" (same length, content differs from byte {first})"
    return text


def codes_text(codes) -> str:
    return "/".join("no code" if c is None else str(c) for c in codes)


def read_expected(c: Conn, expected: list[tuple], limits: bool = False) -> Verdict | None:
    """Reads the expected events in order; a verdict on the first difference, else None.
    With `limits`, refusing a message with 1009 (too big) is NON-STRICT: the RFC lets a
    server limit message sizes, but the echo was what the case asked for."""
    for want in expected:
        got = c.next_event()
        if got == want:
            continue
        if limits and got[:2] == ("close", 1009):
            refused = (NON_STRICT, f"server refused {describe(want)} with {describe(got)} (its size limit)")
            return worst(refused, settle(c, got))
        return FAIL, mismatch(want, got)
    return None


def wait_eof(c: Conn) -> Verdict:
    """After both close frames the server MUST close the TCP connection (RFC 6455 7.1.1)."""
    while not c.peer_gone and c._read_some(c.deadline):
        pass
    if c.inbuf:
        return FAIL, f"server sent {len(c.inbuf)} more bytes after its close frame"
    if not c.peer_gone:
        return FAIL, "server kept the TCP connection open after the closing handshake"
    return PASS, ""


def finish_close(c: Conn, accept: set, optional: tuple = ()) -> Verdict:
    """Judges the server's answer to the client's close frame; events in `optional` may come
    first, in order."""
    pending = list(optional)
    ev = c.next_event()
    while pending and ev == pending[0]:
        pending.pop(0)
        ev = c.next_event()
    if ev[0] != "close":
        return FAIL, f"expected a close frame ({codes_text(accept)}) in reply to ours, got {describe(ev)}"
    if ev[1] in accept:
        verdict = (PASS, "")
    elif ev[1] is None:
        verdict = (NON_STRICT, f"server replied with an empty close frame; it should echo {codes_text(accept)}")
    else:
        verdict = (FAIL, f"expected close {codes_text(accept)}, got close {ev[1]}")
    return worst(verdict, wait_eof(c))


def expect_echo(c: Conn, expected: list[tuple], limits: bool = False) -> Verdict:
    """The expected events in order, then a clean close (1000) the client starts."""
    verdict = read_expected(c, expected, limits)
    if verdict:
        return verdict
    c.send_close(1000)
    return finish_close(c, {1000})


def judge_failure(ev: tuple, codes: tuple) -> Verdict:
    want = f"close {codes_text(codes)}"
    if ev[0] == "close":
        if ev[1] in codes:
            return PASS, ""
        if ev[1] in (1000, 1001):
            return FAIL, f"server closed with {ev[1]}, which says all is well, instead of failing with {want}"
        return NON_STRICT, f"server failed the connection with {describe(ev)}; the RFC prefers {want}"
    if ev[0] == "dropped":
        return NON_STRICT, f"server dropped the connection without a close frame ({ev[1]}); expected {want}"
    if ev[0] == "timeout":
        return FAIL, f"connection still open at the deadline; expected the server to fail it with {want}"
    return FAIL, f"expected the server to fail the connection with {want}, got {describe(ev)}"


def expect_fail(c: Conn, before: list[tuple], codes: tuple) -> Verdict:
    """The events in `before`, then the server fails the connection with one of `codes`."""
    seen = 0
    ev = c.next_event()
    while seen < len(before) and ev == before[seen]:
        seen += 1
        ev = c.next_event()
    verdict = judge_failure(ev, codes)
    if verdict[0] != FAIL and seen < len(before):
        missing = describe(before[seen])
        verdict = worst(verdict, (NON_STRICT, f"server failed the connection before sending {missing}"))
    return worst(verdict, settle(c, ev))


def settle(c: Conn, ev: tuple) -> Verdict:
    """After the server's close frame: answer it (unless the client already sent one) and
    check that the server then closes the TCP connection."""
    if ev[0] != "close":
        return PASS, ""
    if not c.close_sent:
        c.send_close(ev[1] if ev[1] in SENDABLE_CODES else None)
    return wait_eof(c)


# ---------------------------------------------------------------------------------------
# Case building blocks


Run = Callable[[Conn], Verdict]


@dataclass
class Case:
    id: str
    description: str
    run: Run
    offers: tuple[str, ...] = ()
    scale: float = 1.0
    family: str = field(init=False)

    def __post_init__(self):
        self.family = self.id.split(".")[0]


def msg(opcode: int, data: bytes) -> tuple:
    return ("message", opcode, data)


def frames_case(frames: list[F], expected: list[tuple], fail: tuple | None = None, mode: str = "one") -> Run:
    """Sends `frames`; then either the expected events and a clean close, or (with `fail`)
    the expected events and the server failing the connection with one of those codes."""

    def run(c: Conn) -> Verdict:
        c.send_frames(frames, mode)
        return expect_fail(c, expected, fail) if fail else expect_echo(c, expected)

    return run


def echo_case(opcode: int, payload: bytes, chop: int | None = None, limits: bool = False) -> Run:
    def run(c: Conn) -> Verdict:
        c.send_frame(opcode, payload, chop=chop)
        return expect_echo(c, [msg(opcode, payload)], limits=limits)

    return run


def utf8_text(n: int) -> bytes:
    """Exactly n bytes of valid UTF-8 with 1- to 4-byte characters, so fragment and chop
    boundaries fall inside characters."""
    unit = "Hello κόσμε 𝄞 ✓ ".encode()
    data = (unit * (n // len(unit) + 1))[:n]
    while True:
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError as e:
            data = data[: e.start] + b"*" * (n - e.start)


# ---------------------------------------------------------------------------------------
# Families 1-5: framing, pings, reserved bits, opcodes, fragmentation


def family_1(add) -> None:
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for group, (opcode, name) in enumerate([(TEXT, "text"), (BINARY, "binary")], 1):
        for i, n in enumerate(sizes, 1):
            payload = b"*" * n if opcode == TEXT else os.urandom(n)
            add(f"1.{group}.{i}", f"{name} message of {n} bytes", echo_case(opcode, payload))
        payload = b"*" * 65536 if opcode == TEXT else os.urandom(65536)
        add(f"1.{group}.8", f"{name} message of 65536 bytes written in chops of 997", echo_case(opcode, payload, 997))


def family_2(add) -> None:
    pings = [
        ("2.1", "ping without payload", b""),
        ("2.2", "ping with a text payload", b"Hello, world!"),
        ("2.3", "ping with a binary payload", bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF])),
        ("2.4", "ping with a 125-byte payload (the maximum)", b"\xfe" * 125),
    ]
    for cid, text, payload in pings:
        add(cid, text, frames_case([F(PING, payload)], [("pong", payload)]))
    add(
        "2.5",
        "ping with a 126-byte payload must fail the connection",
        frames_case([F(PING, b"\xfe" * 126)], [], (1002,)),
    )
    add(
        "2.6",
        "125-byte ping written one octet at a time",
        frames_case([F(PING, b"\xfe" * 125)], [("pong", b"\xfe" * 125)], mode="octet"),
    )
    add("2.7", "unsolicited pong without payload is ignored", frames_case([F(PONG)], []))
    add("2.8", "unsolicited pong with payload is ignored", frames_case([F(PONG, b"unsolicited pong payload")], []))
    add(
        "2.9",
        "unsolicited pong, then a ping: only the ping is answered",
        frames_case([F(PONG, b"unsolicited pong payload"), F(PING, b"ping payload")], [("pong", b"ping payload")]),
    )
    add("2.10", "10 pings in one write, each answered in order", many_pings("one"))
    add("2.11", "10 pings written one octet at a time", many_pings("octet"))


def many_pings(mode: str) -> Run:
    payloads = [f"payload-{i}".encode() for i in range(10)]

    def run(c: Conn) -> Verdict:
        c.send_frames([F(PING, p) for p in payloads], mode)
        remaining, answered = list(payloads), 0
        while remaining:
            ev = c.next_event()
            if ev[0] != "pong" or ev[1] not in remaining:
                return FAIL, f"expected pongs for {remaining[0]!r}..{remaining[-1]!r} in order, got {describe(ev)}"
            remaining = remaining[remaining.index(ev[1]) + 1 :]
            answered += 1
        verdict = expect_echo(c, [])
        if answered < len(payloads):
            note = f"server answered {answered} of {len(payloads)} pings (the RFC allows answering only the latest)"
            verdict = worst(verdict, (NON_STRICT, note))
        return verdict

    return run


def family_3(add) -> None:
    hello = b"Hello, world!"
    echo = [msg(TEXT, hello)]
    add("3.1", "text frame with RSV1 set (no extension) must fail", frames_case([F(TEXT, hello, rsv=4)], [], (1002,)))

    def bad_then_ping(rsv: int) -> list[F]:
        return [F(TEXT, hello), F(TEXT, hello, rsv=rsv), F(PING, b"")]

    add(
        "3.2",
        "text, text with RSV2, ping (frame by frame): echo, then fail",
        frames_case(bad_then_ping(2), echo, (1002,), "frame"),
    )
    add(
        "3.3",
        "text, text with RSV1+RSV2, ping in one write: echo, then fail",
        frames_case(bad_then_ping(6), echo, (1002,)),
    )
    add(
        "3.4",
        "text, text with RSV3, ping octet by octet: echo, then fail",
        frames_case(bad_then_ping(1), echo, (1002,), "octet"),
    )
    add("3.5", "binary frame with RSV1+RSV3 must fail", frames_case([F(BINARY, bytes(range(256)), rsv=5)], [], (1002,)))
    add("3.6", "ping with RSV2+RSV3 must fail", frames_case([F(PING, hello, rsv=3)], [], (1002,)))
    add(
        "3.7",
        "close with all reserved bits must fail",
        frames_case([F(CLOSE, close_payload(1000), rsv=7)], [], (1002,)),
    )


def family_4(add) -> None:
    hello = b"Hello, world!"
    for group, opcodes in ((1, [3, 4, 5, 6, 7]), (2, [11, 12, 13, 14, 15])):
        kind = "data" if group == 1 else "control"
        for i, op in enumerate(opcodes, 1):
            cid = f"4.{group}.{i}"
            if i == 1:
                add(cid, f"reserved {kind} opcode {op} must fail", frames_case([F(op)], [], (1002,)))
            elif i == 2:
                add(
                    cid,
                    f"reserved {kind} opcode {op} with payload must fail",
                    frames_case([F(op, b"reserved opcode payload")], [], (1002,)),
                )
            else:
                frames = [F(TEXT, hello), F(op, b"reserved opcode payload"), F(PING, hello)]
                text = f"text, reserved opcode {op}, ping: echo, then fail (no pong)"
                add(cid, text, frames_case(frames, [msg(TEXT, hello)], (1002,), "frame"))


def family_5(add) -> None:
    f1, f2 = b"fragment1", b"fragment2"
    both = [msg(TEXT, f1 + f2)]
    add("5.1", "ping in two fragments must fail", frames_case([F(PING, f1, fin=False), F(CONT, f2)], [], (1002,)))
    add("5.2", "pong in two fragments must fail", frames_case([F(PONG, f1, fin=False), F(CONT, f2)], [], (1002,)))
    two = [F(TEXT, f1, fin=False), F(CONT, f2)]
    add("5.3", "text in two fragments", frames_case(two, both))
    add("5.4", "text in two fragments, one write each", frames_case(two, both, mode="frame"))
    add("5.5", "text in two fragments, octet by octet", frames_case(two, both, mode="octet"))
    with_ping = [F(TEXT, f1, fin=False), F(PING, b"ping payload"), F(CONT, f2)]
    expected = [("pong", b"ping payload")] + both
    add("5.6", "text in two fragments with a ping between", frames_case(with_ping, expected))
    add(
        "5.7",
        "text in two fragments with a ping between, one write each",
        frames_case(with_ping, expected, mode="frame"),
    )
    add(
        "5.8",
        "text in two fragments with a ping between, octet by octet",
        frames_case(with_ping, expected, mode="octet"),
    )
    orphan_groups = [
        (9, True, "continuation (FIN) with nothing to continue, then text"),
        (12, False, "continuation (no FIN) with nothing to continue, then text"),
    ]
    for first, fin, text in orphan_groups:
        frames = [F(CONT, b"non-continuation payload", fin=fin), F(TEXT, b"Hello, world!")]
        for k, mode in enumerate(("one", "frame", "octet")):
            add(f"5.{first + k}", f"{text} ({mode}): fail", frames_case(frames, [], (1002,), mode))
    frames = [F(TEXT, f1, fin=False), F(CONT, f2), F(CONT, b"fragment3", fin=False), F(TEXT, b"fragment4")]
    add("5.15", "two-fragment text, then an orphan continuation: echo, then fail", frames_case(frames, both, (1002,)))
    for cid, fin in (("5.16", False), ("5.17", True)):
        frames = [F(CONT, f1, fin=fin), F(TEXT, f2, fin=False), F(CONT, b"fragment3")] * 2
        add(
            cid,
            f"orphan continuation (FIN={int(fin)}) before a fragmented text: fail",
            frames_case(frames, [], (1002,)),
        )
    add(
        "5.18",
        "a new text frame inside a fragmented text must fail",
        frames_case([F(TEXT, f1, fin=False), F(TEXT, f2)], [], (1002,)),
    )
    add("5.19", "text in 5 fragments with 2 pings between, answered promptly", pings_between_fragments("frame"))
    add("5.20", "text in 5 fragments with 2 pings between, octet by octet", pings_between_fragments("octet"))


def pings_between_fragments(mode: str) -> Run:
    parts = [f"fragment{i}".encode() for i in range(1, 6)]
    first = [F(TEXT, parts[0], fin=False), F(CONT, parts[1], fin=False), F(PING, b"pongme 1!")]
    rest = [F(CONT, parts[2], fin=False), F(CONT, parts[3], fin=False), F(PING, b"pongme 2!"), F(CONT, parts[4])]

    def run(c: Conn) -> Verdict:
        c.send_frames(first, mode)
        # The first pong should come while the message is still open, before the rest is sent.
        ev = c.next_event(time.monotonic() + PROMPT_WINDOW)
        late = ev[0] == "timeout"
        if not late and ev != ("pong", b"pongme 1!"):
            return FAIL, mismatch(("pong", b"pongme 1!"), ev)
        c.send_frames(rest, mode)
        expected = [("pong", b"pongme 1!")] * late + [("pong", b"pongme 2!"), msg(TEXT, b"".join(parts))]
        verdict = expect_echo(c, expected)
        if late:
            note = f"the pong for a ping inside a fragmented message did not come within {PROMPT_WINDOW}s"
            verdict = worst(verdict, (NON_STRICT, note))
        return verdict

    return run


# ---------------------------------------------------------------------------------------
# Family 6: UTF-8


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def cp(*codepoints: int) -> bytes:
    return "".join(map(chr, codepoints)).encode("utf-8", "surrogatepass")


# Sections 6.5 onwards: one text message per entry; whether it is valid is decided by
# Python's strict decoder (RFC 3629: no overlongs, surrogates or code points past U+10FFFF).
UTF8_SECTIONS: list[tuple[str, list[bytes]]] = [
    (
        "valid texts",
        [
            KOSME,
            "Hello-µ@ßöäüàá-UTF-8!!".encode(),
            "Ελληνικά Русский 日本語 עברית".encode(),
            "𝄞 𝕬 😀 🂡".encode(),
            bytes(range(128)),
        ],
    ),
    ("every prefix of κόσμε", [KOSME[:n] for n in range(1, len(KOSME) + 1)]),
    ("first code point of each length", [h("00"), h("c280"), h("e0a080"), h("f0908080")]),
    ("first 5- and 6-byte sequences", [h("f888808080"), h("fc8480808080")]),
    ("last code point of each length", [h("7f"), h("dfbf"), h("efbfbf"), h("f48fbfbf")]),
    ("last 4-, 5- and 6-byte patterns", [h("f7bfbfbf"), h("fbbfbfbfbf"), h("fdbfbfbfbfbf")]),
    ("other boundaries", [h("ed9fbf"), h("ee8080"), h("efbfbd"), h("f48fbfbf"), h("f4908080")]),
    (
        "unexpected continuation bytes",
        [
            h("80"),
            h("bf"),
            h("80bf"),
            h("80bf80"),
            h("80bf80bf"),
            h("80bf80bf80"),
            h("80bf80bf80bf"),
            bytes(range(0x80, 0xC0)),
        ],
    ),
    (
        "lonely start bytes followed by a space",
        [
            b"".join(bytes([b, 0x20]) for b in range(lo, hi + 1))
            for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD))
        ],
    ),
    (
        "sequences missing their last byte",
        [
            h(x)
            for x in (
                "c0",
                "e080",
                "f08080",
                "f8808080",
                "fc80808080",
                "df",
                "efbf",
                "f7bfbf",
                "fbbfbfbf",
                "fdbfbfbfbf",
            )
        ],
    ),
    ("all truncated sequences in a row", [h("c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf")]),
    ("impossible bytes", [h("fe"), h("ff"), h("fefeffff")]),
    ("overlong '/'", [h("c0af"), h("e080af"), h("f08080af"), h("f8808080af"), h("fc80808080af")]),
    ("longest overlongs", [h("c1bf"), h("e09fbf"), h("f08fbfbf"), h("f887bfbfbf"), h("fc83bfbfbfbf")]),
    ("overlong NUL", [h("c080"), h("e08080"), h("f0808080"), h("f880808080"), h("fc8080808080")]),
    ("single UTF-16 surrogates", [cp(x) for x in (0xD800, 0xDB7F, 0xDB80, 0xDBFF, 0xDC00, 0xDF80, 0xDFFF)]),
    ("paired UTF-16 surrogates", [cp(hi, lo) for hi in (0xD800, 0xDB7F, 0xDB80, 0xDBFF) for lo in (0xDC00, 0xDFFF)]),
    ("noncharacters (valid)", [cp(plane * 0x10000 + low) for plane in range(17) for low in (0xFFFE, 0xFFFF)]),
    (
        "special code points (valid)",
        [
            cp(0xFEFF),
            cp(0xFFFD),
            cp(0xFFF9, 0xFFFA, 0xFFFB),
            cp(0x2028, 0x2029),
            cp(0x200B),
            b"a\x00b",
            cp(0xFEFF) + KOSME,
        ],
    ),
]


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def text_case(payload: bytes, frames: list[F] | None = None) -> Run:
    frames = frames or [F(TEXT, payload)]
    if is_utf8(payload):
        return frames_case(frames, [msg(TEXT, payload)])
    return frames_case(frames, [], (1007,))


def one_byte_frames(payload: bytes) -> list[F]:
    return [F(TEXT if i == 0 else CONT, payload[i : i + 1], fin=i == len(payload) - 1) for i in range(len(payload))]


def fail_fast_case(parts: tuple[bytes, bytes, bytes], within_frame: bool) -> Run:
    """The first part is valid, the second makes the text invalid, the third completes it.
    The server should fail with 1007 before the third part is sent."""

    def run(c: Conn) -> Verdict:
        if within_frame:
            wire = build_frame(TEXT, b"".join(parts))
            cut1 = len(wire) - len(parts[1]) - len(parts[2])
            cut2 = len(wire) - len(parts[2])
            chunks = [wire[:cut1], wire[cut1:cut2], wire[cut2:]]
        else:
            chunks = [
                build_frame(TEXT, parts[0], False),
                build_frame(CONT, parts[1], False),
                build_frame(CONT, parts[2]),
            ]
        c.send_bytes(chunks[0])
        c.pause(FRAME_PACE)
        c.send_bytes(chunks[1])
        ev = c.next_event(time.monotonic() + PROMPT_WINDOW)
        verdict = (PASS, "")
        if ev[0] == "timeout":
            c.send_bytes(chunks[2])
            ev = c.next_event()
            where = "the invalid chop arrived" if within_frame else "the invalid fragment arrived"
            verdict = (NON_STRICT, f"server failed only after the whole message, not when {where} (fail-fast)")
        failure = judge_failure(ev, (1007,))
        if failure[0] == FAIL:
            return worst(failure, settle(c, ev))
        return worst(verdict, failure, settle(c, ev))

    return run


def family_6(add) -> None:
    add("6.1.1", "empty text message", frames_case([F(TEXT)], [msg(TEXT, b"")]))
    add(
        "6.1.2",
        "empty text in three empty fragments",
        frames_case([F(TEXT, fin=False), F(CONT, fin=False), F(CONT)], [msg(TEXT, b"")]),
    )
    middle = b"middle frame payload"
    add(
        "6.1.3",
        "text in three fragments, first and last empty",
        frames_case([F(TEXT, fin=False), F(CONT, middle, fin=False), F(CONT)], [msg(TEXT, middle)]),
    )
    hello = "Hello-µ@ßöäüàá-UTF-8!!".encode()
    add("6.2.1", "valid UTF-8 text in one frame", text_case(hello))
    split = len("Hello-µ@ßöä".encode())
    add(
        "6.2.2",
        "valid UTF-8 in two fragments split on a code point",
        text_case(hello, [F(TEXT, hello[:split], fin=False), F(CONT, hello[split:])]),
    )
    add(
        "6.2.3", "valid UTF-8 in 1-byte fragments (splits inside code points)", text_case(hello, one_byte_frames(hello))
    )
    add("6.2.4", "κόσμε x3 in 1-byte fragments", text_case(KOSME * 3, one_byte_frames(KOSME * 3)))
    bad = KOSME + h("eda080") + b"edited"
    add("6.3.1", "invalid UTF-8 (a surrogate) in one frame", text_case(bad))
    add("6.3.2", "invalid UTF-8 in 1-byte fragments", text_case(bad, one_byte_frames(bad)))
    fast = [
        ("6.4.1", (KOSME, h("f4908080"), b"edited"), False, "fragment holding U+110000"),
        ("6.4.2", (KOSME, h("f490"), h("8080") + b"edited"), False, "fragment ending at the first invalid byte"),
        ("6.4.3", (KOSME, h("f4908080"), b"edited"), True, "chop holding U+110000 inside one frame"),
        ("6.4.4", (KOSME, h("f490"), h("8080") + b"edited"), True, "chop ending at the first invalid byte, one frame"),
    ]
    for cid, parts, within, text in fast:
        add(cid, f"fail fast with 1007 on a {text}", fail_fast_case(parts, within))
    for section, (title, payloads) in enumerate(UTF8_SECTIONS, 5):
        for i, payload in enumerate(payloads, 1):
            verdict = "valid" if is_utf8(payload) else "invalid"
            add(
                f"6.{section}.{i}",
                f"{title}: {payload[:12].hex(' ')}{'..' if len(payload) > 12 else ''} ({verdict})",
                text_case(payload),
            )


# ---------------------------------------------------------------------------------------
# Family 7: closing


def close_case(frames: list[F], accept: set, optional: tuple = ()) -> Run:
    def run(c: Conn) -> Verdict:
        c.send_frames(frames)
        return finish_close(c, accept, optional)

    return run


def family_7(add) -> None:
    hello = b"Hello World!"
    close = F(CLOSE, close_payload(1000))
    add("7.1.1", "text, then close: echo, then close 1000", frames_case([F(TEXT, hello)], [msg(TEXT, hello)]))
    add("7.1.2", "close twice: one close back", close_case([close, close], {1000}))
    add("7.1.3", "close, then ping: no pong", close_case([close, F(PING, hello)], {1000}))
    add("7.1.4", "close, then text: no echo", close_case([close, F(TEXT, hello)], {1000}))
    add(
        "7.1.5",
        "first fragment, close, last fragment: no echo",
        close_case([F(TEXT, b"fragment1", fin=False), close, F(CONT, b"fragment2")], {1000}),
    )
    big = utf8_text(256 * 1024)
    add(
        "7.1.6",
        "256 KiB text, close, ping: echo optional, no pong",
        close_case([F(TEXT, big), close, F(PING, hello)], {1000}, (msg(TEXT, big),)),
    )
    add("7.3.1", "close without payload", close_case([F(CLOSE)], {None, 1000}))
    add("7.3.2", "close with a 1-byte payload must fail", frames_case([F(CLOSE, b"\x03")], [], (1002,)))
    add("7.3.3", "close 1000 without reason", close_case([close], {1000}))
    add("7.3.4", "close 1000 with a reason", close_case([F(CLOSE, close_payload(1000, hello))], {1000}))
    add(
        "7.3.5",
        "close 1000 with a 123-byte reason (the maximum)",
        close_case([F(CLOSE, close_payload(1000, b"*" * 123))], {1000}),
    )
    add(
        "7.3.6",
        "close with a 124-byte reason (payload 126) must fail",
        frames_case([F(CLOSE, close_payload(1000, b"*" * 124))], [], (1002,)),
    )
    bad_reason = close_payload(1000, KOSME + h("eda080") + b"edited")
    add("7.5.1", "close reason that is not UTF-8 must fail with 1007", frames_case([F(CLOSE, bad_reason)], [], (1007,)))
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    for i, code in enumerate(valid, 1):
        add(
            f"7.7.{i}",
            f"close with valid code {code}: echoed (or 1000)",
            close_case([F(CLOSE, close_payload(code))], {code, 1000}),
        )
    invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999]
    for i, code in enumerate(invalid, 1):
        add(
            f"7.9.{i}",
            f"close with invalid code {code} must fail",
            frames_case([F(CLOSE, close_payload(code))], [], (1002,)),
        )
    for i, code in enumerate([5000, 65535], 1):
        add(
            f"7.13.{i}",
            f"close with out-of-range code {code} must fail",
            frames_case([F(CLOSE, close_payload(code))], [], (1002,)),
        )


# ---------------------------------------------------------------------------------------
# Family 9: limits


KIB, MIB = 1024, 1024 * 1024


def payload_for(opcode: int, n: int) -> bytes:
    return utf8_text(n) if opcode == TEXT else os.urandom(n)


def fragmented_case(opcode: int, size: int, fragment: int) -> Run:
    def run(c: Conn) -> Verdict:
        data = payload_for(opcode, size)
        pieces = [data[i : i + fragment] for i in range(0, size, fragment)]
        frames = [F(opcode if i == 0 else CONT, p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        c.send_frames(frames)
        return expect_echo(c, [msg(opcode, data)], limits=True)

    return run


def round_trips(opcode: int, size: int, count: int) -> Run:
    def run(c: Conn) -> Verdict:
        for _ in range(count):
            data = payload_for(opcode, size)
            c.send_frame(opcode, data)
            verdict = read_expected(c, [msg(opcode, data)], limits=True)
            if verdict:
                return verdict
        return expect_echo(c, [])

    return run


def lazy_echo(opcode: int, size: int, chop: int | None = None) -> Run:
    """Builds the payload when the case runs, so listing cases stays cheap."""

    def run(c: Conn) -> Verdict:
        return echo_case(opcode, payload_for(opcode, size), chop, limits=True)(c)

    return run


def family_9(add, quick: bool) -> None:
    cap = MIB if quick else 16 * MIB
    kinds = [(TEXT, "text"), (BINARY, "binary")]
    for k, (opcode, name) in enumerate(kinds):
        for i, n in enumerate([64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB], 1):
            if n <= cap:
                add(
                    f"9.{1 + k}.{i}",
                    f"{name} message of {n // KIB} KiB in one frame",
                    lazy_echo(opcode, n),
                    scale=n / MIB,
                )
        total = MIB if quick else 4 * MIB
        for i, frag in enumerate([64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB], 1):
            if frag <= total:
                text = f"{name} message of {total // KIB} KiB in fragments of {frag} bytes"
                add(f"9.{3 + k}.{i}", text, fragmented_case(opcode, total, frag), scale=total / MIB)
        for i, chop in enumerate([64, 128, 256, 512, 1024, 2048], 1):
            add(
                f"9.{5 + k}.{i}",
                f"{name} message of 1 MiB in one frame, written in chops of {chop}",
                lazy_echo(opcode, MIB, chop),
            )
        count = 100 if quick else 1000
        for i, n in enumerate([0, 16, 64, 256, KIB, 4 * KIB], 1):
            add(f"9.{7 + k}.{i}", f"{count} {name} messages of {n} bytes, one at a time", round_trips(opcode, n, count))


# ---------------------------------------------------------------------------------------
# Families 12 and 13: permessage-deflate


WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "κόσμε", "websocket", "frame", "deflate")


_WORD_STREAM: list[bytes] = []


def compressible_text(rng: random.Random, n: int) -> bytes:
    """n bytes cut from a fixed stream of random words, at a random offset."""
    if not _WORD_STREAM:
        words = random.Random(6455)
        _WORD_STREAM.append(" ".join(words.choice(WORDS) for _ in range(60000)).encode())
    stream = _WORD_STREAM[0]
    start = rng.randrange(len(stream) // 2)
    return fit_utf8(stream[start:] + stream, n)


def fit_utf8(data: bytes, n: int) -> bytes:
    """Exactly n bytes of valid UTF-8 from data: characters cut at either end are dropped,
    the rest padded with '*'."""
    clean = data[: n + 4].decode("utf-8", "ignore").encode()[:n]
    clean = clean.decode("utf-8", "ignore").encode()
    return clean + b"*" * (n - len(clean))


PRINTABLE = bytes(0x20 + i % 95 for i in range(256))
SMALL_ALPHABET = bytes(b"abcd\x00\x01"[i % 6] for i in range(256))


def sparse_text(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n).translate(PRINTABLE)


def small_alphabet(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n).translate(SMALL_ALPHABET)


def block_text(rng: random.Random, n: int) -> bytes:
    """Text that repeats a ~1.5 KiB block, so a compressor finds matches farther back than
    a 512-byte window allows: a server that ignores server_max_window_bits=9 shows."""
    block = compressible_text(rng, 1500)
    return fit_utf8(block * (n // len(block) + 1), n)


def deflate_case(
    make: Callable[[random.Random, int], bytes],
    opcode: int,
    size: int,
    count: int,
    fragment: int | None = None,
    same: bool = False,
) -> Run:
    def run(c: Conn) -> Verdict:
        rng = random.Random(size)
        first = make(rng, size)
        for _ in range(count):
            data = first if same else make(rng, size)
            c.send_message(opcode, data, fragment)
            verdict = read_expected(c, [msg(opcode, data)])
            if verdict:
                return verdict
        return expect_echo(c, [])

    return run


DEFAULT_OFFER = "permessage-deflate; client_max_window_bits"


def family_12(add, quick: bool) -> None:
    count = 10 if quick else 100
    groups = [
        ("compressible text", TEXT, compressible_text),
        ("compressible binary", BINARY, small_alphabet),
        ("random printable text", TEXT, sparse_text),
        ("random binary (incompressible)", BINARY, lambda rng, n: rng.randbytes(n)),
    ]
    sizes = [16, 64, 256, KIB, 4 * KIB, 8 * KIB, 16 * KIB, 32 * KIB, 64 * KIB, 128 * KIB]
    for g, (title, opcode, make) in enumerate(groups, 1):
        for i, n in enumerate(sizes, 1):
            run = deflate_case(make, opcode, n, count)
            add(
                f"12.{g}.{i}",
                f"{count} x {title} of {n} bytes, compressed",
                run,
                (DEFAULT_OFFER,),
                count * n / (4 * MIB),
            )
    fragmented = [(KIB, 100), (16 * KIB, 1000), (64 * KIB, 4096), (128 * KIB, 16 * KIB), (4 * KIB, 1)]
    for i, (n, frag) in enumerate(fragmented, 1):
        text = f"{count} x compressed text of {n} bytes sent in {frag}-byte fragments"
        add(
            f"12.5.{i}",
            text,
            deflate_case(compressible_text, TEXT, n, count, frag),
            (DEFAULT_OFFER,),
            count * n / (4 * MIB),
        )


DEFLATE_OFFERS = [
    ("plain offer", ("permessage-deflate",)),
    ("client_no_context_takeover", ("permessage-deflate; client_no_context_takeover",)),
    ("server_no_context_takeover", ("permessage-deflate; server_no_context_takeover",)),
    ("server_max_window_bits=9", ("permessage-deflate; server_max_window_bits=9",)),
    ("server_max_window_bits=15", ("permessage-deflate; server_max_window_bits=15",)),
    ("client_max_window_bits=9", ("permessage-deflate; client_max_window_bits=9",)),
    ("client_max_window_bits=15", ("permessage-deflate; client_max_window_bits=15",)),
    (
        "both no_context_takeover and both windows 9",
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=9",
        ),
    ),
    (
        "three offers in order of preference",
        (
            "permessage-deflate; server_max_window_bits=9; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            "permessage-deflate",
        ),
    ),
]


def family_13(add, quick: bool) -> None:
    count = 10 if quick else 100
    for g, (title, offers) in enumerate(DEFLATE_OFFERS, 1):
        for i, n in enumerate([64, KIB, 16 * KIB, 128 * KIB], 1):
            text = f"{title}: the same {n}-byte text {count} times"
            add(f"13.{g}.{i}", text, deflate_case(block_text, TEXT, n, count, same=True), offers, count * n / (4 * MIB))


# ---------------------------------------------------------------------------------------
# Running


def build_cases(quick: bool) -> list[Case]:
    cases: list[Case] = []

    def add(cid: str, description: str, run: Run, offers: tuple = (), scale: float = 1.0) -> None:
        cases.append(Case(cid, description, run, tuple(offers), max(1.0, scale)))

    for build in (family_1, family_2, family_3, family_4, family_5, family_6, family_7):
        build(add)
    for build in (family_9, family_12, family_13):
        build(add, quick)
    return cases


# A server that stopped accepting (crashed, wedged) would otherwise cost every remaining case
# its whole deadline.
UNREACHABLE = ("could not connect", "opening handshake failed")
MAX_UNREACHABLE = 5


def run_case(target: Target, case: Case, timeout: float) -> Verdict:
    deadline = time.monotonic() + timeout * case.scale
    try:
        conn = Conn(target, deadline, case.offers)
    except HandshakeError as e:
        return FAIL, f"opening handshake failed: {e}"
    except OSError as e:
        return FAIL, f"could not connect: {e}"
    try:
        if case.offers and conn.deflate is None:
            return UNIMPLEMENTED, f"server declined {' / '.join(case.offers)} ({conn.decline_reason})"
        return case.run(conn)
    finally:
        conn.abort()


def select_cases(cases: list[Case], families: str | None, only: str | None) -> list[Case]:
    if families:
        wanted = {f.strip() for f in families.split(",") if f.strip()}
        cases = [c for c in cases if c.family in wanted]
    if only:
        prefixes = [p.strip() for p in only.split(",") if p.strip()]
        cases = [c for c in cases if any(c.id == p or c.id.startswith(p + ".") for p in prefixes)]
    return cases


def summarize(results: list[dict]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r["family"], {"cases": 0, PASS: 0, NON_STRICT: 0, FAIL: 0, UNIMPLEMENTED: 0})
        row["cases"] += 1
        row[r["outcome"]] += 1
    return table


def print_table(table: dict[str, dict[str, int]]) -> None:
    columns = ["cases", PASS, NON_STRICT, FAIL, UNIMPLEMENTED]
    print(f"{'family':<8}" + "".join(f"{c.lower():>15}" for c in columns))
    totals = {c: 0 for c in columns}
    for family in sorted(table, key=int):
        print(f"{family:<8}" + "".join(f"{table[family][c]:>15}" for c in columns))
        for c in columns:
            totals[c] += table[family][c]
    print(f"{'total':<8}" + "".join(f"{totals[c]:>15}" for c in columns))


def preflight(target: Target, timeout: float) -> None:
    """One plain handshake first, so a wrong port or path stops the run with one clear error
    instead of every case failing after its deadline."""
    try:
        Conn(target, time.monotonic() + timeout).abort()
    except OSError as e:
        die(f"autobahn.py: cannot connect to {target.hostport} ({e}); start the server first")
    except HandshakeError as e:
        die(f"autobahn.py: {target.hostport}{target.path} is not a WebSocket endpoint ({e}); check the url")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Plays Autobahn testsuite case families against a WebSocket echo endpoint."
    )
    parser.add_argument("url", nargs="?", help="the echo endpoint, ws://HOST:PORT/PATH")
    parser.add_argument("--families", help="comma-separated families to run (default: 1,2,3,4,5,6,7,9,12,13)")
    parser.add_argument("--case", help="comma-separated case ids or prefixes, e.g. 6.4.1 or 6.4,7.7")
    parser.add_argument(
        "--quick", action="store_true", help="family 9 up to 1 MiB, fewer messages in 9.7/9.8, 12 and 13"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per case (family 9 scales it by size); default 10"
    )
    parser.add_argument("--json", help="write the per-case results to this file")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a line for every case")
    args = parser.parse_args(argv)
    cases = select_cases(build_cases(args.quick), args.families, args.case)
    if args.list:
        for c in cases:
            print(f"{c.id:<10} {c.description}")
        return 0
    if not args.url:
        parser.error("the url of the echo endpoint is required")
    if not cases:
        parser.error("no case matches --families/--case")
    target = parse_target(args.url)
    preflight(target, args.timeout)
    return run_all(target, cases, args)


def run_all(target: Target, cases: list[Case], args: argparse.Namespace) -> int:
    results, started, unreachable = [], time.monotonic(), 0
    for case in cases:
        t0 = time.monotonic()
        outcome, detail = run_case(target, case, args.timeout)
        results.append(
            {
                "id": case.id,
                "family": case.family,
                "description": case.description,
                "outcome": outcome,
                "detail": detail,
                "seconds": round(time.monotonic() - t0, 3),
            }
        )
        if args.verbose or outcome in (FAIL, NON_STRICT):
            print(
                f"{outcome:<13} {case.id:<9} {case.description}" + (f"\n{'':<14}{detail}" if detail else ""), flush=True
            )
        unreachable = unreachable + 1 if detail.startswith(UNREACHABLE) else 0
        if unreachable >= MAX_UNREACHABLE:
            left = len(cases) - len(results)
            print(f"stopping with {left} cases not run: {unreachable} in a row could not open a connection", flush=True)
            break
    return report(results, time.monotonic() - started, args, complete=len(results) == len(cases))


def report(results: list[dict], elapsed: float, args: argparse.Namespace, complete: bool) -> int:
    table = summarize(results)
    print_table(table)
    failed = sum(r["outcome"] == FAIL for r in results)
    verdict = f"{failed} failed" if failed else "no failures"
    print(f"{len(results)} cases against {args.url} in {elapsed:.1f}s: {verdict}")
    if args.json:
        data = {"target": args.url, "quick": args.quick, "complete": complete, "seconds": round(elapsed, 2)}
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({**data, "summary": table, "cases": results}, out, indent=1)
    return 1 if failed or not complete else 0


if __name__ == "__main__":
    sys.exit(main())
