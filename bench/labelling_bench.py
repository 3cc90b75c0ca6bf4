"""Labelling with a simulated person on SAVOIAS: active vs random labels, pairs, keyboard latency.

    .venv/bin/python bench/labelling_bench.py [--cache-dir DIR] [--seeds 10] [--first-seed 0] [--parts active,pairs,latency]
        [--features best|lite0] [--categories "Art,Scenes"]

SAVOIAS (../shared/datasets/savoias, 1,218 photos with human scores 0-100):
its true scores play the person.

* **active**: per seed, 20% of the photos are held out as the test set; the
  rest is the pool a person labels from. Random labelling takes pool photos in
  random order; active labelling takes batches of 10 chosen by
  :func:`workbench.labelling.suggest.rank_for_labelling` (greedy variance
  reduction, from the first photo). Both see the same seeds, splits and model:
  after each label count a ridge (standardised features, alpha by leave-one-out
  over a fixed grid) is trained on the labels and its SRCC on the test set is
  reported as the median and quartiles over the seeds (Monte-Carlo
  cross-validation), with the paired difference active - random. Per seed, the
  label count at which active first reaches that seed's random@200 is given too.
  Features (``--features``): ``best`` = NIMA + efficientnet_lite0 multilevel
  (what ``auto`` uses; NIMA's weights linked from ../shared), ``lite0`` =
  efficientnet_lite0 pooled (the default backbone). ``--categories`` keeps only
  some SAVOIAS categories (a check on photos the defaults were not chosen on).
* **pairs**: per seed, ``--pair-photos`` random photos; the simulated person
  prefers the truly better photo but flips the answer with probability
  ``0.5 * exp(-|s_i - s_j| / tau)`` (tau = 10 score points: a coin flip for
  equal scores, 18% at 10 points apart, 2.5% at 30) and never says "tie".
  Active pairs come from :func:`workbench.labelling.pairwise.choose_pairs`
  (refitted after every batch of n/2 pairs), random pairs are uniform. After
  1, 2, 5 and 10 comparisons per photo (comparisons made / photos; each photo
  then took part in twice that many) the SRCC between the Bradley-Terry
  strengths and the true scores is reported.
* **latency**: the real app (``gradio_app.py``) with ``--latency-photos``
  SAVOIAS photos (hard links) in a fresh data folder, driven by chromium:
  the time from a key press to the next photo decoded and painted, and the
  time until the label is saved on disk (server round trip), per key.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CHECKPOINTS = [25, 50, 75, 100, 120, 150, 200]
PER_PHOTO = [1, 2, 5, 10]


FEATURES = {"best": (("nima_mobilenet", "efficientnet_lite0"), "multilevel"),  # what auto uses
            "lite0": (("efficientnet_lite0",), "pooled")}


def load_savoias(folder: Path, cache_dir: Path | None, features: str = "lite0", categories: str | None = None):
    from compare_bench import bench_settings  # bench/ is on the path when this script runs

    from workbench.events import drain
    from workbench.features import feature_matrix

    rows = list(csv.DictReader(open(folder / "scores.csv", encoding="utf-8")))
    if categories:
        wanted = {c.strip() for c in categories.split(",")}
        rows = [r for r in rows if r["category"] in wanted]
        if not rows:
            raise SystemExit(f"no SAVOIAS photo is in the categories {sorted(wanted)}")
    paths = [folder / "images" / r["filename"] for r in rows]
    y = np.array([float(r["score"]) for r in rows])
    backbones, view = FEATURES[features]
    matrix = drain(feature_matrix(paths, backbones, bench_settings(cache_dir, None), view=view))
    return matrix.X.astype(np.float64), y[matrix.keep], [paths[i] for i in matrix.keep]


def ridge_srcc(X_train, y_train, X_test, y_test) -> float:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
    model.fit(X_train, y_train)
    return float(spearmanr(model.predict(X_test), y_test)[0])


def active_vs_random(X, y, seeds: range) -> dict:
    from workbench.labelling.suggest import rank_for_labelling

    out = {"random": {k: [] for k in CHECKPOINTS}, "active": {k: [] for k in CHECKPOINTS}}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y))
        test, pool = order[: len(y) // 5], order[len(y) // 5:]
        for k in CHECKPOINTS:
            take = pool[:k]
            out["random"][k].append(ridge_srcc(X[take], y[take], X[test], y[test]))
        chosen: list[int] = []
        remaining = list(pool)
        for k in CHECKPOINTS:
            while len(chosen) < k:
                batch = min(10, k - len(chosen))
                picks, _ = rank_for_labelling(X[chosen], y[chosen], X[remaining], batch, seed=seed, members=0)
                new = [remaining[i] for i in picks]
                chosen += new
                remaining = [i for i in remaining if i not in set(new)]
            out["active"][k].append(ridge_srcc(X[chosen], y[chosen], X[test], y[test]))
        print(f"  seed {seed}: random@200 {out['random'][200][-1]:.3f}, active@120 {out['active'][120][-1]:.3f}, "
              f"active@200 {out['active'][200][-1]:.3f}", flush=True)
    return out


def simulated_choice(rng, si: float, sj: float, tau: float) -> str:
    flip = 0.5 * np.exp(-abs(si - sj) / tau)
    better = "left" if si > sj else "right"
    if rng.random() < flip:
        return "right" if better == "left" else "left"
    return better


def pairs_bench(y, seeds: int, n: int, tau: float) -> dict:
    from workbench.dataset.comparisons import Comparison
    from workbench.labelling.pairwise import choose_pairs, pairwise_scores

    out = {"active": {k: [] for k in PER_PHOTO}, "random": {k: [] for k in PER_PHOTO}}
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        idx = rng.choice(len(y), n, replace=False)
        truth = y[idx]
        names = [f"p{i}" for i in range(n)]
        for mode in ("active", "random"):
            comparisons: list[Comparison] = []
            fit = None
            for target in PER_PHOTO:
                while len(comparisons) < target * n:
                    k = min(n // 2, target * n - len(comparisons))
                    if mode == "active":
                        pairs = choose_pairs(names, comparisons, k, fit=fit, rng=rng)
                    else:
                        pairs = [tuple(rng.choice(names, 2, replace=False)) for _ in range(k)]
                    for a, b in pairs:
                        i, j = int(a[1:]), int(b[1:])
                        comparisons.append(Comparison(a, b, simulated_choice(rng, truth[i], truth[j], tau)))
                    fit = pairwise_scores(comparisons, {}, 0, 100, names=names)
                out[mode][target].append(float(spearmanr(fit.strength, truth)[0]))
            print(f"  seed {seed} {mode}: " + ", ".join(f"{k}/photo {out[mode][k][-1]:.3f}" for k in PER_PHOTO),
                  flush=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latency_bench(paths: list[Path], n_photos: int, presses: int, gap_ms: int) -> dict:
    import httpx
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="label-bench-"))
    data = work / "data"
    data.mkdir()
    for i in range(n_photos):
        source = paths[i % len(paths)]
        os.link(source, data / f"{i:05d}_{source.name}")
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(data), "WORKBENCH_MODELS_DIR": str(work / "runs"),
           "WORKBENCH_CACHE_DIR": str(work / "cache"), "GRADIO_ANALYTICS_ENABLED": "False"}
    port = free_port()
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "gradio_app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Label", exact=True).click()
            t = time.monotonic()
            page.wait_for_function("window.__wbLabel && window.__wbLabel.ready", timeout=120_000)
            ready = time.monotonic() - t
            page.locator("#label-desk .wb-help").click()
            page.wait_for_timeout(1000)
            for i in range(presses):
                page.keyboard.press(str(1 + i % 5))
                page.wait_for_timeout(gap_ms)
            page.wait_for_function(f"window.__wbLabel.saves >= {presses}", timeout=120_000)
            shown = page.evaluate("window.__wbLabel.latency")
            saved = page.evaluate("window.__wbLabel.saveMs")
            browser.close()
        rows = list(csv.DictReader(open(data / "scores.csv", encoding="utf-8")))
        return {"photos": n_photos, "presses": presses, "gap_ms": gap_ms, "tab_ready_s": ready,
                "shown_ms": np.array(shown), "saved_ms": np.array(saved), "rows_on_disk": len(rows)}
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="active: seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--features", choices=sorted(FEATURES), default="best",
                        help="best: NIMA + efficientnet_lite0 multilevel (auto's); lite0: efficientnet_lite0 pooled")
    parser.add_argument("--categories", default=None, help="keep only these SAVOIAS categories (comma-separated)")
    parser.add_argument("--parts", default="active,pairs,latency")
    parser.add_argument("--pair-photos", type=int, default=300)
    parser.add_argument("--tau", type=float, default=10.0)
    parser.add_argument("--latency-photos", type=int, default=5000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--gap-ms", type=int, default=300, help="pause between key presses (a brisk person)")
    args = parser.parse_args()
    if not (args.savoias / "scores.csv").is_file():
        print(f"skipped: {args.savoias} is absent")
        return
    parts = set(args.parts.split(","))
    X, y, paths = load_savoias(args.savoias, args.cache_dir, args.features, args.categories)
    print(f"SAVOIAS{' (' + args.categories + ')' if args.categories else ''}: {len(y)} photos, "
          f"features {X.shape[1]}-d ({args.features})")
    if "active" in parts:
        t = time.monotonic()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        result = active_vs_random(X, y, seeds)
        print(f"\nActive vs random labelling, test SRCC of ridge over seeds {seeds.start}-{seeds.stop - 1}: median [quartiles] "
              f"({time.monotonic() - t:.0f} s):")
        print("| labels | random | active | active - random (paired) |\n| --- | --- | --- | --- |")
        quart = lambda v: f"{np.median(v):.3f} [{np.percentile(v, 25):.3f}, {np.percentile(v, 75):.3f}]"  # noqa: E731
        for k in CHECKPOINTS:
            r, a = np.array(result["random"][k]), np.array(result["active"][k])
            print(f"| {k} | {quart(r)} | {quart(a)} | {np.median(a - r):+.3f} [{np.percentile(a - r, 25):+.3f}, "
                  f"{np.percentile(a - r, 75):+.3f}] |")
        goal = np.median(result["random"][200])
        reach = next((k for k in CHECKPOINTS if np.median(result["active"][k]) >= goal), None)
        print(f"median random@200 = {goal:.3f}; median active reaches it at "
              + (f"{reach} labels" if reach else "none of the counts up to 200"))
        per_seed = [next((k for k in CHECKPOINTS if result["active"][k][s] >= result["random"][200][s]), None)
                    for s in range(args.seeds)]
        print("per seed, labels at which active first reaches that seed's random@200: "
              + ", ".join(str(k) if k else ">200" for k in per_seed))
    if "pairs" in parts:
        t = time.monotonic()
        result = pairs_bench(y, args.seeds, args.pair_photos, args.tau)
        print(f"\nBradley-Terry SRCC vs true scores, {args.pair_photos} photos, tau {args.tau:g}, "
              f"mean ± std over {args.seeds} seeds ({time.monotonic() - t:.0f} s):")
        print("| comparisons per photo | random pairs | active pairs |\n| --- | --- | --- |")
        for k in PER_PHOTO:
            r, a = np.array(result["random"][k]), np.array(result["active"][k])
            print(f"| {k} | {r.mean():.3f} ± {r.std():.3f} | {a.mean():.3f} ± {a.std():.3f} |")
    if "latency" in parts:
        r = latency_bench(paths, args.latency_photos, args.presses, args.gap_ms)
        shown, saved = r["shown_ms"], r["saved_ms"]
        print(f"\nKeyboard latency, {r['photos']} photos in data/, {r['presses']} presses {r['gap_ms']} ms apart; "
              f"tab ready in {r['tab_ready_s']:.1f} s; {r['rows_on_disk']} labels on disk")
        print(f"key -> next photo painted: median {np.median(shown):.0f} ms, p95 {np.percentile(shown, 95):.0f} ms, "
              f"max {shown.max():.0f} ms (n={len(shown)})")
        print(f"key -> label saved on disk (server answer): median {np.median(saved):.0f} ms, "
              f"p95 {np.percentile(saved, 95):.0f} ms, max {saved.max():.0f} ms")


if __name__ == "__main__":
    main()
