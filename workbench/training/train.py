"""Training one family on the labelled set and storing the run.

``train`` reads the labelled images, checks the backbone weights (random ones
only when asked, and then loudly), extracts or reuses cached features, splits
train/val/test by score quantiles, fits while streaming EpochEnd events, judges
the model on the held-out test split and writes the run folder atomically.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np

from workbench.errors import TrainingError, WeightsMissing
from workbench.events import NEVER_STOP, EpochEnd, Finished, Notice, Progress, StopFlag, relay
from workbench.metrics import compute_metrics, good_threshold
from workbench.models.registry import Family, FitContext, fit_streaming, get_family
from workbench.training.data import LabelledSet, labelled_set
from workbench.training.splits import GROUPING_BACKBONE, GROUPING_VIEW, check_enough, near_duplicate_groups, stratified_split


def resolve_backbone(family: Family, backbone: str | None, settings) -> str:
    return backbone or family.default_backbone or settings.default_backbone


def check_weights(family: str | Family, settings, *, backbone: str | None = None,
                  random_weights: bool = False, features: str | None = None) -> list[Notice]:
    """What the person must know before training starts (the UI calls this when a family/backbone is chosen).
    ``features``: the feature view asked for; a view with a network of its own is checked for its weights.

    Returns warnings (random weights, a download needed); raises TrainingError
    when pretrained weights are missing and random ones were not asked for.
    """
    from workbench.backbones import VIEWS, get_backbone, weight_status
    from workbench.backbones.weights import missing_file

    family = get_family(family) if isinstance(family, str) else family
    chosen = resolve_backbone(family, backbone, settings)
    notices = []
    note = family.input_note(chosen, settings) if family.input_note is not None else None
    if note:
        notices.append(Notice(note, level="warning"))
    if family.capabilities.needs_text:
        from workbench.backbones.text import DEFAULT_TEXT_BACKBONE, text_weight_status

        status = text_weight_status()
        if not status.available:
            raise TrainingError(f"the text encoder {DEFAULT_TEXT_BACKBONE} is missing: {status.detail}")
        notices.append(Notice(f"text: {DEFAULT_TEXT_BACKBONE} from {status.detail}"))
    names = tuple(family.feature_backbones(chosen, settings))
    view = family.view_for(features, names) if family.capabilities.needs_features else "pooled"
    for name in names:
        if view in VIEWS and VIEWS[view].status is not None:  # a view with a network of its own (CLIP prompts): its weights count
            notices.append(_view_weights(name, view, settings, random_weights))
            continue
        if name in family.private_backbones and not random_weights:
            raise WeightsMissing(f"{name} is {family.private_backbones[name]}: it has no pretrained weights, "
                                 f"so train it with --random-weights (knowingly)", backbone=name)
        if random_weights:
            notices.append(Notice(f"{name}: TRAINING ON RANDOM WEIGHTS, as asked. Its features carry no learned "
                                  f"meaning; the run is marked random.", level="warning"))
            continue
        status = weight_status(name, settings)
        if status.source == "unavailable":
            missing = missing_file(get_backbone(name), settings)
            url, target = missing if missing else (None, None)
            raise WeightsMissing(f"{name} has no pretrained weights here: {status.detail} "
                                 f"(or train with random weights, knowingly, via --random-weights)",
                                 backbone=name, target=target, url=url)
        level = "warning" if status.source == "download" else "info"
        notices.append(Notice(f"{name}: weights from {status.source} ({status.detail})", level=level))
    return notices


def _view_weights(name: str, view: str, settings, random_weights: bool) -> Notice:
    """The notice for a view whose network has weights of its own; WeightsMissing when it has none here."""
    from workbench.backbones import view_weight_status

    check_view_of(name, view)
    status = view_weight_status(name, view, settings, random_weights=random_weights)
    if status.source == "unavailable":
        raise WeightsMissing(f"{name} --features {view}: {status.detail}", backbone=name, target=status.path,
                             url=status.url)
    level = "warning" if status.source in ("random", "download") else "info"
    return Notice(f"{name} ({view}): weights from {status.label()} — {status.detail}", level=level)


def check_view_of(backbone: str, view: str) -> None:
    """TrainingError (a message, not a traceback) when ``backbone`` has no such feature view."""
    from workbench.backbones import check_view, get_backbone

    try:
        check_view(get_backbone(backbone), view)
    except (KeyError, ValueError) as exc:
        raise TrainingError(str(exc).strip("'\"")) from None


def clip_scores(scores: np.ndarray, settings) -> np.ndarray:
    return np.clip(np.asarray(scores, dtype=np.float64), settings.score_min, settings.score_max)


def finite_predictions(family: str, scores, settings) -> np.ndarray:
    """Clipped ``scores``; raises TrainingError when any is NaN/inf (a diverged model is never saved)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise TrainingError(f"{family} diverged: {int(np.sum(~np.isfinite(scores)))} of {scores.size} "
                            f"predictions are NaN or infinite — lower the learning rate (or regularise more) "
                            f"and train again; no run was saved")
    return clip_scores(scores, settings)


