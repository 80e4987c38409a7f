#!/usr/bin/env python3
"""Starts a server command, finds the port it prints (``listening on http://HOST:PORT``),
runs the Autobahn families (autobahn.py --quick) against ``ws://HOST:PORT/ws``, stops the
server and exits with the runner's status; with ``--strict``, also 1 if any case was
not a strict pass.

    python3 tests/ws/against.py [--strict] -- target/c/ws_echo
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

RUNNER = Path(__file__).resolve().parent / "autobahn.py"
LISTENING = re.compile(r"listening on http://([^:\s]+):(\d+)")
START_DEADLINE = 60.0


def main() -> int:
    status, server_status = run()
    if server_status != 0:
        print(f"against: the server exited with status {server_status} (0 expected)", file=sys.stderr)
        return status or 1
    return status


def run() -> "tuple[int, int]":
    """The runner's status, and the server's exit status once stopped."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strict", action="store_true", help="every case must pass strictly")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the server, after --")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("name the server command after --")
    # stdin stays open while it serves: some servers (the C examples) stop at its end.
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    status = 2
    try:
        status = check(server, command, args.strict)
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    # Stopped by SIGTERM (the servers that serve until a signal) counts as a clean end.
    return status, 0 if server.returncode == -signal.SIGTERM else server.returncode


def check(server: "subprocess.Popen[str]", command: "list[str]", strict: bool) -> int:
    """Waits for the server to say where it listens, then runs the families against it."""
    end = time.monotonic() + START_DEADLINE
    match = None
    while match is None:
        line = server.stdout.readline() if server.stdout else ""
        if not line:
            print(f"against: {command[0]} ended without printing 'listening on'", file=sys.stderr)
            return 2
        match = LISTENING.search(line)
        if time.monotonic() > end:
            print(f"against: {command[0]} did not say where it listens within {START_DEADLINE}s", file=sys.stderr)
            return 2
    url = f"ws://{match.group(1)}:{match.group(2)}/ws"
    out = subprocess.run([sys.executable, str(RUNNER), url, "--quick"], capture_output=True, text=True)
    print(out.stdout, end="")
    print(out.stderr, end="", file=sys.stderr)
    if out.returncode != 0:
        return out.returncode
    total = next(line for line in out.stdout.splitlines() if line.startswith("total")).split()
    if strict and int(total[2]) != int(total[1]):
        print("against: not every case passed strictly", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
