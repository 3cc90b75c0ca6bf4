"""A faster CPU path: backbones (and NIMA's scorer) run in ONNX Runtime where it gives PyTorch's answers.

PyTorch eager mode leaves most of a CPU's arithmetic unused at inference; ONNX
Runtime runs the same graph, fused and with better kernels, 2-4x faster on two
cores. It is used only where it is *checked*:

1. the network is exported once (``torch.onnx.export``, float32, no quantisation,
   no bf16) into ``<cache_dir>/onnx/<backbone>/<key>/model.onnx``, next to the
   feature cache. The key holds the backbone, its weights id (the weights file's
   SHA-256), the output (``pooled``, ``multilevel`` or NIMA's ``distribution``)
   and the torch, onnx and onnxruntime versions, so any change exports again;
2. right after the export both runtimes compute a fixed probe batch of real
   photos (scikit-learn's sample images, whole and cropped). The export is used
   only when every feature vector agrees with torch's to a relative difference
   under ``FEATURE_RTOL`` (max |ort - torch| over the vector, divided by the
   vector's largest |torch| value) and, for NIMA, every mean score to
   ``NIMA_MEAN_TOL``; otherwise it is refused and torch computes, saying why;
3. the result goes into ``check.json`` with the model file's SHA-256: a model
   file that no longer matches it is exported and checked again, never trusted.

Setting ``features.runtime`` (env ``WORKBENCH_RUNTIME``, flag ``--runtime``) to
``torch`` turns all this off. On a GPU torch is used. Nothing here is imported
before it is needed: onnx and onnxruntime load only when a network runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from workbench.config import Settings

# What ``features.runtime`` may say.
RUNTIMES = {
    "auto": "ONNX Runtime on the CPU where its export matches PyTorch on a probe batch, else PyTorch",
    "torch": "always PyTorch (eager mode)",
}
FEATURE_RTOL = 1e-4  # max relative difference of a feature vector (see the module docstring)
NIMA_MEAN_TOL = 0.005  # NIMA mean scores, on its 1-10 scale
# Exporting and checking costs a few seconds (more for the big networks): worth it only
# for a job of at least this many images. An export made earlier is used for any job.
EXPORT_MIN_IMAGES = 48
OPSET = 17
EXPORT_FORMAT = "onnx-v1"  # bump when the export recipe changes


@dataclass(frozen=True)
class Runner:
    """A checked ONNX Runtime session: ``run(x)`` maps float32 [N,3,S,S] to the same output as torch."""

    session: object
    path: Path
    check: dict

    @property
    def label(self) -> str:
        return (f"onnxruntime (checked against torch: max relative difference "
                f"{self.check['max_rel_diff']:.1e})")

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {"images": x})[0]


@dataclass(frozen=True)
class Choice:
    """Which runtime computes, and why, in words for the CLI and UI."""

    runner: Runner | None
    label: str  # "onnxruntime (checked against torch ...)" or "torch (...why...)"
    level: str = "info"  # "warning" when ONNX Runtime was wanted but refused

    @property
    def short(self) -> str:
        """For progress lines: "onnxruntime (checked against torch)" or "torch"."""
        return "onnxruntime (checked against torch)" if self.runner is not None else "torch"


def cpu_count() -> int:
    """Cores this process may use (affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def versions() -> dict[str, str]:
    """torch, onnx and onnxruntime versions (read from their metadata: importing onnx costs time).
    Raises ImportError when onnx or onnxruntime is not installed."""
    import importlib
    from importlib import metadata

    import torch

    def version(module: str) -> str:
        try:
            return metadata.version(module)
        except metadata.PackageNotFoundError:  # another distribution of it (onnxruntime-gpu ...), or none
            return importlib.import_module(module).__version__

    return {"torch": torch.__version__, "onnx": version("onnx"), "onnxruntime": version("onnxruntime")}


def export_folder(settings: "Settings", backbone: str, weights_id: str, output: str) -> tuple[Path, str]:
    """(folder of the export, its key). ``output``: "pooled", "multilevel" or "distribution"."""
    v = versions()
    key = (f"{backbone}|{weights_id}|{output}|torch{v['torch']}|onnx{v['onnx']}|ort{v['onnxruntime']}"
           f"|opset{OPSET}|{EXPORT_FORMAT}")
    return Path(settings.cache_dir) / "onnx" / backbone / hashlib.sha256(key.encode()).hexdigest()[:16], key


# ----------------------------------------------------------------- probe
def probe_batch(transform) -> np.ndarray:
    """A fixed batch of 4 real photos (scikit-learn's samples, whole and cropped), preprocessed
    by ``transform`` (PIL -> [3,S,S]); float32 [4,3,S,S]."""
    import importlib.util

    from PIL import Image

    # the JPEG files themselves: importing sklearn.datasets costs seconds
    folder = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0]) / "datasets" / "images"
    china, flower = (Image.open(folder / name).convert("RGB") for name in ("china.jpg", "flower.jpg"))
    images = [china, flower, china.crop((0, 0, 320, 240)), flower.crop((200, 100, 640, 427))]
    return np.stack([transform(image).numpy() for image in images]).astype(np.float32)


