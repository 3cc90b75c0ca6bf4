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
it is not extrapolated beyond one doubling. Three noisy points can tilt a line a
long way, so the slope carries a standard error: the larger of what the points'
spread over draws implies for the slope and what their scatter about the line
says. The sentence gives the slope with a range of two standard errors, and says
the curve is too noisy to project when that range runs from a loss to a real gain.
Sizes closer than 1.25x apart are not both measured: two nearly equal sizes say
nothing about doubling but pull the line as hard as any other two points.
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
    draws: int = 1  # repeats measured; the whole training fold ("all") is one draw, so its std of 0 is no certainty


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


MIN_STEP = 1.25  # each measured size is at least this much larger than the one before


def label_sizes(n_train: int, sizes: Sequence[int] = DEFAULT_SIZES) -> list[int]:
    """The sizes below what a training fold holds, then the whole training fold ("all"); a size less
    than MIN_STEP times the one before is dropped (for "all", the size before it gives way)."""
    steps: list[int] = []
    for n in sorted({n for n in sizes if MIN_TRAIN <= n < n_train}):
        if not steps or n >= MIN_STEP * steps[-1]:
            steps.append(n)
    if steps and n_train < MIN_STEP * steps[-1]:
        steps.pop()
    return steps + [n_train]


def _slope_and_error(points: Sequence[CurvePoint]) -> tuple[float, float]:
    """Least-squares slope of SRCC over log2(labels) and its standard error (see the module doc)."""
    x = np.log2([p.n_labels for p in points])
    y = np.array([p.srcc_mean for p in points])
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean()) / sxx)
    # spread over draws: "all" is one draw (std 0), yet another set of that many photos would vary about as
    # much as its neighbours, so a point without a spread gets the typical spread of the others
    spreads = np.array([p.srcc_std for p in points])
    drawn = spreads[spreads > 0]
    typical = float(np.sqrt(np.mean(drawn ** 2))) if len(drawn) else 0.0
    spreads = np.where(spreads > 0, spreads, typical)
    from_draws = float(np.sqrt(np.sum((dx / sxx) ** 2 * spreads ** 2)))
    residuals = y - (y.mean() + slope * dx)
    from_scatter = float(np.sqrt(residuals @ residuals / max(1, len(points) - 2) / sxx))
    return slope, max(from_draws, from_scatter)


def all_photos_note(n_train: int, n_images: int, folds: int) -> str:
    """What the curve's last point ("all photos") is: each fold's model learns from the other folds only,
    so with 63 labelled photos and 5 folds "all" is 50 photos, not 63."""
    return f"all photos = {n_train} training photos per fold ({n_images} labelled, {folds} folds)"


def project(points: Sequence[CurvePoint], n_images: int | None = None, folds: int | None = None) -> dict[str, Any]:
    """What doubling the labels would add: slope of SRCC over log2(n) through the last three points,
    with its standard error and a range of two standard errors (``per_doubling_low`` .. ``_high``).
    With ``n_images`` and ``folds`` the sentence says what its sizes count: training photos per fold."""
    if len(points) < 3:
        return {"per_doubling": None, "from_n": points[-1].n_labels if points else 0,
                "method": "too few points for a projection (label more photos)",
                "sentence": "Label a few more photos: a projection needs at least three points on the curve."}
    slope, error = _slope_and_error(points[-3:])
    low, high = slope - 2 * error, slope + 2 * error
    n = points[-1].n_labels
    doubling = f"doubling your labels (from {n} to {2 * n})"
    if n_images and folds:  # the sizes are training photos per fold, fewer than the photos labelled
        doubling = (f"doubling the photos each model learns from (from {n} to {2 * n} training photos per fold; "
                    f"{n_images} labelled at {folds} folds give {n}: about {2 * n_images} labelled would give {2 * n})")
    span = f"anywhere from {low:+.2f} to {high:+.2f}"
    # One rule decides both the "noisy" flag and the wording: the range runs from a loss to a real gain,
    # so the points cannot tell nothing from something. A range that stays above zero is given as it is.
    noisy = low < 0 and high > 0.05
    if noisy:
        sentence = (f"The curve is too noisy to project: {doubling} could add {span} SRCC (its three largest "
                    f"sizes give {slope:+.2f}, but their spread over draws is as large as that). More repeats "
                    f"would narrow the range; labelling more photos is the surer test.")
    elif slope < 0.005:
        sentence = (f"The curve has flattened: {doubling} would add about {slope:+.3f} SRCC "
                    f"({span}). More labels of the same kind are unlikely to help much; a stronger "
                    f"model or features may.")
    elif error > 0:
        sentence = f"{doubling[0].upper()}{doubling[1:]} would add about {slope:+.2f} SRCC ({span})."
    else:
        sentence = f"{doubling[0].upper()}{doubling[1:]} would add about {slope:+.2f} SRCC."
    return {"per_doubling": round(slope, 4), "from_n": n, "to_n": 2 * n,
            "expected_srcc": round(min(1.0, points[-1].srcc_mean + max(slope, 0.0)), 4),
            "per_doubling_se": round(error, 4), "per_doubling_low": round(low, 4),
            "per_doubling_high": round(high, 4), "noisy": bool(noisy),
            "method": "least-squares line of SRCC against log2(labels) through the last three points; "
                      "range: two standard errors of its slope",
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
                points.append(CurvePoint(n, float(np.mean(per_repeat)), float(np.std(per_repeat)), len(per_repeat)))
        curve = LearningCurve(n_images=len(data), model=fam.name, points=points,
                              projection=project(points, len(data), folds),
                              folds=folds, repeats=repeats, features=key[2] if key[0] == "features" else "pixels",
                              seconds=time.perf_counter() - started)
        curves.append(curve)
        yield Notice(f"{fam.name}: {curve.projection['sentence']}")
    yield Finished(curves)
