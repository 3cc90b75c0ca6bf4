"""Active-labelling strategies side by side on SAVOIAS (the exploration behind ``suggest``'s order).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python bench/labelling_strategies_bench.py --cache-dir DIR \
        [--features best|lite0] [--seeds 5] [--strategies random,design,committee_kcenter,...]

Same protocol as ``labelling_bench.py --parts active`` (20% test set per seed,
batches of 10, RidgeCV on the labels, test SRCC), with every strategy on the
same seeds and splits. Strategies (all in the pool's standardised features):

* ``design``: the order of :func:`workbench.labelling.suggest.rank_for_labelling` (greedy
  variance reduction, what ``suggest`` uses), with the 64 principal components computed once per
  seed (the pool's photos are the same set at every batch, so they are the same components);
* ``committee_kcenter``: the previous ``suggest`` order, bootstrap-ridge
  disagreement x k-center distance in 16 whitened principal components;
* ``kcenter``: k-center greedy (coreset) in 16 whitened PCs;
* ``typiclust``: TypiClust (Hacohen et al. 2022): k-means into labelled+batch
  clusters, the most typical photo of each of the largest uncovered clusters;
* ``kmeans``: the photo nearest each uncovered k-means centre (Wu 2019's RD).

Second round (label-aware or re-tuned variants of the design, 64 PCs computed once per seed):

* ``design_noise01``: the design with ``noise`` 0.1 instead of 0.3;
* ``relevance``: once 20 photos are labelled, each principal component is scaled by
  ``sqrt(0.1 + r²)`` (r: its correlation with the labels so far) before the design, so variance is
  reduced mostly along directions that predict the score; ``relevance_noise01`` with ``noise`` 0.1;
* ``igs``: improved greedy sampling (Wu, Lin & Huang 2019): after 20 design picks, the photo that
  maximises min over labelled photos of (feature distance × |predicted score − label|), predictions
  by the evaluation ridge; ``gsy``: the output distance alone;
* ``design_ynov``: after 20 labels, the design gain × the distance of the photo's predicted score to
  the nearest labelled score (favours scores the labels have not covered).

``--first-seed`` starts the seeds elsewhere (a check on seeds the variants were not chosen on).
``--time-pool N`` times ``suggest``'s ranking (:func:`rank_for_labelling`, 20 suggestions with the committee,
100 labelled photos) on a pool of N photos made of the SAVOIAS features repeated with a little noise.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import time
from pathlib import Path

import numpy as np
from labelling_bench import CHECKPOINTS, SHARED, load_savoias, ridge_srcc  # bench/ is on the path

from workbench.labelling.suggest import (
    INTERCEPT,
    NOISE,
    committee_disagreement,
    principal_components,
    variance_reduction_order,
)

WARM = 20  # labels before a label-aware variant starts using the labels


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


def ridge_predict(X_labelled, y, X_pool):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11))).fit(X_labelled, y).predict(X_pool)


def rest_of(ctx, labelled):
    taken = set(labelled)
    return [i for i in range(len(ctx["X"])) if i not in taken]


def design(noise=NOISE, relevance=False):
    def pick(ctx, labelled, y, b, rng, seed):
        Z, rest = ctx["Z64"], rest_of(ctx, labelled)
        L, P = Z[labelled], Z[rest]
        if relevance and len(labelled) >= WARM:
            Lc, yc = L - L.mean(0), y - y.mean()
            r = (Lc * yc[:, None]).sum(0) / (np.sqrt((Lc ** 2).sum(0) * (yc ** 2).sum()) + 1e-12)
            L, P = L * np.sqrt(0.1 + r ** 2), P * np.sqrt(0.1 + r ** 2)
        return [rest[i] for i in variance_reduction_order(L, P, b, noise)]
    return pick


def greedy_sampling(use_features=True):
    def pick(ctx, labelled, y, b, rng, seed):
        if len(labelled) < WARM:
            return design()(ctx, labelled, y, b, rng, seed)
        Z, rest = ctx["Z64"], rest_of(ctx, labelled)
        predicted = ridge_predict(ctx["X"][labelled], y, ctx["X"][rest])
        anchors, values, out = list(Z[labelled]), list(y), []
        for _ in range(b):
            A = np.array(anchors)
            dx = np.sqrt(sq_distances(Z[rest], A)) if use_features else 1.0
            score = (dx * np.abs(predicted[:, None] - np.array(values)[None])).min(1)
            score[out] = -1
            out.append(int(np.argmax(score)))
            anchors.append(Z[rest[out[-1]]])
            values.append(predicted[out[-1]])
        return [rest[i] for i in out]
    return pick


def design_gains(L, P, noise=NOISE):
    """The design's gain for every row of P (the first step of variance_reduction_order)."""
    typical = float((P ** 2).sum(1).mean()) + 1e-12
    lam = noise * typical
    L, P = (np.c_[Z, np.full(len(Z), INTERCEPT * np.sqrt(typical))] for Z in (L, P))
    A = P @ np.linalg.inv(np.eye(P.shape[1]) + L.T @ L / lam)
    return ((A @ (P.T @ P)) * A).sum(1) / (lam + (A * P).sum(1))


