"""Metrics shown everywhere a model is judged.

Correlations (SRCC, PLCC, KRCC) say whether the model ranks photos the way the
person does; MAE/RMSE/R² whether its numbers are right; ``accuracy`` whether
it puts photos on the right side of the good/bad threshold (by default the
middle of the score range). ``accuracy`` alone flatters: when most held-out
photos are on one side, a constant guess of that side is right as often, so
``accuracy_baseline`` (that constant's accuracy on the same photos) and
``good_share`` (the share at or above the threshold, which says the side) go
everywhere ``accuracy`` is shown.
"""
from __future__ import annotations

import math

import numpy as np

METRIC_NAMES = ("srcc", "plcc", "krcc", "mae", "rmse", "r2", "accuracy")
# Figures of the held-out photos, not of the model: read beside ``accuracy``, never ranked by.
CONTEXT_NAMES = ("accuracy_baseline", "good_share")
# Which direction is better, for leaderboards and ``RunStore.best``.
HIGHER_IS_BETTER = {"srcc": True, "plcc": True, "krcc": True, "mae": False, "rmse": False, "r2": True,
                    "accuracy": True}
# Runs equal on the chosen metric to this many decimals (the tables show three) are a tie, settled by
# these in turn: on a few dozen held-out photos SRCC ties often (three runs at exactly 0.200 on 10).
RANK_DECIMALS = 4
TIE_BREAKERS = ("plcc", "mae")


FEW_HELD_OUT = 30  # below this many held-out photos a single run's SRCC is too noisy to rank runs by


def srcc_uncertainty(n: int) -> float:
    """About one standard error of an SRCC measured on ``n`` photos: 1.03/sqrt(n - 3) on Fisher's z scale
    (Fieller, Hartley and Pearson 1957), which near 0 is the SRCC's own scale; inf below 4 photos."""
    return 1.03 / math.sqrt(n - 3) if n > 3 else math.inf


def ranking_key(metrics, metric: str = "srcc") -> tuple:
    """Sort key, best first: ``metric`` (rounded to :data:`RANK_DECIMALS`), then :data:`TIE_BREAKERS`;
    a missing or non-finite value ranks last."""
    key = []
    for name in (metric, *[t for t in TIE_BREAKERS if t != metric]):
        value = metrics.get(name)
        finite = value is not None and math.isfinite(value)
        sign = -1 if HIGHER_IS_BETTER.get(name, True) else 1
        key.append((not finite, sign * round(value, RANK_DECIMALS) if finite else 0.0))
    return tuple(key)


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0  # a constant prediction ranks nothing
    value = float(fn(a, b)[0])
    return 0.0 if math.isnan(value) else value


def good_threshold(score_min: float, score_max: float, fraction: float = 0.5) -> float:
    return score_min + fraction * (score_max - score_min)


def compute_metrics(y_true, y_pred, *, score_min: float = 0.0, score_max: float = 100.0,
                    threshold: float | None = None) -> dict[str, float]:
    """All metrics of predictions ``y_pred`` [N] against ``y_true`` [N] (score units)."""
    from scipy import stats  # here, not at the top: the app lists runs without loading scipy

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1 or len(t) == 0:
        raise ValueError(f"need two equal-length 1-D arrays, got {t.shape} and {p.shape}")
    if threshold is None:
        threshold = good_threshold(score_min, score_max)
    errors = p - t
    variance = float(np.var(t))
    good = t >= threshold
    good_share = float(np.mean(good))
    return {
        "srcc": _correlation(stats.spearmanr, t, p),
        "plcc": _correlation(stats.pearsonr, t, p),
        "krcc": _correlation(stats.kendalltau, t, p),
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(np.mean(errors ** 2))),
        "r2": float(1.0 - np.mean(errors ** 2) / variance) if variance > 0 else 0.0,
        "accuracy": float(np.mean(good == (p >= threshold))),
        # what always answering the commoner side would get on these photos
        "accuracy_baseline": max(good_share, 1.0 - good_share),
        "good_share": good_share,
    }


def quick_metrics(y_true, y_pred) -> dict[str, float]:
    """The cheap per-epoch subset streamed with live training updates."""
    from scipy import stats

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    return {"srcc": _correlation(stats.spearmanr, t, p), "mae": float(np.mean(np.abs(p - t)))}
