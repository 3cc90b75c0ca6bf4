"""K-fold cross-validation of several families on the same folds.

Features are extracted (or read from the cache) once per backbone and reused
by every family; every family sees exactly the same folds, so the leaderboard
compares models, not luck. Torch heads carve a validation part out of each
training fold for early stopping; the test fold is never seen while fitting.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Generator, Iterator, NamedTuple, Sequence

import numpy as np

from workbench.errors import BadInput
from workbench.events import NEVER_STOP, Finished, Notice, Progress, StopFlag, relay
from workbench.metrics import HIGHER_IS_BETTER, compute_metrics, good_threshold
from workbench.models.registry import FitContext, fit_streaming, get_family
from workbench.training.data import LabelledSet, labelled_set
from workbench.training.splits import (
    DUPLICATE_COSINE,
    GROUPING_BACKBONE,
    GROUPING_VIEW,
    check_enough,
    group_summary,
    kfold,
    stratified_split,
)
from workbench.training.train import (
    TrainingError,
    check_view_of,
    check_weights,
    duplicate_groups_of,
    finite_predictions,
    inputs_for,
    resolve_backbone,
)


@dataclass
class FamilyResult:
    model: str
    srcc: float
    plcc: float
    krcc: float
    mae: float
    rmse: float
    r2: float
    accuracy: float
    fit_seconds: float  # mean per fold
    fit_cpu_seconds: float = 0.0  # mean per fold, CPU time of this process (all its threads): steadier than
    # wall time on a shared machine, where other jobs' load inflates the wall clock
    srcc_std: float = 0.0  # across folds
    features: str = "pooled"  # the feature view this family used
    folds: list[dict] = field(default_factory=list)  # per-fold metrics
    # mean over the folds of what always guessing the commoner side would get, and of the share of good photos:
    # read beside ``accuracy`` (None in results made before they were measured)
    accuracy_baseline: float | None = None
    good_share: float | None = None


@dataclass
class CompareReport:
    n_images: int
    backbone: str
    folds: int
    seed: int
    results: list[FamilyResult]
    weights: dict[str, dict] = field(default_factory=dict)
    random_weights: bool = False
    features: str = "pooled"  # the view asked for (a family such as auto may use its own: see its result)
    near_duplicates: dict = field(default_factory=dict)  # {groups, photos_in_shared_groups, merged, threshold, features}
    wall_seconds: float = 0.0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        """The CLI contract: {n_images, backbone, folds, results: [{model, srcc, plcc, mae, rmse, r2, fit_seconds,
        accuracy, accuracy_baseline, ...}]}."""
        data = asdict(self)
        data["results"] = [{k: v for k, v in r.items() if k != "folds"} for r in data["results"]]
        return data

    def leaderboard(self, metric: str = "srcc") -> list[FamilyResult]:
        return sorted(self.results, key=lambda r: getattr(r, metric), reverse=HIGHER_IS_BETTER[metric])


def winner_margin(results: Sequence[FamilyResult]) -> dict[str, Any] | None:
    """How far the best SRCC leads the runner-up, and whether that lead stands out of the folds' noise.

    Rule: every family is judged on the same folds, so the comparison is paired. The lead is clear when
    the mean per-fold difference (leader minus runner-up) exceeds two standard errors of that mean
    (std of the differences, ddof=1, over sqrt(K)). Without matching per-fold figures, the unpaired bound
    stands in: two times the larger of the two families' srcc_std over sqrt(K). None with fewer than two results.
    """
    ranked = sorted(results, key=lambda r: r.srcc, reverse=True)
    if len(ranked) < 2:
        return None
    first, second = ranked[:2]
    lead = first.srcc - second.srcc
    a, b = [f["srcc"] for f in first.folds], [f["srcc"] for f in second.folds]
    if len(a) == len(b) >= 2:
        differences = np.subtract(a, b)
        noise = 2 * float(np.std(differences, ddof=1)) / np.sqrt(len(differences))
    else:
        k = max(len(a), len(b), 2)
        noise = 2 * max(first.srcc_std, second.srcc_std) / np.sqrt(k)
    clear = lead > noise
    sentence = (f"{first.model} leads {second.model} by {lead:+.3f} SRCC, "
                + ("more than the folds' spread (±{:.3f})." if clear else
                   "within the folds' spread (±{:.3f}): not a clear winner.").format(noise))
    return {"leader": first.model, "runner_up": second.model, "lead": round(lead, 4), "noise": round(noise, 4),
            "clear": bool(clear), "sentence": sentence}


class CVSetup(NamedTuple):
    """What compare and learning curves share before fitting: every family's inputs (by ``_input_key``),
    weight notes, the photos every input could read (``data``, ``names`` in that order), their content
    keys, near-duplicate groups (None when ungrouped) with a summary, the folds, and the resolved
    ``folds``/``seed``."""

    inputs: dict
    weights: dict
    data: LabelledSet
    names: list
    keys: np.ndarray
    groups: np.ndarray | None
    group_info: dict | None
    fold_indices: list
    folds: int
    seed: int


def cross_validation_folds(fams, settings, *, backbone, folds: int | None, seed: int | None, features,
                           grouped: bool, stop: StopFlag, random_weights: bool,
                           data: LabelledSet | None) -> Generator[Any, Any, CVSetup | None]:
    """The set-up compare and learning curves share (``yield from`` it): weight notices, every
    family's inputs, content keys, near-duplicate groups (with a notice when some were merged)
    and the folds (``folds``/``seed`` None: the settings'). Returns a ``CVSetup``, or None when stopped."""
    folds = settings.folds if folds is None else int(folds)
    seed = settings.seed if seed is None else int(seed)
    data = labelled_set(settings) if data is None else data
    check_enough(len(data))
    for fam in fams:
        for notice in check_weights(fam, settings, backbone=resolve_backbone(fam, backbone, settings),
                                    random_weights=random_weights, features=features):
            yield notice
    finished = yield from relay(gather_inputs(fams, data, backbone, settings, features=features, stop=stop,
                                              random_weights=random_weights))
    if finished.stopped:
        return None
    inputs, weights, data, names = finished.result
    keys = np.array(data.content_keys())
    groups, group_info = None, None
    if grouped:
        held = None if random_weights else inputs.get(("features", (GROUPING_BACKBONE,), GROUPING_VIEW, False))
        if held is not None:  # a family reads the grouping features already: its rows, in ``names`` order
            X_all, kept, _, _ = held
            row_of = {str(p): i for i, p in enumerate(kept.paths)}
            held = X_all[[row_of[n] for n in names]]
        found = yield from relay(duplicate_groups_of(data, settings, stop=stop, features=held))
        if found.stopped:
            return None
        groups = found.result
        group_info = {**group_summary(groups), "threshold": DUPLICATE_COSINE, "features": f"{GROUPING_BACKBONE} {GROUPING_VIEW}"}
    if group_info and group_info["merged"]:
        yield Notice(f"near-duplicates: {group_info['photos_in_shared_groups']} photos fall into groups of look-alikes "
                     f"({group_info['merged']} merged); each group stays within one fold")
    fold_indices = kfold(data.scores, folds=folds, seed=seed, keys=keys, groups=groups)
    return CVSetup(inputs, weights, data, names, keys, groups, group_info, fold_indices, folds, seed)


def compare(families: Sequence[str], settings, *, backbone: str | None = None, folds: int | None = None,
            seed: int | None = None, stop: StopFlag = NEVER_STOP, random_weights: bool = False,
            params: dict[str, dict] | None = None, data: LabelledSet | None = None,
            features: str | None = None, grouped: bool = True) -> Iterator[Progress | Notice | Finished]:
    """Cross-validate ``families`` ending with ``Finished(CompareReport)``.

    ``params`` optionally maps a family to hyper-parameter overrides; ``features`` is
    the feature view (a name in ``FEATURE_VIEWS``; ``auto`` chooses its own). With ``grouped``
    (the default) near-duplicate photos stay in one fold (``splits.near_duplicate_groups``). A Stop
    ends after the current fold with the families finished so far
    (``Finished(report, stopped=True)``).
    """
    started = time.perf_counter()
    fams = [get_family(name) for name in families]
    if not fams:
        raise BadInput("choose at least one model family to compare")
    chosen = backbone or settings.default_backbone
    setup = yield from cross_validation_folds(fams, settings, backbone=backbone, folds=folds, seed=seed,
                                              features=features, grouped=grouped, stop=stop,
                                              random_weights=random_weights, data=data)
    if setup is None:
        yield Finished(None, stopped=True)
        return
    inputs, weights, data, names = setup.inputs, setup.weights, setup.data, setup.names
    keys, groups, group_info, fold_indices = setup.keys, setup.groups, setup.group_info, setup.fold_indices
    folds, seed = setup.folds, setup.seed
    y = data.scores
    threshold = good_threshold(settings.score_min, settings.score_max, settings.good_threshold_fraction)
    results: list[FamilyResult] = []
    total, done = len(fams) * folds, 0
    for fam in fams:
        X_all, kept, _, _ = inputs[_input_key(fam, resolve_backbone(fam, backbone, settings), settings, features)]
        row_of = {str(p): i for i, p in enumerate(kept.paths)}
        X = X_all[[row_of[n] for n in names]]
        values = fam.resolve_params((params or {}).get(fam.name))
        context = FitContext(settings=settings, backbone=resolve_backbone(fam, backbone, settings),
                             random_weights=random_weights, score_min=settings.score_min,
                             score_max=settings.score_max)
        per_fold, seconds, cpu_seconds, failed = [], [], [], None
        for k, (train_idx, test_idx) in enumerate(fold_indices, 1):
            if stop.is_set():
                break
            estimator = fam.make(values, seed=seed, context=replace(context, n_train=len(train_idx)))
            tick, cpu_tick = time.perf_counter(), time.process_time()
            try:
                _fit_fold(fam, estimator, X, y, train_idx[np.argsort(keys[train_idx], kind="stable")],
                          seed, stop, keys, groups)
                if stop.is_set():
                    break  # the fit ended early: a half-trained fold must not be scored as a result
                seconds.append(time.perf_counter() - tick)
                cpu_seconds.append(time.process_time() - cpu_tick)
                predictions = finite_predictions(fam.name, estimator.predict(X[test_idx]), settings)
            except TrainingError as exc:  # diverged: this family drops out, the others still compare
                failed = str(exc)
                break
            per_fold.append(compute_metrics(y[test_idx], predictions, score_min=settings.score_min,
                                            score_max=settings.score_max, threshold=threshold))
            done += 1
            yield Progress(done, total, f"{fam.name}: fold {k}/{folds} SRCC {per_fold[-1]['srcc']:.3f}")
        if failed is not None:
            done += folds - len(per_fold)
            yield Notice(f"{fam.name} left out of the comparison: {failed}", level="warning")
            continue
        if len(per_fold) < folds:
            break  # stopped: report only families with every fold done
        mean = {key: float(np.mean([m[key] for m in per_fold])) for key in per_fold[0]}
        results.append(FamilyResult(model=fam.name, **mean, fit_seconds=float(np.mean(seconds)),
                                    fit_cpu_seconds=float(np.mean(cpu_seconds)),
                                    features=_input_key(fam, resolve_backbone(fam, backbone, settings), settings,
                                                        features)[2],
                                    srcc_std=float(np.std([m["srcc"] for m in per_fold])), folds=per_fold))
        yield Notice(f"{fam.name}: SRCC {mean['srcc']:.3f}, MAE {mean['mae']:.2f}, "
                     f"fit {np.mean(seconds):.2f} s per fold")
    stopped = stop.is_set()
    report = CompareReport(n_images=len(data), backbone=chosen, folds=folds, seed=seed, results=results,
                           weights=weights, random_weights=random_weights, features=features or "pooled",
                           near_duplicates=group_info or {},
                           wall_seconds=time.perf_counter() - started, stopped=stopped)
    yield Finished(report, stopped=stopped)


def gather_inputs(fams, data: LabelledSet, backbone: str | None, settings, *, features: str | None,
                  stop: StopFlag, random_weights: bool) -> Iterator[Any]:
    """Each distinct input kind once (a backbone set in a view, or raw images), shared by the families.

    Events, then ``Finished((inputs by _input_key, weights, data every kind could read, their paths))``,
    or ``Finished(None, stopped=True)``.
    """
    # inputs once per distinct input kind (a backbone set, or raw images), shared by the families
    inputs: dict[tuple, Any] = {}
    weights: dict[str, dict] = {}
    for fam in fams:
        key = _input_key(fam, resolve_backbone(fam, backbone, settings), settings, features)
        if key in inputs:
            continue
        for name in key[1] if key[0] == "features" else ():
            check_view_of(name, key[2])
        finished = yield from relay(inputs_for(fam, data, key[1], settings, stop=stop,
                                               random_weights=random_weights, view=key[2]))
        if finished.stopped:
            yield Finished(None, stopped=True)
            return
        inputs[key] = finished.result
        weights.update(finished.result[2])
    # the images every input kind could read: the same rows, the same folds for everyone
    common = set.intersection(*(set(map(str, kept.paths)) for _, kept, _, _ in inputs.values()))
    names = [str(p) for p in data.paths if str(p) in common]
    data = data.subset([i for i, p in enumerate(data.paths) if str(p) in common])
    check_enough(len(data))
    yield Finished((inputs, weights, data, names))


def _input_key(fam, chosen: str, settings, features: str | None) -> tuple:
    if fam.capabilities.needs_features:  # image+text families read the same features plus a text block
        backbones = tuple(fam.feature_backbones(chosen, settings))
        return ("features", backbones, fam.view_for(features, backbones), fam.capabilities.needs_text)
    return ("images", (chosen,), "pixels", False)


def _fit_fold(fam, estimator, X, y, train_idx, seed: int, stop: StopFlag, keys, groups=None) -> None:
    """Fit on one training fold (``train_idx`` in content-key order, so the rows a model sees never
    follow the listing order); torch families early-stop on a validation slice of it."""
    if fam.capabilities.torch:
        inner = stratified_split(y[train_idx], val_fraction=0.15, test_fraction=0.0, seed=seed,
                                 keys=keys[train_idx], groups=None if groups is None else groups[train_idx]) \
            if len(train_idx) >= 20 else None
        if inner is not None:
            fit_part, val_part = train_idx[inner.train], train_idx[inner.val]
            for _ in fit_streaming(fam, estimator, X[fit_part], y[fit_part], X[val_part], y[val_part], stop=stop):
                pass
            return
    for _ in fit_streaming(fam, estimator, X[train_idx], y[train_idx], None, None, stop=stop):
        pass
