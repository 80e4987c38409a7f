"""The hand-written stubs match the native module."""

from __future__ import annotations

import subprocess
import sys


def test_stubs_match_the_module():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "corral._corral", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
