"""Trained runs on disk: listing, looking up, renaming, annotating, deleting, reserving and committing.

A run folder holds ``manifest.json``, the model (``model.safetensors`` for
PyTorch families, ``model.skops`` for scikit-learn ones: loading either can not
execute code), ``loss_curve.png`` and ``scatter.png``. It is written under a
``.partial-*`` name and renamed when complete, so a crash or a killed process
never leaves a folder that looks like a finished run.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from workbench.errors import BadInput, NotFound, WorkbenchError
from workbench.fsutil import UnsafePath, atomic_write_text, safe_child
from workbench.metrics import CONTEXT_NAMES, HIGHER_IS_BETTER, METRIC_NAMES, ranking_key

MANIFEST = "manifest.json"
PARTIAL_PREFIX = ".partial-"
OWNER_FILE = ".owner"  # in a partial folder: the id of the process writing it
_STARTED = time.time()  # a partial folder older than this process and without a live owner is debris


class RunNotFound(NotFound):
    """A run id that names no finished run in the runs folder."""


class RunCorrupt(WorkbenchError):
    """A run folder whose files do not match its manifest (edited, truncated, or foreign)."""


@dataclass
class RunManifest:
    run_id: str
    created: str  # ISO 8601, UTC
    family: str
    backbone: str | None  # the backbone chosen (None for families on their own network)
    backbones: list[str] = field(default_factory=list)  # whose features were concatenated
    feature_view: str = "pooled"  # "pooled" | "multilevel": what predicting must extract again
    weights: dict[str, dict] = field(default_factory=dict)  # backbone -> {source, detail, weights_id}
    random_weights: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    status: str = "complete"  # "complete" | "stopped" (Stop pressed) | "stopped early" (patience); best epoch kept
    stop_reason: str = ""  # "stopped early at epoch 17: validation loss had not improved for 15 epochs ..."
    best_epoch: int = 0  # the epoch whose weights were kept, when early stopping chose it (0: not recorded)
    # the epoch whose weights the model kept, chosen on validation (0: the starting point, for a head ridge
    # alone); None: fitted in one step, or a run stored before this was recorded
    kept_epoch: int | None = None
    data_fingerprint: str = ""
    n_images: int = 0
    split: dict[str, list[str]] = field(default_factory=dict)  # train/val/test -> file names
    fit_on: str = "train"  # which parts the final model was fitted on
    metrics: dict[str, float] = field(default_factory=dict)  # on the held-out test split
    history: list[dict] = field(default_factory=list)  # per epoch / stage: epoch, train_loss, val_loss, ...
    predictions: list[dict] = field(default_factory=list)  # held-out: {filename, true, pred}
    score_min: float = 0.0
    score_max: float = 100.0
    good_threshold: float = 50.0
    fit_seconds: float = 0.0  # fitting the model alone
    wall_seconds: float = 0.0  # the whole run as the person waited it, extraction too (0: not recorded)
    model_file: str = ""
    model_format: str = ""  # "skops" | "safetensors"
    model_sha256: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # images left out -> reason
    display_name: str = ""
    notes: str = ""

    @property
    def name(self) -> str:
        return self.display_name or self.run_id

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunManifest":
        """The manifest in ``data``; raises RunCorrupt naming the first field of the wrong type.

        Checked here, once, so that nothing later (scoring, the leaderboard) meets
        a score range that is text or a weights table that is a number.
        """
        if not isinstance(data, dict):
            raise RunCorrupt(f"this run is damaged: {MANIFEST} holds {type(data).__name__}, not a manifest")
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = [name for name, f in known.items() if name not in values and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise RunCorrupt(f"this run is damaged: {MANIFEST} lacks {', '.join(missing)}")
        for name, value in values.items():
            problem = _field_problem(name, value, known[name])
            if problem:
                raise RunCorrupt(f"this run is damaged: {MANIFEST}: {name} {problem}")
        if not values.get("score_min", 0.0) < values.get("score_max", 100.0):
            raise RunCorrupt(f"this run is damaged: {MANIFEST}: score_min is not below score_max")
        return cls(**values)


# What the values inside a manifest's tables must be (the rest of the workbench relies on these).
_NULLABLE = {"backbone": str, "kept_epoch": int}  # fields that may be null, and their type otherwise
_INNER_TYPES = {"weights": dict, "split": list, "metrics": (int, float), "history": dict, "predictions": dict,
                "skipped": str, "versions": str, "backbones": str}


def _field_problem(name: str, value: Any, spec) -> str | None:
    """Why ``value`` cannot be field ``name`` of a manifest, or None."""
    if name in _NULLABLE:
        expected: Any = (_NULLABLE[name], type(None))
    else:
        example = spec.default if spec.default is not MISSING else (
            spec.default_factory() if spec.default_factory is not MISSING else "")
        expected = type(example)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"should be a finite number, not {value!r}"[:200]
        return None
    if isinstance(value, bool) and expected is int or not isinstance(value, expected):
        return f"should be {getattr(expected, '__name__', 'text or null')}, not {type(value).__name__}"
    inner = _INNER_TYPES.get(name)
    if inner is not None:
        items = value.values() if isinstance(value, dict) else value
        if any(not isinstance(item, inner) or isinstance(item, bool) and inner is not bool for item in items):
            return "holds a value of the wrong type"
    return None


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("torch", "scikit-learn", "numpy", "timm", "skops", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    from workbench import __version__

    versions["workbench"] = __version__
    return versions


class RunStore:
    """The runs folder: listing, looking up, renaming, annotating, deleting."""

    def __init__(self, models_dir: str | Path):
        self.root = Path(models_dir)

    def folder(self, run_id: str) -> Path:
        try:
            path = safe_child(self.root, run_id)
        except UnsafePath as exc:
            raise RunNotFound(f"{run_id!r} is not a run id: {exc}") from None
        if run_id.startswith(".") or not (path / MANIFEST).is_file():
            raise RunNotFound(f"no run {run_id!r} in {self.root}")
        return path

    def list(self) -> list[RunManifest]:
        runs = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(".") or not (path / MANIFEST).is_file():
                    continue  # half-written (.partial-*), .gitkeep, foreign folders
                try:
                    runs.append(self._read(path))
                except (OSError, ValueError, TypeError, RunCorrupt):
                    continue  # an unreadable manifest is not a run
        return sorted(runs, key=lambda m: (m.created, m.run_id), reverse=True)

    def _read(self, path: Path) -> RunManifest:
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except ValueError as exc:  # also UnicodeDecodeError
            raise RunCorrupt(f"this run is damaged: {MANIFEST} is not valid JSON ({exc})") from None
        manifest = RunManifest.from_json(data)
        # A run is its folder: one renamed or copied (to share it) is used by its folder name.
        manifest.run_id = path.name
        return manifest

    def get(self, run_id: str) -> RunManifest:
        return self._read(self.folder(run_id))

    def _update(self, run_id: str, **changes: Any) -> RunManifest:
        from workbench.fsutil import file_lock

        folder = self.folder(run_id)
        with file_lock(self.root / ".runs.lock"):
            manifest = self._read(folder)
            for key, value in changes.items():
                setattr(manifest, key, value)
            atomic_write_text(folder / MANIFEST, json.dumps(manifest.to_json(), indent=1, ensure_ascii=False))
        return manifest

    def rename(self, run_id: str, display_name: str) -> RunManifest:
        return self._update(run_id, display_name=str(display_name).strip())

    def annotate(self, run_id: str, notes: str) -> RunManifest:
        return self._update(run_id, notes=str(notes))

    def delete(self, run_id: str) -> None:
        folder = self.folder(run_id)
        # rename first so a half-deleted folder is never listed as a run
        doomed = folder.with_name(f"{PARTIAL_PREFIX}deleting-{run_id}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def remove_debris(self) -> list[str]:
        """Delete the ``.partial-*`` folders of saves and deletions that were killed; return their names.

        A folder whose writer is still running (another process training now) is kept.
        """
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.glob(f"{PARTIAL_PREFIX}*"):
            if path.is_dir() and not _still_written(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    def best(self, metric: str = "srcc") -> RunManifest | None:
        if metric not in HIGHER_IS_BETTER:
            raise BadInput(f"unknown metric {metric!r}; choose one of: {', '.join(METRIC_NAMES)}")
        scored = [m for m in self.list() if metric in m.metrics]
        if not scored:
            return None
        return min(scored, key=lambda m: ranking_key(m.metrics, metric))

    # ---------------------------------------------------------------- saving
    def reserve(self, base_id: str) -> tuple[str, Path]:
        """A run id no other run or concurrent training holds, and its private partial folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run_id = base_id if n == 1 else f"{base_id}-{n}"
            partial = self.root / f"{PARTIAL_PREFIX}{run_id}"
            if (self.root / run_id).exists():
                continue
            try:
                partial.mkdir()  # atomic: two trainings cannot both get it
            except FileExistsError:
                continue
            (partial / OWNER_FILE).write_text(str(os.getpid()))
            return run_id, partial
        raise RuntimeError(f"cannot find a free run id for {base_id} in {self.root}")

    def commit(self, partial: Path, run_id: str) -> Path:
        """Make a fully written partial folder a run (one rename: all or nothing)."""
        final = self.root / run_id
        (partial / OWNER_FILE).unlink(missing_ok=True)
        os.rename(partial, final)
        try:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        return final


