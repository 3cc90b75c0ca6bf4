"""Culling a synthetic shoot: grouping quality, blur flag AUC, throughput and peak memory.

    .venv/bin/python bench/cull_bench.py [--sources 150] [--long-side 1600] [--seed 0]

The shoot is built from ``../shared/datasets/savoias`` (tests/cull_fixtures.py):
70 % of the sources become bursts of 2-8 frames 0.4 s apart (crops of 2-10 %,
shifts, exposure x0.8-1.2, JPEG quality 70-95, one frame blurred in bursts of
3+), the rest stay singletons; bursts are 30-120 s apart. Prints

- pairwise precision and recall of the recovered groups against the true ones;
- the blur flag's AUC: blurred frames against their sharp siblings (by sharpness),
  and how many of each the default threshold flags;
- photos per second and peak RSS of: scoring alone (``score_images``, NIMA), the
  whole cull with the feature cache cold, and again with it warm. Each runs in
  its own child process so the peak memory is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this tree's workbench, and the shoot builder of the tests


def _child(mode: str, folder: str, cache: str) -> None:
    """One measured pass in this (fresh) process; prints a JSON line."""
    os.environ["WORKBENCH_CACHE_DIR"] = cache
    os.environ["WORKBENCH_WEIGHTS_DIR"] = str(SHARED / "weights")
    from workbench.config import load_settings
    from workbench.cull import cull
    from workbench.events import drain
    from workbench.predict import load_scorer, score_images

    settings = load_settings()
    scorer = load_scorer("nima", settings)
    started = time.perf_counter()
    if mode == "score":
        result = drain(score_images([folder], scorer, settings))
        n, extra = len(result.scored), {}
    else:
        result = drain(cull([folder], scorer, settings))
        n = len(result.photos)
        extra = {"groups": [[p.path for p in g.photos] for g in result.groups],
                 "sharpness": {p.path: p.flags["out_of_focus"]["value"] for p in result.photos},
                 "flagged": {p.path: p.flags["out_of_focus"]["flagged"] for p in result.photos}}
    seconds = time.perf_counter() - started
    print(json.dumps({"mode": mode, "n": n, "seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))


def _run_child(mode: str, folder: Path, cache: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(cache)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=150, help="SAVOIAS photos to expand into the shoot")
    parser.add_argument("--long-side", type=int, default=1600, help="long side of the shoot's frames, px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    from cull_fixtures import make_shoot, pairwise_precision_recall
    from sklearn.metrics import roc_auc_score

    sources = sorted((SHARED / "datasets" / "savoias" / "images").glob("*.jpg"))
    random.Random(args.seed).shuffle(sources)
    with tempfile.TemporaryDirectory(prefix="cull-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        shoot = make_shoot(sources[:args.sources], tmp / "shoot", seed=args.seed, long_side=args.long_side)
        n = sum(len(g) for g in shoot.groups)
        with_size = next(iter(shoot.folder.glob("*.jpg")))
        from PIL import Image

        with Image.open(with_size) as im:
            mp = im.width * im.height / 1e6
        print(f"shoot: {n} photos ({mp:.1f} MP), {len(shoot.groups)} true groups "
              f"({sum(len(g) > 1 for g in shoot.groups)} bursts), {len(shoot.blurred)} blurred frames; "
              f"built in {time.perf_counter() - t0:.0f} s", flush=True)
        # each pass's row is printed as it ends: at 3,000 12-MP photos a pass takes a quarter of an hour here
        print("| pass | photos | s | photos/s | peak RSS MB |")
        print("| --- | --- | --- | --- | --- |", flush=True)
        passes = {}
        for key, name, mode, cache in (("score", "scoring alone (NIMA)", "score", "cache-score"),
                                       ("cold", "cull, features uncached", "cull", "cache"),
                                       ("warm", "cull, features cached", "cull", "cache")):
            r = passes[key] = _run_child(mode, shoot.folder, tmp / cache)
            print(f"| {name} | {r['n']} | {r['seconds']:.1f} | {r['n'] / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |", flush=True)
        warm = passes["warm"]
        precision, recall = pairwise_precision_recall(shoot.groups, warm["groups"])
        sharp = warm["sharpness"]
        y = [1] * len(shoot.blurred) + [0] * len(shoot.sharp_siblings)
        values = [-sharp[str(p)] for p in shoot.blurred + shoot.sharp_siblings]
        auc = roc_auc_score(y, values)
        flagged_blurred = sum(warm["flagged"][str(p)] for p in shoot.blurred)
        flagged_sharp = sum(warm["flagged"][str(p)] for p in shoot.sharp_siblings)
        print(f"groups: pairwise precision {precision:.4f}, recall {recall:.4f} "
              f"({len(warm['groups'])} found vs {len(shoot.groups)} true)")
        print(f"blur: AUC {auc:.4f} (blurred vs sharp siblings); flagged at the default threshold: "
              f"{flagged_blurred}/{len(shoot.blurred)} blurred, {flagged_sharp}/{len(shoot.sharp_siblings)} sharp")


if __name__ == "__main__":
    main()
