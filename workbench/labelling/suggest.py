"""What to label next: the unlabelled photos that would teach the current model most.

The order is a greedy **transductive experimental design** (V-optimal design) for a
ridge on the cached backbone features (standardised, first :data:`DIMS`
principal components): each next photo is the one whose label would most
reduce the model's predictive variance summed over every unlabelled photo,
given the photos already labelled and those already suggested. That one number
is uncertainty (the model knows little about the photo) times
representativeness (many pool photos resemble it), and diversity comes with
it: once a photo is suggested, its look-alikes lose most of their gain, so
twenty near-copies of one scene are never suggested together. It needs no
label values, so it works from the first photo (the cold start covers the
set's scenes, biggest first).

Each suggestion also carries the **disagreement** of a small committee
(``members`` bootstrap ridges on the labelled photos): how far their
predictions for it spread, in score units, shown next to it. On SAVOIAS, with
auto's features, the design did better at 120 labels than committee × k-center
distance (the previous order), k-center greedy, TypiClust and k-means centres;
on efficientnet_lite0 alone they were all within noise. Label-aware variants (components scaled by
their correlation with the labels, greedy sampling on predicted scores), a smaller noise and the design on
all features in Gram form did not beat it over 40 seeds (BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from workbench.errors import BadInput
from workbench.events import NEVER_STOP, Finished, StopFlag

MIN_LABELS = 5  # below this there is no committee (its spread is still reported as 0)
DIMS = 64  # principal components the design works in (bench/labelling_bench.py chose it on SAVOIAS)
NOISE = 0.3  # label noise relative to a photo's mean squared feature norm: the design's ridge penalty (bench chose it)
INTERCEPT = 3.0  # scale of the constant feature (× a photo's typical feature norm): a nearly free intercept


def committee_disagreement(X_labelled: np.ndarray, y: np.ndarray, X_pool: np.ndarray, *, members: int = 8,
                           alpha: float = 10.0, seed: int = 0) -> np.ndarray:
    """Std of ``members`` bootstrap ridge predictions for each row of ``X_pool`` (score units)."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(seed)
    n = len(y)
    predictions = np.empty((members, len(X_pool)))
    for m in range(members):
        take = rng.integers(0, n, n)
        predictions[m] = Ridge(alpha=alpha).fit(X_labelled[take], y[take]).predict(X_pool)
    return predictions.std(axis=0)


