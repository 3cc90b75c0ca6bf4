"""Seeded splits stratified by score quantiles.

Stratifying on score bins keeps the rare very good and very bad photos in
every part, which matters on the small sets people label by hand. The same
seed gives the same split, and ``kfold`` gives every model in a comparison the
same folds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.errors import BadInput

MIN_IMAGES = 10


class TooFewImages(BadInput):
    """Not enough labelled images to split; the message says how many are needed."""


@dataclass(frozen=True)
class Split:
    """Indices into the labelled list: ``train`` fits, ``val`` steers (early stopping), ``test`` judges."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def check_enough(n: int, minimum: int = MIN_IMAGES) -> None:
    if n < minimum:
        raise TooFewImages(
            f"only {n} labelled image{'s' if n != 1 else ''}: training needs at least {minimum} "
            f"(some to learn from, some held out to measure the model). Label more photos in the data tab.")


def score_bins(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bin of every score (0..n_bins-1); ties and tiny sets shrink the bin count."""
    scores = np.asarray(scores, dtype=np.float64)
    n_bins = max(1, min(n_bins, len(scores)))
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, scores, side="right")


def _stratified_take(bins: np.ndarray, fraction: float, rng: np.random.Generator,
                     pool: np.ndarray) -> np.ndarray:
    """About ``fraction`` of ``pool`` drawn evenly from every bin (at least one image overall)."""
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen = []
    want = fraction * len(pool)
    for b in np.unique(bins[pool]):
        members = pool[bins[pool] == b]
        rng.shuffle(members)
        chosen.extend(members[: int(round(fraction * len(members)))])
    chosen = np.array(sorted(chosen), dtype=np.int64)
    # rounding per bin can drift; correct the total towards the target
    target = max(1, int(round(want)))
    if len(chosen) > target:
        chosen = np.sort(rng.choice(chosen, size=target, replace=False))
    elif len(chosen) < target:
        rest = np.setdiff1d(pool, chosen)
        chosen = np.sort(np.concatenate([chosen, rng.choice(rest, size=target - len(chosen), replace=False)]))
    return chosen


def canonical_order(keys, n: int) -> np.ndarray:
    """Positions [n] sorted by ``keys`` (identity without keys): the order splits are drawn in."""
    if keys is None:
        return np.arange(n)
    keys = [str(k) for k in keys]
    if len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} scores")
    return np.array(sorted(range(n), key=lambda i: (keys[i], i)), dtype=np.int64)


def stratified_split(scores, *, val_fraction: float = 0.15, test_fraction: float = 0.15,
                     seed: int = 42, keys=None, groups=None) -> Split:
    """Train/val/test indices of ``scores`` [N], stratified by score quantiles, reproducible by ``seed``.

    With ``keys`` [N] (content hashes) the split does not depend on the order of ``scores``;
    with ``groups`` [N] every near-duplicate joins the part of its group's first photo (in key order).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if groups is not None:
        split = stratified_split(scores, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                                 keys=keys)
        part_of = np.empty(len(scores), dtype=np.int64)
        for code, part in enumerate((split.train, split.val, split.test)):
            part_of[part] = code
        groups = np.asarray(groups)
        leader: dict[int, int] = {}
        for i in canonical_order(keys, len(scores)):
            leader.setdefault(int(groups[i]), int(part_of[i]))
        part_of = np.array([leader[int(g)] for g in groups])
        return Split(*(np.flatnonzero(part_of == code) for code in range(3)))
    if keys is not None:
        order = canonical_order(keys, len(scores))
        inner = stratified_split(scores[order], val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        return Split(*(np.sort(order[part]) for part in (inner.train, inner.val, inner.test)))
    n = len(scores)
    check_enough(n)
    rng = np.random.default_rng(seed)
    bins = score_bins(scores, n_bins=max(2, min(10, n // 10)))
    everything = np.arange(n)
    test = _stratified_take(bins, test_fraction, rng, everything)
    rest = np.setdiff1d(everything, test)
    val = _stratified_take(bins, val_fraction / max(1e-9, 1 - test_fraction), rng, rest)
    train = np.setdiff1d(rest, val)
    return Split(train=train, val=val, test=test)


# Two photos are near-duplicates (a burst, the same photo resized, re-encoded or lightly cropped) when
# the cosine similarity of their mean-centred features is at least this. Measured with
# efficientnet_lite0 pooled features: on SAVOIAS (1,218 photos) the median nearest-neighbour
# similarity is 0.42, distinct photos' 99th percentile 0.73 and only 2 exceed 0.85 (20 photos have a
# partner at 1.00: the same image twice); copies of SAVOIAS photos score 0.99 re-encoded at JPEG
# quality 70, 0.89-0.98 resized to half, 0.75-0.93 with 5% cropped off each side.
DUPLICATE_COSINE = 0.85
# Groups are always found on that feature set, whatever a family reads itself: every family in a
# comparison, and a run of any family, then sees the same groups and folds, at the calibrated threshold.
GROUPING_BACKBONE, GROUPING_VIEW = "efficientnet_lite0", "pooled"


def near_duplicate_groups(features, threshold: float = DUPLICATE_COSINE) -> np.ndarray:
    """Group id [N] per photo: photos linked by a chain of near-duplicate pairs share one."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    X = np.asarray(features, dtype=np.float64)
    X = X - X.mean(axis=0)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    rows, cols = [], []
    for start in range(0, len(X), 1024):  # blocks keep memory at 1024 x N
        sim = X[start:start + 1024] @ X.T
        r, c = np.nonzero(sim >= threshold)
        rows.append(r + start)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(X), len(X)))
    return connected_components(graph, directed=False)[1]


def _by_first_appearance(groups: np.ndarray) -> np.ndarray:
    """Group ids renumbered 0, 1, ... in order of first appearance: the numbers then follow the
    (content) order too, not the listing order the grouping happened to see."""
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse]


def group_summary(groups) -> dict:
    """{"groups": distinct groups, "photos_in_shared_groups": photos that share theirs, "merged": N - groups}."""
    groups = np.asarray(groups)
    counts = np.bincount(groups)
    return {"groups": int(len(counts)), "photos_in_shared_groups": int(counts[counts > 1].sum()),
            "merged": int(len(groups) - len(counts))}


def kfold(scores, *, folds: int = 5, seed: int = 42, keys=None, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, test) index pairs stratified by score quantiles; same seed, same folds.

    With ``keys`` [N] (content hashes) the folds do not depend on the order of ``scores``;
    with ``groups`` [N] (``near_duplicate_groups``) a group never straddles two folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # not at app start

    scores = np.asarray(scores, dtype=np.float64)
    if keys is not None:
        order = canonical_order(keys, len(scores))
        inner = kfold(scores[order], folds=folds, seed=seed,
                      groups=None if groups is None else _by_first_appearance(np.asarray(groups)[order]))
        return [(np.sort(order[tr]), np.sort(order[te])) for tr, te in inner]
    n = len(scores)
    check_enough(n)
    if folds < 2:
        raise TooFewImages(f"cross-validation needs at least 2 folds, got {folds}")
    if folds > n // 2:
        raise TooFewImages(f"{folds} folds need at least {2 * folds} labelled images, there are {n}")
    bins = score_bins(scores, n_bins=max(2, min(10, n // (2 * folds))))
    # a bin smaller than the fold count cannot be spread: merge it into its neighbour
    counts = np.bincount(bins)
    while len(counts) > 1 and counts.min() < folds:
        small = int(np.argmin(counts))
        bins[bins == small] = small - 1 if small > 0 else small + 1
        _, bins = np.unique(bins, return_inverse=True)
        counts = np.bincount(bins)
    if groups is not None and len(np.unique(groups)) < n:
        if len(np.unique(groups)) < folds:
            raise TooFewImages(f"{folds} folds need at least {folds} distinct photos; near-duplicates leave "
                               f"{len(np.unique(groups))}")
        grouped = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [(np.sort(tr), np.sort(te)) for tr, te in grouped.split(np.zeros(n), bins, groups)]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(n), bins)]
