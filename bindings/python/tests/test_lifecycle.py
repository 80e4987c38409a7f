"""Interpreter exit and fork() with engines open: no hang, no crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap

DEADLINE = 60


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=DEADLINE
    )


def test_a_child_interpreter_exits_cleanly_with_engines_open():
    r = run(
        """
        import socket, corral
        server = corral.serve(lambda req: b"x", heavy=["/h"])
        listener = corral.listen(("127.0.0.1", 0))
        # A request in flight and a connection queued when the interpreter exits.
        c = socket.create_connection(server.address)
        c.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
        d = socket.create_connection(listener.address)
        print("exiting")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting"
    assert "Traceback" not in r.stderr and "panicked" not in r.stderr


def test_after_fork_the_child_forgets_the_parent_engines_and_can_make_its_own():
    r = run(
        """
        import os, socket, corral
        parent = corral.serve(lambda req: b"parent")
        pid = os.fork()
        if pid == 0:
            ok = parent.closed
            child = corral.serve(lambda req: b"child")
            c = socket.create_connection(child.address)
            c.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
            got = c.recv(1000)
            child.close()
            os._exit(0 if ok and got.endswith(b"child") else 1)
        _, status = os.waitpid(pid, 0)
        c = socket.create_connection(parent.address)
        c.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
        print(os.waitstatus_to_exitcode(status), c.recv(1000).endswith(b"parent"))
        parent.close()
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True"]