def principal_components(X_labelled: np.ndarray, X_pool: np.ndarray, dims: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Both sets standardised over all photos and projected on their first ``dims`` principal components,
    not whitened: a direction keeps its share of the variance, as it has for a ridge on the features."""
    X_all = np.concatenate([X_labelled, X_pool]) if len(X_labelled) else X_pool
    mean, std = X_all.mean(0), X_all.std(0) + 1e-6
    L, P = (X_labelled - mean) / std, (X_pool - mean) / std
    if dims is not None and dims < min(X_all.shape):
        A = np.concatenate([L, P])
        if len(A) < A.shape[1]:  # fewer photos than features: the photos' Gram matrix is the smaller one
            values, vectors = np.linalg.eigh(A @ A.T)
            basis = A.T @ vectors[:, ::-1][:, :dims] / np.sqrt(np.maximum(values[::-1][:dims], 1e-12))
        else:
            basis = np.linalg.eigh(A.T @ A)[1][:, ::-1][:, :dims]
        L, P = L @ basis, P @ basis
    return L, P


def variance_reduction_order(L: np.ndarray, P: np.ndarray, n: int, noise: float = NOISE) -> list[int]:
    """Greedy transductive experimental design (Yu, Bi & Tresp 2006): each next photo is the one whose
    label would most reduce a Bayesian ridge's predictive variance summed over the whole pool, given the
    labelled photos and the photos already chosen.

    The gain of photo x is ``sum_j cov(x_j, x)² / (noise + var(x))``: large for a photo the model is unsure
    about (``var``) that resembles many pool photos (``cov``), so it weighs uncertainty by
    representativeness, and once a photo is chosen its look-alikes lose their gain (diversity). No labels
    are needed: a linear model's uncertainty depends on where the labels are, not on their values.
    """
    typical = float((P ** 2).sum(1).mean()) + 1e-12
    lam = noise * typical
    # a constant feature with a wide prior stands for the ridge's unpenalised intercept: without it the
    # design takes the mean photo as known and chases outliers
    L, P = (np.c_[Z, np.full(len(Z), INTERCEPT * np.sqrt(typical))] for Z in (L, P))
    sigma = np.eye(P.shape[1])  # posterior covariance of the weights; the prior is the identity

    def condition(x: np.ndarray) -> None:
        nonlocal sigma
        sx = sigma @ x
        sigma = sigma - np.outer(sx, sx) / (lam + x @ sx)

    for x in L:
        condition(x)
    pool_scatter = P.T @ P
    chosen: list[int] = []
    taken = np.zeros(len(P), bool)
    for _ in range(min(n, len(P))):
        A = P @ sigma
        variance = (A * P).sum(1)
        gain = ((A @ pool_scatter) * A).sum(1) / (lam + variance)
        gain[taken] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        taken[pick] = True
        condition(P[pick])
    return chosen


def rank_for_labelling(X_labelled: np.ndarray, y: np.ndarray, X_pool: np.ndarray, n: int, *, members: int = 8,
                       seed: int = 0, dims: int | None = DIMS, noise: float = NOISE,
                       ) -> tuple[list[int], np.ndarray]:
    """Indices into ``X_pool`` to label next (best first) and the committee disagreement of every pool row
    (zeros with fewer than :data:`MIN_LABELS` labels or ``members`` 0: it is shown, the order does not use it).

    The order is :func:`variance_reduction_order` on the first ``dims`` principal components of the
    standardised features (None: every feature).
    """
    if len(X_pool) == 0 or n <= 0:
        return [], np.zeros(len(X_pool))
    L, P = principal_components(X_labelled, X_pool, dims)
    order = variance_reduction_order(L, P, n, noise)
    if members > 0 and len(y) >= MIN_LABELS:
        alpha = noise * float((P ** 2).sum(1).mean())
        spread = committee_disagreement(L, np.asarray(y, float), P, members=members, alpha=alpha, seed=seed)
    else:
        spread = np.zeros(len(P))
    return order, spread


@dataclass
class Suggestions:
    """``items``: [{"path", "filename", "disagreement", "rank"}] best first; ``n_labelled``, ``n_pool``, ``backbone``."""

    items: list[dict]
    n_labelled: int
    n_pool: int
    backbone: str
    method: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"n_labelled": self.n_labelled, "n_pool": self.n_pool, "backbone": self.backbone,
                "method": self.method, "suggestions": self.items, "notes": self.notes}


def suggest(settings, n: int = 20, *, folder: str | Path | None = None, backbone: str | None = None,
            members: int = 8, seed: int | None = None, stop: StopFlag = NEVER_STOP) -> Iterator:
    """Events of the feature extraction, then ``Finished(Suggestions)``: the photos to label next.

    The pool is the unlabelled photos of ``data/``, or the images of ``folder``
    (not recursive); the committee learns from the labelled photos of ``data/``.
    """
    from workbench.dataset import ScoreStore
    from workbench.events import relay
    from workbench.features import feature_matrix
    from workbench.images import is_supported

    if n < 1:
        raise BadInput("--n must be at least 1")
    store = ScoreStore.from_settings(settings)
    entries = store.entries()
    labelled = [(store.data_dir / e.filename, e.score) for e in entries if e.score is not None]
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise BadInput(f"{folder} is not a folder")
        pool = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                      and is_supported(p.name))
    else:
        pool = [store.data_dir / e.filename for e in entries if e.score is None]
    name = backbone or settings.default_backbone
    paths = [p for p, _ in labelled] + pool
    if not pool:
        yield Finished(Suggestions([], len(labelled), 0, name, "nothing to label"))
        return
    finished = yield from relay(feature_matrix(paths, [name], settings, stop=stop))
    if finished.stopped or finished.result is None:
        yield Finished(None, stopped=True)
        return
    matrix = finished.result
    row = {int(i): r for r, i in enumerate(matrix.keep)}
    lab_rows = [row[i] for i in range(len(labelled)) if i in row]
    y = np.array([labelled[i][1] for i in range(len(labelled)) if i in row], dtype=float)
    pool_index = [i for i in range(len(labelled), len(paths)) if i in row]
    X = matrix.X.astype(np.float64)
    order, spread = rank_for_labelling(X[lab_rows], y, X[[row[i] for i in pool_index]], n, members=members,
                                       seed=settings.seed if seed is None else seed)
    method = "variance reduction (ridge uncertainty × representativeness, with diversity)"
    items = [{"path": str(paths[pool_index[k]]), "filename": paths[pool_index[k]].name,
              "disagreement": round(float(spread[k]), 4), "rank": r + 1} for r, k in enumerate(order)]
    notes = [f"{Path(p).name}: {why}" for p, why in matrix.errors.items()]
    yield Finished(Suggestions(items, len(y), len(pool_index), name, method, notes))
