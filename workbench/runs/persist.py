"""Saving and loading fitted models without ever unpickling.

scikit-learn estimators go through skops, which refuses any type not on the
explicit list below (so a run folder someone sends you cannot run code when
loaded). PyTorch estimators are saved as safetensors (tensors only) with their
constructor arguments as JSON in the file's metadata, and rebuilt from a
registry of our own classes. Either way the file's sha256 must match the
manifest before anything is read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.fsutil import file_sha256
from workbench.runs.store import RunCorrupt

SKOPS_FILE = "model.skops"
TORCH_FILE = "model.safetensors"

# Every type a workbench scikit-learn family's fitted estimator contains. A
# skops file holding anything else is refused: adding a family with new
# scikit-learn classes means adding them here, on purpose.
TRUSTED_SKOPS_TYPES: tuple[str, ...] = (
    "builtins.slice",
    "collections.OrderedDict",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random.RandomState",
    "numpy.random._mt19937.MT19937",
    "scipy.sparse._csr.csr_matrix",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._stacking.StackingRegressor",
    "sklearn.ensemble._voting.VotingRegressor",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._ridge.RidgeCV",
    "sklearn.model_selection._split.KFold",
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.svm._classes.SVR",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
)


class UnsafeModel(WorkbenchError):
    """A model file holding types the workbench never writes: refused, not loaded."""


def save_model(estimator: Any, folder: Path, *, torch_format: bool) -> tuple[str, str]:
    """Write ``estimator`` into ``folder``; return (file name, format)."""
    if torch_format:
        from safetensors.torch import save_file

        meta = json.dumps(estimator.state_meta(), default=_json_default)
        save_file(estimator.state_tensors(), str(folder / TORCH_FILE), metadata={"workbench": meta})
        return TORCH_FILE, "safetensors"
    import skops.io as sio

    sio.dump(estimator, folder / SKOPS_FILE)
    untrusted = set(sio.get_untrusted_types(file=folder / SKOPS_FILE)) - set(TRUSTED_SKOPS_TYPES)
    if untrusted:  # caught when saving, so no run is ever written that could not be loaded
        raise UnsafeModel(f"the fitted model holds types not on the trusted list: {sorted(untrusted)}")
    return SKOPS_FILE, "skops"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")


def load_model(folder: Path, manifest, settings) -> Any:
    """The fitted estimator of a run, after checking its file against the manifest's sha256.

    Raises RunCorrupt ("this run is damaged: ...") for anything that stops the
    file being read as what the manifest says, UnsafeModel for foreign types.
    """
    def damaged(reason: str) -> RunCorrupt:
        return RunCorrupt(f"this run is damaged: run {manifest.run_id}: {reason}")

    if (manifest.model_file, manifest.model_format) not in FORMATS:
        raise damaged(f"unexpected model file {manifest.model_file!r} of format {manifest.model_format!r}")
    path = folder / manifest.model_file
    if not path.is_file():
        raise damaged(f"its model file {path.name} is missing")
    digest = file_sha256(path)
    if digest != manifest.model_sha256:
        raise damaged(f"{path.name} does not match its manifest "
                      f"(sha256 {digest[:12]}... != {manifest.model_sha256[:12]}...); refusing to load it")
    try:
        return FORMATS[manifest.model_file, manifest.model_format](path, manifest, settings)
    except (UnsafeModel, RunCorrupt):
        raise
    except Exception as exc:  # a file of another format, or tensors that do not fit their network: no code ran
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:300] + "..."
        raise damaged(f"{path.name} cannot be read as a {manifest.model_format} model "
                      f"({type(exc).__name__}: {detail})") from exc


def _load_skops(path: Path, manifest, settings) -> Any:
    import skops.io as sio

    untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_SKOPS_TYPES)
    if untrusted:
        raise UnsafeModel(f"run {manifest.run_id}: {path.name} holds types the workbench never writes "
                          f"({', '.join(sorted(untrusted))}); refusing to load it")
    return sio.load(path, trusted=list(TRUSTED_SKOPS_TYPES))


def _load_torch(path: Path, manifest, settings) -> Any:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from workbench.models import torch_estimators

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("workbench", "{}"))
    cls = torch_estimators().get(meta.get("class", ""))
    if cls is None:
        raise UnsafeModel(f"{path.name}: unknown model class {meta.get('class')!r}")
    return cls.from_state(load_file(str(path)), meta, settings)


# (file name, format) as the manifest records them -> loader; any other pair is a damaged run.
FORMATS = {(SKOPS_FILE, "skops"): _load_skops, (TORCH_FILE, "safetensors"): _load_torch}
