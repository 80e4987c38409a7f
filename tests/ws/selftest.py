#!/usr/bin/env python3
"""Checks the conformance runner (autobahn.py) against servers whose faults are known, so a
runner that stopped catching something fails here rather than passing a broken server.

    python3 tests/ws/selftest.py [--websockets-python /tmp/wsvenv/bin/python]

Each check starts reference_server.py in one mode on port 0, runs autobahn.py --quick on the
families that mode touches and compares the outcome of every case with what the mode must
produce: the raw server with nothing switched off passes everything it implements; with one
check switched off, exactly the cases that probe that check fail. With a Python that has
`websockets`, the library's server and its two lying deflate modes are checked too. Exit 0
when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
import autobahn  # noqa: E402

CASES = autobahn.build_cases(quick=True)


def ids(pred: Callable[[autobahn.Case], bool]) -> set[str]:
    return {c.id for c in CASES if pred(c)}


def family(*names: str) -> set[str]:
    return ids(lambda c: c.family in names)


def invalid_utf8(c: autobahn.Case) -> bool:
    return c.id.startswith(("6.3.", "6.4.")) or c.description.endswith("(invalid)")


def no_server_context(c: autobahn.Case) -> bool:
    return c.id.startswith(("13.3.", "13.8.", "13.9."))


# mode -> (server arguments, families to run, {outcome: exact set of case ids}); cases not
# named must PASS. For the `websockets` library the sets are upper bounds (its strictness
# may improve between releases) and FAIL must stay within them.
RAW = [
    (
        "raw",
        ["--impl", "raw"],
        "1,2,3,4,5,6,7,9,12,13",
        {"NON-STRICT": {"6.4.3", "6.4.4"}, "UNIMPLEMENTED": family("12", "13")},
    ),
    ("utf8", ["--broken", "utf8"], "6", {"FAIL": ids(invalid_utf8)}),
    ("rsv", ["--broken", "rsv"], "3", {"FAIL": family("3")}),
    ("opcode", ["--broken", "opcode"], "4", {"FAIL": family("4")}),
    ("control", ["--broken", "control"], "2,5,7", {"FAIL": {"2.5", "5.1", "7.3.6"}, "NON-STRICT": {"6.4.3", "6.4.4"}}),
    ("fragment", ["--broken", "fragment"], "5", {"FAIL": {f"5.{i}" for i in range(9, 19)}}),
    (
        "close",
        ["--broken", "close"],
        "7",
        {"FAIL": {"7.3.2", "7.5.1"} | ids(lambda c: c.id.startswith(("7.9.", "7.13.")))},
    ),
]
WEBSOCKETS_NON_STRICT = {"3.3", "5.15", "6.4.1", "6.4.2", "6.4.3", "6.4.4", "9.3.1", "9.4.1"}
LIBRARY = [
    ("websockets", [], "1,2,3,4,5,6,7,9,12,13", {"FAIL": {"7.1.5"}, "NON-STRICT": WEBSOCKETS_NON_STRICT}),
    ("deflate-window", ["--broken", "deflate-window"], "12,13", None),
    ("deflate-context", ["--broken", "deflate-context"], "13", {"FAIL": ids(no_server_context)}),
]


def start_server(python: str, args: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [python, os.path.join(HERE, "reference_server.py"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"{' '.join(cmd)} did not start: {line.strip() or 'no output in 30 s'}")
    # Keep draining what the server logs (websockets logs failed handshakes and protocol
    # errors): a full pipe would block the server and stall every case after it.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, line.split()[-1]


def run_runner(url: str, families: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        cmd = [sys.executable, os.path.join(HERE, "autobahn.py"), url, "--quick", "--timeout", "4"]
        subprocess.run([*cmd, "--families", families, "--json", out], stdout=subprocess.DEVNULL, timeout=600)
        with open(out, encoding="utf-8") as f:
            return {c["id"]: (c["outcome"], c["detail"]) for c in json.load(f)["cases"]}


def compare(results: dict, expected: dict[str, set[str]], bounds_only: bool) -> list[str]:
    problems = []
    for outcome in ("FAIL", "NON-STRICT", "UNIMPLEMENTED"):
        got = {cid for cid, (o, _) in results.items() if o == outcome}
        want = expected.get(outcome, set()) & set(results)
        extra, missing = got - want, set() if bounds_only else want - got
        for cid in sorted(extra, key=sort_key):
            problems.append(f"{cid} came out {outcome} ({results[cid][1]}), expected {expected_outcome(cid, expected)}")
        for cid in sorted(missing, key=sort_key):
            problems.append(f"{cid} came out {results[cid][0]}, expected {outcome}")
    return problems


def expected_outcome(cid: str, expected: dict[str, set[str]]) -> str:
    return next((o for o, s in expected.items() if cid in s), "PASS")


def sort_key(cid: str) -> list[int]:
    return [int(p) for p in cid.split(".")]


def check(name: str, python: str, args: list[str], families: str, expected: dict | None) -> bool:
    started = time.monotonic()
    proc, url = start_server(python, args)
    try:
        results = run_runner(url, families)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if expected is None:  # deflate-window: which cases expose the window depends on content
        fails = [r for r in results.values() if r[0] == "FAIL"]
        problems = [] if fails and all("cannot inflate" in d for _, d in fails) else ["no inflate failure caught"]
        problems += [f"{cid} came out {o}" for cid, (o, _) in results.items() if o == "NON-STRICT"]
    else:
        problems = compare(results, expected, bounds_only=name == "websockets")
    took = time.monotonic() - started
    print(f"{'ok' if not problems else 'FAILED':<7} {name:<16} {len(results)} cases, {took:.1f}s")
    for p in problems:
        print(f"        {p}")
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks autobahn.py against servers with known faults.")
    parser.add_argument("--websockets-python", help="a python with the websockets package (its checks skip otherwise)")
    args = parser.parse_args()
    ok = all([check(name, sys.executable, a, fam, exp) for name, a, fam, exp in RAW])
    if args.websockets_python:
        ok = all([check(name, args.websockets_python, a, fam, exp) for name, a, fam, exp in LIBRARY]) and ok
    else:
        print("skipped websockets checks (no --websockets-python)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
