"""The command line serves an app module from the current directory and stops cleanly
on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap


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
    p = subprocess.Popen(
        [sys.executable, "-m", "corral", "--port", "0", *args, target],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline()
    assert line.startswith("listening on http://"), (line, p.stderr.read() if p.poll() is not None else "")
    host, port = line.strip().rsplit("/", 1)[-1].rsplit(":", 1)
    return p, (host, int(port))


def get(addr, path="/"):
    c = http.client.HTTPConnection(*addr, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    out = (r.status, r.read())
    c.close()
    return out


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