def early_stop_reason(history: list[dict], params: dict[str, Any], stopped: bool) -> tuple[str, int | None]:
    """("stopped early at epoch 17: ...", best epoch) when patience ended the fit before the epochs asked
    for; ("", None) otherwise. The loop keeps the epoch with the lowest validation loss."""
    asked, patience = params.get("epochs"), params.get("patience")
    if stopped or not history or not asked or not patience or len(history) >= int(asked):
        return "", None
    losses = [(h.get("val_loss"), h["epoch"]) for h in history if h.get("val_loss") is not None]
    best = min(losses)[1] if losses else None
    reason = (f"stopped early at epoch {history[-1]['epoch']} of {int(asked)}: validation loss had not improved "
              f"for {int(patience)} epochs (patience)")
    return reason + (f"; the best epoch, {best}, was kept" if best is not None else ""), best


def chosen_epoch(estimator: Any, history: list[dict]) -> int | None:
    """The epoch whose weights a network kept, chosen on validation (0: its start, for a head ridge
    alone), from the training loop's record; None for a model fitted in one step or that keeps no record."""
    loop = getattr(estimator, "loop_", None)
    if not history or loop is None:
        return None
    return int(loop.best_epoch)


def readable_name(family: str, backbone: str | None, n_images: int, metrics: dict[str, float]) -> str:
    """A default run name a person can read in a list: ``auto · efficientnet_lite0 · 150 photos · SRCC 0.64``."""
    srcc = metrics.get("srcc")
    parts = [family, backbone or "own network", f"{n_images} photos"]
    return " · ".join(parts + ([f"SRCC {srcc:.2f}"] if srcc is not None and np.isfinite(srcc) else []))


def duplicate_groups_of(data: LabelledSet, settings, *, stop: StopFlag, features: np.ndarray | None = None
                        ) -> Iterator[Any]:
    """Events, then ``Finished(groups)``: a group id [N] per photo of ``data`` (``splits.near_duplicate_groups``),
    found on the fixed grouping features whatever the family reads, so every family and every run get
    the same groups. Photos the grouping network cannot read stay alone; ``Finished(None, stopped=True)``
    when stopped. ``features`` [N, D]: those grouping features of ``data``'s photos, in order, when the
    caller already holds them (its family reads the same backbone and view): the cache is not read again."""
    if features is not None:
        yield Finished(near_duplicate_groups(features))
        return
    from workbench.features import feature_matrix  # torch: loaded when a model is trained, not at app start

    finished = yield from relay(feature_matrix(data.paths, (GROUPING_BACKBONE,), settings, stop=stop,
                                               view=GROUPING_VIEW))
    if finished.stopped:
        yield finished
        return
    matrix = finished.result
    groups = np.arange(len(data)) + len(data)  # ids no found group can have: alone
    if len(matrix.keep):
        groups[matrix.keep] = near_duplicate_groups(matrix.X)
    yield Finished(groups)


