"""Trained runs: ``trained_models_storage/<date-time>-<family>-<backbone>/``.

API summary (what the UI, the CLI and predict.py call)::

    store = RunStore(settings.models_dir)
    store.list() -> list[RunManifest]            newest first; half-written folders are never listed
    store.get(run_id) -> RunManifest             raises RunNotFound
    store.rename(run_id, display_name)           a display name kept in the manifest (the folder stays)
    store.annotate(run_id, notes)                free-text notes kept in the manifest
    store.delete(run_id)
    store.best(metric="srcc") -> RunManifest | None   highest srcc/plcc/krcc/r2/accuracy, lowest mae/rmse
    leaderboard_rows(store, metric="srcc") -> list[dict]   one flat row per run for a table (accuracy_baseline,
                                                  good_share: None for runs stored before they were measured)
    loss_curves(store, run_ids) -> {run_id: {"epoch": [...], "train_loss": [...], "val_loss": [...],
                                             "kept_epoch": int | None}}   the epoch whose weights were kept

    run = load_run(run_id, settings) -> LoadedRun    checks the model file's sha256 first
    run.manifest                                     RunManifest (run_id, family, backbone, score_min, score_max,
                                                     metrics, predictions=[{filename, true, pred}], history, ...)
    run.predict_images(paths, settings, stop=NEVER_STOP)  generator: Progress/Notice ..., then
                                                     Finished(ImagePredictions(paths, scores [N],
                                                     distributions [N,10] | None, errors {path: reason}))
    run.gradcam_target(head=None) -> (module: normalised [N,3,S,S] -> scores [N], target_layer, transform) | None
                                                     (``workbench.explain.gradcam_target_of`` adds the torch
                                                     form of linear and kernel predictors)

The package: ``store`` (the folders and their manifests), ``persist`` (saving and
loading fitted models without unpickling), ``inference`` (a loaded run scoring images).
"""
from __future__ import annotations

import importlib

from workbench.runs.persist import UnsafeModel
from workbench.runs.store import (
                                  MANIFEST,
                                  RunCorrupt,
                                  RunManifest,
                                  RunNotFound,
                                  RunStore,
                                  kept_epoch,
                                  leaderboard_rows,
                                  loss_curves,
                                  package_versions,
)

__all__ = ["RunStore", "RunManifest", "RunNotFound", "RunCorrupt", "UnsafeModel", "ImagePredictions", "LoadedRun",
           "load_run", "leaderboard_rows", "loss_curves", "kept_epoch", "package_versions", "MANIFEST"]

# ``inference`` imports PyTorch (its modules subclass ``nn.Module``): loaded when one of these is first
# asked for, so listing runs (the app's first page, ``runs`` commands) does not pay for torch.
_LAZY = {"ImagePredictions": "workbench.runs.inference", "LoadedRun": "workbench.runs.inference",
         "load_run": "workbench.runs.inference"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
