"""Where a cull's memory goes: resident memory (RSS) at each stage of one cull, and its peak.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cull_memory_bench.py FOLDER [--n 80] [--cache-dir C]

Culls the first N JPEGs of FOLDER with NIMA in this process, sampling RSS every 20 ms,
and prints it at each stage's first event (and at every feature batch) with the peak so
far and the last event before it was reached (the work after that event raised it). ``--cache-dir``: a cache to use as it is (its ONNX
exports reused) after its feature cache is emptied; without it a fresh temporary cache,
so the run also exports and checks NIMA and the backbone, as a first cull does.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--cache-dir", type=Path, help="reuse this cache's ONNX exports (its features are removed)")
    args = parser.parse_args()
    os.environ["WORKBENCH_CACHE_DIR"] = str(args.cache_dir or tempfile.mkdtemp(prefix="cull-memory-"))
    os.environ.setdefault("WORKBENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))

    peak, stage = [0, ""], [""]

    def sample() -> None:
        while True:
            now = rss_mb()
            if now > peak[0]:
                peak[:] = [now, stage[0]]
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    from workbench.config import load_settings
    from workbench.cull import cull
    from workbench.events import Notice, Progress
    from workbench.predict import load_scorer

    settings = load_settings()
    shutil.rmtree(settings.features_cache_dir, ignore_errors=True)
    paths = sorted(args.folder.glob("*.jpg"))[:args.n]
    scorer = load_scorer("nima", settings)
    print(f"{rss_mb():6d} MB  NIMA loaded; culling {len(paths)} photos", flush=True)
    last = None
    for event in cull(paths, scorer, settings):
        if isinstance(event, (Progress, Notice)):
            stage[0] = event.message[:70]
            if event.message.split()[0] != last or "images/s" in event.message:
                print(f"{rss_mb():6d} MB  (peak {peak[0]})  {stage[0]}", flush=True)
                last = event.message.split()[0]
    print(f"peak {peak[0]} MB, reached after the event: {peak[1]}")


if __name__ == "__main__":
    main()
