"""What to label next: the unlabelled photos that would teach the current model most.

Two signals on the cached backbone features (standardised):

* **disagreement** of a small committee: ``members`` ridge regressions, each
  fitted on a bootstrap resample of the labelled photos; the spread (std) of
  their predictions for a photo is how unsure the model is about it;
* **diversity**, k-center greedy: a photo far from everything already labelled
  or already suggested covers a part of the set nobody has looked at.

The queue is built greedily: each next photo maximises
``disagreement / max disagreement × distance / max distance``, where distance
is to the nearest labelled or already chosen photo, so twenty near-copies of
one uncertain scene are never suggested together. With fewer than
:data:`MIN_LABELS` labels there is no committee yet and the order is pure
k-center greedy (the spread of the set first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from workbench.errors import BadInput
from workbench.events import NEVER_STOP, Finished, StopFlag

MIN_LABELS = 5
DIMS = 16  # principal components the signals work in (bench/labelling_bench.py chose it on SAVOIAS)


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


def _min_sq_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    if len(centres) == 0:
        return np.full(len(X), np.inf)
    out = np.full(len(X), np.inf)
    x2 = (X ** 2).sum(1)
    for start in range(0, len(centres), 512):  # bounded memory for large sets
        c = centres[start:start + 512]
        d = x2[:, None] - 2 * X @ c.T + (c ** 2).sum(1)[None, :]
        out = np.minimum(out, d.min(axis=1))
    return np.maximum(out, 0.0)


def rank_for_labelling(X_labelled: np.ndarray, y: np.ndarray, X_pool: np.ndarray, n: int, *, members: int = 8,
                       seed: int = 0, dims: int | None = DIMS, committee_space: str = "reduced",
                       ) -> tuple[list[int], np.ndarray]:
    """Indices into ``X_pool`` to label next (best first) and the committee disagreement of every pool row.

    ``dims``: both signals work on the first ``dims`` principal components of
    all the photos, whitened (None: every feature, standardised); ``committee_space``
    "full" fits the committee on every feature instead.
    """
    if len(X_pool) == 0 or n <= 0:
        return [], np.zeros(len(X_pool))
    X_all = np.concatenate([X_labelled, X_pool]) if len(X_labelled) else X_pool
    mean, std = X_all.mean(0), X_all.std(0) + 1e-6
    full_L, full_P = (X_labelled - mean) / std, (X_pool - mean) / std
    L, P = full_L, full_P
    if dims is not None and dims < min(X_all.shape):  # principal components of the raw features, then whitened
        _, _, vt = np.linalg.svd(X_all - mean, full_matrices=False)
        basis = vt[:dims].T
        scale = ((X_all - mean) @ basis).std(0) + 1e-9
        L, P = ((X_labelled - mean) @ basis) / scale, ((X_pool - mean) @ basis) / scale
    if len(y) >= MIN_LABELS:
        cL, cP = (full_L, full_P) if committee_space == "full" else (L, P)
        spread = committee_disagreement(cL, np.asarray(y, float), cP, members=members, seed=seed)
        weight = spread / spread.max() if spread.max() > 0 else np.ones(len(P))
    else:
        spread, weight = np.zeros(len(P)), np.ones(len(P))
    if len(L):
        distance = _min_sq_distances(P, L)
    else:  # nothing labelled: start from the photo nearest the middle of the set
        distance = np.full(len(P), np.inf)
        distance[int(np.argmin(((P - P.mean(0)) ** 2).sum(1)))] = 1.0
        distance[np.isinf(distance)] = 0.0
    chosen: list[int] = []
    for _ in range(min(n, len(P))):
        finite = np.sqrt(distance)
        scale = finite.max() if finite.max() > 0 else 1.0
        gain = weight * (finite / scale)
        gain[chosen] = -1.0
        pick = int(np.argmax(gain))
        chosen.append(pick)
        distance = np.minimum(distance, _min_sq_distances(P, P[pick:pick + 1]))
        if not len(L) and len(chosen) == 1:
            distance = _min_sq_distances(P, P[chosen])
    return chosen, spread


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
    method = ("committee disagreement × k-center distance" if len(y) >= MIN_LABELS
              else f"k-center greedy only (fewer than {MIN_LABELS} labels: no committee yet)")
    items = [{"path": str(paths[pool_index[k]]), "filename": paths[pool_index[k]].name,
              "disagreement": round(float(spread[k]), 4), "rank": r + 1} for r, k in enumerate(order)]
    notes = [f"{Path(p).name}: {why}" for p, why in matrix.errors.items()]
    yield Finished(Suggestions(items, len(y), len(pool_index), name, method, notes))
