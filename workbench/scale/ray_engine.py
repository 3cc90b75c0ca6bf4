"""Scoring and feature extraction on Ray Data, following its batch-inference guide.

    ray_predict("2026-...-ridge-efficientnet_lite0", ["archive/"], settings, "scores.parquet")
    ray_features("efficientnet_lite0", ["archive/"], settings, "features.parquet")

Both are generators of ``Progress``/``Notice`` events ending with ``Finished(RayJobResult)``.
The pipeline, one Ray Data dataset streamed end to end:

1. the driver lists the photos (files, folders, globs, ``@LIST`` files of paths);
2. ``read_and_hash`` (tasks) reads each file's bytes and SHA-256, dropping photos whose hash
   is already done in ``--out`` (a resumed job) and turning unreadable files into error rows;
3. ``preprocess`` (tasks, fused with 2) decodes and resizes with the local engine's own code
   (``workbench.features.decode_tensor``: same draft decoding, same transforms);
4. ``Model`` (a callable class: each actor loads the model once; ``concurrency`` actors, one GPU
   each where the cluster has GPUs, an explicit ``batch_size``) runs the local engine's forward
   (``feature_network``/``forward_batch``, ``nima_distributions``) and head (``head_outputs``);
5. the driver writes each finished batch as one Parquet part (``workbench.scale.results``).

On CPU-only clusters Ray Data fuses 2-4 into the actors (same resources), one actor per core;
with GPUs the actors take one GPU each and decoding stays in CPU tasks. The stages live in
``workbench.scale.stages``.

A run's model files travel from its folder to the actors as constructor arguments (Ray's
object store); each actor writes them to a private folder and loads them with ``load_run``,
which checks the model file's SHA-256 against the manifest, as a local load does, before
anything is read. The networks run in the runtime the local engine would choose
(``workbench.onnx_runtime``: the fastest checked engine on CPUs, torch on GPUs): the driver
finds (or, for a job of 48 photos or more, makes and checks) the export, and each actor runs
that file when it has it with the SHA-256 of its check (one machine), or else fetches its
bytes from the object store and checks them against that SHA-256 before running them.
Backbone weights resolve on each worker as locally (weights folder, installed package,
download): on a cluster, every node needs them where the driver has them.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from workbench.config import Settings
from workbench.errors import BadInput
from workbench.events import Finished, Notice, Progress
from workbench.scale.stages import Model, Plan, preprocess, read_and_hash

BLOCK_ROWS = 32  # photos per read block: reading, hashing and decoding stream in blocks this size
LOCAL = "local"


@dataclass
class RayJobResult:
    out: Path
    rows: int  # rows in --out now (this job's and earlier ones')
    new: int  # photos this job ran the model on and got a result for
    skipped: int  # photos already done in --out (same content hash), not run again
    failed: int  # photos of this job that could not be used (an ``error`` row each)
    seconds: float
    address: str  # the Ray cluster used
    resumed_parts: int  # parts of a killed job found and kept
    notes: list[str]
    first_batch_seconds: float = 0.0  # start to the first batch written: Ray and actor start-up
    driver_seconds: float = 0.0  # the driver's own serial work: listing photos, writing parts, merging
    runtime: str = ""  # what the actors compute with, e.g. "onnxruntime (checked against torch ...)"


# ---------------------------------------------------------------- inputs
def list_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], dict[str, str]]:
    """Files, folders (their photos, recursively), globs (``'shoot/**/*.jpg'``) and ``@LIST``
    (a text file of such inputs, one a line) -> (paths, {input: reason} for what names nothing)."""
    from workbench.predict import expand_inputs

    flat: list[str] = []
    missing: dict[str, str] = {}
    for item in map(str, inputs):
        if item.startswith("@"):
            listing = Path(item[1:]).expanduser()
            try:
                lines = listing.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                missing[item] = f"cannot read the list {listing}: {exc.strerror or exc}"
                continue
            flat += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        else:
            flat.append(item)
    expanded: list[str] = []
    for item in flat:
        if any(c in item for c in "*?[") and not Path(item).exists():
            found = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            if not found:
                missing[item] = "no file matches this pattern"
            expanded += found
        else:
            expanded.append(item)
    paths, not_found = expand_inputs(expanded)
    return paths, {**missing, **not_found}


# ------------------------------------------------------------------ Ray
def connect(address: str | None, settings: Settings | None = None) -> tuple[Any, bool, str]:
    """(ray, started here?, address). ``None``/``"local"``: a new local Ray on this machine's cores
    (RAY_ADDRESS, when set, is used instead); ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:10001"``:
    that cluster, with the workbench package shipped to it. An initialised Ray (a test's) is reused."""
    import logging

    import ray

    if ray.is_initialized():
        return ray, False, _address_of(ray)
    address = address or os.environ.get("RAY_ADDRESS") or LOCAL
    package = Path(__file__).resolve().parents[1]
    if address == LOCAL:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        ray.init(address=LOCAL, num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": str(package.parent)}})  # workers import this tree
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"py_modules": [str(package)]})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadInput(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    return ray, True, _address_of(ray)


def _address_of(ray) -> str:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # Ray Client connections have no GCS address of their own
        return "ray client"


def _one_machine(ray) -> bool:
    """Whether the cluster is this machine alone (its workers read the driver's files)."""
    try:
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        return len(nodes) == 1 and nodes[0].get("NodeManagerAddress") == ray.util.get_node_ip_address()
    except Exception:  # Ray Client and other remote drivers: assume other machines
        return False


def _runtimes(plan: Plan, settings: Settings, n_images: int, on_gpu: bool) -> tuple[list, str, str]:
    """([Checked export or None (torch) per backbone of the plan], words for the job, level): the
    runtime the local engine would choose. The driver exports and checks only when none is there
    and the job is large enough (as locally); the torch model is loaded here only to export."""
    from workbench import onnx_runtime

    if plan.mode not in ("features", "extract", "nima"):
        return [], "torch (the run's own model)", "info"
    from workbench.backbones import get_backbone, load_backbone, make_transform
    from workbench.backbones.weights import random_weights_id
    from workbench.features import feature_network

    output = "distribution" if plan.mode == "nima" else plan.view
    exports, labels, level = [], [], "info"
    for name in plan.backbones:
        weights_id = random_weights_id() if plan.random_weights else _weights_id(name, settings)

        def model(name=name):  # only to export
            if plan.mode == "nima":
                from workbench.backbones.nima import load_nima

                return load_nima(settings, progress=False)
            loaded = load_backbone(name, settings, random_weights=plan.random_weights, progress=False)
            return feature_network(loaded, _cpu(), plan.view)

        choice = onnx_runtime.choose(model, settings, backbone=name, weights_id=weights_id, output=output,
                                     transform=make_transform(get_backbone(name)), n_images=n_images, on_gpu=on_gpu,
                                     load=False)
        exports.append(choice.export)
        labels.append(choice.label if len(plan.backbones) == 1 else f"{name}: {choice.label}")
        level = "warning" if choice.level == "warning" else level
    return exports, "; ".join(labels), level


def _weights_id(name: str, settings: Settings) -> str:
    from workbench.backbones import weight_status

    return weight_status(name, settings, check_online=False).weights_id


def _cpu():
    import torch

    return torch.device("cpu")


def _workers(ray) -> tuple[int, float, float]:
    """(most model actors, CPUs per actor, GPUs per actor) for the cluster as it is now."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, 1.0, 1.0
    # On CPUs Ray Data fuses reading and decoding into the model's actors (same resources), so one
    # actor per core, one thread each, does the whole chain; GPU actors leave decoding to CPU tasks.
    return max(1, int(resources.get("CPU", 1))), 1.0, 0.0


# ------------------------------------------------------------------- jobs
def _run_job(plan: Plan, inputs: Sequence[str | Path], settings: Settings, results, *, address: str | None,
             run_files: dict[str, bytes] | None, batch_size: int | None) -> Iterator[Any]:
    started = time.perf_counter()
    paths, missing = list_inputs(inputs)
    driver = time.perf_counter() - started
    first_batch = 0.0
    if not paths and not missing:
        raise BadInput(f"no images found in {', '.join(map(str, inputs))}")
    _check_weights(plan, settings)
    from workbench import onnx_runtime

    onnx_runtime.check_runtime(settings)  # a misspelt --runtime is refused before Ray starts
    done = results.read_done()
    notes: list[str] = []
    if done.parts_left:
        notes.append(f"resuming: {done.parts_left} part(s) of an interrupted job kept, "
                     f"{len(done.by_sha)} photo(s) already done")
        yield Notice(notes[-1])
    results.write_part([{"path": p, "sha256": None, "error": reason} for p, reason in missing.items()])
    ray, started_here, where = connect(address, settings)
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the workbench's own progress events say it
        context.enable_operator_progress_bars = False
        actors, cpus, gpus = _workers(ray)
        exports, runtime, level = _runtimes(plan, settings, len(paths), on_gpu=gpus > 0)
        yield Notice(f"model actors compute with {runtime}", level)
        # an export travels like a run's model file: its bytes through the object store, checked by SHA-256
        # on arrival; on one machine the actors use the driver's file (its hash checked all the same)
        one_machine = _one_machine(ray)
        shipped = [(e, None if e is None or one_machine else ray.put(Path(e.path).read_bytes())) for e in exports]
        done_ref = ray.put({"path_sha": done.path_sha, "shas": set(done.by_sha)})  # fetched once per worker
        ds = ray.data.from_items([{"path": str(p)} for p in paths],
                                 override_num_blocks=max(1, -(-len(paths) // BLOCK_ROWS)))
        ds = ds.map_batches(read_and_hash, batch_size=BLOCK_ROWS, fn_kwargs={"done_ref": [done_ref]})
        ds = ds.map_batches(preprocess, batch_size=BLOCK_ROWS, fn_kwargs={"plan": plan, "max_pixels": settings.max_pixels})
        ds = ds.map_batches(Model, batch_size=max(1, batch_size or settings.batch_size),
                            fn_constructor_kwargs={"plan": plan, "settings": settings, "run_files": run_files,
                                                   "threads": int(cpus), "exports": shipped},
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                            num_cpus=cpus, num_gpus=gpus, batch_format="numpy")
        yield Progress(0, len(paths), f"{len(paths)} photo(s) on Ray at {where} ({actors} model actor(s) at most)")
        seen = new = failed = 0
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            mark = time.perf_counter()
            first_batch = first_batch or mark - started
            rows = []
            for row in table.to_pylist():
                if row["copy"]:  # the same photo under another path: its done row, under this path
                    row = {**done.row(row["copy"]), "path": row["path"]}
                else:
                    new += row["error"] is None
                    failed += row["error"] is not None
                rows.append({k: v for k, v in row.items() if k != "copy"})
            results.write_part(rows)
            driver += time.perf_counter() - mark
            seen += len(rows)
            yield Progress(seen, len(paths), f"{new} done, {failed} failed")
    finally:
        if started_here:
            ray.shutdown()
    yield Progress(len(paths), len(paths), f"{new} done, {failed} failed, {len(paths) - seen} already done before")
    mark = time.perf_counter()
    total = results.merge()
    driver += time.perf_counter() - mark
    yield Finished(RayJobResult(out=results.out, rows=total, new=new, skipped=len(paths) - seen,
                                failed=failed + len(missing), seconds=time.perf_counter() - started, address=where,
                                resumed_parts=done.parts_left, notes=notes, first_batch_seconds=first_batch,
                                driver_seconds=driver, runtime=runtime))


def _check_weights(plan: Plan, settings: Settings) -> None:
    """Weights every worker will need must be found here first: a clear message, not a failed actor."""
    from workbench.backbones import WeightsUnavailable, weight_status

    for name in () if plan.random_weights else plan.backbones:
        status = weight_status(name, settings, check_online=False)
        if status.source == "unavailable":
            raise WeightsUnavailable(status.detail)


def ray_predict(run_id: str, inputs: Sequence[str | Path], settings: Settings, out: str | Path, *,
                address: str | None = None, batch_size: int | None = None) -> Iterator[Any]:
    """Score photos with a stored run or ``"nima"`` on Ray into the Parquet file ``out``
    (columns path, sha256, score, std, distribution for distribution models, error)."""
    from workbench.predict import NIMA_ID
    from workbench.scale.results import ResultFile

    if run_id == NIMA_ID:
        from workbench.backbones import weight_status

        status = weight_status("nima_mobilenet", settings, check_online=False)
        plan = Plan(kind="scores", mode="nima", backbones=("nima_mobilenet",))
        results = ResultFile(out, "scores", {"scorer": NIMA_ID, "model": status.weights_id}, distribution=True)
        yield from _run_job(plan, inputs, settings, results, address=address, run_files=None, batch_size=batch_size)
        return
    plan, files, manifest, distribution = shipped_run(run_id, settings)
    results = ResultFile(out, "scores", {"scorer": run_id, "model": manifest.model_sha256}, distribution=distribution)
    yield from _run_job(plan, inputs, settings, results, address=address, run_files=files, batch_size=batch_size)


def shipped_run(run_id: str, settings: Settings):
    """(Plan, {file name: bytes} to ship, manifest, has distribution) of a stored run; its model
    file is checked against the manifest here too, so a damaged run fails before Ray starts."""
    from workbench.fsutil import safe_child
    from workbench.models import get_family
    from workbench.predict import ScorerUnavailable
    from workbench.runs import MANIFEST, RunCorrupt, RunNotFound, RunStore
    from workbench.runs.persist import FORMATS

    store = RunStore(settings.models_dir)
    try:
        manifest = store.get(run_id)
        folder = store.folder(run_id)
        capabilities = get_family(manifest.family).capabilities
    except RunNotFound as exc:
        raise ScorerUnavailable(str(exc), not_found=True) from None
    except (RunCorrupt, OSError, ValueError, KeyError) as exc:
        raise ScorerUnavailable(f"run {run_id} cannot be loaded: {exc}") from None
    if capabilities.needs_text:
        raise BadInput(f"run {run_id} reads each photo's text from the data folder: score it with the local "
                       f"engine (leave out --engine ray)")
    if (manifest.model_file, manifest.model_format) not in FORMATS:
        raise ScorerUnavailable(f"run {run_id} cannot be loaded: unexpected model file {manifest.model_file!r}")
    import hashlib

    model_bytes = safe_child(folder, manifest.model_file).read_bytes()
    if hashlib.sha256(model_bytes).hexdigest() != manifest.model_sha256:
        raise ScorerUnavailable(f"run {run_id} cannot be loaded: this run is damaged: {manifest.model_file} "
                                f"does not match its manifest; refusing to load it")
    files = {MANIFEST: (folder / MANIFEST).read_bytes(), manifest.model_file: model_bytes}
    if capabilities.needs_features:
        plan = Plan(kind="scores", mode="features", backbones=tuple(manifest.backbones), view=manifest.feature_view,
                    random_weights=manifest.random_weights, run_id=run_id)
    else:
        plan = Plan(kind="scores", mode="pixels", run_id=run_id)
    return plan, files, manifest, bool(capabilities.distribution)


def ray_features(backbone: str, inputs: Sequence[str | Path], settings: Settings, out: str | Path, *,
                 address: str | None = None, random_weights: bool = False, view: str = "pooled",
                 batch_size: int | None = None) -> Iterator[Any]:
    """Backbone features of photos on Ray into the Parquet file ``out`` (path, sha256, features, error)."""
    from workbench.backbones import get_backbone, weight_status
    from workbench.backbones.weights import random_weights_id
    from workbench.scale.results import ResultFile

    spec = get_backbone(backbone)
    spec.feature_dim_of(view)  # refuses a view the backbone does not have, before Ray starts
    weights_id = random_weights_id() if random_weights else weight_status(spec.name, settings, check_online=False).weights_id
    results = ResultFile(out, "features", {"backbone": spec.name, "view": view, "weights_id": weights_id})
    plan = Plan(kind="features", mode="extract", backbones=(spec.name,), view=view, random_weights=random_weights)
    yield from _run_job(plan, inputs, settings, results, address=address, run_files=None, batch_size=batch_size)


def scorer_info(run_id: str, settings: Settings) -> dict:
    """{"scale", "threshold", "weights"} of a scorer from its manifest (nothing loaded); ScorerUnavailable if none."""
    from workbench.predict import NIMA_ID, NIMA_THRESHOLD, ScorerUnavailable, _weights_note
    from workbench.runs import RunNotFound, RunStore

    if run_id == NIMA_ID:
        from workbench.backbones import weight_status

        status = weight_status("nima_mobilenet", settings, check_online=False)
        return {"scale": [1.0, 10.0], "threshold": NIMA_THRESHOLD, "weights": f"NIMA weights: {status.source} ({status.detail})"}
    try:
        manifest = RunStore(settings.models_dir).get(run_id)
    except RunNotFound as exc:
        raise ScorerUnavailable(f"{exc}. Train one first, or use '{NIMA_ID}' (ready, no training).", not_found=True) from None
    return {"scale": [float(manifest.score_min), float(manifest.score_max)], "threshold": float(manifest.good_threshold),
            "weights": _weights_note(manifest)}
