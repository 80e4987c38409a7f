"""Starts the ``corral`` command line (``python -m corral --port 0 ...``) as a server for
a test and says where it listens."""

from __future__ import annotations

import subprocess
import sys
from typing import Tuple


def start_cli(cwd, *args: str) -> Tuple["subprocess.Popen[str]", Tuple[str, int]]:
    """Runs ``python -m corral --port 0 *args`` in ``cwd``; returns the process and the
    address from its ``listening on`` line (failing with its stderr if it never says)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "corral", "--port", "0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline() if p.stdout else ""
    assert line.startswith(("listening on http://", "listening on https://")), (line, p.stderr.read() if p.poll() is not None and p.stderr else "")
    host, port = line.strip().rsplit("/", 1)[-1].rsplit(":", 1)
    return p, (host, int(port))