def inputs_for(family: Family, data: LabelledSet, backbones: tuple[str, ...], settings, *,
               stop: StopFlag, random_weights: bool, view: str = "pooled") -> Iterator[Any]:
    """Events of getting the model inputs, then Finished((X, kept LabelledSet, weights, skipped))."""
    from workbench.features import feature_matrix  # torch: loaded when a model is trained, not at app start

    if family.capabilities.needs_features:
        finished = yield from relay(feature_matrix(data.paths, backbones, settings, stop=stop,
                                                   random_weights=random_weights, view=view))
        if finished.stopped:
            yield finished
            return
        matrix = finished.result
        kept, X, weights = data.subset(matrix.keep), matrix.X, matrix.weights
        if family.capabilities.needs_text:
            from workbench.multimodal import coverage_note, text_weights_record, with_text_block

            table = {p.name: t for p, t in zip(kept.paths, kept.texts or []) if t}
            X, found = with_text_block(X, kept.paths, settings, table=table)
            yield Notice(coverage_note(found))
            weights = {**weights, "text": text_weights_record()}
        yield Finished((X, kept, weights, matrix.errors))
    else:  # image families read the pixels themselves; check the files first
        from workbench.images import ImageError, check_image

        keep, skipped = [], {}
        for i, path in enumerate(data.paths):
            try:
                check_image(path, settings.max_pixels)
                keep.append(i)
            except ImageError as exc:
                skipped[str(path)] = str(exc)
        if skipped:
            yield Notice(f"{len(skipped)} image(s) could not be read and are left out", level="warning")
        kept = data.subset(keep)
        yield Finished((np.array([str(p) for p in kept.paths], dtype=object), kept, {}, skipped))


def train(family: str, settings, *, backbone: str | None = None, params: dict[str, Any] | None = None,
          stop: StopFlag = NEVER_STOP, random_weights: bool = False, seed: int | None = None,
          data: LabelledSet | None = None, features: str | None = None
          ) -> Iterator[Progress | EpochEnd | Notice | Finished]:
    """Train ``family`` and store the run; ends with ``Finished(RunManifest, stopped)``.

    ``features`` is the feature view (a name in ``FEATURE_VIEWS``; families such as
    ``auto`` choose their own), recorded in the run so predicting uses the same.

    ``params`` overrides the family's defaults (validated); ``data`` defaults
    to the labelled images of ``settings.data_dir``. A Stop during feature
    extraction or before anything was learnt ends with ``Finished(None, stopped=True)``;
    a Stop during fitting keeps the best model so far as a run marked "stopped".
    """
    from workbench.runs.store import RunStore

    wall_started = time.perf_counter()  # what the person waited: extraction and fitting
    fam = get_family(family)
    values = fam.resolve_params(params)
    seed = settings.seed if seed is None else int(seed)
    data = labelled_set(settings) if data is None else data
    check_enough(len(data))
    chosen = resolve_backbone(fam, backbone, settings)
    backbones = tuple(fam.feature_backbones(chosen, settings)) if fam.capabilities.needs_features else (chosen,)
    for notice in check_weights(fam, settings, backbone=chosen, random_weights=random_weights, features=features):
        yield notice

    view = fam.view_for(features, backbones) if fam.capabilities.needs_features else "pooled"
    for name in backbones if fam.capabilities.needs_features else ():
        check_view_of(name, view)
    finished = yield from relay(inputs_for(fam, data, backbones, settings, stop=stop, random_weights=random_weights,
                                           view=view))
    if finished.stopped:
        yield Finished(None, stopped=True)
        return
    inputs = finished.result
    X, data, weights, skipped = inputs
    check_enough(len(data))
    keys = np.array(data.content_keys())
    # near-duplicates (bursts, the same photo exported twice) stay in one part: see splits.near_duplicate_groups
    same = (fam.capabilities.needs_features and not fam.capabilities.needs_text and not random_weights
            and backbones == (GROUPING_BACKBONE,) and view == GROUPING_VIEW)  # X is then the grouping features
    finished = yield from relay(duplicate_groups_of(data, settings, stop=stop, features=X if same else None))
    if finished.stopped:
        yield Finished(None, stopped=True)
        return
    groups = finished.result
    split = stratified_split(data.scores, val_fraction=settings.val_fraction,
                             test_fraction=settings.test_fraction, seed=seed, keys=keys, groups=groups)
    y = data.scores
    iterative = fam.capabilities.iterative
    fit_idx = split.train if iterative else np.concatenate([split.train, split.val])
    fit_idx = fit_idx[np.argsort(keys[fit_idx], kind="stable")]  # rows in content order, never listing order
    context = FitContext(settings=settings, backbone=chosen, random_weights=random_weights,
                         score_min=settings.score_min, score_max=settings.score_max, n_train=len(fit_idx))
    estimator = fam.make(values, seed=seed, context=context)
    yield Notice(f"training {fam.name} on {len(fit_idx)} images"
                 f"{f', validating on {len(split.val)}' if iterative else ''}, testing on {len(split.test)}")

    history: list[dict] = []
    started = time.perf_counter()
    if stop.is_set():
        yield Finished(None, stopped=True)
        return
    for event in fit_streaming(fam, estimator, X[fit_idx], y[fit_idx],
                               X[split.val] if iterative else None, y[split.val] if iterative else None,
                               stop=stop):
        history.append(event.record())
        yield event
    fit_seconds = time.perf_counter() - started
    stopped = stop.is_set()
    if stopped and not history:
        yield Notice("stopped before the model learnt anything: no run was saved", level="warning")
        yield Finished(None, stopped=True)
        return
    stop_reason, best_epoch = early_stop_reason(history, values, stopped) if iterative else ("", None)
    if stop_reason:
        yield Notice(stop_reason[0].upper() + stop_reason[1:] + ".")

    weights = weights or getattr(estimator, "weights_", {})  # image families load their backbone themselves
    predictions = finite_predictions(fam.name, estimator.predict(X[split.test]), settings)
    threshold = good_threshold(settings.score_min, settings.score_max, settings.good_threshold_fraction)
    metrics = compute_metrics(y[split.test], predictions, score_min=settings.score_min,
                              score_max=settings.score_max, threshold=threshold)
    metrics.update(getattr(estimator, "run_report_", {}))  # e.g. the MoE gate's average weights
    if fam.capabilities.needs_text:
        metrics["text_coverage"] = float(np.mean(X[:, -1] > 0.5))
    names = [p.name for p in data.paths]
    store = RunStore(settings.models_dir)
    manifest = _write_run(
        store, fam, estimator, settings,
        backbone=chosen, backbones=list(backbones), feature_view=view, weights=weights,
        random_weights=random_weights,
        params=values, seed=seed, status="stopped" if stopped else "stopped early" if stop_reason else "complete",
        stop_reason=stop_reason, best_epoch=best_epoch or 0, kept_epoch=chosen_epoch(estimator, history),
        display_name=readable_name(fam.name, chosen if fam.capabilities.needs_features else None, len(data),
                                   metrics),
        data_fingerprint=data.fingerprint, n_images=len(data),
        split={part: [names[i] for i in getattr(split, part)] for part in ("train", "val", "test")},
        fit_on="train" if iterative else "train+val", metrics=metrics, history=history,
        predictions=[{"filename": names[i], "true": float(y[i]), "pred": float(p)}
                     for i, p in zip(split.test, predictions)],
        score_min=settings.score_min, score_max=settings.score_max, good_threshold=threshold,
        fit_seconds=fit_seconds, wall_seconds=time.perf_counter() - wall_started, skipped=skipped)
    yield Finished(manifest, stopped=stopped)


