"""Every Python example runs and checks itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


@pytest.mark.parametrize("name", ["asyncio_offload.py", "serve_heavy.py"])
def test_example(name):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--self-test"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout
