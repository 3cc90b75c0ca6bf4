"""Does ``auto``'s recipe generalise? Choose it on half of SAVOIAS's categories, report on the other half.

    .venv/bin/python bench/category_split_bench.py [--cache-dir DIR] [--weights-dir DIR]

Half A: Art, Interior Design, Scenes (720 photos); half B: Advertisement, Objects,
Suprematism (498). Candidates: four feature sets (efficientnet_lite0 pooled or
multilevel, alone or with NIMA's) x three models (RidgeCV, auto's ridge+SVR
average with SVR C=3 / share 0.5, and C=1 / share 0.7). Each candidate is scored
by 5-fold CV (content-keyed, seed 42) within A; the best on A is then reported
by 5-fold CV within B, next to B's own best. Last, models trained on all of A
are tested on all of B (categories never seen in training).
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
from pathlib import Path

import numpy as np
from compare_bench import SHARED, bench_settings, savoias  # bench/ is on the path when this script runs
from scipy.stats import pearsonr, spearmanr
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import VotingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from workbench.events import drain
from workbench.features import feature_matrix
from workbench.models.auto import RIDGE_ALPHAS
from workbench.training import kfold

HALF_A = ("Art", "Interior Design", "Scenes")


def ridge():
    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def average(C: float, share: float):
    def make():
        svr = TransformedTargetRegressor(make_pipeline(StandardScaler(), SVR(C=C, epsilon=0.1)),
                                         transformer=StandardScaler())
        return VotingRegressor([("ridge", ridge()), ("svr", svr)], weights=[1 - share, share])
    return make


MODELS = {"ridgecv": ridge, "auto C3 w.5": average(3.0, 0.5), "auto C1 w.7": average(1.0, 0.7)}


def cv(make, X, y, folds):
    srcc, plcc = [], []
    for tr, te in folds:
        pred = make().fit(X[tr], y[tr]).predict(X[te])
        srcc.append(spearmanr(y[te], pred)[0])
        plcc.append(pearsonr(y[te], pred)[0])
    return float(np.mean(srcc)), float(np.std(srcc)), float(np.mean(plcc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    args = parser.parse_args()
    settings = bench_settings(args.cache_dir, args.weights_dir)
    data = savoias(args.savoias)
    cats = np.array([r["category"] for r in csv.DictReader(open(args.savoias / "scores.csv", encoding="utf-8"))])
    keys = np.array(data.content_keys())
    y = data.scores
    ml = {b: drain(feature_matrix(data.paths, (b,), settings, view="multilevel")).X
          for b in ("efficientnet_lite0", "nima_mobilenet")}
    lite, nima = ml["efficientnet_lite0"], ml["nima_mobilenet"]
    feats = {"lite0 pooled": lite[:, -1280:], "nima+lite0 pooled": np.hstack([nima[:, -1024:], lite[:, -1280:]]),
             "lite0 multilevel": lite, "nima+lite0 multilevel": np.hstack([nima, lite])}
    a = np.isin(cats, HALF_A)
    results = {}
    for half, mask in (("A", a), ("B", ~a)):
        idx = np.flatnonzero(mask)
        folds = kfold(y[idx], folds=5, seed=42, keys=keys[idx])
        for fname, X in feats.items():
            for mname, make in MODELS.items():
                results[half, fname, mname] = r = cv(make, X[idx], y[idx], folds)
                print(f"{half} ({len(idx)})  {fname:24s} {mname:12s} SRCC {r[0]:.3f} ± {r[1]:.3f}  PLCC {r[2]:.3f}",
                      flush=True)
    best_a = max((k for k in results if k[0] == "A"), key=lambda k: results[k][0])
    best_b = max((k for k in results if k[0] == "B"), key=lambda k: results[k][0])
    print(f"\nchosen on A: {best_a[1]} + {best_a[2]} (A: {results[best_a][0]:.3f}); on B it scores "
          f"{results[('B',) + best_a[1:]][0]:.3f}; B's own best: {best_b[1]} + {best_b[2]} ({results[best_b][0]:.3f})")
    for fname in ("lite0 pooled", "nima+lite0 multilevel"):
        for mname in ("ridgecv", "auto C3 w.5"):
            pred = MODELS[mname]().fit(feats[fname][a], y[a]).predict(feats[fname][~a])
            print(f"trained on A, tested on B: {fname:24s} {mname:12s} SRCC {spearmanr(y[~a], pred)[0]:.3f}  "
                  f"PLCC {pearsonr(y[~a], pred)[0]:.3f}")


if __name__ == "__main__":
    main()
