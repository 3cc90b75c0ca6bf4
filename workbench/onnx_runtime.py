"""A faster CPU path: backbones (and NIMA's scorer) run in ONNX Runtime or OpenVINO where they give PyTorch's answers.

PyTorch eager mode leaves most of a CPU's arithmetic unused at inference; ONNX
Runtime and OpenVINO run the same exported graph, fused and with better kernels,
2.5-10x faster on two cores (vgg16: 1.3x). The engines that run an export are a registry
(``ENGINES``); each is used only where it is *checked*:

1. the network is exported once (``torch.onnx.export``, float32, no quantisation,
   no bf16) into ``<cache_dir>/onnx/<backbone>/<key>/model.onnx``, next to the
   feature cache. The key holds the backbone, its weights id (the weights file's
   SHA-256), the output (``pooled``, ``multilevel`` or NIMA's ``distribution``)
   and the torch, onnx and engine versions, so any change exports again;
2. right after the export every installed engine and torch compute a fixed probe
   batch of real photos (scikit-learn's sample images, whole and cropped). An
   engine passes only when every feature vector agrees with torch's to a relative
   difference under ``FEATURE_RTOL`` (max |engine - torch| over the vector, divided
   by the vector's largest |torch| value) and, for NIMA, every mean score to
   ``NIMA_MEAN_TOL``; all in float32 (OpenVINO is told so: on CPUs with AMX it
   would otherwise compute in bf16). Of the engines that pass, the fastest on the
   probe batch (tiled to ``TIMING_BATCH``, median of ``TIMING_REPEATS`` interleaved
   runs) is the one used; if none passes, torch computes, saying why;
3. the result goes into ``check.json`` with the model file's SHA-256: a model
   file that no longer matches it is exported and checked again, never trusted.

Setting ``features.runtime`` (env ``WORKBENCH_RUNTIME``, flag ``--runtime``) to
``torch`` turns all this off; naming an engine uses only that one (still checked).
On a GPU torch is used. Nothing here is imported before it is needed: onnx and the
engines load only when a network runs.
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

FEATURE_RTOL = 1e-4  # max relative difference of a feature vector (see the module docstring)
NIMA_MEAN_TOL = 0.005  # NIMA mean scores, on its 1-10 scale
# Exporting and checking costs a few seconds (more for the big networks): worth it only
# for a job of at least this many images. An export made earlier is used for any job.
EXPORT_MIN_IMAGES = 48
OPSET = 17
EXPORT_FORMAT = "onnx-v1"  # bump when the export recipe changes
TIMING_BATCH = 8  # the probe's 4 photos twice: which engine is faster is judged at a batch like a job's
TIMING_REPEATS = 3


# ---------------------------------------------------------------- engines
def _onnxruntime_load(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: image decoding shares these cores with the network
    # (DataLoader workers, NIMA's decode threads), and a spinning thread takes their time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0]  # a session may be run from several threads


def _openvino_load(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    # f32 explicitly: on CPUs with AMX or AVX512-BF16 OpenVINO's default precision is bf16,
    # whose features differ from torch's by ~1e-2, far outside FEATURE_RTOL.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_NUM_THREADS": threads})
    lock = threading.Lock()  # a compiled model's own infer request serves one call at a time

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            return np.array(compiled(x)[0], dtype=np.float32)  # a copy: the request's buffer is reused
    return run


@dataclass(frozen=True)
class Engine:
    """A runtime that runs the ONNX export: ``load(path, threads)`` -> ``run(float32 [N,3,S,S])``."""

    name: str
    module: str  # its import name (and distribution, for the version)
    load: Callable[[Path, int], Callable[[np.ndarray], np.ndarray]]


ENGINES = {engine.name: engine for engine in (
    Engine("onnxruntime", "onnxruntime", _onnxruntime_load),
    Engine("openvino", "openvino", _openvino_load),
)}

# What ``features.runtime`` may say.
RUNTIMES = {
    "auto": "the fastest engine (ONNX Runtime, OpenVINO) whose export matches PyTorch on a probe batch, else PyTorch",
    "torch": "always PyTorch (eager mode)",
    **{name: f"{name} only, where its export matches PyTorch on a probe batch, else PyTorch" for name in ENGINES},
}


def _label(engine: str, check: dict) -> str:
    return f"{engine} (checked against torch: max relative difference {check['engines'][engine]['max_rel_diff']:.1e})"


@dataclass(frozen=True)
class Checked:
    """A checked export and the engine to run it, not loaded: what travels to Ray's workers."""

    path: Path
    check: dict  # check.json: its ``onnx_sha256`` is what a copy of the file must hash to
    engine: str

    @property
    def label(self) -> str:
        return _label(self.engine, self.check)


