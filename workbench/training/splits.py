"""Seeded splits stratified by score quantiles.

Stratifying on score bins keeps the rare very good and very bad photos in
every part, which matters on the small sets people label by hand. The same
seed gives the same split, and ``kfold`` gives every model in a comparison the
same folds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

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


def stratified_split(scores, *, val_fraction: float = 0.15, test_fraction: float = 0.15,
                     seed: int = 42) -> Split:
    """Train/val/test indices of ``scores`` [N], stratified by score quantiles, reproducible by ``seed``."""
    scores = np.asarray(scores, dtype=np.float64)
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


def kfold(scores, *, folds: int = 5, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, test) index pairs stratified by score quantiles; same seed, same folds."""
    scores = np.asarray(scores, dtype=np.float64)
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
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(n), bins)]
