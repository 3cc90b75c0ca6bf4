"""Active-labelling strategies side by side on SAVOIAS (the exploration behind ``suggest``'s order).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/labelling_strategies_bench.py --cache-dir DIR \
        [--features best|lite0] [--seeds 5] [--strategies random,design,committee_kcenter,...]

Same protocol as ``labelling_bench.py --parts active`` (20% test set per seed,
batches of 10, RidgeCV on the labels, test SRCC), with every strategy on the
same seeds and splits. Strategies (all in the pool's standardised features):

* ``design``: :func:`workbench.labelling.suggest.rank_for_labelling` (greedy
  variance reduction, what ``suggest`` uses);
* ``committee_kcenter``: the previous ``suggest`` order, bootstrap-ridge
  disagreement x k-center distance in 16 whitened principal components;
* ``kcenter``: k-center greedy (coreset) in 16 whitened PCs;
* ``typiclust``: TypiClust (Hacohen et al. 2022): k-means into labelled+batch
  clusters, the most typical photo of each of the largest uncovered clusters;
* ``kmeans``: the photo nearest each uncovered k-means centre (Wu 2019's RD).
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import time
from pathlib import Path

import numpy as np
from labelling_bench import CHECKPOINTS, SHARED, load_savoias, ridge_srcc  # bench/ is on the path

from workbench.labelling.suggest import committee_disagreement, rank_for_labelling


def whitened_pcs(X: np.ndarray, dims: int = 16) -> np.ndarray:
    centred = X - X.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    Z = centred @ vt[:dims].T
    return Z / (Z.std(0) + 1e-9)


def sq_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A ** 2).sum(1)[:, None] - 2 * A @ B.T + (B ** 2).sum(1)[None], 0)


def kcenter(Z, labelled, b, weight=None):
    distance = sq_distances(Z, Z[labelled]).min(1) if labelled else None
    out: list[int] = []
    for _ in range(b):
        if distance is None:
            pick = int(np.argmin(((Z - Z.mean(0)) ** 2).sum(1)))
        else:
            gain = np.sqrt(distance) * (1.0 if weight is None else weight)
            gain[labelled + out] = -1
            pick = int(np.argmax(gain))
        out.append(pick)
        new = sq_distances(Z, Z[pick:pick + 1])[:, 0]
        distance = new if distance is None else np.minimum(distance, new)
    return out


def clusters(Z, labelled, b, rng):
    from sklearn.cluster import KMeans

    k = len(labelled) + b
    km = KMeans(k, n_init=1, random_state=int(rng.integers(1 << 30))).fit(Z)
    covered = set(km.labels_[labelled]) if labelled else set()
    sizes = np.bincount(km.labels_, minlength=k)
    taken = set(labelled)
    for c in sorted((c for c in range(k) if c not in covered), key=lambda c: -sizes[c])[:b]:
        members = np.array([i for i in np.where(km.labels_ == c)[0] if i not in taken])
        if len(members):
            yield c, members, km.cluster_centers_[c]


def s_design(ctx, labelled, y, b, rng, seed):
    rest = [i for i in range(len(ctx["X"])) if i not in set(labelled)]
    picks, _ = rank_for_labelling(ctx["X"][labelled], y, ctx["X"][rest], b, members=0)
    return [rest[i] for i in picks]


def s_committee_kcenter(ctx, labelled, y, b, rng, seed):
    Z = ctx["Z16"]
    weight = None
    if len(labelled) >= 5:
        spread = committee_disagreement(Z[labelled], y, Z, members=8, seed=seed)
        weight = spread / spread.max() if spread.max() > 0 else None
    return kcenter(Z, labelled, b, weight)


def s_kcenter(ctx, labelled, y, b, rng, seed):
    return kcenter(ctx["Z16"], labelled, b)


def s_typiclust(ctx, labelled, y, b, rng, seed, knn=20):
    Z, out = ctx["Z16"], []
    for _, members, _ in clusters(Z, labelled, b, rng):
        kk = min(knn, len(members) - 1)
        if kk < 1:
            out.append(int(members[0]))
            continue
        typicality = 1.0 / (np.sort(sq_distances(Z[members], Z[members]), 1)[:, 1:kk + 1].mean(1) + 1e-9)
        out.append(int(members[np.argmax(typicality)]))
    return out


def s_kmeans(ctx, labelled, y, b, rng, seed):
    Z = ctx["Z16"]
    return [int(m[np.argmin(((Z[m] - centre) ** 2).sum(1))]) for _, m, centre in clusters(Z, labelled, b, rng)]


STRATEGIES = {"design": s_design, "committee_kcenter": s_committee_kcenter, "kcenter": s_kcenter,
              "typiclust": s_typiclust, "kmeans": s_kmeans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--features", choices=("best", "lite0"), default="best")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="random," + ",".join(STRATEGIES))
    args = parser.parse_args()
    if not (args.savoias / "scores.csv").is_file():
        print(f"skipped: {args.savoias} is absent")
        return
    X, y, _ = load_savoias(args.savoias, args.cache_dir, args.features)
    names = args.strategies.split(",")
    result = {n: {k: [] for k in CHECKPOINTS} for n in names}
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(y))
        test, pool = order[: len(y) // 5], order[len(y) // 5:]
        ctx = {"X": X[pool], "Z16": whitened_pcs(X[pool])}
        for name in names:
            t = time.monotonic()
            if name == "random":
                for k in CHECKPOINTS:
                    result[name][k].append(ridge_srcc(X[pool[:k]], y[pool[:k]], X[test], y[test]))
                continue
            rng, labelled = np.random.default_rng(1000 + seed), []
            for k in CHECKPOINTS:
                while len(labelled) < k:
                    b = min(10, k - len(labelled))
                    new = STRATEGIES[name](ctx, labelled, y[pool[labelled]], b, rng, seed)
                    labelled += [i for i in new if i not in set(labelled)][:b]
                chosen = pool[labelled]
                result[name][k].append(ridge_srcc(X[chosen], y[chosen], X[test], y[test]))
            print(f"  seed {seed} {name}: @120 {result[name][120][-1]:.3f} ({time.monotonic() - t:.0f} s)", flush=True)
    print(f"\nTest SRCC of ridge, {args.features} features, mean ± std over {args.seeds} seeds:")
    print("| strategy | " + " | ".join(map(str, CHECKPOINTS)) + " |\n|" + " --- |" * (len(CHECKPOINTS) + 1))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{np.mean(result[name][k]):.3f} ± {np.std(result[name][k]):.3f}"
                                           for k in CHECKPOINTS) + " |")


if __name__ == "__main__":
    main()