def s_design_ynov(ctx, labelled, y, b, rng, seed):
    if len(labelled) < WARM:
        return design()(ctx, labelled, y, b, rng, seed)
    Z, rest = ctx["Z64"], rest_of(ctx, labelled)
    predicted = ridge_predict(ctx["X"][labelled], y, ctx["X"][rest])
    values, out = list(y), []
    for _ in range(b):
        novelty = np.abs(predicted[:, None] - np.array(values)[None]).min(1) + 1e-3
        score = design_gains(Z[labelled + [rest[i] for i in out]], Z[rest]) * novelty
        score[out] = -np.inf
        out.append(int(np.argmax(score)))
        values.append(predicted[out[-1]])
    return [rest[i] for i in out]


STRATEGIES = {"design": design(), "committee_kcenter": s_committee_kcenter, "kcenter": s_kcenter,
              "typiclust": s_typiclust, "kmeans": s_kmeans, "design_noise01": design(0.1),
              "relevance": design(relevance=True), "relevance_noise01": design(0.1, relevance=True),
              "igs": greedy_sampling(), "gsy": greedy_sampling(False), "design_ynov": s_design_ynov}


def time_ranking(X, y, n_pool: int, repeats: int = 3) -> None:
    from workbench.labelling.suggest import rank_for_labelling

    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(y), n_pool + 100)
    big = X[rows] + 0.01 * X.std(0) * rng.normal(size=(len(rows), X.shape[1]))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        rank_for_labelling(big[:100], y[rows[:100]], big[100:], 20)
        times.append(time.perf_counter() - t)
    print(f"rank_for_labelling: {n_pool} pool photos, {X.shape[1]}-d features, 100 labelled, 20 suggestions: "
          f"median {np.median(times):.2f} s over {repeats} (min {min(times):.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--features", choices=("best", "lite0"), default="best")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--time-pool", type=int, default=0, help="only time suggest's ranking on a pool of this many photos")
    parser.add_argument("--strategies", default="random," + ",".join(STRATEGIES))
    args = parser.parse_args()
    if not (args.savoias / "scores.csv").is_file():
        print(f"skipped: {args.savoias} is absent")
        return
    X, y, _ = load_savoias(args.savoias, args.cache_dir, args.features)
    if args.time_pool:
        time_ranking(X, y, args.time_pool)
        return
    names = args.strategies.split(",")
    result = {n: {k: [] for k in CHECKPOINTS} for n in names}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(y))
        test, pool = order[: len(y) // 5], order[len(y) // 5:]
        ctx = {"X": X[pool], "Z16": whitened_pcs(X[pool]), "Z64": principal_components(X[pool][:0], X[pool], 64)[1]}
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
    print(f"\nTest SRCC of ridge, {args.features} features, mean ± std over seeds {seeds.start}-{seeds.stop - 1}:")
    print("| strategy | " + " | ".join(map(str, CHECKPOINTS)) + " |\n|" + " --- |" * (len(CHECKPOINTS) + 1))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{np.mean(result[name][k]):.3f} ± {np.std(result[name][k]):.3f}"
                                           for k in CHECKPOINTS) + " |")
    if "random" in names:
        goal = np.array(result["random"][200])
        print(f"\nmedian [quartiles] at 120 labels, paired difference to random at 120, and per seed the first count "
              f"reaching that seed's random@200 (median random@200 = {np.median(goal):.3f}):")
        q = lambda v: f"{np.median(v):.3f} [{np.percentile(v, 25):.3f}, {np.percentile(v, 75):.3f}]"  # noqa: E731
        for name in names:
            at = {k: np.array(result[name][k]) for k in CHECKPOINTS}
            reach = [next((k for k in CHECKPOINTS if at[k][s] >= goal[s]), None) for s in range(len(goal))]
            versus = ""
            if "design" in names and name not in ("design", "random"):
                from scipy.stats import wilcoxon

                diff = at[120] - np.array(result["design"][120])
                versus = f"vs design {np.median(diff):+.3f} (mean {diff.mean():+.3f}, Wilcoxon p {wilcoxon(diff).pvalue:.2f}) | "
            print(f"| {name} | {q(at[120])} | {q(at[120] - np.array(result['random'][120]))} | {versus}"
                  f"{sum(r is not None and r <= 120 for r in reach)}/{len(reach)} within 120 | "
                  + ", ".join(str(r) if r else ">200" for r in reach) + " |")


if __name__ == "__main__":
    main()
