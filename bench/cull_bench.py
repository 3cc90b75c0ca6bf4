"""Culling a synthetic shoot: grouping quality, blur flag AUC, throughput and peak memory.

    .venv/bin/python bench/cull_bench.py [--sources 150] [--long-side 1600 | --megapixels 12] [--photos N]
                                         [--seed 0] [--blur 0.008] [--shoot-dir DIR]

The shoot is built from ``../shared/datasets/savoias`` (tests/cull_fixtures.py):
70 % of the sources become bursts of 2-8 frames 0.4 s apart (crops of 2-10 %,
shifts, exposure x0.8-1.2, JPEG quality 70-95, one frame blurred in bursts of
3+), the rest stay singletons; bursts are 30-120 s apart. Prints

- pairwise precision and recall of the recovered groups against the true ones;
- how many blurred frames ended in a group of their own (and apart from every
  sharp sibling of their burst), where they would be picked alone instead of losing
  to a sharp sibling;
- the blur flag's AUC: blurred frames against their sharp siblings (by sharpness),
  and how many of each the default threshold flags;
- photos per second and peak RSS of: scoring alone (``score_images``, NIMA), the
  whole cull with the feature cache cold, and again with it warm. Each runs in
  its own child process so the peak memory is its own.

``--shoot-dir DIR`` keeps the shoot (and its truth, ``shoot.json``) there and reuses
it on the next run with the same options: a 3,000-photo 12-MP shoot takes longer to
build than to cull. Without it the shoot lives in a temporary folder.
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


# A cull's pass, told by its progress messages (the work a message reports was done before it came out)
BLUR = 0.008  # make_shoot's default
STAGE_WORDS = (("scor", "scoring (NIMA)"), ("checking focus", "technical flags"), ("hashing", "hashing"))


def _child(mode: str, folder: str, cache: str) -> None:
    """One measured pass in this (fresh) process; prints a JSON line."""
    os.environ["WORKBENCH_CACHE_DIR"] = cache
    os.environ["WORKBENCH_WEIGHTS_DIR"] = str(SHARED / "weights")
    from workbench.config import load_settings
    from workbench.cull import cull
    from workbench.events import Progress, drain
    from workbench.predict import load_scorer, score_images

    settings = load_settings()
    scorer = load_scorer("nima", settings)
    started = time.perf_counter()
    if mode == "score":
        result = drain(score_images([folder], scorer, settings))
        n, extra = len(result.scored), {}
    else:
        stages: dict[str, float] = {}  # stage -> seconds, from the moments its events came out
        last = [started]

        def timed(events):
            for event in events:
                now = time.perf_counter()
                if isinstance(event, Progress):
                    stage = next((name for word, name in STAGE_WORDS if word in event.message), "features")
                    stages[stage] = stages.get(stage, 0.0) + now - last[0]
                    last[0] = now
                yield event

        result = drain(timed(cull([folder], scorer, settings)))
        stages["grouping and picks"] = time.perf_counter() - last[0]
        n = len(result.photos)
        extra = {"stages": stages, "groups": [[p.path for p in g.photos] for g in result.groups],
                 "sharpness": {p.path: p.flags["out_of_focus"]["value"] for p in result.photos},
                 "flagged": {p.path: p.flags["out_of_focus"]["flagged"] for p in result.photos}}
    seconds = time.perf_counter() - started
    print(json.dumps({"mode": mode, "n": n, "seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))


def _run_child(mode: str, folder: Path, cache: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(cache)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _build_part(args, part):
    from datetime import timedelta

    from cull_fixtures import START, make_shoot

    sources, folder, seed, photos, k = part
    return make_shoot(sources, folder, seed=seed, long_side=args.long_side, megapixels=args.megapixels,
                      max_photos=photos, start=START + timedelta(days=k), blur=args.blur)


def _shoot(args, sources, folder: Path):
    """The shoot in ``folder``: reused when it was built there with the same options, else built."""
    from cull_fixtures import Shoot

    options = {"sources": args.sources, "long_side": args.long_side, "megapixels": args.megapixels,
               "photos": args.photos, "seed": args.seed, "jobs": args.jobs}
    if args.blur != BLUR:  # shoots built before --blur existed match the default
        options["blur"] = args.blur
    truth = folder / "shoot.json"
    if truth.is_file():
        saved = json.loads(truth.read_text())
        if saved["options"] != options:
            sys.exit(f"{folder} holds a shoot built with {saved['options']}, not {options}: use another --shoot-dir")
        shoot = Shoot(folder, [[Path(p) for p in g] for g in saved["groups"]],
                      [Path(p) for p in saved["blurred"]], [Path(p) for p in saved["sharp_siblings"]])
        shoot.note = "reused from an earlier build"
        return shoot
    if folder.exists() and any(folder.iterdir()):
        sys.exit(f"{folder} is not empty and holds no shoot.json: use an empty or new --shoot-dir")
    t0 = time.perf_counter()
    jobs = max(1, args.jobs)
    # each job builds its share of the sources into its own subfolder, a day after the previous
    # job's shoot, so the parts' capture times never interleave into false bursts
    parts = [(sources[:args.sources][k::jobs], folder / f"part{k}", args.seed + k,
              None if args.photos is None else args.photos // jobs + (k < args.photos % jobs), k) for k in range(jobs)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        built = list(pool.map(_build_part, [args] * jobs, parts))
    shoot = Shoot(folder, [g for b in built for g in b.groups], [p for b in built for p in b.blurred],
                  [p for b in built for p in b.sharp_siblings])
    shoot.note = f"built in {time.perf_counter() - t0:.0f} s by {jobs} process(es)"
    truth.write_text(json.dumps({"options": options, "groups": [[str(p) for p in g] for g in shoot.groups],
                                 "blurred": [str(p) for p in shoot.blurred],
                                 "sharp_siblings": [str(p) for p in shoot.sharp_siblings]}))
    return shoot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=150, help="SAVOIAS photos to expand into the shoot")
    parser.add_argument("--long-side", type=int, default=1600, help="long side of the shoot's frames, px")
    parser.add_argument("--megapixels", type=float, help="frames of this many megapixels (instead of --long-side)")
    parser.add_argument("--photos", type=int, help="stop building the shoot at this many photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blur", type=float, default=BLUR,
                        help="the blurred frame's Gaussian radius as a share of the long side (0.008: a missed focus; "
                             "0.03: heavily blurred)")
    parser.add_argument("--shoot-dir", type=Path, help="build the shoot here, or reuse the one built here before")
    parser.add_argument("--jobs", type=int, default=1, help="processes building the shoot (each builds a part)")
    parser.add_argument("--passes", default="score,cold,warm",
                        help="passes to run, in this order (score: scoring alone; cold/warm: the cull with the "
                             "feature cache empty/filled; warm needs cold before it)")
    parser.add_argument("--build-only", action="store_true", help="build the shoot (into --shoot-dir) and stop")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    unknown = set(args.passes.split(",")) - {"score", "cold", "warm"}
    if unknown or ("warm" in args.passes and "cold" not in args.passes.split("warm")[0]):
        parser.error(f"--passes: a comma-separated list of score, cold, warm, with cold before warm (not {args.passes!r})")

    from cull_fixtures import pairwise_precision_recall
    from sklearn.metrics import roc_auc_score

    sources = sorted((SHARED / "datasets" / "savoias" / "images").glob("*.jpg"))
    random.Random(args.seed).shuffle(sources)
    with tempfile.TemporaryDirectory(prefix="cull-bench-") as tmp:
        tmp = Path(tmp)
        shoot = _shoot(args, sources, args.shoot_dir or tmp / "shoot")
        n = sum(len(g) for g in shoot.groups)
        from PIL import Image

        with Image.open(shoot.groups[0][0]) as im:
            mp = im.width * im.height / 1e6
        print(f"shoot: {n} photos ({mp:.1f} MP), {len(shoot.groups)} true groups "
              f"({sum(len(g) > 1 for g in shoot.groups)} bursts), {len(shoot.blurred)} blurred frames; "
              f"{shoot.note}", flush=True)
        if args.build_only:
            return
        # each pass's row is printed as it ends: at 3,000 12-MP photos a pass takes a quarter of an hour here
        print("| pass | photos | s | photos/s | peak RSS MB |")
        print("| --- | --- | --- | --- | --- |", flush=True)
        passes = {}
        known = {"score": ("scoring alone (NIMA)", "score", "cache-score"),
                 "cold": ("cull, features uncached", "cull", "cache"), "warm": ("cull, features cached", "cull", "cache")}
        for key in args.passes.split(","):
            name, mode, cache = known[key]
            r = passes[key] = _run_child(mode, shoot.folder, tmp / cache)
            print(f"| {name} | {r['n']} | {r['seconds']:.1f} | {r['n'] / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
                  f" load {os.getloadavg()[0]:.1f}", flush=True)
            if r.get("stages"):
                print("    stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["stages"].items()), flush=True)
        warm = passes.get("warm") or passes.get("cold")
        if warm is None:
            return
        precision, recall = pairwise_precision_recall(shoot.groups, warm["groups"])
        sharp = warm["sharpness"]
        y = [1] * len(shoot.blurred) + [0] * len(shoot.sharp_siblings)
        values = [-sharp[str(p)] for p in shoot.blurred + shoot.sharp_siblings]
        auc = roc_auc_score(y, values)
        flagged_blurred = sum(warm["flagged"][str(p)] for p in shoot.blurred)
        flagged_sharp = sum(warm["flagged"][str(p)] for p in shoot.sharp_siblings)
        print(f"groups: pairwise precision {precision:.4f}, recall {recall:.4f} "
              f"({len(warm['groups'])} found vs {len(shoot.groups)} true)")
        found_of = {p: tuple(g) for g in warm["groups"] for p in g}
        alone = sum(len(found_of[str(p)]) == 1 for p in shoot.blurred)
        true_of = {str(p): set(map(str, g)) for g in shoot.groups for p in g}
        apart = sum(not (set(found_of[str(p)]) & true_of[str(p)]) - {str(p)} for p in shoot.blurred)  # no sibling with it
        print(f"blurred frames in a group of their own: {alone}/{len(shoot.blurred)}; "
              f"apart from every sharp sibling: {apart}/{len(shoot.blurred)}")
        print(f"blur: AUC {auc:.4f} (blurred vs sharp siblings); flagged at the default threshold: "
              f"{flagged_blurred}/{len(shoot.blurred)} blurred, {flagged_sharp}/{len(shoot.sharp_siblings)} sharp")


if __name__ == "__main__":
    main()
