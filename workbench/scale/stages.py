"""The stages of a Ray job, run on the workers: reading and hashing, decoding, the model.

Each reuses the local engine's code (``decode_tensor``, ``feature_network``/``forward_batch``,
``nima_distributions``, ``head_outputs``) so both engines give the same answers. Nothing here
imports ray, torch or pyarrow at module level: the driver imports this module cheaply.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from workbench.config import Settings


@dataclass(frozen=True)
class Plan:
    """What the workers run; small and picklable (shipped to every task and actor)."""

    kind: str  # "scores" | "features": which Parquet columns
    mode: str  # "features" (backbones then the run's head), "nima", "pixels" (image family), "extract"
    backbones: tuple[str, ...] = ()
    view: str = "pooled"
    random_weights: bool = False
    run_id: str | None = None


_DONE: dict[str, dict] = {}  # per worker process: the done table of each job, fetched once


def read_and_hash(batch: dict, done_ref: list) -> dict:
    """path -> path, sha256, data (bytes), error, copy (the sha of a done row for a known
    photo under a new path); photos already done under the same path are dropped here."""
    import hashlib

    import numpy as np
    import ray

    key = done_ref[0].hex()
    if key not in _DONE:
        _DONE.clear()
        _DONE[key] = ray.get(done_ref[0])
    done = _DONE[key]  # {"path_sha": {path: sha}, "shas": set}
    out: dict[str, list] = {"path": [], "sha256": [], "data": [], "error": [], "copy": []}
    for path in batch["path"]:
        path = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            out["path"].append(path), out["sha256"].append(""), out["data"].append(b"")
            out["error"].append(f"{Path(path).name}: cannot read the file ({exc.strerror or exc})")
            out["copy"].append("")
            continue
        sha = hashlib.sha256(data).hexdigest()
        if done["path_sha"].get(path) == sha:
            continue  # already done: a resumed job does not even decode it
        known = sha in done["shas"]
        out["path"].append(path), out["sha256"].append(sha), out["data"].append(b"" if known else data)
        out["error"].append(""), out["copy"].append(sha if known else "")
    return {k: np.array(v, dtype=object) for k, v in out.items()}


def preprocess(batch: dict, plan: Plan, max_pixels: int) -> dict:
    """Decode and transform with the local engine's code: one normalised tensor column ``x{i}``
    per backbone; image families keep the bytes (their model decodes) after checking them."""
    from workbench import compat  # noqa: F401  (first: the torchvision guard)

    # isort: split

    import numpy as np
    import torch

    from workbench.backbones import get_backbone, make_transform
    from workbench.features import decode_tensor, draft_size
    from workbench.images import ImageError, check_image

    n = len(batch["path"])
    errors = [str(e) for e in batch["error"]]
    names = [Path(str(p)).name for p in batch["path"]]
    usable = [not errors[i] and not batch["copy"][i] for i in range(n)]
    if plan.mode == "pixels":
        for i in range(n):
            if usable[i]:
                try:
                    check_image(batch["data"][i], max_pixels, name=names[i])
                except ImageError as exc:
                    errors[i] = str(exc)
        return {**batch, "error": np.array(errors, dtype=object)}
    for k, name in enumerate(plan.backbones):
        spec = get_backbone(name)
        transform = make_transform(spec)
        tensors = []
        for i in range(n):
            if usable[i] and not errors[i]:
                tensor, reason = decode_tensor(batch["data"][i], transform, draft_size(spec), max_pixels, name=names[i])
                errors[i] = errors[i] or reason
            else:
                tensor = torch.zeros(3, transform.size, transform.size)
            tensors.append(tensor.numpy())
        batch[f"x{k}"] = np.stack(tensors) if tensors else np.zeros((0, 3, spec.input_size, spec.input_size), np.float32)
    batch = {k: v for k, v in batch.items() if k != "data"}  # the bytes are not needed any more
    batch["error"] = np.array(errors, dtype=object)
    return batch


class Model:
    """The model of a job, loaded once per actor; called on batches of preprocessed photos.

    ``exports``: per backbone, (the driver's checked export, an object reference to its bytes or
    None) or (None, None) for torch; the actor runs the export in the engine its check chose."""

    def __init__(self, plan: Plan, settings: Settings, run_files: dict[str, bytes] | None, threads: int = 1,
                 exports: list | None = None) -> None:
        from workbench import compat  # noqa: F401  (first: the torchvision guard)

        # isort: split

        import torch

        from workbench.features import device_for_inference, feature_network

        torch.set_num_threads(max(1, threads))
        self.plan, self.settings = plan, settings
        self.device = device_for_inference()
        self.run = _load_shipped_run(plan.run_id, run_files, settings) if run_files else None
        self.runners = [_load_export(checked, ref, max(1, threads)) if checked is not None else None
                        for checked, ref in (exports or [(None, None)] * len(plan.backbones))]
        self.nets: list = []  # per backbone: its torch network, or None where an engine runs its export
        if plan.mode == "nima" and self.runners[0] is None:
            from workbench.backbones.nima import load_nima

            self.nima = load_nima(settings, progress=False)
        elif plan.mode in ("features", "extract"):
            from workbench.backbones import load_backbone

            for name, runner in zip(plan.backbones, self.runners):
                loaded = None if runner else load_backbone(name, settings, random_weights=plan.random_weights,
                                                           progress=False)
                self.nets.append(feature_network(loaded, self.device, plan.view) if loaded else None)

    def __call__(self, batch: dict):
        import numpy as np
        import pyarrow as pa
        import torch

        from workbench.features import forward_batch
        from workbench.predict import NO_FINITE_SCORE, nima_distributions
        from workbench.runs.inference import head_outputs

        n = len(batch["path"])
        errors = [str(e) for e in batch["error"]]
        todo = [i for i in range(n) if not errors[i] and not batch["copy"][i]]
        score: list = [None] * n
        std: list = [None] * n
        dist: list = [None] * n
        feats: list = [None] * n
        if todo:
            spreads = distributions = None
            if self.plan.mode == "nima":
                x = np.asarray(batch["x0"][todo], dtype=np.float32)
                distributions = (self.runners[0].run(x).astype(np.float64) if self.runners[0] is not None
                                 else nima_distributions(self.nima, torch.from_numpy(x)))
                from workbench.backbones.nima import distribution_mean_std

                scores, spreads = distribution_mean_std(distributions)
            elif self.plan.mode == "pixels":
                scores, distributions, spreads = head_outputs(self.run, np.array([batch["data"][i] for i in todo],
                                                                                 dtype=object))
            else:
                blocks = [self.runners[k].run(np.asarray(batch[f"x{k}"][todo], dtype=np.float32))
                          if self.runners[k] is not None else
                          forward_batch(net, torch.from_numpy(np.asarray(batch[f"x{k}"][todo])), self.device)
                          for k, net in enumerate(self.nets)]
                X = np.concatenate(blocks, axis=1)
                if self.plan.mode == "extract":
                    for j, i in enumerate(todo):
                        feats[i] = X[j].tolist()
                else:
                    scores, distributions, spreads = head_outputs(self.run, X)
            if self.plan.mode != "extract":
                for j, i in enumerate(todo):
                    value = float(scores[j])
                    if not np.isfinite(value):
                        errors[i] = NO_FINITE_SCORE
                        continue
                    score[i] = value
                    std[i] = float(spreads[j]) if spreads is not None else None
                    dist[i] = [float(v) for v in distributions[j]] if distributions is not None else None
        return pa.table({
            "path": [str(p) for p in batch["path"]], "sha256": [str(s) for s in batch["sha256"]],
            "score": pa.array(score, pa.float64()), "std": pa.array(std, pa.float64()),
            "distribution": pa.array(dist, pa.list_(pa.float64())), "features": pa.array(feats, pa.list_(pa.float32())),
            "error": [e or None for e in errors], "copy": [str(c) for c in batch["copy"]],
        })


def _load_export(checked, ref, threads: int):
    """The driver's checked export in its engine: the driver's file where this worker has it with the
    check's SHA-256, else the shipped bytes (checked against it, kept in this machine's temp folder)."""
    import tempfile

    from workbench import onnx_runtime

    def fetch() -> bytes:
        import ray

        return ray.get(ref)

    return onnx_runtime.load_checked(checked, threads, fetch if ref is not None else None,
                                     Path(tempfile.gettempdir()) / "workbench-shipped-exports")


def _load_shipped_run(run_id: str, files: dict[str, bytes], settings: Settings):
    """The run rebuilt from the bytes shipped to this actor, loaded (and hash-checked) by ``load_run``."""
    import shutil
    import tempfile

    from workbench.runs import load_run

    root = Path(tempfile.mkdtemp(prefix="workbench-run-"))
    try:
        (root / run_id).mkdir()
        for name, data in files.items():
            (root / run_id / Path(name).name).write_bytes(data)  # names from the manifest: no folder parts
        return load_run(run_id, replace(settings, models_dir=root))  # reads it all: the files can go
    finally:
        shutil.rmtree(root, ignore_errors=True)
