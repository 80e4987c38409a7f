#!/usr/bin/env python3
"""Does the lab say the same thing when you press the button again?

Runs `corral-bench run` (what `make demo` runs) N times in a row, keeping each run's
report.json, or reads report.json files given with --reports, and prints, per grid
scenario, the `best` set of every run, and per goal line, every run's verdict, each
marked `same` or `moved`, then the wall time of each run.

    python3 bench/lab_repeat.py                 # five runs of the whole lab (~13 min on 2 cores)
    python3 bench/lab_repeat.py --runs 3 -- --scenario keepalive,connect
    python3 bench/lab_repeat.py --reports a/report.json b/report.json

Arguments after `--` go to `corral-bench run`. Needs a release build of corral-bench
(`cargo build --release -p corral-bench`).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "corral-bench")


def run_lab(runs, extra, out_root):
    if not os.access(BENCH, os.X_OK):
        sys.exit(f"lab_repeat: {BENCH} is missing: build it with `cargo build --release -p corral-bench`")
    reports, walls = [], []
    for i in range(runs):
        out = os.path.join(out_root, f"run{i + 1}")
        started = time.monotonic()
        done = subprocess.run([BENCH, "run", "--out", out, *extra], cwd=ROOT, stdout=subprocess.DEVNULL)
        walls.append(time.monotonic() - started)
        if done.returncode != 0:
            sys.exit(f"lab_repeat: run {i + 1} failed (exit {done.returncode}); its output is above")
        reports.append(os.path.join(out, "report.json"))
        print(f"run {i + 1}: {walls[-1]:.0f} s, {reports[-1]}", file=sys.stderr)
    return reports, walls


def verdict(goal):
    # Reports from before goals had a `verdict` carry only `met`.
    return goal.get("verdict") or ("met" if goal["met"] else "not_met")


def compare(reports):
    loaded = []
    for path in reports:
        with open(path) as f:
            loaded.append(json.load(f))
    sets, goals = {}, {}
    for r in loaded:
        for fit in r["fits"]:
            sets.setdefault(fit["scenario"], []).append(", ".join(sorted(fit["best"])))
        for g in r["goals"]:
            goals.setdefault(g["goal"], []).append(verdict(g))
    same_sets = sum(len(set(v)) == 1 for v in sets.values())
    same_goals = sum(len(set(v)) == 1 for v in goals.values())
    print(f"{len(loaded)} runs: best sets the same in {same_sets} of {len(sets)} scenarios, "
          f"goal verdicts the same in {same_goals} of {len(goals)} lines\n")
    for scenario, v in sets.items():
        if len(set(v)) == 1:
            print(f"same   {scenario:<10} {v[0]}")
        else:
            print(f"moved  {scenario:<10}")
            for i, s in enumerate(v):
                print(f"         run {i + 1}: {s}")
    print()
    for goal, v in goals.items():
        print(f"{'same ' if len(set(v)) == 1 else 'moved'}  {goal}: {', '.join(v)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs of the lab in a row (default 5)")
    p.add_argument("--reports", nargs="+", help="compare these report.json files instead of running the lab")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "lab-repeat"), help="where each run's report goes")
    p.add_argument("extra", nargs="*", help="arguments for `corral-bench run` (after --)")
    a = p.parse_args()
    if a.reports:
        compare(a.reports)
        return
    if a.runs < 2:
        sys.exit("lab_repeat: --runs must be at least 2: one run cannot disagree with itself")
    reports, walls = run_lab(a.runs, a.extra, a.out)
    compare(reports)
    print("\nwall time per run: " + ", ".join(f"{w:.0f} s" for w in walls))


if __name__ == "__main__":
    main()
