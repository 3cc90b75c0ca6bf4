"""Scoring new photos: one ``Scorer`` over a stored run or the ready NIMA model.

    scorer = load_scorer(default_scorer_id(settings), settings)   # best run by SRCC if above 0, else "nima"
    result = drain(score_images(["shoot/"], scorer, settings))    # BatchResult, best first
    write_csv(result, "scores.csv")
    explanation = explain("shoot/a.jpg", scorer, settings)        # Grad-CAM, or occlusion (.method says)
    explanation.overlay(opacity=0.5)                              # PIL image (see workbench/explain.py)

Scores stay on the scorer's own scale: 1-10 for NIMA (good from 5.1, its
authors' convention), the run's ``score_min``-``score_max`` otherwise. A file
that cannot be read becomes a row with an ``error`` and the rest is scored.
"""
from __future__ import annotations

import csv
import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from workbench.config import Settings
from workbench.errors import BadInput, WorkbenchError
from workbench.events import NEVER_STOP, FilesSkipped, Finished, Notice, Progress, StopFlag
from workbench.explain import Explanation, explain, gradcam_target_of  # noqa: F401  (part of this module's API)
from workbench.images import ImageError, is_supported, load_image

if TYPE_CHECKING:  # pragma: no cover
    import torch  # imported where a model runs: the app's first page does not load it

NIMA_ID = "nima"
NIMA_ABOUT = ("NIMA, a general aesthetic model trained on AVA (a public photo-contest dataset), "
              "not on this person's photos,")
RUN_ABOUT = "A model trained on this person's own ratings"
NIMA_BACKBONE = "nima_mobilenet"  # the backbone whose weights the ready scorer uses
NIMA_THRESHOLD = 5.1  # the good/bad line NIMA's authors use on AVA's 1-10 scale
CHUNK = 128  # images per call into a model, so a Stop keeps what was scored so far


