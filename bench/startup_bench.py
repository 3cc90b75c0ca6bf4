"""Start-up time of the command line and the app, this tree against a base commit, in one run.

    .venv/bin/python bench/startup_bench.py [--base e4fa360] [--repeats 7] [--app-repeats 5] [--photos 200]

Whole-process timers, the way hyperfine measures: ``time.perf_counter`` around a
fresh ``python`` process, median of the repeats. The base commit is exported with
``git archive`` into a temporary folder and run from there (``python -m`` and a
script put their own folder first on ``sys.path``, so each tree imports its own
``workbench``), with the same venv and the same data; base and this tree take
turns within each repeat, so both see the same load on a shared machine.

- ``--help``: ``python -m workbench --help``.
- ``dataset --json``: ``python -m workbench dataset --json`` on a data folder of
  ``--photos`` labelled photos (imported once, before timing).
- app first page: from starting ``gradio_app.py --port P`` to the first HTTP 200
  of ``/`` that is the real page (it names the app), polled every 20 ms.

Besides wall time, each row gives the CPU seconds the process used (for the app:
by the time its first page came back). Start-up is one thread importing and
building, so on a quiet machine wall ≈ CPU; on a loaded one the CPU figures are
the steadier comparison.

``rows()`` returns the figures as dicts (``bench/scale_bench.py`` prints them with
its own); ``main()`` prints a table.
"""
from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_COMMIT = "e4fa360"  # main before the start-up work of issue 15
PAGE_MARK = b"Aesthetic Workbench"


def export_tree(rev: str, into: Path) -> Path:
    """``git archive REV`` unpacked into ``into``: the code as it was, without touching the repository."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def workbench_env(root: Path, photos: int) -> dict[str, str]:
    """Folders for a run of the app or the CLI, with ``photos`` labelled photos imported by this tree's CLI."""
    import numpy as np
    from PIL import Image

    env = {}
    for name, folder in (("WORKBENCH_DATA_DIR", "data"), ("WORKBENCH_MODELS_DIR", "runs"),
                         ("WORKBENCH_WEIGHTS_DIR", "weights"), ("WORKBENCH_CACHE_DIR", "cache")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / folder)
    if photos:
        source = root / "source"
        source.mkdir()
        rng = np.random.default_rng(0)
        for i in range(photos):
            pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8).repeat(10, 0).repeat(10, 1)  # 640x480
            Image.fromarray(pixels).save(source / f"{1 + i % 10}_{i:05d}.jpg", quality=85)
        subprocess.run([sys.executable, "-m", "workbench", "import", str(source), "--json"], cwd=ROOT,
                       env={**os.environ, **env}, check=True, capture_output=True)
    return env


def process_seconds(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {cwd} exited with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_page_seconds(cwd: Path, env: dict[str, str], timeout: float = 300) -> tuple[float, float]:
    """(wall, CPU) seconds from starting ``gradio_app.py`` to the first 200 of ``/`` carrying the real page."""
    port = _free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "gradio_app.py", "--port", str(port)], cwd=cwd,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the app in {cwd} exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/")
                reply = conn.getresponse()
                body = reply.read()
                conn.close()
                if reply.status == 200 and PAGE_MARK in body:
                    return time.perf_counter() - start, _cpu_seconds(proc.pid)
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the app in {cwd} did not serve its page within {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rows(base: str = BASE_COMMIT, repeats: int = 7, app_repeats: int = 5, photos: int = 200) -> list[dict]:
    """Median whole-process seconds of each start-up, base commit and this tree, and base/this."""
    work = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        trees = {"base": export_tree(base, work / "base"), "this": ROOT}
        env = workbench_env(work / "folders", photos)
        cases = {
            "--help": (repeats, lambda tree: process_seconds([sys.executable, "-m", "workbench", "--help"], tree, env)),
            "dataset --json": (repeats, lambda tree: process_seconds(
                [sys.executable, "-m", "workbench", "dataset", "--json"], tree, env)),
            "app first page": (app_repeats, lambda tree: first_page_seconds(tree, env)),
        }
        results = []
        for name, (n, measure) in cases.items():
            measure(trees["this"])  # warm the file cache for both trees before timing
            measure(trees["base"])
            wall: dict[str, list[float]] = {"base": [], "this": []}
            cpu: dict[str, list[float]] = {"base": [], "this": []}
            for i in range(n):
                order = ("base", "this") if i % 2 == 0 else ("this", "base")  # take turns: same load for both
                for which in order:
                    w, c = measure(trees[which])
                    wall[which].append(w)
                    cpu[which].append(c)
            med = {k: statistics.median(v) for k, v in wall.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            results.append({"measurement": name, "repeats": n, "base_s": round(med["base"], 3),
                            "this_s": round(med["this"], 3), "ratio": round(med["base"] / med["this"], 2),
                            "this_min_s": round(min(wall["this"]), 3), "this_max_s": round(max(wall["this"]), 3),
                            "base_cpu_s": round(med_cpu["base"], 3), "this_cpu_s": round(med_cpu["this"], 3),
                            "cpu_ratio": round(med_cpu["base"] / med_cpu["this"], 2)})
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE_COMMIT, help=f"commit to compare with (default {BASE_COMMIT})")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each CLI command per tree (default 7)")
    parser.add_argument("--app-repeats", type=int, default=5, help="app starts per tree (default 5)")
    parser.add_argument("--photos", type=int, default=200, help="labelled photos in the data folder (default 200)")
    args = parser.parse_args(argv)
    found = rows(args.base, args.repeats, args.app_repeats, args.photos)
    load = os.getloadavg()[0]
    print(f"start-up, median whole-process seconds; base {args.base} vs this tree; load average {load:.1f}")
    print(f"{'measurement':<16}{'n':>3}{'base s':>9}{'this s':>9}{'this min-max':>15}{'ratio':>8}"
          f"{'base CPU s':>12}{'this CPU s':>12}{'CPU ratio':>11}")
    for r in found:
        print(f"{r['measurement']:<16}{r['repeats']:>3}{r['base_s']:>9.2f}{r['this_s']:>9.2f}"
              f"{r['this_min_s']:>8.2f}-{r['this_max_s']:<6.2f}{r['ratio']:>7.1f}x"
              f"{r['base_cpu_s']:>12.2f}{r['this_cpu_s']:>12.2f}{r['cpu_ratio']:>10.1f}x")
    return found


if __name__ == "__main__":
    main()
