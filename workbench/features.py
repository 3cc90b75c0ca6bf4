"""Batched feature extraction with an on-disk cache keyed by image content.

``extract_features(paths, "efficientnet_lite0", settings)`` is a generator of
``Progress``/``Notice`` events ending with ``Finished(FeatureResult)``:

1. every file is hashed (SHA-256 of its bytes, two threads);
2. features already cached for (that hash, backbone, weights id, preprocessing
   version) are read back, so an unchanged set only hashes, a renamed file hits
   and an edited file misses; the network is not even built when all hit;
3. the rest is decoded by DataLoader worker processes (JPEG draft decoding near
   the network's input size, EXIF orientation applied) and run through the
   backbone in batches under ``torch.inference_mode``, channels-last, on the GPU
   when there is one; on the CPU in ONNX Runtime or OpenVINO instead where its export
   was checked against torch (see ``workbench.onnx_runtime``; ``FeatureResult.runtime``
   and a Notice say which). A broken image is skipped with its reason; its batch goes on.

Cache files are safetensors (no pickle) holding one float32 vector and the
SHA-256 of its bytes; a file whose checksum, key or shape does not match is
deleted and recomputed, never trusted. ``cache_size``/``clear_cache`` keep it visible.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workbench import onnx_runtime
from workbench.backbones import (
    PREPROCESSING_VERSION,
    VIEWS,
    LoadedBackbone,
    WeightStatus,
    get_backbone,
    load_for_view,
    view_weight_status,
    weight_status,
)
from workbench.backbones.weights import random_weights_id
from workbench.config import Settings
from workbench.events import NEVER_STOP, FilesSkipped, Finished, Notice, Progress, StopFlag, relay
from workbench.fsutil import cached_file_sha256
from workbench.images import ImageError, load_image

BackboneArg = Union[str, LoadedBackbone]
HASH_CHUNK = 64  # files hashed between stop checks and progress events


@dataclass
class FeatureResult:
    """``features`` float32 [N_ok, D], row i belonging to ``paths[i]`` (input order);
    ``errors`` maps each skipped path to a reason a person can read."""

    features: np.ndarray
    paths: list[Path]
    errors: dict[str, str]
    weights: WeightStatus
    backbone: str = ""
    cache_hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    runtime: str = ""  # what computed the new features, e.g. "onnxruntime (checked against torch ...)"; "" if none


# ------------------------------------------------------------------- cache
class FeatureCache:
    """One folder per (backbone, weights id, preprocessing version, view); one small file per image hash."""

    def __init__(self, root: Path, backbone: str, weights_id: str, feature_dim: int, view: str = "pooled") -> None:
        # the pooled view keeps the key it always had, so existing caches stay valid
        self.key = f"{backbone}|{weights_id}|{PREPROCESSING_VERSION}" + ("" if view == "pooled" else f"|{view}")
        self.folder = Path(root) / backbone / hashlib.sha256(self.key.encode()).hexdigest()[:16]
        self.feature_dim = feature_dim

    def path_of(self, image_sha: str) -> Path:
        return self.folder / image_sha[:2] / f"{image_sha}.safetensors"

    def get(self, image_sha: str) -> tuple[np.ndarray | None, bool]:
        """(vector or None, corrupt?); a corrupt file is deleted."""
        from safetensors import safe_open

        path = self.path_of(image_sha)
        if not path.is_file():
            return None, False
        try:
            with safe_open(str(path), framework="np") as fh:
                meta = fh.metadata() or {}
                vector = fh.get_tensor("features")
            ok = (vector.dtype == np.float32 and vector.shape == (self.feature_dim,) and meta.get("key") == self.key
                  and meta.get("sha256") == hashlib.sha256(vector.tobytes()).hexdigest())
        except Exception:  # truncated, garbage, wrong format: all mean "rebuild"
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            return None, True
        return vector, False

    def put(self, image_sha: str, vector: np.ndarray) -> None:
        from safetensors.numpy import save

        vector = np.ascontiguousarray(vector, dtype=np.float32)
        data = save({"features": vector}, metadata={"key": self.key, "sha256": hashlib.sha256(vector.tobytes()).hexdigest()})
        path = self.path_of(image_sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "key.json").exists():
            (self.folder / "key.json").write_text(json.dumps({"key": self.key}) + "\n")
        # Rebuildable data: temp + rename keeps readers from seeing half a file; no fsync needed.
        # pid + thread: two jobs of one UI process may cache the same image at once.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def onnx_exports_dir(settings: Settings) -> Path:
    """Where ``workbench.onnx_runtime`` keeps its exports, beside the features: ``<cache_dir>/onnx/<backbone>/<key>/``."""
    return Path(settings.cache_dir) / "onnx"


def _files_under(root: Path, pattern: str) -> list[Path]:
    return [p for p in root.rglob(pattern) if p.is_file()] if root.is_dir() else []


def cache_size(settings: Settings) -> dict:
    """{"path", "bytes", "files", "backbones": {name: bytes}} of the feature cache, and
    "onnx": {"path", "bytes", "files"} of the ONNX exports beside it."""
    root = Path(settings.features_cache_dir)
    per_backbone: dict[str, int] = {}
    total_bytes = files = 0
    for path in _files_under(root, "*.safetensors"):
        size = path.stat().st_size
        backbone = path.relative_to(root).parts[0]
        per_backbone[backbone] = per_backbone.get(backbone, 0) + size
        total_bytes += size
        files += 1
    exports = _files_under(onnx_exports_dir(settings), "*")
    onnx = {"path": str(onnx_exports_dir(settings)), "bytes": sum(p.stat().st_size for p in exports),
            "files": len(exports)}
    return {"path": str(root), "bytes": total_bytes, "files": files, "backbones": per_backbone, "onnx": onnx}


def clear_cache(settings: Settings, backbone: str | None = None, *, onnx_exports: bool = False) -> dict:
    """Delete cached features (all, or one backbone's), and with ``onnx_exports`` that backbone's
    (or every) ONNX export too; returns what was freed. Exports are kept by default: recomputing
    features reuses them (an export costs seconds to minutes)."""
    import shutil

    before = cache_size(settings)
    # Only a registered name may pick a folder: "--backbone .." must never reach rmtree.
    name = get_backbone(backbone).name if backbone else None
    targets = [Path(settings.features_cache_dir)]
    if onnx_exports:
        targets.append(onnx_exports_dir(settings))
    for root in targets:
        target = root / name if name else root
        if target.is_dir():
            shutil.rmtree(target)
    after = cache_size(settings)
    return {"freed_bytes": before["bytes"] - after["bytes"], "freed_files": before["files"] - after["files"],
            "onnx_freed_bytes": before["onnx"]["bytes"] - after["onnx"]["bytes"],
            "onnx_freed_files": before["onnx"]["files"] - after["onnx"]["files"], **after}


# ------------------------------------------------------------------ decoding
class _Images(Dataset):
    """(index, tensor [3,S,S], error) per image; a broken file gives an error, not an exception."""

    def __init__(self, items: list[tuple[int, str]], transform, min_size: int | None, max_pixels: int) -> None:
        self.items, self.transform, self.min_size, self.max_pixels = items, transform, min_size, max_pixels
        self.size = transform.size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        index, path = self.items[i]
        tensor, reason = decode_tensor(path, self.transform, self.min_size, self.max_pixels)
        return index, tensor, reason


def decode_tensor(source, transform, min_size: int | None, max_pixels: int,
                  name: str | None = None) -> tuple[torch.Tensor, str]:
    """(normalised [3,S,S], "") for a photo (path or bytes; ``name`` labels bytes in messages),
    or (zeros, reason) when it cannot be used: a broken file gives a reason, never an exception.
    ``min_size``: JPEG draft decoding near the network's input size (None: full decode)."""
    try:
        draft = (min_size, min_size) if min_size else None
        image = load_image(source, max_pixels=max_pixels, min_size=draft, name=name)
        return transform(image), ""
    except ImageError as exc:
        reason = str(exc)
    except Exception as exc:  # a decoder bug must not end the whole extraction
        label = name or (Path(source).name if isinstance(source, (str, Path)) else "the image")
        reason = f"{label}: cannot be decoded ({type(exc).__name__}: {exc})"
    return torch.zeros(3, transform.size, transform.size), reason


def draft_size(spec) -> int | None:
    """The size a backbone's JPEGs may be draft-decoded near (None: it needs a full decode)."""
    return spec.input_size if spec.draft_decode else None


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the network for cores


def device_for_inference() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _hash_one(path: Path) -> str | OSError:
    try:
        return cached_file_sha256(path)
    except OSError as exc:
        return exc


def _status_without_loading(name: str, settings: Settings, random_weights: bool, view: str = "pooled") -> WeightStatus | None:
    if VIEWS[view].status is not None:  # a view with a network of its own (CLIP prompts): its weights
        status = view_weight_status(name, view, settings, random_weights=random_weights)
        return status if status.weights_id else None
    if random_weights:
        return WeightStatus("random", "random initialisation requested", random_weights_id())
    status = weight_status(name, settings, check_online=False)
    return status if status.weights_id else None


# ----------------------------------------------------------------- extraction
def extract_features(
    paths: Sequence[str | Path],
    backbone: BackboneArg,
    settings: Settings,
    *,
    stop: StopFlag = NEVER_STOP,
    random_weights: bool = False,
    view: str = "pooled",
) -> Iterator[Progress | Notice | Finished]:
    """Features for ``paths`` (see the module docstring) in ``view`` ("pooled", "multilevel", "clip_prompts",
    see ``FEATURE_VIEWS``). Raises WeightsUnavailable up front."""
    started = time.perf_counter()
    paths = [Path(p) for p in paths]
    loaded = backbone if isinstance(backbone, LoadedBackbone) else None
    spec = loaded.spec if loaded else get_backbone(backbone)
    dim = spec.feature_dim_of(view)  # also refuses a view the backbone does not have
    status = loaded.weights if loaded else _status_without_loading(spec.name, settings, random_weights, view)
    if status is None:  # weights still to be downloaded: load now so the id is known
        loaded = load_for_view(spec.name, view, settings, random_weights=random_weights)
        status = loaded.weights
    level = "warning" if status.is_random else "info"
    yield Notice(f"{spec.name}: weights from {status.label()} — {status.detail}", level)

    total = len(paths)
    errors: dict[str, str] = {}
    vectors: dict[int, np.ndarray] = {}
    notes: list[str] = []
    digests: list[str | OSError] = []
    with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib releases the GIL
        for start in range(0, total, HASH_CHUNK):
            if stop.is_set():
                empty = FeatureResult(np.zeros((0, dim), np.float32), [], {}, status, spec.name)
                yield Finished(empty, stopped=True)
                return
            digests.extend(pool.map(_hash_one, paths[start:start + HASH_CHUNK]))
            yield Progress(0, total, f"hashing {len(digests)}/{total} images (finding cached features)")
    cache = FeatureCache(settings.features_cache_dir, spec.name, status.weights_id, dim, view)

    todo: dict[str, list[int]] = {}  # image hash -> indices (duplicates computed once)
    hits = corrupt = 0
    for index, (path, digest) in enumerate(zip(paths, digests)):
        if isinstance(digest, Exception):
            errors[str(path)] = f"{path.name}: cannot read the file ({getattr(digest, 'strerror', None) or digest})"
            yield FilesSkipped(f"skipped {errors[str(path)]}", "warning")
            continue
        if digest in todo:
            todo[digest].append(index)
            continue
        vector, was_corrupt = cache.get(digest)
        corrupt += was_corrupt
        if vector is not None:
            vectors[index] = vector
            hits += 1
        else:
            todo[digest] = [index]
    if corrupt:
        notes.append(f"{corrupt} damaged cache file(s) found and rebuilt")
        yield Notice(notes[-1], "warning")
    done = hits
    yield Progress(done, total, f"{hits} from cache, {len(todo)} to compute")

    stopped = cache_failed = False
    computed = 0
    runtime = runtime_short = ""
    if todo:
        if loaded is None:
            loaded = load_for_view(spec.name, view, settings, random_weights=random_weights)
        first_of = {indices[0]: digest for digest, indices in todo.items()}
        items = [(index, str(paths[index])) for index in sorted(first_of)]
        for event in _run_network(loaded, items, settings, stop, view):
            if isinstance(event, Finished):
                stopped = event.stopped
                break
            if isinstance(event, Notice):
                yield event
                continue
            if isinstance(event, onnx_runtime.Choice):  # which runtime computes, and why
                runtime, runtime_short = event.label, event.short
                yield Notice(f"{spec.name}: computed by {event.label}", event.level)
                continue
            batch_vectors, batch_errors, rate = event
            for index, vector in batch_vectors.items():
                digest = first_of[index]
                try:
                    cache.put(digest, vector)
                except OSError as exc:  # full disk, read-only folder: features still returned
                    if not cache_failed:
                        notes.append(f"features could not be cached in {cache.folder} ({exc}); they are "
                                     f"recomputed next time")
                        yield Notice(notes[-1], "warning")
                    cache_failed = True
                for same in todo[digest]:
                    vectors[same] = vector
                    computed += 1
            for index, reason in batch_errors.items():
                for same in todo[first_of[index]]:
                    errors[str(paths[same])] = reason
                yield FilesSkipped(f"skipped {reason}", "warning")
            done = len(vectors) + len(errors)
            remaining = total - done
            yield Progress(done, total, f"{spec.name}: {rate:.1f} images/s on {runtime_short}", rate=rate,
                           eta=remaining / rate if rate > 0 else None)

    order = sorted(vectors)
    features = np.stack([vectors[i] for i in order]).astype(np.float32) if order else np.zeros((0, dim), np.float32)
    result = FeatureResult(features=features, paths=[paths[i] for i in order], errors=errors, weights=status,
                           backbone=spec.name, cache_hits=hits, computed=computed,
                           seconds=time.perf_counter() - started, notes=notes, runtime=runtime)
    yield Finished(result, stopped=stopped)


def _run_network(loaded: LoadedBackbone, items: list[tuple[int, str]], settings: Settings, stop: StopFlag,
                 view: str = "pooled"):
    """Yields a Notice before an export, the runtime Choice, then (vectors {index: [D]}, errors {index: reason}, images/s) per batch,
    then Finished(None, stopped)."""
    device = device_for_inference()
    home = next(loaded.model.parameters()).device
    model = feature_network(loaded, device, view)
    try:
        where = dict(backbone=loaded.spec.name, weights_id=loaded.weights.weights_id, output=view,
                     n_images=len(items), on_gpu=device.type != "cpu")
        if onnx_runtime.will_export(settings, **where):
            yield Notice(f"{loaded.spec.name}: exporting to ONNX and checking its engines against torch "
                         f"(once per weights file; seconds to a minute)")
        choice = onnx_runtime.choose(model, settings, transform=loaded.transform, **where)
        yield choice
        yield from _batches(loaded, model, device, items, settings, stop, choice.runner)
    finally:
        if model is not loaded.model:  # a view's hooks (multilevel) come off the caller's backbone
            model.remove()
        loaded.model.to(home)  # a caller's LoadedBackbone is handed back where it was, as it was


def feature_network(loaded: LoadedBackbone, device: torch.device, view: str = "pooled") -> torch.nn.Module:
    """The backbone as batched extraction runs it: on ``device``, channels-last, eval; wrapped as the
    view says (multilevel hooks its stages: call ``.remove()`` on a wrapper when done)."""
    model = loaded.model.to(device).to(memory_format=torch.channels_last).eval()
    wrap = VIEWS[view].wrap  # None: the backbone's output as it is
    return wrap(model, loaded.spec) if wrap else model


def forward_batch(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> np.ndarray:
    """Features float32 [N, D] of normalised images [N,3,S,S] (a ``feature_network``)."""
    batch = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    # Never yield inside inference_mode: grad mode is per thread, and Gradio resumes a generator
    # on whichever worker thread is free, so a thread left in inference mode would later run
    # another tab's training without gradients ("does not require grad").
    with torch.inference_mode():
        return model(batch).float().cpu().numpy()


def _batches(loaded: LoadedBackbone, model, device, items, settings: Settings, stop: StopFlag,
             runner: onnx_runtime.Runner | None = None):
    batch_size = max(1, settings.batch_size)
    # Worker processes pay off only when there is more than a batch or two to decode.
    workers = settings.num_workers if len(items) > 2 * batch_size else 0
    loader = DataLoader(_Images(items, loaded.transform, draft_size(loaded.spec), settings.max_pixels), batch_size=batch_size,
                        num_workers=workers, worker_init_fn=_worker_init if workers else None,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    started, count = time.perf_counter(), 0
    for indices, images, reasons in loader:
        if stop.is_set():
            yield Finished(None, stopped=True)
            return
        ok = [i for i, reason in enumerate(reasons) if not reason]
        errors = {int(indices[i]): reasons[i] for i in range(len(reasons)) if reasons[i]}
        vectors = {}
        if ok and runner is not None:  # the checked engine (ONNX Runtime or OpenVINO): plain NCHW float32 in and out
            out = runner.run(images[ok].numpy())
            vectors = {int(indices[i]): out[j] for j, i in enumerate(ok)}
        elif ok:
            out = forward_batch(model, images[ok], device)
            vectors = {int(indices[i]): out[j] for j, i in enumerate(ok)}
        count += len(reasons)
        yield vectors, errors, count / max(time.perf_counter() - started, 1e-9)
    yield Finished(None, stopped=False)


def features_for(
    paths: Sequence[str | Path],
    backbone: BackboneArg,
    settings: Settings,
    *,
    stop: StopFlag = NEVER_STOP,
    random_weights: bool = False,
    on_event=None,
    view: str = "pooled",
) -> FeatureResult:
    """Run :func:`extract_features` to the end and return its FeatureResult."""
    from workbench.events import drain

    return drain(extract_features(paths, backbone, settings, stop=stop, random_weights=random_weights, view=view),
                 on_event)


# ------------------------------------------------ features of several backbones
@dataclass
class FeatureMatrix:
    X: np.ndarray  # [N_ok, sum of feature dims] float32
    keep: np.ndarray  # indices into the input paths that every backbone could read
    errors: dict[str, str] = field(default_factory=dict)  # path -> reason
    weights: dict[str, dict] = field(default_factory=dict)  # backbone -> {source, detail, weights_id}


def weights_record(status) -> dict:
    return {"source": status.source, "detail": status.detail, "weights_id": status.weights_id}


def feature_matrix(paths: Sequence[Path], backbones: Sequence[str], settings, *, stop: StopFlag = NEVER_STOP,
                   random_weights: bool = False, view: str = "pooled") -> Iterator[Progress | Notice | Finished]:
    """Concatenate the cached features (in ``view``) of one or more backbones (``auto`` uses several),
    dropping images any backbone could not read, and saying which.

    Yields the extraction events of each backbone, then ``Finished(FeatureMatrix)``.

    Ends with ``Finished(None, stopped=True)`` if stopped during extraction.
    """
    paths = [Path(p) for p in paths]
    blocks, errors, weights = [], {}, {}
    for name in backbones:
        finished = yield from relay(extract_features(paths, name, settings, stop=stop, random_weights=random_weights,
                                                     view=view))
        if finished.stopped or stop.is_set():
            yield Finished(None, stopped=True)
            return
        result = finished.result
        weights[name] = weights_record(result.weights)
        errors.update(result.errors)
        row_of = {str(p): i for i, p in enumerate(result.paths)}
        blocks.append((row_of, np.asarray(result.features, dtype=np.float32)))
    keep = [i for i, p in enumerate(paths) if all(str(p) in row_of for row_of, _ in blocks)]
    X = np.concatenate([feats[[row_of[str(paths[i])] for i in keep]] for row_of, feats in blocks], axis=1) \
        if keep else np.zeros((0, sum(f.shape[1] for _, f in blocks)), dtype=np.float32)
    if errors:
        # each reason already starts with its file's name ("notes.jpg: not an image ...")
        yield FilesSkipped(f"{len(errors)} image(s) could not be read and are left out: "
                           + "; ".join(list(errors.values())[:5]) + (" ..." if len(errors) > 5 else ""), level="warning")
    yield Finished(FeatureMatrix(X=X, keep=np.array(keep, dtype=np.int64), errors=errors, weights=weights))
