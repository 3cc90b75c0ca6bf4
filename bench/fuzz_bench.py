"""The fuzz suite (tests/test_fuzz.py) for longer, with fresh randomness.

    .venv/bin/python bench/fuzz_bench.py [--examples 300] [-k EXPR]

Runs every fuzz target with ``--examples`` hypothesis cases each (``make test``
runs 15, derandomised) and prints, per target, the cases that ran and whether a
falsifying case was found (hypothesis stops a target at its first failure and
prints the shrunk case; see the pytest output above the table).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression to run some targets only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as folder:
        report, junit = Path(folder) / "cases.json", Path(folder) / "junit.xml"
        env = {**os.environ, "WORKBENCH_FUZZ_EXAMPLES": str(args.examples), "WORKBENCH_FUZZ_RANDOM": "1",
               "WORKBENCH_FUZZ_REPORT": str(report), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "--timeout=0",
                   f"--junitxml={junit}", "tests/test_fuzz.py", *(["-k", args.select] if args.select else [])]
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, env=env)
        wall = time.monotonic() - started
        cases = json.loads(report.read_text()) if report.exists() else {}
        failed = {case.get("name") for case in ET.parse(junit).iter("testcase")
                  if case.find("failure") is not None or case.find("error") is not None}
    print(f"\n{'target':<10} {'cases':>7}  result")
    for target, count in sorted(cases.items()):
        bad = any(target in name for name in failed)
        print(f"{target:<10} {count:>7}  {'FALSIFIED' if bad else 'ok'}")
    print(f"total {sum(cases.values())} cases, {len(failed)} target(s) failing, {wall:.0f} s")


if __name__ == "__main__":
    main()
