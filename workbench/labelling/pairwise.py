"""Scores from pairwise comparisons (Bradley–Terry) and the choice of the next pair to show.

The model: photo i has a strength θ_i and P(i beats j) = 1 / (1 + exp(θ_j − θ_i)).
θ is the maximum-likelihood estimate with a small L2 penalty ``alpha·Σθ²``
(``choix.opt_pairwise``, Newton-CG), so a photo that only ever won, or a
group never compared with the rest, still gets a finite strength (the penalty
is a N(0, 1/(2·alpha)) prior: θ std 3.2 for alpha 0.05). A tie counts as one
win each way.

Uncertainty: the Laplace approximation at the fit, i.e. the inverse of the
Hessian of the negative log-likelihood (Fisher information
``Σ_j n_ij p_ij (1 − p_ij)`` plus ``2·alpha``); its diagonal is var(θ_i). Past
:data:`FULL_INVERSE_MAX` photos only the diagonal of the Hessian is inverted.

Placing θ on the person's score scale (``score = a·θ + b``):

* with two or more compared photos that also have an absolute score, ``a`` and
  ``b`` are the least-squares line through those (θ, score) points (``a`` is
  kept positive: when the anchors disagree with the comparisons, the slope of
  the no-anchor rule below is used with ``b`` fitted);
* otherwise θ is centred on the middle of the range and a spread of ±2
  standard deviations of θ covers the range.

Scores are clipped to the range; the std of a score is ``a`` times that of θ.
Photos with their own absolute score keep it: the fitted score is for the others.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from workbench.dataset.comparisons import Comparison
from workbench.errors import BadInput

ALPHA = 0.05
FULL_INVERSE_MAX = 2000


@dataclass
class PairwiseScores:
    """``names`` (compared photos), their ``strength`` θ and ``theta_std``; ``score``/``score_std`` on the
    person's scale; ``slope``/``offset`` of θ -> score and ``how`` (which placement rule was used)."""

    names: list[str]
    strength: np.ndarray
    theta_std: np.ndarray
    score: np.ndarray
    score_std: np.ndarray
    slope: float
    offset: float
    how: str

    def as_dict(self) -> dict[str, tuple[float, float]]:
        return {n: (float(s), float(d)) for n, s, d in zip(self.names, self.score, self.score_std)}


def _index_pairs(comparisons: Sequence[Comparison], index: Mapping[str, int]) -> list[tuple[int, int]]:
    data = []
    for c in comparisons:
        if c.left not in index or c.right not in index:
            continue
        i, j = index[c.left], index[c.right]
        if c.outcome == "left":
            data.append((i, j))
        elif c.outcome == "right":
            data.append((j, i))
        else:
            data += [(i, j), (j, i)]
    return data


