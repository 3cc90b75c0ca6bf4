"""Would more labels help? Cross-validated SRCC at growing numbers of labelled photos.

The folds are compare's (content-keyed, stratified by score, same seed): each
model is judged on the whole held-out fold every time, and only the photos it
may learn from are cut down to ``n`` (drawn evenly across the score range, a
different draw per repeat). So a point at 25 labels says how a model trained on
25 of your photos ranks the photos it has not seen, and the band (one standard
deviation over repeats) says how much that depends on which 25.

The projection fits a straight line of SRCC against log2(labels) through the
last three points (least squares); its slope is what one doubling adds. Learning
curves flatten, so a line through the largest sizes is the honest near-term guess;
it is not extrapolated beyond one doubling.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np

from workbench.errors import BadInput
from workbench.events import NEVER_STOP, Finished, Notice, Progress, StopFlag
from workbench.models.registry import FitContext, get_family
from workbench.training.compare import _fit_fold, _input_key, cross_validation_folds
from workbench.training.data import LabelledSet
from workbench.training.splits import score_bins
from workbench.training.train import TrainingError, resolve_backbone

DEFAULT_SIZES = (10, 25, 50, 100, 200, 400, 800, 1600, 3200)
MIN_TRAIN = 5  # fewer photos than this cannot fit a meaningful model


@dataclass
class CurvePoint:
    n_labels: int
    srcc_mean: float
    srcc_std: float  # over repeats (each repeat: the mean over folds)


@dataclass
class LearningCurve:
    n_images: int
    model: str
    points: list[CurvePoint]
    projection: dict[str, Any]
    folds: int = 5
    repeats: int = 3
    features: str = "pooled"
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def label_sizes(n_train: int, sizes: Sequence[int] = DEFAULT_SIZES) -> list[int]:
    """The sizes below what a training fold holds, then the whole training fold ("all")."""
    return [n for n in sizes if MIN_TRAIN <= n < n_train] + [n_train]


def project(points: Sequence[CurvePoint]) -> dict[str, Any]:
    """What doubling the labels would add: slope of SRCC over log2(n) through the last three points."""
    if len(points) < 3:
        return {"per_doubling": None, "from_n": points[-1].n_labels if points else 0,
                "method": "too few points for a projection (label more photos)",
                "sentence": "Label a few more photos: a projection needs at least three points on the curve."}
    last = points[-3:]
    x = np.log2([p.n_labels for p in last])
    slope = float(np.polyfit(x, [p.srcc_mean for p in last], 1)[0])
    n = points[-1].n_labels
    if slope < 0.005:
        sentence = (f"The curve has flattened: doubling your labels (from {n} to {2 * n}) would add about "
                    f"{slope:+.3f} SRCC. More labels of the same kind are unlikely to help much; a stronger "
                    f"model or features may.")
    else:
        sentence = f"Doubling your labels (from {n} to {2 * n}) would add about {slope:+.2f} SRCC."
    return {"per_doubling": round(slope, 4), "from_n": n, "to_n": 2 * n,
            "expected_srcc": round(min(1.0, points[-1].srcc_mean + max(slope, 0.0)), 4),
            "method": "least-squares line of SRCC against log2(labels) through the last three points",
            "sentence": sentence}


def _draw(train_idx: np.ndarray, y: np.ndarray, keys: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of the training photos, drawn evenly from every score bin, returned in content-key order."""
    if n >= len(train_idx):
        chosen = train_idx
    else:
        bins = score_bins(y[train_idx], n_bins=max(1, min(5, n // 5)))
        chosen = []
        for b in np.unique(bins):
            members = train_idx[bins == b]
            take = int(round(n * len(members) / len(train_idx)))
            chosen.extend(rng.permutation(members)[:take])
        chosen = np.array(chosen, dtype=np.int64)
        if len(chosen) != n:  # rounding per bin: correct the total
            rest = np.setdiff1d(train_idx, chosen)
            chosen = np.concatenate([chosen, rng.permutation(rest)[:max(0, n - len(chosen))]])[:n]
    return chosen[np.argsort(keys[chosen], kind="stable")]


def learning_curve(families: Sequence[str], settings, *, backbone: str | None = None, folds: int | None = None,
                   seed: int | None = None, repeats: int = 3, sizes: Sequence[int] = DEFAULT_SIZES,
                   features: str | None = None, stop: StopFlag = NEVER_STOP, random_weights: bool = False,
                   data: LabelledSet | None = None) -> Iterator[Progress | Notice | Finished]:
    """One LearningCurve per family, ending with ``Finished([LearningCurve, ...])`` (see the module doc)."""
    from scipy.stats import spearmanr  # here, not at the top: the app's first page does not need scipy

    started = time.perf_counter()
    fams = [get_family(name) for name in families]
    if not fams:
        raise BadInput("choose at least one model family")
    if repeats < 1:
        raise BadInput("repeats must be at least 1")
    setup = yield from cross_validation_folds(fams, settings, backbone=backbone, folds=folds, seed=seed,
                                              features=features, grouped=True, stop=stop,
                                              random_weights=random_weights, data=data)
    if setup is None:
        yield Finished(None, stopped=True)
        return
    inputs, data, names, keys, groups = setup.inputs, setup.data, setup.names, setup.keys, setup.groups
    fold_indices, folds, seed = setup.fold_indices, setup.folds, setup.seed
    y = data.scores
    steps = label_sizes(min(len(tr) for tr, _ in fold_indices), sizes)
    total, done = len(fams) * ((len(steps) - 1) * repeats + 1) * folds, 0
    curves = []
    for fam in fams:
        key = _input_key(fam, resolve_backbone(fam, backbone, settings), settings, features)
        X_all, kept, _, _ = inputs[key]
        row_of = {str(p): i for i, p in enumerate(kept.paths)}
        X = X_all[[row_of[n] for n in names]]
        values = fam.resolve_params(None)
        context = FitContext(settings=settings, backbone=resolve_backbone(fam, backbone, settings),
                             random_weights=random_weights, score_min=settings.score_min,
                             score_max=settings.score_max)
        points = []
        for n in steps:
            per_repeat = []
            # the whole training fold is the same photos on every repeat: one repeat says it all
            for r in range(repeats if n < steps[-1] else 1):
                rng = np.random.default_rng([seed, n, r])
                scores = []
                for train_idx, test_idx in fold_indices:
                    if stop.is_set():
                        yield Finished(curves, stopped=True)
                        return
                    chosen = _draw(train_idx, y, keys, n, rng)
                    estimator = fam.make(values, seed=seed + r, context=replace(context, n_train=len(chosen)))
                    try:
                        _fit_fold(fam, estimator, X, y, chosen, seed + r, stop, keys, groups)
                    except (TrainingError, ValueError) as exc:  # e.g. a model that needs more images
                        yield Notice(f"{fam.name} at {n} labels: {exc}", level="warning")
                        scores = []
                        break
                    rho = spearmanr(y[test_idx], estimator.predict(X[test_idx]))[0]
                    scores.append(0.0 if np.isnan(rho) else float(rho))  # a constant prediction ranks nothing
                    done += 1
                    yield Progress(done, total, f"{fam.name}: {n} labels, repeat {r + 1}")
                if scores:
                    per_repeat.append(float(np.mean(scores)))
            if per_repeat:
                points.append(CurvePoint(n, float(np.mean(per_repeat)), float(np.std(per_repeat))))
        curve = LearningCurve(n_images=len(data), model=fam.name, points=points, projection=project(points),
                              folds=folds, repeats=repeats, features=key[2] if key[0] == "features" else "pixels",
                              seconds=time.perf_counter() - started)
        curves.append(curve)
        yield Notice(f"{fam.name}: {curve.projection['sentence']}")
    yield Finished(curves)
