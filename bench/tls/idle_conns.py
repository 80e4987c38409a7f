#!/usr/bin/env python3
"""Server memory per idle TLS connection, for bench/tls_vs_nginx.sh.

    python3 idle_conns.py --port PORT --pid PID [--pid PID]... [-n 2000] [--warm 100]

Opens connections to 127.0.0.1:PORT one after another; on each, a full TLS handshake
(verification off: the certificate is the run's own) and one keep-alive `GET /` whose
whole reply is read, so the server has finished the handshake and the request and the
connection lies idle. It first opens and closes --warm connections (lazy allocations,
allocator arenas), reads the servers' resident memory (VmRSS of each PID and of all its
descendants: nginx's master and workers), then opens -n connections and holds them while
it reads it again. Prints `KIB_PER_CONN SUITE`: the difference divided by -n, and the
suite the first connection agreed on. The suites offered are the OpenSSL configuration's
(OPENSSL_CONF), as for the other clients.
"""
import argparse
import os
import resource
import socket
import ssl
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def descendants(pid):
    """PID and every process below it, from /proc's children lists."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return out


def rss_kib(roots):
    total = 0
    for pid in (p for r in roots for p in descendants(r)):
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass  # gone, or a zombie without memory
    return total


def read_reply(s):
    """Reads one response: the head, then Content-Length bytes of body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"the server closed the connection before its reply ended: {buf[:80]!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection inside its reply body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"the server answered {head.splitlines()[0]!r}, not 200")


def open_idle(ctx, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(REQUEST)
    read_reply(s)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, action="append", required=True, help="a server process (repeatable)")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=100)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < a.n + 64:
        sys.exit(f"idle_conns: -n {a.n} needs {a.n + 64} descriptors but the hard limit is {hard}; raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    for s in [open_idle(ctx, a.port) for _ in range(a.warm)]:
        s.close()
    before = rss_kib(a.pid)
    held = [open_idle(ctx, a.port) for _ in range(a.n)]
    after = rss_kib(a.pid)
    suite = held[0].cipher()[0]
    for s in held:
        s.close()
    print(f"{(after - before) / a.n:.1f} {suite}")


if __name__ == "__main__":
    main()