class ScorerUnavailable(WorkbenchError):
    """The chosen scorer cannot be loaded or run (no such run, a damaged or foreign run,
    missing weights); says why. ``not_found`` is true when no run has that id (or the id
    is not a run id at all), so callers can tell "no such thing" (HTTP 404) from "broken"."""

    def __init__(self, message: str, *, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found


NO_FINITE_SCORE = "the model produced no finite score"


def check_threshold(threshold: float | None) -> float | None:
    """``threshold`` as a float, or ValueError for NaN/infinity (every photo would be "bad")."""
    if threshold is None:
        return None
    value = float(threshold)
    if not math.isfinite(value):
        raise BadInput(f"the threshold must be a finite number, not {threshold!r}")
    return value


@dataclass
class ScoreRow:
    """One photo's result. ``score`` is None exactly when ``error`` says why."""

    path: str
    score: float | None = None
    std: float | None = None  # spread of the predicted distribution, score units
    distribution: list[float] | None = None  # 10 bins, low to high, summing to 1
    percentile: float | None = None  # 0-100 among the training set's scores
    verdict: str | None = None  # "good" | "bad"
    error: str | None = None
    rank: int | None = None  # 1 = best of its batch; None for a file that could not be scored
    text_source: str | None = None  # image+text runs: where the photo's text came from, "none" when it had none


@dataclass
class BatchResult:
    rows: list[ScoreRow]  # scored ones best first, then the failures
    scorer_id: str
    scale: tuple[float, float]
    threshold: float
    stopped: bool = False

    @property
    def scored(self) -> list[ScoreRow]:
        return [r for r in self.rows if r.error is None]

    @property
    def failed(self) -> list[ScoreRow]:
        return [r for r in self.rows if r.error is not None]

    @property
    def has_distribution(self) -> bool:
        return any(r.distribution is not None for r in self.rows)


# ----------------------------------------------------------------- scorers
@dataclass
class Scorer:
    """What scoring needs from a model, whichever kind it is.

    ``predict_chunk(paths, settings, stop)`` yields events and ends with
    ``Finished(ImagePredictions)``; ``gradcam_target()`` gives (module: normalised
    [N,3,S,S] -> scores [N], target layer, transform) or None.
    """

    id: str
    name: str
    family: str
    scale: tuple[float, float]
    default_threshold: float
    has_distribution: bool
    weights_note: str  # where the weights came from, for the UI and CLI
    reference_scores: np.ndarray | None  # the training set's scores, for percentiles
    predict_chunk: Callable[..., Iterator[Any]]
    gradcam_target: Callable[[], tuple | None]  # None: explain() falls back to occlusion sensitivity
    bin_centres: list[float] | None = None  # the score each distribution bin stands for (distribution models)
    uses_text: bool = False  # an image+text run: predict_chunk also takes ``texts`` (file name -> text)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # Grad-CAM hooks are per model
    # what kind of model this is, as the subject of "... scored this photo 7.1": the LLM critique must not
    # take a general model's score for the person's own taste
    about: str = "An aesthetics model"

    def percentile(self, score: float) -> float | None:
        ref = self.reference_scores
        if ref is None or len(ref) == 0:
            return None
        # share of training scores below, ties counted half (scipy's "mean" kind)
        return float(100.0 * (np.sum(ref < score) + 0.5 * np.sum(ref == score)) / len(ref))

    def verdict(self, score: float, threshold: float | None = None) -> str:
        return "good" if score >= (self.default_threshold if threshold is None else threshold) else "bad"


def _decode_for_nima(path: Path, max_pixels: int, transform) -> torch.Tensor | ImageError:
    """Full decode, no reduced-scale JPEG draft: NIMA was published with a full decode
    followed by a nearest-neighbour resize, and a draft decode moves its scores by up to 0.5."""
    try:
        return transform(load_image(path, max_pixels=max_pixels))
    except (ImageError, OSError) as exc:
        return exc if isinstance(exc, ImageError) else ImageError(f"{path.name}: {exc}")


def nima_distributions(model, images: torch.Tensor) -> np.ndarray:
    """NIMA's score distributions float64 [N,10] of normalised images [N,3,224,224]."""
    import torch

    with torch.inference_mode():
        return model(images).numpy().astype(np.float64)


def _nima_predict(model, paths: Sequence[Path], settings: Settings, stop: StopFlag,
                  lock: threading.Lock, said: list[str] | None = None) -> Iterator[Any]:
    """Batches through NIMA; the next batch decodes in threads (Pillow releases the GIL)
    while the network runs on this one. On the CPU the network runs in ONNX Runtime or
    OpenVINO where its export gives torch's mean scores (workbench.onnx_runtime); ``said`` remembers the
    runtime last announced, so a job of many chunks says it once."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from workbench import onnx_runtime
    from workbench.backbones.nima import distribution_mean_std
    from workbench.runs import ImagePredictions

    with lock:  # exporting traces the shared model: not while Grad-CAM hooks sit on it
        choice = onnx_runtime.choose(model, settings, backbone=NIMA_BACKBONE, weights_id=model.weights.weights_id,
                                     output="distribution", transform=model.transform, n_images=len(paths),
                                     on_gpu=next(model.parameters()).device.type != "cpu")
    said = [] if said is None else said
    if not said or said[-1] != choice.label:
        said[:] = [choice.label]
        yield Notice(f"NIMA computed by {choice.label}", choice.level)

    ok: list[Path] = []
    dists: list[np.ndarray] = []
    errors: dict[str, str] = {}
    batch = max(1, settings.batch_size)
    batches = [list(paths[i:i + batch]) for i in range(0, len(paths), batch)]
    with ThreadPoolExecutor(max_workers=max(1, settings.num_workers)) as pool:
        def decode(group):
            return [pool.submit(_decode_for_nima, p, settings.max_pixels, model.transform) for p in group]

        pending = decode(batches[0]) if batches else []
        for index, group in enumerate(batches):
            if stop.is_set():
                break
            decoded = [f.result() for f in pending]
            pending = decode(batches[index + 1]) if index + 1 < len(batches) else []
            tensors = []
            for path, item in zip(group, decoded):
                if isinstance(item, ImageError):
                    errors[str(path)] = str(item)
                else:
                    tensors.append(item)
                    ok.append(path)
            if tensors and choice.runner is not None:  # a separate session: no lock against Grad-CAM needed
                dists.append(choice.runner.run(torch.stack(tensors).numpy()).astype(np.float64))
            elif tensors:
                with lock:  # not while Grad-CAM hooks sit on the shared model
                    dists.append(nima_distributions(model, torch.stack(tensors)))
            yield Progress(min((index + 1) * batch, len(paths)), len(paths), f"scoring with NIMA on {choice.short}")
        for future in pending:
            future.cancel()
    p = np.concatenate(dists) if dists else np.zeros((0, 10))
    mean, std = distribution_mean_std(p)
    yield Finished(ImagePredictions(paths=ok, scores=mean, distributions=p, errors=errors, spreads=std),
                   stopped=stop.is_set())


def load_nima_scorer(settings: Settings) -> Scorer:
    """The ready AVA scorer (no training needed); raises ScorerUnavailable naming the weights file."""
    from workbench.backbones import WeightsUnavailable
    from workbench.backbones.nima import load_nima
    from workbench.backbones.nima_net import NimaMeanScore

    try:
        model = load_nima(settings, progress=False)
    except WeightsUnavailable as exc:
        raise ScorerUnavailable(str(exc)) from None

    def gradcam_target():
        return NimaMeanScore(model).eval(), model.blocks[-1], model.transform

    lock = threading.Lock()
    said: list[str] = []  # the runtime last announced (an engine or torch), said again only when it changes
    return Scorer(
        id=NIMA_ID, name="NIMA (MobileNet, AVA) - ready, no training", family="nima", scale=(1.0, 10.0),
        default_threshold=NIMA_THRESHOLD, has_distribution=True,
        weights_note=f"NIMA weights: {model.weights.source} ({model.weights.detail})",
        reference_scores=None,
        predict_chunk=lambda paths, settings, stop=NEVER_STOP: _nima_predict(model, paths, settings, stop, lock, said),
        gradcam_target=gradcam_target, lock=lock, bin_centres=[float(i) for i in range(1, 11)],
        about=NIMA_ABOUT,
    )


def _reference_scores(manifest, settings: Settings) -> np.ndarray | None:
    """Scores of the run's training images as labelled now; the held-out truths if those are gone."""
    from workbench.dataset.store import ScoreStore

    train_names = set(manifest.split.get("train", []))
    try:
        current = {e.filename: e.score for e in ScoreStore.from_settings(settings).entries()}
    except Exception:  # an unreadable data folder must not stop scoring
        current = {}
    scores = [current[n] for n in train_names if current.get(n) is not None]
    if not scores:
        scores = [p["true"] for p in manifest.predictions if p.get("true") is not None]
    return np.asarray(scores, dtype=np.float64) if scores else None


def _weights_note(manifest) -> str:
    if manifest.random_weights:
        return "RANDOM backbone weights (trained so on purpose): scores carry little meaning"
    if not manifest.weights:
        return "no pretrained backbone (the model learnt from the pixels alone)"
    return "; ".join(f"{name} weights: {w.get('source', '?')} ({w.get('detail', '')})"
                     for name, w in manifest.weights.items())


def load_run_scorer(run_id: str, settings: Settings) -> Scorer:
    from workbench.backbones import WeightsUnavailable
    from workbench.models import get_family
    from workbench.runs import RunCorrupt, RunNotFound, load_run
    from workbench.runs.persist import UnsafeModel

    try:
        run = load_run(run_id, settings)
        capabilities = get_family(run.manifest.family).capabilities
    except RunNotFound as exc:
        raise ScorerUnavailable(f"{exc}. Train one in the Train tab, or use '{NIMA_ID}' (ready, no training).",
                                not_found=True) from None
    except (RunCorrupt, UnsafeModel, WeightsUnavailable) as exc:
        raise ScorerUnavailable(f"run {run_id} cannot be loaded: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # a damaged manifest.json
        raise ScorerUnavailable(f"run {run_id} cannot be loaded: its manifest or model file is damaged "
                                f"({type(exc).__name__}: {exc})") from None
    manifest = run.manifest
    cached_target: list = []

    def gradcam_target():
        if not cached_target:
            cached_target.append(gradcam_target_of(run))
        return cached_target[0]

    bins = None
    if capabilities.distribution:  # bins span the training scores' range (NIMA-style heads)
        low, high = getattr(run.model, "y_range_", (manifest.score_min, manifest.score_max))
        bins = [float(v) for v in np.linspace(low, high, 10)]
    return Scorer(
        id=manifest.run_id, name=manifest.name, family=manifest.family,
        scale=(float(manifest.score_min), float(manifest.score_max)),
        default_threshold=float(manifest.good_threshold), has_distribution=capabilities.distribution,
        weights_note=_weights_note(manifest), reference_scores=_reference_scores(manifest, settings),
        predict_chunk=lambda paths, settings, stop=NEVER_STOP, texts=None: run.predict_images(
            paths, settings, stop=stop, texts=texts),
        uses_text=capabilities.needs_text,
        gradcam_target=gradcam_target, bin_centres=bins, about=RUN_ABOUT,
    )


SCORER_LOADERS: dict[str, Callable[[Settings], Scorer]] = {NIMA_ID: load_nima_scorer}


def load_scorer(scorer_id: str, settings: Settings) -> Scorer:
    """``"nima"`` (the ready AVA scorer) or a stored run id -> a Scorer. Raises ScorerUnavailable."""
    loader = SCORER_LOADERS.get(scorer_id)
    return loader(settings) if loader else load_run_scorer(scorer_id, settings)


_SCORER_CACHE: "OrderedDict[tuple, Scorer]" = OrderedDict()
_SCORER_CACHE_LOCK = threading.Lock()
SCORER_CACHE_SIZE = 3


def cached_scorer(scorer_id: str, settings: Settings) -> Scorer:
    """``load_scorer`` remembered for the last few scorers, for the UI and the HTTP
    API where every request would otherwise reload the model. Runs never change
    after they are written (but for their display name, read again); a deleted one is dropped."""
    from workbench.runs import RunStore

    key = (scorer_id, str(settings.weights_dir), str(settings.models_dir), str(settings.data_dir))
    with _SCORER_CACHE_LOCK:
        scorer = _SCORER_CACHE.get(key)
        if scorer is not None and scorer_id != NIMA_ID and not (RunStore(settings.models_dir).root / scorer_id).is_dir():
            del _SCORER_CACHE[key]
            scorer = None
        if scorer is None:
            scorer = load_scorer(scorer_id, settings)
            _SCORER_CACHE[key] = scorer
        elif scorer_id != NIMA_ID:  # renamed since it was loaded? the model is the same, the name is not
            try:
                scorer.name = RunStore(settings.models_dir).get(scorer_id).name
            except Exception:  # an unreadable manifest: keep the name it had
                pass
            while len(_SCORER_CACHE) > SCORER_CACHE_SIZE:
                _SCORER_CACHE.popitem(last=False)
        _SCORER_CACHE.move_to_end(key)
        return scorer


def default_scorer_id(settings: Settings) -> str:
    """The best stored run by held-out SRCC if that SRCC is above 0, else the ready NIMA scorer: a run that
    ranks its held-out photos no better than chance (or worse) must not score photos unasked."""
    from workbench.runs import RunStore

    best = RunStore(settings.models_dir).best("srcc")
    return best.run_id if best is not None and (best.metrics.get("srcc") or 0) > 0 else NIMA_ID


def chance_warning(scorer_id: str | None, settings: Settings) -> str:
    """A warning for a run whose held-out SRCC is at most 0, or whose uncertainty range (± one standard
    error for its number of held-out photos) reaches 0; "" for NIMA, a sound run, or a run that cannot be read."""
    from workbench.metrics import srcc_uncertainty
    from workbench.runs import RunStore

    if not scorer_id or scorer_id == NIMA_ID:
        return ""
    try:
        run = RunStore(settings.models_dir).get(scorer_id)
    except Exception:  # deleted or unreadable: loading it says why
        return ""
    srcc, n = run.metrics.get("srcc"), len(run.predictions)
    if srcc is None or not math.isfinite(srcc):
        return ""
    spread = srcc_uncertainty(n) if n else 0.0  # held-out count unknown: judged on the SRCC alone
    if srcc > 0 and srcc - spread > 0:
        return ""
    measured = f"SRCC {srcc:.3f}" + (f" ± {spread:.2f} on {n} photos" if n and math.isfinite(spread) else "")
    if srcc <= 0:
        return f"⚠ This run ranks photos no better than chance on its held-out photos ({measured})."
    return (f"⚠ This run may rank photos no better than chance on its held-out photos ({measured}: "
            f"the range includes 0).")


def scorer_choices(settings: Settings) -> list[tuple[str, str]]:
    """(label, id) pairs, best run first, NIMA last: for dropdowns."""
    from workbench.backbones import weight_status
    from workbench.runs import RunStore, leaderboard_rows

    rows = leaderboard_rows(RunStore(settings.models_dir), "srcc")
    choices = list(zip(run_labels(rows), (row["run_id"] for row in rows)))
    # "ready" only when its weights are here (or can be downloaded): else picking it only shows an error
    missing = weight_status(NIMA_BACKBONE, settings).source == "unavailable"
    choices.append((f"nima — AVA scorer, 1-10, no training ({'weights missing' if missing else 'ready'})", NIMA_ID))
    return choices


def run_label(row: dict) -> str:
    """The run's name, then what the name does not already say (default names hold family, backbone, SRCC)."""
    name = row["name"]
    model = f"{row['family']}/{row['backbone'] or '-'}"
    said = [part for part in (row["family"], row["backbone"]) if part]
    extras = [] if all(part in name for part in said) else [model]
    if "SRCC" not in name:
        extras.append(f"SRCC {row['srcc']:.3f}" if row.get("srcc") is not None else "no SRCC")
    if "random" in (row.get("weights") or ""):
        extras.append("RANDOM weights")
    return f"{name} ({', '.join(extras)})" if extras else name


def run_labels(rows: list[dict]) -> list[str]:
    """:func:`run_label` of each row; runs whose labels would be the same (two ridge runs of one set)
    also say when they were made (UTC, as the Runs table), then their run id if that is the same too."""
    labels = [run_label(row) for row in rows]
    for same in _groups(labels):
        created = [str(rows[i].get("created") or "") for i in same]
        times = [c[11:16] for c in created]
        if len(set(c[:10] for c in created)) > 1:
            times = [f"{c[:10]} {t}" for c, t in zip(created, times)]
        for i, when in zip(same, times):
            labels[i] += f" · created {when} UTC" if when.strip() else ""
    for same in _groups(labels):
        for i in same:
            labels[i] += f" · {rows[i]['run_id']}"
    return labels


def _groups(labels: list[str]) -> list[list[int]]:
    """Indexes of the labels that occur more than once, grouped by label."""
    where: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        where.setdefault(label, []).append(i)
    return [same for same in where.values() if len(same) > 1]


# ------------------------------------------------------------------ batches
def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[Path], dict[str, str]]:
    """Files as given, folders as their image files (recursively, hidden ones skipped).

    Returns (paths, errors) where errors names inputs that do not exist.
    """
    paths, errors = [], {}
    for item in inputs:
        item = Path(item).expanduser()
        if item.is_dir():
            found = [p for p in item.rglob("*") if p.is_file() and is_supported(p)
                     and not any(part.startswith(".") for part in p.relative_to(item).parts)]
            paths.extend(sorted(found))
        elif item.is_file():
            paths.append(item)
        else:
            errors[str(item)] = "no such file or folder"
    return list(dict.fromkeys(paths)), errors


def score_images(inputs: Iterable[str | Path], scorer: Scorer, settings: Settings, *,
                 stop: StopFlag = NEVER_STOP, threshold: float | None = None,
                 texts: dict[str, str] | None = None) -> Iterator[Any]:
    """Score files and folders; yields Progress/Notice, ends with ``Finished(BatchResult)``.

    ``texts`` (file name -> text typed for that photo) is read by image+text
    runs only; other scorers say so once and score from the pixels.

    Broken images become rows with an ``error`` and the rest is scored. On Stop
    the result holds what was scored so far and ``stopped`` is true. Raises
    ValueError for a NaN or infinite ``threshold`` and ScorerUnavailable when the
    model's backbone weights are gone (deleted after training, cache cold).
    """
    from workbench.backbones import WeightsUnavailable

    threshold = check_threshold(threshold)
    threshold = scorer.default_threshold if threshold is None else threshold
    paths, missing = expand_inputs(inputs)
    rows = [ScoreRow(path=p, error=reason) for p, reason in missing.items()]
    extra = {"texts": texts} if scorer.uses_text else {}
    if texts and not scorer.uses_text:
        yield Notice(f"{scorer.id} scores from the image alone: the text given is not used", level="warning")
    total, stopped = len(paths), False
    yield Progress(0, total, f"scoring {total} image(s) with {scorer.id}")
    for offset in range(0, total, CHUNK):
        if stop.is_set():
            stopped = True
            break
        chunk = paths[offset:offset + CHUNK]
        predictions = None
        try:
            for event in scorer.predict_chunk(chunk, settings, stop=stop, **extra):
                if isinstance(event, Finished):
                    predictions, stopped = event.result, event.stopped
                elif isinstance(event, Progress):
                    done = offset + int(event.fraction * len(chunk))  # the chunk's own units -> images overall
                    yield Progress(done, total, event.message, event.rate, event.eta)
                elif not isinstance(event, FilesSkipped):  # each failed file is a row with its reason instead
                    yield event
        except WeightsUnavailable as exc:
            raise ScorerUnavailable(f"{scorer.id} cannot score: {exc}") from None
        if predictions is not None:
            rows.extend(_rows_of(predictions, scorer, threshold))
        read = offset + len(chunk)
        n_scored = sum(r.error is None for r in rows)  # "scored 9 of 9" when one of them failed was untrue
        yield Progress(read, total, f"{read} of {total} files read: {n_scored} scored, "
                                    f"{len(rows) - len(missing) - n_scored} failed")
        if stopped:
            break
    scored = sorted((r for r in rows if r.error is None), key=lambda r: -r.score)  # all finite (_rows_of)
    for rank, row in enumerate(scored, start=1):
        row.rank = rank
    failed = [r for r in rows if r.error is not None]
    if failed:
        # a FilesSkipped: a caller that lists each failed file itself (the cull) drops it
        yield FilesSkipped(f"{len(failed)} file(s) could not be scored; each is listed with its reason", "warning")
    yield Finished(BatchResult(rows=scored + failed, scorer_id=scorer.id, scale=scorer.scale,
                               threshold=threshold, stopped=stopped), stopped=stopped)


def _rows_of(predictions, scorer: Scorer, threshold: float) -> list[ScoreRow]:
    rows = [ScoreRow(path=str(path), error=reason) for path, reason in predictions.errors.items()]
    dists, spreads = predictions.distributions, predictions.spreads
    found = getattr(predictions, "texts", None)
    for i, path in enumerate(predictions.paths):
        score = float(predictions.scores[i])
        if not math.isfinite(score):  # NaN would sort anywhere and count as "bad"; list it with the failures
            rows.append(ScoreRow(path=str(path), error=NO_FINITE_SCORE))
            continue
        rows.append(ScoreRow(
            path=str(path), score=score,
            std=float(spreads[i]) if spreads is not None else None,
            distribution=[float(v) for v in dists[i]] if dists is not None else None,
            percentile=scorer.percentile(score), verdict=scorer.verdict(score, threshold),
            text_source=None if found is None else (found[i].source or "none"),
        ))
    return rows


def score_one(image_path: str | Path, scorer: Scorer, settings: Settings, *,
              threshold: float | None = None, text: str | None = None) -> ScoreRow:
    """One photo's row (``error`` set when it cannot be read); ``text``: typed for an image+text run."""
    from workbench.events import drain

    texts = {Path(image_path).name: text} if text and text.strip() else None
    return drain(score_images([image_path], scorer, settings, threshold=threshold, texts=texts)).rows[0]


def csv_columns(result: BatchResult) -> list[str]:
    """The contract columns first (``path,score``), then what the screen shows: std (where the
    scorer gives one), rank, percentile, verdict, error, and the distribution's bins."""
    columns = ["path", "score"]
    if any(r.std is not None for r in result.rows):
        columns.append("std")
    columns += ["rank", "percentile", "verdict", "error"]
    if result.has_distribution:
        columns += [f"p{i}" for i in range(1, 11)]
    if any(r.text_source is not None for r in result.rows):
        columns.append("text_source")
    return columns


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(result: BatchResult, names: dict[str, str] | None = None, *, for_spreadsheet: bool = False) -> str:
    """The batch as CSV (columns: :func:`csv_columns`), best first, failures last.

    ``names`` maps a row's path to what the ``path`` column says instead: the UI
    passes the person's own file name for an upload, not the server's temporary copy.
    ``for_spreadsheet`` (the UI's download): text cells that a spreadsheet would run
    as formulas get a leading ``'``; the CLI's --csv keeps paths exact for scripts.
    """
    text_cell = spreadsheet_safe if for_spreadsheet else str
    columns = csv_columns(result)
    names = names or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in result.rows:
        values = {"path": text_cell(str(names.get(row.path, row.path))), "score": _num(row.score, 4),
                  "std": _num(row.std, 4), "rank": "" if row.rank is None else str(row.rank),
                  "percentile": _num(row.percentile, 1), "verdict": row.verdict or "",
                  "error": text_cell(row.error or ""), "text_source": row.text_source or ""}
        for i in range(10):
            values[f"p{i + 1}"] = f"{row.distribution[i]:.5f}" if row.distribution else ""
        writer.writerow([values[c] for c in columns])
    return buffer.getvalue()


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_csv(result: BatchResult, path: str | Path) -> Path:
    from workbench.fsutil import atomic_write_text

    path = Path(path)
    atomic_write_text(path, csv_text(result))
    return path
