#!/usr/bin/env python3
"""Echo servers that check the conformance runner (tests/ws/autobahn.py) itself; not part
of corral.

    python3 tests/ws/reference_server.py [--port 0]                  # the `websockets` library
    python3 tests/ws/reference_server.py --impl raw [--broken CHECK] # raw sockets, stdlib only

Both print `listening on ws://127.0.0.1:PORT/` once ready and echo every message.

- `websockets` (pip install websockets; not installed into the project): a mature, strict
  implementation with permessage-deflate on, so the runner should report (nearly) all PASS.
- `raw`: a small threaded server written from RFC 6455 with no extensions (families 12 and
  13 come out UNIMPLEMENTED). `--broken CHECK` switches one of its checks off, so the runner
  must report failures in the matching family: utf8 (text is echoed without validation),
  rsv (reserved bits ignored), opcode (reserved opcodes ignored), control (oversized or
  fragmented control frames accepted), fragment (continuation rules ignored), close (close
  codes and reasons not validated).
- `--broken deflate-window` / `--broken deflate-context` run `websockets` with a deflate
  extension that negotiates honestly but then compresses with a 32 KiB window whatever
  server_max_window_bits it agreed / keeps its context although it agreed to
  server_no_context_takeover; families 12 and 13 must catch it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import codecs
import hashlib
import socket
import struct
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHECKS = ("utf8", "rsv", "opcode", "control", "fragment", "close")
LIES = ("deflate-window", "deflate-context")
VALID_CLOSE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
MAX_MESSAGE = 64 * 1024 * 1024


def run_websockets(port: int, lie: str | None) -> None:
    try:
        from websockets.asyncio.server import serve
        from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
    except ImportError:
        sys.exit(
            "reference_server.py: the `websockets` package is missing; use a scratch venv: "
            "python3 -m venv /tmp/wsvenv && /tmp/wsvenv/bin/pip install websockets, then run "
            "this file with /tmp/wsvenv/bin/python (or use --impl raw)"
        )

    class LyingDeflate(ServerPerMessageDeflateFactory):
        """Answers the offer as the real factory does, then compresses as if it had not."""

        def process_request_params(self, params, accepted):
            response, ext = super().process_request_params(params, accepted)
            bits = 15 if lie == "deflate-window" else ext.local_max_window_bits
            no_context = ext.local_no_context_takeover and lie != "deflate-context"
            return response, PerMessageDeflate(
                ext.remote_no_context_takeover, no_context, ext.remote_max_window_bits, bits, {"memLevel": 8}
            )

    # The library's defaults (enable_server_permessage_deflate), unless a lie is asked for.
    extensions = [LyingDeflate(server_max_window_bits=12, client_max_window_bits=12)] if lie else None

    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        # Keepalive pings off: they would show up as unexpected events in the runner's cases.
        async with serve(
            echo,
            "127.0.0.1",
            port,
            max_size=MAX_MESSAGE,
            ping_interval=None,
            compression="deflate",
            extensions=extensions,
        ) as server:
            print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
            await server.serve_forever()

    asyncio.run(main())


class ProtocolError(Exception):
    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


class RawSession:
    """One connection of the raw server: handshake, then frames until a close."""

    def __init__(self, sock: socket.socket, broken: str | None):
        self.sock = sock
        self.broken = broken
        self.buf = bytearray()

    def checks(self, name: str) -> bool:
        return self.broken != name

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def handshake(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest())
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )

    def send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = (
            bytes([0x80 | opcode, n])
            if n < 126
            else (
                struct.pack("!BBH", 0x80 | opcode, 126, n) if n < 65536 else struct.pack("!BBQ", 0x80 | opcode, 127, n)
            )
        )
        self.sock.sendall(head + payload)

    def read_frame(self) -> tuple[bool, int, int, bytes]:
        b0, b1 = self.read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read(8))[0]
        if not b1 & 0x80:
            raise ProtocolError(1002, "unmasked client frame")
        if n > MAX_MESSAGE:
            raise ProtocolError(1009, "frame too big")
        key = self.read(4)
        data = self.read(n)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data)) if n < 4096 else _unmask(data, key)
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def run(self) -> None:
        try:
            self.handshake()
            self.serve()
        except ProtocolError as e:
            self.fail(e.code)
        except (EOFError, OSError):
            pass
        finally:
            self.sock.close()

    def fail(self, code: int) -> None:
        try:
            self.send(0x8, struct.pack("!H", code))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(self) -> None:
        message: list | None = None  # [opcode, parts, utf8 decoder]
        while True:
            fin, rsv, opcode, payload = self.read_frame()
            if rsv and self.checks("rsv"):
                raise ProtocolError(1002, "reserved bits")
            if opcode >= 8:
                if (not fin or len(payload) > 125) and self.checks("control"):
                    raise ProtocolError(1002, "bad control frame")
                if opcode == 0x9:
                    self.send(0xA, payload[:125])
                elif opcode == 0x8:
                    return self.on_close(payload)
                elif opcode != 0xA and self.checks("opcode"):
                    raise ProtocolError(1002, "reserved opcode")
                continue
            if opcode not in (0, 1, 2):
                if self.checks("opcode"):
                    raise ProtocolError(1002, "reserved opcode")
                continue
            if (opcode == 0) == (message is None) and self.checks("fragment"):
                raise ProtocolError(1002, "bad fragmentation")
            if message is None or opcode != 0:
                message = [opcode or 1, [], codecs.getincrementaldecoder("utf-8")()]
            message[1].append(payload)
            if message[0] == 1 and self.checks("utf8"):
                try:
                    message[2].decode(payload, final=fin)
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "invalid UTF-8") from None
            if fin:
                self.send(message[0], b"".join(message[1]))
                message = None

    def on_close(self, payload: bytes) -> None:
        if self.checks("close"):
            if len(payload) == 1:
                raise ProtocolError(1002, "1-byte close payload")
            if payload:
                code = struct.unpack("!H", payload[:2])[0]
                if code not in VALID_CLOSE and not 3000 <= code <= 4999:
                    raise ProtocolError(1002, "invalid close code")
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "invalid close reason") from None
        self.send(0x8, payload[:2])
        self.sock.shutdown(socket.SHUT_WR)


def _unmask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def run_raw(port: int, broken: str | None) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    print(f"listening on ws://127.0.0.1:{listener.getsockname()[1]}/", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=RawSession(sock, broken).run, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="Echo servers that check tests/ws/autobahn.py.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--impl", choices=("websockets", "raw"), default="websockets")
    parser.add_argument(
        "--broken", choices=CHECKS + LIES, help="switch one check off (raw) or make deflate lie (websockets)"
    )
    args = parser.parse_args()
    try:
        if args.broken in LIES:
            run_websockets(args.port, args.broken)
        elif args.impl == "raw" or args.broken:
            run_raw(args.port, args.broken)
        else:
            run_websockets(args.port, None)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