def fit_strengths(n: int, data: Sequence[tuple[int, int]], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """θ (mean 0) and its Laplace std for ``n`` items from (winner, loser) index pairs."""
    import choix

    if n == 0:
        return np.zeros(0), np.zeros(0)
    theta = np.asarray(choix.opt_pairwise(n, list(data), alpha=alpha), dtype=float) if data else np.zeros(n)
    theta -= theta.mean()
    hessian = np.zeros((n, n)) if n <= FULL_INVERSE_MAX else None
    diagonal = np.full(n, 2 * alpha)
    for w, lo in data:
        p = 1.0 / (1.0 + math.exp(theta[lo] - theta[w]))
        info = p * (1 - p)
        diagonal[w] += info
        diagonal[lo] += info
        if hessian is not None:
            hessian[w, lo] -= info
            hessian[lo, w] -= info
    if hessian is not None:
        hessian[np.diag_indices(n)] = diagonal
        variance = np.diag(np.linalg.inv(hessian))
    else:
        variance = 1.0 / diagonal
    return theta, np.sqrt(np.maximum(variance, 0.0))


def pairwise_scores(comparisons: Sequence[Comparison], anchors: Mapping[str, float], score_min: float,
                    score_max: float, *, names: Sequence[str] | None = None, alpha: float = ALPHA) -> PairwiseScores:
    """Bradley–Terry scores for ``names`` (default: every compared photo), placed on the scale by ``anchors``."""
    if score_max <= score_min:
        raise BadInput("the score range is empty")
    if names is None:
        names = sorted({c.left for c in comparisons} | {c.right for c in comparisons})
    names = list(names)
    index = {n: i for i, n in enumerate(names)}
    theta, theta_std = fit_strengths(len(names), _index_pairs(comparisons, index), alpha)
    span, middle = score_max - score_min, (score_min + score_max) / 2
    spread = float(theta.std()) if len(theta) > 1 and theta.std() > 1e-9 else 1.0
    # ``how`` completes "placed on the score scale by …" (the Label tab and the CLI say it)
    slope, offset, how = (span / (4 * spread), middle,
                          "centring them on the middle of the range, ±2 standard deviations of strength spanning it "
                          "(no compared photo has a score of its own)")
    anchored = [(theta[index[n]], float(s)) for n, s in anchors.items() if n in index]
    if len(anchored) >= 2:
        t, y = np.array(anchored).T
        if t.std() > 1e-9:
            a, b = np.polyfit(t, y, 1)
            if a > 0:
                slope, offset = float(a), float(b)
                how = f"a least-squares line through the {len(anchored)} compared photos that also have a score"
            else:
                offset = float(y.mean() - slope * t.mean())
                how = (f"the default spread, shifted to the {len(anchored)} compared photos that have a score "
                       "(their scores run against the comparisons, so they cannot set the slope)")
    elif len(anchored) == 1:
        offset = anchored[0][1] - slope * anchored[0][0]
        how = ("the one compared photo that has a score, which fixes the offset; ±2 standard deviations of "
               "strength span the range")
    score = np.clip(slope * theta + offset, score_min, score_max)
    return PairwiseScores(names, theta, theta_std, score, slope * theta_std, slope, offset, how)


def choose_pairs(names: Sequence[str], comparisons: Sequence[Comparison], k: int = 1, *,
                 fit: PairwiseScores | None = None, rng: np.random.Generator | None = None) -> list[tuple[str, str]]:
    """``k`` informative pairs to show next (no photo twice within them).

    First the least-compared photos, so every photo is reached; each is paired
    with the partner that maximises ``p(1−p)·(var_i + var_j) / (1 + times
    already compared)``: a near coin-flip (close current strengths) between
    uncertain photos, not a pair already settled.
    """
    rng = rng or np.random.default_rng()
    names = list(names)
    if len(names) < 2:
        return []
    index = {n: i for i, n in enumerate(names)}
    if fit is None and comparisons:  # fitted on the compared photos only: the others are at the prior
        fit = pairwise_scores(comparisons, {}, 0.0, 1.0)
    at = {n: i for i, n in enumerate(fit.names)} if fit is not None else {}
    theta = np.array([fit.strength[at[n]] if n in at else 0.0 for n in names])
    var = np.array([fit.theta_std[at[n]] ** 2 if n in at else 1.0 / (2 * ALPHA) for n in names])
    seen = np.zeros(len(names))
    partners: list[dict[int, int]] = [{} for _ in names]  # times each pair was already compared
    for c in comparisons:
        if c.left in index and c.right in index:
            i, j = index[c.left], index[c.right]
            seen[i] += 1
            seen[j] += 1
            partners[i][j] = partners[i].get(j, 0) + 1
            partners[j][i] = partners[j].get(i, 0) + 1
    used = np.zeros(len(names), dtype=bool)
    jitter = rng.random(len(names)) * 1e-3  # random among equals
    pairs = []
    for _ in range(min(k, len(names) // 2)):
        order = np.lexsort((-var - jitter, seen))  # fewest comparisons first, then most uncertain
        first = next(int(i) for i in order if not used[i])
        p = 1.0 / (1.0 + np.exp(theta - theta[first]))
        gain = p * (1 - p) * (var + var[first]) * (1 + rng.random(len(names)) * 1e-6)
        for j, count in partners[first].items():
            gain[j] /= 1 + count
        gain[used] = -1
        gain[first] = -1
        second = int(np.argmax(gain))
        used[first] = used[second] = True
        pairs.append((names[first], names[second]))
    return pairs


# ------------------------------------------- comparisons -> labels in scores.csv
RECORD_NAME = ".comparison_labels.json"  # in data/: the labels last written from comparisons


def _recorded(store) -> dict[str, float]:
    try:
        record = json.loads((store.data_dir / RECORD_NAME).read_text(encoding="utf-8"))
        return {str(k): float(v) for k, v in record.items()} if isinstance(record, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def comparison_labelled(store, scores: Mapping[str, float | None] | None = None) -> set[str]:
    """Photos whose label came from comparisons (and was not retyped since); ``scores``
    (``{filename: score}`` just read by the caller) spares reading scores.csv again."""
    current = {e.filename: e.score for e in store.entries()} if scores is None else scores
    return {n for n, s in _recorded(store).items() if current.get(n) is not None and abs(current[n] - s) < 1e-6}


def label_sources(store, scores: Mapping[str, float | None] | None = None) -> dict[str, str]:
    """Where each label came from, in words: the import's record (file name, star rating, typed),
    and "comparisons" for the labels fitted here; a name not listed is a label of unrecorded origin.
    ``scores`` (``{filename: score}``, e.g. the page just read): answer for those photos without reading
    scores.csv again (None: read it once, for every photo)."""
    if scores is None:
        scores = {e.filename: e.score for e in store.entries()}
    return {**store.label_sources(scores), **{name: "comparisons" for name in comparison_labelled(store, scores)}}


def label_from_comparisons(store, comparisons: Sequence[Comparison]) -> tuple[PairwiseScores | None, dict[str, float]]:
    """Fit Bradley–Terry and save its score as the label of every compared photo without a score of its own.

    Photos the person scored directly are the anchors and keep their score;
    labels written here before are refitted. Training then uses them like any
    label; :func:`comparison_labelled` tells which they are.
    """
    from workbench.fsutil import atomic_write_text

    if not comparisons:
        return None, {}
    entries = {e.filename: e.score for e in store.entries()}
    previous = comparison_labelled(store, entries)
    anchors = {n: s for n, s in entries.items() if s is not None and n not in previous}
    names = sorted(({c.left for c in comparisons} | {c.right for c in comparisons}) & set(entries))
    fit = pairwise_scores(comparisons, anchors, store.score_min, store.score_max, names=names)
    new = {n: round(float(s), 2) for n, s in zip(fit.names, fit.score) if n not in anchors}
    if new:
        store.set_scores(new)
    atomic_write_text(store.data_dir / RECORD_NAME, json.dumps(new, indent=1, sort_keys=True))
    return fit, new
