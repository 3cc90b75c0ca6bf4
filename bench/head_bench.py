"""Which recipe lets the MLP heads beat ridge? Paired per fold, on SAVOIAS and on a 150-photo subset.

    .venv/bin/python bench/head_bench.py [--cache-dir DIR] [--weights-dir DIR] [--recipes a,b,...]
        [--view pooled] [--subset 150] [--subset-seeds 0,1,2] [--categories]

Every recipe sees compare's folds (5-fold, seed 42, content-keyed, near-duplicates grouped on
the same features) and is fitted the way compare fits it (torch heads early-stop on 15% of each
training fold, then refit on all of it). Printed per recipe: SRCC and PLCC mean ± standard
deviation over folds, and the per-fold SRCC difference to ridge (mean, min, max, folds won):
a recipe "beats ridge" only if it wins most folds, not by one lucky fold. ``--categories``
adds the held-out-categories check of bench/category_split_bench.py: trained on Art, Interior
Design, Scenes; tested on Advertisement, Objects, Suprematism.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from category_split_bench import HALF_A  # bench/ is on the path when this script runs
from compare_bench import SHARED, bench_settings, savoias
from scipy.stats import pearsonr, spearmanr

from workbench.events import drain
from workbench.features import feature_matrix
from workbench.models import get_family
from workbench.training.compare import _fit_fold
from workbench.training.splits import kfold, near_duplicate_groups

# recipe -> (family, params). "head" and "nima_head" are the families' defaults (what compare runs): ridge
# fixed plus a hidden path on the residual, its share chosen on validation, no margin.
RECIPES = {
    "ridge": ("ridge", {}),
    "head": ("head", {}),
    "nima_head": ("nima_head", {}),
    "head margin.05": ("head", {"start_margin": 0.05}),
    "head x3": ("head", {"members": 3}),
    "head x3 plcc": ("head", {"members": 3, "loss": "huber_plcc"}),
    "head lr1e-3": ("head", {"learning_rate": 1e-3}),
    "nima_head margin.05": ("nima_head", {"start_margin": 0.05}),
    "nima_head x3": ("nima_head", {"members": 3}),  # nima_head's default since round 4
    "nima_head x1": ("nima_head", {"members": 1}),  # its default before
}


def fit_predict(recipe: str, X, y, tr, te, keys, groups, seed: int):
    family, params = RECIPES[recipe]
    fam = get_family(family)
    est = fam.make(params, seed=seed)
    _fit_fold(fam, est, X, y, tr, seed, _never(), keys, groups)
    return est.predict(X[te])


def _tally(d: np.ndarray) -> str:
    """Folds won / tied (to 1e-9: the head fell back to ridge) / lost against ridge."""
    return f"won {int((d > 1e-9).sum())} tied {int((abs(d) <= 1e-9).sum())} lost {int((d < -1e-9).sum())} of {len(d)}"


def _never():
    from workbench.events import NEVER_STOP

    return NEVER_STOP


def run(recipes, X, y, keys, label: str, seed: int) -> dict:
    groups = near_duplicate_groups(X)
    folds = kfold(y, folds=5, seed=seed, keys=keys, groups=groups)
    per = {}
    for recipe in recipes:
        tick, cpu = time.perf_counter(), time.process_time()
        s, p = [], []
        for tr, te in folds:
            pred = fit_predict(recipe, X, y, tr, te, keys, groups, seed)
            s.append(spearmanr(y[te], pred)[0])
            p.append(pearsonr(y[te], pred)[0])
        per[recipe] = np.array(s)
        line = (f"{label:<10}{recipe:<28}SRCC {np.mean(s):.3f} ± {np.std(s):.3f}  PLCC {np.mean(p):.3f} "
                f"± {np.std(p):.3f}")
        if "ridge" in per and recipe != "ridge":
            d = per[recipe] - per["ridge"]
            line += f"  vs ridge {d.mean():+.4f} [{d.min():+.3f}, {d.max():+.3f}] {_tally(d)}"
        print(line + f"  ({time.perf_counter() - tick:.0f} s, CPU {time.process_time() - cpu:.0f} s)", flush=True)
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--view", default="pooled")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--subset", type=int, default=150, help="photos in the small-set check (0: skip it)")
    parser.add_argument("--subset-seeds", default="0", help="draws of the subset (comma-separated seeds); "
                        "the summary pools the per-fold differences of every draw")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=True, help="run on all photos")
    parser.add_argument("--categories", action="store_true", help="also train on half A, test on half B")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    recipes = [r for r in args.recipes.split(",") if r]
    if "ridge" not in recipes:
        recipes.insert(0, "ridge")
    settings = bench_settings(args.cache_dir, args.weights_dir)
    data = savoias(args.savoias)
    X = drain(feature_matrix(data.paths, (args.backbone,), settings, view=args.view)).X
    y, keys = data.scores, np.array(data.content_keys())
    print(f"SAVOIAS {len(y)} photos, {args.backbone} {args.view} {X.shape}, 5-fold seed {args.seed}, grouped")
    if args.full:
        run(recipes, X, y, keys, "all", args.seed)
    if args.subset:
        pooled = {}
        for draw in [int(d) for d in args.subset_seeds.split(",") if d]:
            pick = np.sort(np.random.default_rng(draw).choice(len(y), size=args.subset, replace=False))
            per = run(recipes, X[pick], y[pick], keys[pick], f"{args.subset}/{draw}", args.seed)
            for recipe, srcc in per.items():
                pooled.setdefault(recipe, []).extend(srcc)
        for recipe, srcc in pooled.items():
            d = np.array(srcc) - np.array(pooled["ridge"])
            print(f"{args.subset} pooled {recipe:<28}SRCC {np.mean(srcc):.3f}  vs ridge {d.mean():+.4f} ± "
                  f"{d.std():.4f} (s.d. over folds; s.e. {d.std() / np.sqrt(len(d)):.4f}) {_tally(d)}", flush=True)
    if args.categories:
        cats = np.array([r["category"] for r in csv.DictReader(open(args.savoias / "scores.csv", encoding="utf-8"))])
        a = np.isin(cats, HALF_A)
        tr, te = np.flatnonzero(a), np.flatnonzero(~a)
        for recipe in recipes:
            pred = fit_predict(recipe, X, y, tr, te, keys, None, args.seed)
            print(f"A -> B    {recipe:<28}SRCC {spearmanr(y[te], pred)[0]:.3f}  PLCC {pearsonr(y[te], pred)[0]:.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