@dataclass(frozen=True)
class Runner:
    """A checked export in one engine: ``run(x)`` maps float32 [N,3,S,S] to the same output as torch."""

    engine: str
    call: Callable[[np.ndarray], np.ndarray]
    path: Path
    check: dict

    @property
    def label(self) -> str:
        return _label(self.engine, self.check)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.call(np.ascontiguousarray(x, dtype=np.float32))


@dataclass(frozen=True)
class Choice:
    """Which runtime computes, and why, in words for the CLI and UI."""

    runner: Runner | None
    label: str  # "openvino (checked against torch ...)" or "torch (...why...)"
    level: str = "info"  # "warning" when an engine was wanted but refused
    export: Checked | None = None  # the checked export behind ``runner`` (also when asked not to load it)

    @property
    def short(self) -> str:
        """For progress lines: "onnxruntime (checked against torch)" or "torch"."""
        return f"{self.export.engine} (checked against torch)" if self.export is not None else "torch"


def cpu_count() -> int:
    """Cores this process may use (affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _version(module: str) -> str | None:
    """A package's version from its metadata (importing onnx or openvino costs time); None if absent."""
    import importlib
    import importlib.util
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:  # another distribution of it (onnxruntime-gpu ...), or none
        if importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).__version__


def versions() -> dict[str, str]:
    """torch, onnx and the installed engines' versions. Raises ImportError when onnx or no engine is installed."""
    import torch

    found = {"torch": torch.__version__, "onnx": _version("onnx")}
    if found["onnx"] is None:
        raise ImportError("onnx is not installed")
    engines = {name: v for name in ENGINES if (v := _version(ENGINES[name].module))}
    if not engines:
        raise ImportError(f"none of {', '.join(ENGINES)} is installed")
    return {**found, **engines}


def export_folder(settings: "Settings", backbone: str, weights_id: str, output: str) -> tuple[Path, str]:
    """(folder of the export, its key). ``output``: "pooled", "multilevel" or "distribution"."""
    v = versions()
    engines = "|".join(f"{name}{v[name]}" for name in ENGINES if name in v)
    key = f"{backbone}|{weights_id}|{output}|torch{v['torch']}|onnx{v['onnx']}|{engines}|opset{OPSET}|{EXPORT_FORMAT}"
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
        return {**figures, "passed": False, "reason": "it gave non-finite values"}
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


_SESSIONS: "OrderedDict[tuple, Runner]" = OrderedDict()  # (path, sha256, engine, threads) -> Runner; they take seconds to build
_SESSIONS_LOCK = threading.Lock()
_EXPORT_LOCK = threading.Lock()  # one export at a time in a process (two tabs asking at once)
SESSIONS_KEPT = 4


def _runner(path: Path, check: dict, engine: str, threads: int | None = None,
            call: Callable[[np.ndarray], np.ndarray] | None = None) -> Runner:
    threads = threads or cpu_count()
    # the export's own path too: a runner carries its check (the figures its label quotes), and the same
    # network exported under another cache folder has a check of its own
    key = (str(path), check["onnx_sha256"], engine, threads)
    with _SESSIONS_LOCK:
        runner = _SESSIONS.get(key)
        if runner is None:
            runner = Runner(engine, call or ENGINES[engine].load(path, threads), path, check)
            _SESSIONS[key] = runner
            while len(_SESSIONS) > SESSIONS_KEPT:
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(key)
        return runner


def _read_check(folder: Path, key: str) -> dict | None:
    """The stored check of a complete, unchanged export; None when there is none to trust."""
    try:
        check = json.loads((folder / "check.json").read_text())
    except (OSError, ValueError):
        return None
    model = folder / "model.onnx"
    if not isinstance(check, dict) or check.get("key") != key or not isinstance(check.get("engines"), dict):
        return None
    if check.get("passed") and (not model.is_file() or _file_sha256(model) != check.get("onnx_sha256")):
        return None  # a damaged or replaced model file: export and check again
    return check


