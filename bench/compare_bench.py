"""Cross-validated comparison of every model family on SAVOIAS (1,218 real photos, human scores).

    .venv/bin/python bench/compare_bench.py [--folds 5] [--seed 42] [--families ridge,svr,...]
        [--features pooled,multilevel] [--ungrouped ridge,auto]

Prints, for the default backbone (efficientnet_lite0) with features cached, once
per feature view (pooled, multilevel; auto always uses multilevel), on folds
that keep near-duplicates together: SRCC, PLCC, MAE and fit time per family,
SRCC on ungrouped folds for a few families (how much near-duplicates flatter), the wall time of all scikit-learn
families together (aim: under 60 s on two cores), ``auto`` against ``ridge``
in the same run, and two baselines measured in the same run: predicting the
mean score (quality) and extracting features afresh for every family (time,
from the uncached extraction rate measured on a sample).

Features go to the configured cache (``--cache-dir``, default the workbench's),
so the first run also extracts them (a few minutes on a CPU). NIMA's weights
are taken from ../shared/weights through a temporary weights folder unless
``--weights-dir`` is given.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.config import load_settings
from workbench.events import drain
from workbench.features import feature_matrix
from workbench.training import LabelledSet, compare, compute_metrics, kfold

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SKLEARN_FAMILIES = ["ridge", "svr", "rf", "gbr", "hgb", "stacking"]
ALL_FEATURE_FAMILIES = SKLEARN_FAMILIES + ["head", "nima_head", "auto"]


def savoias(folder: Path) -> LabelledSet:
    rows = list(csv.DictReader(open(folder / "scores.csv", encoding="utf-8")))
    return LabelledSet.from_pairs([(folder / "images" / r["filename"], float(r["score"])) for r in rows])


def bench_settings(cache_dir: Path | None, weights_dir: Path | None):
    """Settings for a SAVOIAS benchmark: the given caches, NIMA's weights linked from ../shared when no
    weights folder is named, and throwaway runs."""
    if weights_dir is None:
        weights_dir = Path(tempfile.mkdtemp(prefix="bench-weights-"))
        nima = SHARED / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
        if nima.is_file():
            (weights_dir / nima.name).symlink_to(nima)
    return load_settings(cache_dir=cache_dir, weights_dir=weights_dir, models_dir=tempfile.mkdtemp(prefix="bench-runs-"))


def reference_seconds(repeats: int = 3) -> float:
    """A fixed piece of work timed in this run, so fit times on a busy machine can be read as a ratio:
    RidgeCV (the same alpha grid as auto's) on a fixed random 1,000 x 2,000 matrix, best of ``repeats``."""
    from sklearn.linear_model import RidgeCV

    from workbench.models.auto import RIDGE_ALPHAS

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(1000, 2000)), rng.normal(size=1000)
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        RidgeCV(alphas=RIDGE_ALPHAS).fit(X, y)
        best = min(best, time.perf_counter() - tick)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--families", default=",".join(ALL_FEATURE_FAMILIES))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=48, help="images for the uncached extraction-rate baseline")
    parser.add_argument("--features", default="pooled,multilevel", help="feature views to compare (comma-separated)")
    parser.add_argument("--ungrouped", default="ridge,auto",
                        help="families also run on ungrouped folds, for the grouped-vs-ungrouped column")
    args = parser.parse_args()

    settings = bench_settings(args.cache_dir, args.weights_dir)
    data = savoias(args.savoias)
    families = [f for f in args.families.split(",") if f]
    print(f"SAVOIAS: {len(data)} images, {args.folds}-fold CV, seed {args.seed}, backbone {args.backbone}")
    import torch

    print(f"torch threads: {torch.get_num_threads()}, cache: {settings.features_cache_dir}")
    reference = reference_seconds()
    print(f"load average {os.getloadavg()[0]:.1f}; reference work (RidgeCV on a fixed 1000 x 2000 matrix): "
          f"{reference:.2f} s", flush=True)

    # 1. features: extract (first run) or read back from the cache, once per backbone
    for name in ("nima_mobilenet", args.backbone):
        tick = time.perf_counter()
        matrix = drain(feature_matrix(data.paths, [name], settings))
        print(f"features {name}: {matrix.X.shape} in {time.perf_counter() - tick:.1f} s "
              f"({matrix.weights[name]['source']})")
    # the naive alternative re-extracts per family: measure the uncached rate on a sample
    sample_settings = settings.replace(cache_dir=Path(tempfile.mkdtemp(prefix="bench-cold-cache-")))
    tick = time.perf_counter()
    drain(feature_matrix(data.paths[: args.sample], [args.backbone], sample_settings))
    cold_per_image = (time.perf_counter() - tick) / args.sample
    tick = time.perf_counter()
    drain(feature_matrix(data.paths, [args.backbone], settings))
    warm_read = time.perf_counter() - tick
    print(f"uncached extraction: {1 / cold_per_image:.1f} img/s; cached read of all {len(data)}: {warm_read:.2f} s")

    # 2. the comparison itself (features from the cache, the same folds for everyone), once per feature
    # view on near-duplicate-grouped folds; a few families again on ungrouped folds for the last column
    y = data.scores
    # the baseline through the same metrics and folds (a constant ranks nothing: its correlations are 0)
    baseline = [compute_metrics(y[te], np.full(len(te), y[tr].mean()), score_min=settings.score_min,
                                score_max=settings.score_max)
                for tr, te in kfold(y, folds=args.folds, seed=args.seed, keys=data.content_keys())]
    mean = {k: float(np.mean([b[k] for b in baseline])) for k in ("srcc", "plcc", "krcc", "mae", "rmse", "r2")}
    show = lambda e: print(f"  {e.message}", flush=True) if "near-dup" in getattr(e, "message", "") else None  # noqa: E731
    for view in [v for v in args.features.split(",") if v]:
        tick = time.perf_counter()
        report = drain(compare(families, settings, backbone=args.backbone, folds=args.folds, seed=args.seed,
                               data=data, features=view), show)
        wall = time.perf_counter() - tick
        loose = [f for f in args.ungrouped.split(",") if f in families]
        ungrouped = {r.model: r for r in drain(compare(loose, settings, backbone=args.backbone, folds=args.folds,
                                                       seed=args.seed, data=data, features=view,
                                                       grouped=False)).results} if loose else {}
        print(f"\n=== features: {view} (auto always multilevel); near-duplicates: {report.near_duplicates}")
        print(f"{'model':<10}{'view':>11}{'SRCC':>8}{'±':>7}{'PLCC':>8}{'KRCC':>8}{'MAE':>8}{'RMSE':>8}{'R2':>8}"
              f"{'fit s/fold':>12}{'CV total s':>12}{'CPU s total':>12}{'ungrouped SRCC':>16}")
        for r in report.results:
            loose_srcc = f"{ungrouped[r.model].srcc:>16.3f}" if r.model in ungrouped else f"{'':>16}"
            print(f"{r.model:<10}{r.features:>11}{r.srcc:>8.3f}{r.srcc_std:>7.3f}{r.plcc:>8.3f}{r.krcc:>8.3f}"
                  f"{r.mae:>8.2f}{r.rmse:>8.2f}{r.r2:>8.3f}{r.fit_seconds:>12.2f}{r.fit_seconds * args.folds:>12.1f}"
                  f"{r.fit_cpu_seconds * args.folds:>12.1f}{loose_srcc}")
        print(f"{'mean':<10}{'':>11}{mean['srcc']:>8.3f}{'':>7}{mean['plcc']:>8.3f}{mean['krcc']:>8.3f}"
              f"{mean['mae']:>8.2f}{mean['rmse']:>8.2f}{mean['r2']:>8.3f}   (always predict the training mean)")
        _summary(report, families, args, wall, cold_per_image, warm_read, data, reference)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak_mb:.0f} MB")