def max_relative_difference(got: np.ndarray, want: np.ndarray) -> float:
    """max over rows of max|got - want| / max|want| (a zero row compares absolutely)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.maximum(np.abs(want).max(axis=1), 1e-12)
    return float((np.abs(got - want).max(axis=1) / scale).max())


def compare(got: np.ndarray, want: np.ndarray, output: str) -> dict:
    """The parity figures and verdict for one probe batch's outputs."""
    figures = {"max_rel_diff": max_relative_difference(got, want)}
    if output == "distribution":  # NIMA: probabilities over scores 1..10; its mean is what people see
        bins = np.arange(1, 11, dtype=np.float64)
        figures["max_mean_diff"] = float(np.abs(np.asarray(got, np.float64) @ bins - np.asarray(want, np.float64) @ bins).max())
    if not np.isfinite(got).all():
        return {**figures, "passed": False, "reason": "ONNX Runtime gave non-finite values"}
    if output == "distribution":
        passed = figures["max_mean_diff"] < NIMA_MEAN_TOL
        reason = "" if passed else (f"NIMA mean scores differ from torch's by {figures['max_mean_diff']:.4f} "
                                    f"(allowed {NIMA_MEAN_TOL})")
    else:
        passed = figures["max_rel_diff"] < FEATURE_RTOL
        reason = "" if passed else (f"features differ from torch's by a relative {figures['max_rel_diff']:.1e} "
                                    f"(allowed {FEATURE_RTOL:.0e})")
    return {**figures, "passed": passed, "reason": reason}


# ---------------------------------------------------------------- export
def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_count()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: image decoding shares these cores with the network
    # (DataLoader workers, NIMA's decode threads), and a spinning thread takes their time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_HASHED: dict[tuple, str] = {}  # (path, size, mtime) -> sha256: a 500 MB export is hashed once per process


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = _hash_file(path)
    return _HASHED[key]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _export(model: "nn.Module", probe: np.ndarray, target: Path) -> None:
    import warnings

    import torch

    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with warnings.catch_warnings():  # TorchScript-export deprecation chatter: not for users
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.from_numpy(probe[:2]),), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["images"], output_names=["output"],
                              dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _torch_outputs(model: "nn.Module", probe: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(probe)).float().numpy()


def _write_json(path: Path, document: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, path)


_SESSIONS: "OrderedDict[str, Runner]" = OrderedDict()  # model sha256 -> Runner; sessions take seconds to build
_SESSIONS_LOCK = threading.Lock()
_EXPORT_LOCK = threading.Lock()  # one export at a time in a process (two tabs asking at once)
SESSIONS_KEPT = 4


def _runner(path: Path, check: dict) -> Runner:
    with _SESSIONS_LOCK:
        runner = _SESSIONS.get(check["onnx_sha256"])
        if runner is None:
            runner = Runner(_session(path), path, check)
            _SESSIONS[check["onnx_sha256"]] = runner
            while len(_SESSIONS) > SESSIONS_KEPT:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(check["onnx_sha256"])
        return runner


def _read_check(folder: Path, key: str) -> dict | None:
    """The stored check of a complete, unchanged export; None when there is none to trust."""
    try:
        check = json.loads((folder / "check.json").read_text())
    except (OSError, ValueError):
        return None
    model = folder / "model.onnx"
    if not isinstance(check, dict) or check.get("key") != key:
        return None
    if check.get("passed") and (not model.is_file() or _file_sha256(model) != check.get("onnx_sha256")):
        return None  # a damaged or replaced model file: export and check again
    return check