def _engine_for(check: dict, wanted: str) -> tuple[str | None, str]:
    """(engine to use, why not when None) for ``wanted``: "auto" (the fastest that passed) or an engine's name."""
    if wanted == "auto":
        return check.get("fastest"), check.get("reason", "")
    result = check["engines"].get(wanted)
    if result is None:
        return None, f"{wanted} is not installed"
    return (wanted, "") if result["passed"] else (None, f"{wanted} refused: {result['reason']}")


def prepare(model: "nn.Module | Callable[[], nn.Module]", settings: "Settings", *, backbone: str, weights_id: str,
            output: str, transform, export: bool = True, engine: str = "auto", load: bool = True) -> Choice:
    """The runtime for ``model`` (torch module: float32 [N,3,S,S] -> [N,D]; or a function making it,
    called only to export).

    Uses a checked export when there is one; exports and checks one when ``export``;
    otherwise (or when the check refused it) says why torch computes. ``engine``:
    "auto" (the fastest engine that passed) or one of ``ENGINES``. ``load=False`` leaves the
    engine unloaded (``export`` says what to run): a Ray driver ships it to its workers.
    """
    try:
        folder, key = export_folder(settings, backbone, weights_id, output)
    except ImportError as exc:
        return Choice(None, f"torch (no engine for the export: {exc})")
    check = _read_check(folder, key)
    if check is None and not export:
        return Choice(None, "torch (no checked ONNX export yet; one is made for a larger job)")
    if check is None:
        with _EXPORT_LOCK:
            check = _read_check(folder, key)  # another thread may have made it meanwhile
            if check is None:
                check = _export_and_check(model if hasattr(model, "modules") else model(), folder, key, transform, output,
                                          keep=engine if load else None)
    name, why = _engine_for(check, engine)
    if name is None:
        return Choice(None, f"torch ({why})", "warning")
    checked = Checked(folder / "model.onnx", check, name)
    if not load:
        return Choice(None, checked.label, export=checked)
    try:
        runner = _runner(checked.path, check, name)
        return Choice(runner, runner.label, export=checked)
    except Exception as exc:  # an engine that cannot load the export: torch still works
        return Choice(None, f"torch ({name} could not load the export: {type(exc).__name__}: {exc})", "warning")


def _export_and_check(model: "nn.Module", folder: Path, key: str, transform, output: str,
                      keep: str | None = "auto") -> dict:
    # The exporter puts the whole tree back in the *wrapper's* mode afterwards: a wrapper built in
    # training mode (MultiLevel) would leave the caller's network computing batch statistics.
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        return _export_and_check_eval(model, folder, key, transform, output, keep)
    finally:
        for module, training in modes.items():
            module.training = training