def _summary(report, families, args, wall, cold_per_image, warm_read, data, reference) -> None:
    by_name = {r.model: r for r in report.results}
    sk = [by_name[f] for f in SKLEARN_FAMILIES if f in by_name]
    sk_fit = sum(r.fit_seconds * args.folds for r in sk)
    sk_cpu = sum(r.fit_cpu_seconds * args.folds for r in sk)
    print(f"\ncompare wall time (all {len(families)} families, features cached): {wall:.1f} s")
    print(f"scikit-learn families ({', '.join(r.model for r in sk)}) fit time over {args.folds} folds: "
          f"{sk_fit:.1f} s (aim < 60 s); CPU time {sk_cpu:.1f} s (this process, all threads; less moved by "
          f"other jobs' load than the wall clock)")
    after = reference_seconds()
    print(f"  per family over {args.folds} folds (wall / CPU): " + ", ".join(
        f"{r.model} {r.fit_seconds * args.folds:.1f} / {r.fit_cpu_seconds * args.folds:.1f} s" for r in sk))
    print(f"  load average now {os.getloadavg()[0]:.1f}; reference work before {reference:.2f} s, after {after:.2f} s; "
          f"scikit-learn total = {sk_fit / ((reference + after) / 2):.0f} x the reference work")
    naive = len(families) * len(data) * cold_per_image
    print(f"naive baseline, extracting {args.backbone} features afresh for every family: "
          f"~{naive:.0f} s of extraction alone vs {warm_read:.1f} s reading the cache "
          f"({naive / max(warm_read, 1e-9):.0f}x)")
    if "auto" in by_name and "ridge" in by_name:
        a, b = by_name["auto"], by_name["ridge"]
        print(f"auto vs ridge on {args.backbone}: SRCC {a.srcc:.3f} vs {b.srcc:.3f} ({a.srcc - b.srcc:+.3f}), "
              f"PLCC {a.plcc:.3f} vs {b.plcc:.3f} ({a.plcc - b.plcc:+.3f}), "
              f"MAE {a.mae:.2f} vs {b.mae:.2f} ({a.mae - b.mae:+.2f})")


if __name__ == "__main__":
    main()