def _still_written(partial: Path) -> bool:
    try:
        pid = int((partial / OWNER_FILE).read_text())
    except (OSError, ValueError):  # no owner recorded (killed before it was written, or a deletion)
        return partial.stat().st_mtime >= _STARTED
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def leaderboard_rows(store: RunStore, metric: str = "srcc") -> list[dict[str, Any]]:
    """Stored runs as flat table rows, best ``metric`` first, ties settled as :func:`ranking_key` says
    (runs without it last)."""
    rows = []
    for m in store.list():
        sources = sorted({w.get("source", "") for w in m.weights.values()})
        rows.append({
            "run_id": m.run_id, "name": m.name, "family": m.family, "backbone": m.backbone or "",
            "weights": ", ".join(s for s in sources if s), "status": m.status, "created": m.created,
            "n_images": m.n_images, **{k: m.metrics.get(k) for k in METRIC_NAMES + CONTEXT_NAMES},
            "fit_seconds": m.fit_seconds, "notes": m.notes,
        })
    rows.sort(key=lambda r: ranking_key(r, metric))
    return rows


def kept_epoch(manifest: RunManifest) -> int | None:
    """The epoch whose weights ``manifest``'s model kept (0: its starting point), or None when unknown:
    fitted in one step, or stored before the workbench recorded it (then only an early stop's choice is known)."""
    if manifest.kept_epoch is not None:
        return manifest.kept_epoch
    return manifest.best_epoch or None


def loss_curves(store: RunStore, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-epoch losses of the named runs, for overlaying, and each one's ``kept_epoch`` (see
    :func:`kept_epoch`); runs fitted in one step have empty lists."""
    curves = {}
    for run_id in run_ids:
        history = store.get(run_id).history
        curves[run_id] = {key: [h.get(key) for h in history] for key in ("epoch", "train_loss", "val_loss")}
        curves[run_id]["kept_epoch"] = kept_epoch(store.get(run_id))
    return curves


__all__ = ["RunStore", "RunManifest", "RunNotFound", "RunCorrupt", "leaderboard_rows", "loss_curves", "kept_epoch",
           "package_versions", "MANIFEST"]
