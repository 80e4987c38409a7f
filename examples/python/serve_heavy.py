"""An HTTP service whose CPU-heavy route runs on corral's CPU pool.

    python serve_heavy.py [PORT]       serve until Ctrl-C
    python serve_heavy.py --self-test  serve, send requests, check, exit

`/hash` hashes 4 MiB with hashlib (which releases the GIL, so several run at once);
the `heavy` rule sends it to the CPU pool without a call into Python to decide.
Everything else is answered inline on corral's I/O workers.
"""

import hashlib
import signal
import socket
import sys

import corral

DATA = b"corral" * ((4 << 20) // 6)


def handler(req: corral.Request) -> corral.Response:
    if req.path == "/hash":
        return corral.Response(200, body=hashlib.sha256(DATA).hexdigest(), headers={"content-type": "text/plain"})
    if req.path == "/":
        return corral.Response(200, body="hello\n", headers={"content-type": "text/plain"})
    return corral.Response(404, body="not found\n")


def fetch(address, path: str) -> bytes:
    with socket.create_connection(address, timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def main() -> int:
    test = "--self-test" in sys.argv
    port = 0 if test or len(sys.argv) < 2 else int(sys.argv[1])
    with corral.serve(handler, "127.0.0.1", port, heavy=["/hash"]) as server:
        print(f"serve_heavy: serving on http://{server.address[0]}:{server.address[1]}", flush=True)
        if not test:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            return 0
        want = hashlib.sha256(DATA).hexdigest().encode()
        results = [fetch(server.address, "/hash").endswith(want) for _ in range(8)]
        results.append(fetch(server.address, "/").endswith(b"hello\n"))
        results.append(b" 404 " in fetch(server.address, "/nope"))
        heavy = server.stats()["cpu_submitted"]
        results.append(heavy == 8)
        failed = results.count(False)
        print(f"serve_heavy: {len(results) - failed} passed, {failed} failed ({heavy} requests on the CPU pool)")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
