"""Driven by packaging/test_python.sh inside a venv that holds only the installed wheel
(and Flask): serves each app with `python -m corral` on a free port from the current
directory, checks its replies over loopback with urllib, stops it with a signal and
checks that it drains and exits 0. Usage: python smoke.py (from the directory holding
flask_app.py and asgi_app.py)."""

import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import corral

DEADLINE = 30.0  # seconds for the server to start, and again to stop


def fail(msg, output=()):
    sys.exit("test_python: " + msg + ("\n--- server output ---\n" + "".join(output) if output else ""))


def request(base, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, headers=headers or {}, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def serve_and_check(app, stop_signal, checks):
    cmd = [sys.executable, "-m", "corral", "--host", "127.0.0.1", "--port", "0", app]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, output = queue.Queue(), []

    def pump():
        for line in proc.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        base, end = None, time.monotonic() + DEADLINE
        while base is None:
            try:
                line = lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                fail(f"{app}: no 'listening on' line within {DEADLINE:.0f} s", output)
            if line is None:
                fail(f"{app}: the server exited with {proc.wait()} before listening", output)
            if line.startswith("listening on http://"):
                base = line.split()[-1]
        for path, body, headers, want in checks:
            status, got = request(base, path, body, headers)
            if status != 200 or got != want:
                fail(f"{app}: {path} answered {status} {got!r}, expected 200 {want!r}", output)
            print(f"test_python: {app} {'POST' if body else 'GET'} {path}: 200 {got.strip()}")
        proc.send_signal(stop_signal)
        try:
            rc = proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            fail(f"{app}: still running {DEADLINE:.0f} s after {stop_signal.name}", output)
        reader.join(DEADLINE)  # the rest of its output, up to the pipe's end
        stopped = [x for x in output if x.startswith("corral: stopped:")]
        if rc != 0 or not stopped or "'clean': True" not in stopped[0]:
            fail(f"{app}: after {stop_signal.name} it exited {rc} (want 0, with a clean 'corral: stopped' report)", output)
        print(f"test_python: {app} stopped by {stop_signal.name}, exit 0: {stopped[0].strip()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    print(f"test_python: corral {corral.__file__} on Python {sys.version.split()[0]}")
    serve_and_check("flask_app:app", signal.SIGTERM, [
        ("/", None, None, "hello from flask on corral\n"),
        ("/echo", b'{"n": 1}', {"Content-Type": "application/json"}, "flask echo 1 of 8 bytes\n"),
    ])
    serve_and_check("asgi_app:app", signal.SIGINT, [
        ("/hello", None, None, "asgi started GET /hello \n"),
        ("/echo", b"ping", None, "asgi started POST /echo ping\n"),
    ])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("test_python: terminated"))
    main()