def prepare(model: "nn.Module", settings: "Settings", *, backbone: str, weights_id: str, output: str,
            transform, export: bool = True) -> Choice:
    """The runtime for ``model`` (torch module: float32 [N,3,S,S] -> [N,D]).

    Uses a checked export when there is one; exports and checks one when ``export``;
    otherwise (or when the check refused it) says why torch computes.
    """
    try:
        folder, key = export_folder(settings, backbone, weights_id, output)
    except ImportError as exc:
        return Choice(None, f"torch (onnxruntime is not installed: {exc})")
    check = _read_check(folder, key)
    if check is None and not export:
        return Choice(None, "torch (no checked ONNX export yet; one is made for a larger job)")
    if check is None:
        with _EXPORT_LOCK:
            check = _read_check(folder, key)  # another thread may have made it meanwhile
            if check is None:
                check = _export_and_check(model, folder, key, transform, output)
    if not check["passed"]:
        return Choice(None, f"torch (onnxruntime refused: {check['reason']})", "warning")
    try:
        runner = _runner(folder / "model.onnx", check)
        return Choice(runner, runner.label)
    except Exception as exc:  # a session that cannot be built: torch still works
        return Choice(None, f"torch (onnxruntime could not load the export: {type(exc).__name__}: {exc})", "warning")


def _export_and_check(model: "nn.Module", folder: Path, key: str, transform, output: str) -> dict:
    # The exporter puts the whole tree back in the *wrapper's* mode afterwards: a wrapper built in
    # training mode (MultiLevel) would leave the caller's network computing batch statistics.
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        return _export_and_check_eval(model, folder, key, transform, output)
    finally:
        for module, training in modes.items():
            module.training = training


def _export_and_check_eval(model: "nn.Module", folder: Path, key: str, transform, output: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.onnx"
    probe = probe_batch(transform)
    base = {"key": key, **versions(), "output": output, "probe": "sklearn china.jpg, flower.jpg, 2 crops",
            "feature_rtol": FEATURE_RTOL, "nima_mean_tol": NIMA_MEAN_TOL}
    try:
        _export(model, probe, target)
        got = _session(target).run(None, {"images": probe})[0]
    except Exception as exc:  # an op the exporter or runtime does not support: torch computes
        check = {**base, "passed": False, "reason": f"the export failed ({type(exc).__name__}: {str(exc)[:300]})"}
        target.unlink(missing_ok=True)
    else:
        check = {**base, **compare(got, _torch_outputs(model, probe), output), "onnx_sha256": _file_sha256(target)}
        if not check["passed"]:
            target.unlink(missing_ok=True)  # never leave an export that gives other answers lying about
    _write_json(folder / "check.json", check)
    return check


def choose(model: "nn.Module", settings: "Settings", *, backbone: str, weights_id: str, output: str, transform,
           n_images: int, on_gpu: bool = False) -> Choice:
    """The runtime a job of ``n_images`` should use, honouring ``settings.runtime``."""
    if settings.runtime not in RUNTIMES:
        from workbench.errors import BadInput

        raise BadInput(f"features.runtime is {settings.runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if settings.runtime == "torch":
        return Choice(None, "torch (features.runtime is 'torch')")
    if on_gpu:
        return Choice(None, "torch (on the GPU)")
    return prepare(model, settings, backbone=backbone, weights_id=weights_id, output=output, transform=transform,
                   export=n_images >= EXPORT_MIN_IMAGES)


def will_export(settings: "Settings", *, backbone: str, weights_id: str, output: str, n_images: int,
                on_gpu: bool = False) -> bool:
    """Whether :func:`choose` with these arguments is about to export (so a caller can say so first)."""
    if settings.runtime != "auto" or on_gpu or n_images < EXPORT_MIN_IMAGES:
        return False
    try:
        folder, key = export_folder(settings, backbone, weights_id, output)
    except ImportError:
        return False
    return _read_check(folder, key) is None


def forward(choice: Choice, model: Callable, x) -> np.ndarray:
    """``model(x)`` (torch) or the checked ONNX Runtime session; float32 numpy [N, D]."""
    if choice.runner is not None:
        return choice.runner.run(x.numpy() if hasattr(x, "numpy") else x)
    import torch

    with torch.inference_mode():
        return model(x).float().cpu().numpy()
