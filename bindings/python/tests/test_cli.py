"""The command line serves an app module from the current directory and stops cleanly
on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from cli_server import start_cli
from http_client import request


def start(tmp_path, target, *args):
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            def app(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"hi from " + environ["PATH_INFO"].encode()]

            def create():
                return app

            async def asgi_app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await receive()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"asgi " + scope["path"].encode()})
            """
        )
    )
    return start_cli(tmp_path, *args, target)


def write_pidapp(tmp_path):
    """An app that answers with the pid of the worker process serving it."""
    (tmp_path / "pidapp.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [str(os.getpid()).encode()]\n"
    )


def get(addr, path="/"):
    status, _, body = request(addr, path=path)
    return status, body


def test_serves_a_module_and_drains_on_sigterm(tmp_path):
    p, addr = start(tmp_path, "myapp:app", "--set", "idle_timeout=5s")
    try:
        assert get(addr, "/x") == (200, b"hi from /x")
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "stopped" in out


def test_a_factory_and_a_bad_option(tmp_path):
    p, addr = start(tmp_path, "myapp:create()", "--interface", "wsgi")
    try:
        assert get(addr)[0] == 200
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    assert p.returncode == 0
    r = subprocess.run(
        [sys.executable, "-m", "corral", "--set", "idle_timeot=1s", "myapp:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_an_asgi_app_is_detected_and_served(tmp_path):
    p, addr = start(tmp_path, "myapp:asgi_app")
    try:
        assert get(addr, "/y") == (200, b"asgi /y")
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err


def test_two_workers_a_killed_one_is_replaced_and_sigterm_drains_both(tmp_path):
    import queue
    import re
    import threading

    write_pidapp(tmp_path)
    p = subprocess.Popen(
        [sys.executable, "-m", "corral", "--workers", "2", "--port", "0", "pidapp:app"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in p.stderr], daemon=True)
    reader.start()

    def started(n):
        pids = []
        while len(pids) < n:
            m = re.search(r"worker \d started \(pid (\d+)\)", lines.get(timeout=30))
            if m:
                pids.append(int(m.group(1)))
        return pids

    try:
        line = p.stdout.readline()
        assert line.startswith("listening on http://"), line
        host, port = line.strip().rsplit("/", 1)[-1].rsplit(":", 1)
        addr = (host, int(port))
        first = started(2)
        served = {int(get(addr)[1]) for _ in range(40)}
        assert served <= set(first) and served, served
        os.kill(first[0], signal.SIGKILL)
        (replacement,) = started(1)
        assert replacement not in first
        for _ in range(20):
            assert get(addr)[0] == 200, "the other worker and the replacement serve"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)  # stderr belongs to the reader thread, which ends at its end
        out = p.stdout.read()
        p.stdout.close()
        reader.join(30)
        p.stderr.close()
    assert p.returncode == 0
    assert "every worker drained" in out


def test_max_requests_replaces_a_worker_and_no_request_fails(tmp_path):
    """Load on keep-alive connections and new ones while the worker is replaced again
    and again: every request is answered (none reset, none lost), the access log says
    what was served, and more than one worker process did the serving."""
    import http.client
    import threading
    import time

    write_pidapp(tmp_path)
    p = subprocess.Popen(
        [sys.executable, "-m", "corral", "--port", "0", "--max-requests", "50", "--max-requests-jitter", "10",
         "--access-log", "--graceful-timeout", "20", "pidapp:app"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The access log fills a pipe quickly: read it as it comes.
    err_lines: list = []
    reader = threading.Thread(target=lambda: err_lines.extend(p.stderr), daemon=True)
    reader.start()
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on http://"), line
        host, port = line.strip().rsplit("/", 1)[-1].rsplit(":", 1)
        addr = (host, int(port))
        pids = set()
        answered = 0
        conn = http.client.HTTPConnection(*addr, timeout=30)
        deadline = time.monotonic() + 120
        while len(pids) < 3:
            assert time.monotonic() < deadline, f"no replacement seen: {pids}"
            conn.request("GET", "/")
            r = conn.getresponse()
            assert r.status == 200
            pids.add(int(r.read()))
            answered += 1
            if r.getheader("connection") == "close":
                # The worker drains: its last reply says so, and a new connection
                # reaches the replacement on the same socket.
                conn.close()
                conn = http.client.HTTPConnection(*addr, timeout=30)
            if answered % 7 == 0:
                status, body = get(addr)
                assert status == 200
                pids.add(int(body))
        conn.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        reader.join(30)
        p.stdout.close()
        p.stderr.close()
    err = "".join(err_lines)
    assert p.returncode == 0, err[-2000:]
    assert "reached --max-requests" in err and '"GET / HTTP/1.1" 200' in err, err[-2000:]


def _activated(tmp_path, *args):
    """The command line socket-activated as systemd-socket-activate does it: the
    listener at fd 3, LISTEN_FDS/LISTEN_PID set by the shell that execs it, and a
    NOTIFY_SOCKET this test reads."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    fd = listener.fileno()

    def at_fd_3():
        if fd != 3:
            os.dup2(fd, 3)  # dup2 leaves the copy inheritable

    p = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" "$@"', sys.executable, "-m", "corral", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=at_fd_3,
        pass_fds=(fd, 3),  # kept open through the fd closing that follows preexec_fn
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    return p, listener, notify


def test_socket_activation_and_readiness_one_process_and_two(tmp_path):
    write_pidapp(tmp_path)
    for workers in ("1", "2"):
        p, listener, notify = _activated(tmp_path, "--workers", workers, "pidapp:app")
        try:
            assert notify.recv(64) == b"READY=1"
            pids = {get(listener.getsockname())[1] for _ in range(30)}
            assert pids and all(x.isdigit() for x in pids)
        finally:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
        assert notify.recv(64) == b"STOPPING=1"
        assert p.returncode == 0, err
        listener.close()
        notify.close()
        (tmp_path / "notify").unlink()


def test_a_restart_hands_the_sockets_over_and_the_old_process_drains(tmp_path):
    write_pidapp(tmp_path)
    offer = str(tmp_path / "offer.sock")
    old, addr = start(tmp_path, "pidapp:app", "--offer-listeners", offer)
    first = get(addr)[1]
    new = subprocess.Popen(
        [sys.executable, "-m", "corral", "--listeners-from", offer, "pidapp:app"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = new.stdout.readline()
        assert line.strip() == f"listening on http://{addr[0]}:{addr[1]}", line
        _, err = old.communicate(timeout=60)
        assert old.returncode == 0 and "successor serves" in err, err
        second = get(addr)[1]
        assert second != first and second.isdigit(), "served by the new process now"
    finally:
        new.send_signal(signal.SIGTERM)
        new.communicate(timeout=60)
    assert new.returncode == 0