def _median_seconds(calls: dict[str, Callable[[np.ndarray], np.ndarray]], x: np.ndarray) -> dict[str, float]:
    """Median seconds of each call on ``x``, interleaved (load from other processes falls on all alike)."""
    import statistics
    import time

    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, call in calls.items():
        call(x)  # warm-up: first runs allocate and pick kernels
    for _ in range(TIMING_REPEATS):
        for name, call in calls.items():
            started = time.perf_counter()
            call(x)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def _export_and_check_eval(model: "nn.Module", folder: Path, key: str, transform, output: str,
                           keep: str | None = "auto") -> dict:
    """Export, check every engine against torch, and keep loaded only the engine ``keep`` picks
    (:func:`_engine_for`; None: none): each engine's session holds its own copy of the network and
    its buffers, and the others would sit unused for the rest of the process."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.onnx"
    probe = probe_batch(transform)
    v = versions()
    base = {"key": key, **v, "output": output, "probe": "sklearn china.jpg, flower.jpg, 2 crops",
            "feature_rtol": FEATURE_RTOL, "nima_mean_tol": NIMA_MEAN_TOL}
    try:
        _export(model, probe, target)
    except Exception as exc:  # an op the exporter does not support: torch computes
        check = {**base, "engines": {}, "passed": False, "fastest": None,
                 "reason": f"the ONNX export failed ({type(exc).__name__}: {str(exc)[:300]})"}
        target.unlink(missing_ok=True)
        _write_json(folder / "check.json", check)
        return check
    want = _torch_outputs(model, probe)
    results: dict[str, dict] = {}
    calls: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name in (n for n in ENGINES if n in v):
        try:
            call = ENGINES[name].load(target, cpu_count())
            results[name] = compare(call(probe), want, output)
        except Exception as exc:  # an op this engine does not support: another engine or torch computes
            results[name] = {"passed": False, "reason": f"it could not run the export ({type(exc).__name__}: {str(exc)[:300]})"}
            continue
        if results[name]["passed"]:
            calls[name] = call
    if calls:
        tiled = np.ascontiguousarray(np.tile(probe, (-(-TIMING_BATCH // len(probe)), 1, 1, 1))[:TIMING_BATCH])
        for name, seconds in _median_seconds(calls, tiled).items():
            results[name]["seconds_batch"] = round(seconds, 4)
    fastest = min(calls, key=lambda n: results[n]["seconds_batch"]) if calls else None
    check = {**base, "engines": results, "passed": fastest is not None, "fastest": fastest,
             "timing_batch": TIMING_BATCH,
             "max_rel_diff": results[fastest]["max_rel_diff"] if fastest else None,
             "reason": "" if fastest else "; ".join(f"{n} refused: {r['reason']}" for n, r in results.items())}
    if fastest:
        check["onnx_sha256"] = _file_sha256(target)
        chosen = _engine_for(check, keep)[0] if keep else None
        if chosen in calls:  # already loaded: keep it for the job that asked
            _runner(target, check, chosen, call=calls[chosen])
        calls.clear()
    else:
        target.unlink(missing_ok=True)  # never leave an export that gives other answers lying about
    _write_json(folder / "check.json", check)
    return check


def choose(model: "nn.Module | Callable[[], nn.Module]", settings: "Settings", *, backbone: str, weights_id: str,
           output: str, transform, n_images: int, on_gpu: bool = False, load: bool = True) -> Choice:
    """The runtime a job of ``n_images`` should use, honouring ``settings.runtime`` (see :func:`prepare`)."""
    check_runtime(settings)
    if settings.runtime == "torch":
        return Choice(None, "torch (features.runtime is 'torch')")
    if on_gpu:
        return Choice(None, "torch (on the GPU)")
    return prepare(model, settings, backbone=backbone, weights_id=weights_id, output=output, transform=transform,
                   export=n_images >= EXPORT_MIN_IMAGES, engine=settings.runtime, load=load)


def check_runtime(settings: "Settings") -> None:
    """BadInput unless ``features.runtime`` names one of RUNTIMES."""
    if settings.runtime not in RUNTIMES:
        from workbench.errors import BadInput

        raise BadInput(f"features.runtime is {settings.runtime!r}; choose one of: {', '.join(RUNTIMES)}")


def will_export(settings: "Settings", *, backbone: str, weights_id: str, output: str, n_images: int,
                on_gpu: bool = False) -> bool:
    """Whether :func:`choose` with these arguments is about to export (so a caller can say so first)."""
    if settings.runtime == "torch" or on_gpu or n_images < EXPORT_MIN_IMAGES:
        return False
    try:
        folder, key = export_folder(settings, backbone, weights_id, output)
    except ImportError:
        return False
    return _read_check(folder, key) is None


# ------------------------------------------------- exports that travel (Ray)
def load_checked(checked: Checked, threads: int, fetch: Callable[[], bytes] | None = None,
                 folder: Path | None = None) -> Runner:
    """A Runner for an export that travelled to another process or machine (a Ray worker). The file at
    ``checked.path`` is used when it is there with the SHA-256 its check recorded (a worker on the
    driver's machine); otherwise ``fetch()`` gives the file's bytes, which must hash to it and are
    written into ``folder``. Bytes that do not match are refused (ValueError), as a run's model file
    that does not match its manifest is."""
    want = checked.check.get("onnx_sha256")
    path = Path(checked.path)
    if not (path.is_file() and _file_sha256(path) == want):
        if fetch is None:
            raise ValueError(f"the export {path} is missing or does not match its check, and none was shipped")
        data = fetch()
        if hashlib.sha256(data).hexdigest() != want:
            raise ValueError("the shipped export does not match the SHA-256 of its check; refusing to run it")
        if folder is None:
            raise ValueError("a shipped export needs a folder to be written into")
        path = Path(folder) / f"{want[:16]}.onnx"
        if not (path.is_file() and _file_sha256(path) == want):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    return _runner(path, checked.check, checked.engine, threads)


def forward(choice: Choice, model: Callable, x) -> np.ndarray:
    """``model(x)`` (torch) or the checked engine; float32 numpy [N, D]."""
    if choice.runner is not None:
        return choice.runner.run(x.numpy() if hasattr(x, "numpy") else x)
    import torch

    with torch.inference_mode():
        return model(x).float().cpu().numpy()