def _write_run(store, fam: Family, estimator, settings, **fields) -> Any:
    """Write the run into a private partial folder and rename it into place when complete."""
    import json

    from workbench.fsutil import file_sha256
    from workbench.runs.persist import save_model
    from workbench.runs.store import RunManifest, package_versions
    from workbench.training.plots import loss_curve_png, scatter_png

    now = datetime.now(timezone.utc)
    tag = fields["backbone"] or "images"
    run_id, partial = store.reserve(f"{now.strftime('%Y%m%d-%H%M%S')}-{fam.name}-{tag}")
    try:
        model_file, model_format = save_model(estimator, partial, torch_format=fam.capabilities.torch)
        manifest = RunManifest(run_id=run_id, created=now.isoformat(timespec="seconds"), family=fam.name,
                               model_file=model_file, model_format=model_format,
                               model_sha256=file_sha256(partial / model_file), versions=package_versions(),
                               **fields)
        title = f"{fam.name} on {manifest.backbone}" + (" (RANDOM WEIGHTS)" if manifest.random_weights else "")
        (partial / "loss_curve.png").write_bytes(loss_curve_png(manifest.history, title))
        pred = manifest.predictions
        (partial / "scatter.png").write_bytes(scatter_png(
            [p["true"] for p in pred], [p["pred"] for p in pred], settings.score_min, settings.score_max,
            f"{title}: held-out SRCC {manifest.metrics.get('srcc', 0):.3f}"))
        (partial / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False),
                                               encoding="utf-8")
        store.commit(partial, run_id)
    except BaseException:
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest
