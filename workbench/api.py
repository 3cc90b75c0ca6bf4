"""A small JSON API for other programs: ``POST /api/score`` and ``POST /api/cull``.

Served with the UI, on the same address (127.0.0.1 by default). Interactive
documentation: ``/api/docs``. Example::

    curl -F files=@a.jpg -F files=@b.jpg http://127.0.0.1:7860/api/score
    curl -F files=@a.jpg -F run=nima -F threshold=5.5 http://127.0.0.1:7860/api/score
    curl -F files=@IMG_1.jpg -F files=@IMG_2.jpg -F blur_threshold=0.01 http://127.0.0.1:7860/api/cull

Both take uploads, never paths: a file is stored under a name of our own in a
temporary folder while it is scored, and its uploaded name is only echoed back.

or with httpx: ``httpx.post(url, files=[("files", open("a.jpg", "rb"))], data={"run": "nima"})``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from workbench.config import Settings
from workbench.cull import CullError, CullOptions, cull, unavailable_flags
from workbench.events import drain
from workbench.images import FORMAT_SUFFIX, SUPPORTED_EXTENSIONS, ImageError, check_image
from workbench.predict import ScorerUnavailable, cached_scorer, default_scorer_id, score_images

CULL_DEFAULTS = CullOptions()


class ImageScore(BaseModel):
    """One uploaded file's result, in upload order."""

    filename: str = Field(description="the name the file was uploaded under")
    score: float | None = Field(description="predicted score on the scorer's scale")
    std: float | None = Field(None, description="spread of the predicted distribution (distribution models)")
    distribution: list[float] | None = Field(
        None, description="probabilities of the 10 score bins (see `bins`), low to high (distribution models)")
    percentile: float | None = Field(None, description="0-100: share of the run's training scores below this one")
    verdict: str | None = Field(None, description="'good' or 'bad' at the threshold")
    rank: int | None = Field(None, description="1 = the best-scored file of this request")
    error: str | None = Field(None, description="why this file was not scored (then score is null); the others still are")


class ScoreResponse(BaseModel):
    scorer: str = Field(description="run id, or 'nima' for the ready AVA scorer")
    scale: tuple[float, float] = Field(description="lowest and highest possible score")
    threshold: float = Field(description="scores at or above count as good")
    weights: str = Field(description="where the model's backbone weights came from")
    bins: list[float] | None = Field(
        None, description="the score each of the 10 distribution bins stands for (distribution models)")
    results: list[ImageScore]


class RejectedFile(BaseModel):
    filename: str
    error: str


class CulledFile(BaseModel):
    """One uploaded photo in its group."""

    filename: str = Field(description="the name the file was uploaded under")
    index: int = Field(description="its position in the upload, from 0")
    score: float | None = Field(description="predicted score on the scorer's scale")
    flags: dict[str, dict[str, bool | int | float | None]] = Field(
        description="technical flags: {name: {value, flagged}} for out_of_focus, clipped_highlights, crushed_shadows, "
                    "closed_eyes (value null when not checked or no face found; + faces, the number found)")
    pick: bool = Field(description="the group's best unflagged photo")
    rejected: bool = Field(description="flagged: out of focus, clipped, crushed or (when asked) eyes closed beyond its threshold")
    taken: float | None = Field(None, description="EXIF capture time, seconds since the epoch (local clock)")


class CullGroupOut(BaseModel):
    id: int = Field(description="1 = the group whose best photo scored highest")
    photos: list[CulledFile] = Field(description="best first")


class CullResponse(BaseModel):
    scorer: str = Field(description="run id, or 'nima' for the ready AVA scorer")
    scale: tuple[float, float] = Field(description="lowest and highest possible score")
    n_photos: int
    options: dict[str, bool | float | str | None] = Field(description="the thresholds used")
    unavailable_flags: dict[str, str] = Field(description="flags this installation cannot compute, and why")
    groups: list[CullGroupOut]
    picks: list[str] = Field(description="file names of the picks, group order")
    rejected: list[str] = Field(description="file names of the flagged photos")
    failed: list[RejectedFile] = Field(description="photos that could be read yet not culled, with why")


def _upload_limited_route(max_mb: float) -> type[APIRoute]:
    """A route class refusing request bodies over ``max_mb`` MiB with 413 and a reason,
    from the Content-Length when sent, else while the body streams in."""
    max_bytes = int(max_mb * 1024 * 1024)

    def too_large(size_text: str) -> HTTPException:
        return HTTPException(413, f"upload too large ({size_text}); the limit is {max_mb:g} MB "
                                  f"(server.max_upload_mb in the config)")

    class UploadLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise too_large(f"{int(length) / 2**20:.1f} MB")
                received = 0

                async def receive():
                    nonlocal received
                    message = await request.receive()
                    received += len(message.get("body", b""))
                    if received > max_bytes:
                        raise too_large(f"more than {max_mb:g} MB")
                    return message

                return await handler(Request(request.scope, receive))

            return limited

    return UploadLimitedRoute


class ScoringGate:
    """At most ``workers`` requests decode and score at once and ``queue`` more wait;
    the next gets 503 with a Retry-After. A 200-megapixel PNG takes ~0.8 GB while it
    is decoded, so this is what bounds the server's memory under load."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.limit = max(1, workers), max(1, workers) + max(0, queue)
        self._running = threading.Semaphore(self.workers)
        self._lock = threading.Lock()
        self._admitted = 0
        self._seconds = 5.0  # running mean of one request's time, for Retry-After

    @contextmanager
    def enter(self):
        with self._lock:
            if self._admitted >= self.limit:
                wait = math.ceil(self._seconds * self._admitted / self.workers)
                raise HTTPException(503, f"busy: {self._admitted} scoring requests are running or waiting "
                                         f"(server.scoring_workers + scoring_queue); retry in about {wait} s",
                                    headers={"Retry-After": str(max(1, wait))})
            self._admitted += 1
        try:
            with self._running:
                started = time.monotonic()
                try:
                    yield
                finally:
                    with self._lock:
                        self._seconds = 0.7 * self._seconds + 0.3 * (time.monotonic() - started)
        finally:
            with self._lock:
                self._admitted -= 1
            release_memory()


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None


def release_memory() -> None:
    """Hand freed memory back to the system: glibc keeps freed image buffers in its heap otherwise
    (the probe saw 2.7 GB held after four large requests had finished)."""
    gc.collect()
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _suffix_for(filename: str, image_format: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if suffix in SUPPORTED_EXTENSIONS else FORMAT_SUFFIX.get(image_format, ".img")


def router(settings: Settings) -> APIRouter:
    """The ``/api`` routes, bound to ``settings`` (limits, folders)."""
    api = APIRouter(prefix="/api", tags=["scoring"],
                    route_class=_upload_limited_route(settings.max_upload_mb))
    gate = ScoringGate(settings.scoring_workers, settings.scoring_queue)

    @api.post(
        "/score", response_model=ScoreResponse,
        responses={413: {"description": "the upload is over server.max_upload_mb"},
                   415: {"description": "no file is a readable image (a bad one among good ones is reported in its "
                                        "result); `detail.files` lists each with its reason"},
                   404: {"description": "no stored run with that id"},
                   422: {"description": "the threshold is not a finite number, or no file could be scored by the model"},
                   503: {"description": "the scorer cannot be used (weights missing, run damaged), or the server is "
                                        "busy (then with Retry-After); `detail` says why"}},
    )
    def score(
        files: Annotated[list[UploadFile], File(description="one or more images (JPEG, PNG, WebP, HEIC, ...)")],
        run: Annotated[str | None, Form(description="a run id, or 'nima'; default: the best run by held-out "
                                                       "SRCC if above 0, else nima")] = None,
        threshold: Annotated[float | None, Form(description="good/bad threshold; default: the scorer's own")] = None,
    ) -> ScoreResponse:
        """Score uploaded images with a stored run or the ready NIMA scorer.

        Multipart form: ``files`` (repeat for several images), optional ``run`` and
        ``threshold``. Returns one result per file in upload order, with the
        distribution where the model predicts one. A file that is not a readable
        image (or that the model cannot use) does not stop the others: its result
        has ``score: null`` and ``error`` saying why, and the answer is 200 as long
        as one file was scored. When none was: 415 if none is a readable image,
        else 422, with ``detail.files`` listing each file and its reason.
        """
        if threshold is not None and not math.isfinite(threshold):  # "nan"/"inf" parse as floats
            raise HTTPException(422, f"threshold must be a finite number, not {threshold!r}")
        with gate.enter():  # checking decodes every image in full too: it counts as scoring
            return _score(files, run, threshold)

    def _read_checked(files: list[UploadFile]) -> tuple[list[tuple[str, bytes, str]], dict[int, RejectedFile]]:
        """(name, bytes, format) of each readable upload, and {upload index: why not} of the others;
        415 listing each file when none is a readable image."""
        uploads = [(f.filename or f"file{i}", f.file.read()) for i, f in enumerate(files)]
        checked, rejected = [], {}
        for i, (name, data) in enumerate(uploads):
            try:
                checked.append((name, data, check_image(data, settings.max_pixels, name=name).format))
            except ImageError as exc:
                rejected[i] = RejectedFile(filename=name, error=str(exc))
        if not checked:
            raise HTTPException(415, {"message": f"{len(rejected)} of {len(uploads)} file(s) are not readable images",
                                      "files": [r.model_dump() for r in rejected.values()]})
        return checked, rejected

    def _scorer(run: str | None):
        try:
            return cached_scorer((run or "").strip() or default_scorer_id(settings), settings)
        except ScorerUnavailable as exc:
            raise HTTPException(404 if exc.not_found else 503, str(exc)) from None

    @contextmanager
    def _stored(uploads: list[tuple[str, bytes, str]]) -> Iterator[list[Path]]:
        """The uploads in a temporary folder under our own file names: an uploaded name never becomes a path."""
        with tempfile.TemporaryDirectory(prefix="workbench-api-") as folder:
            paths = [Path(folder) / f"{i:05d}{_suffix_for(name, fmt)}" for i, (name, _, fmt) in enumerate(uploads)]
            for path, (_, data, _) in zip(paths, uploads):
                path.write_bytes(data)
            yield paths

    def _score(files: list[UploadFile], run: str | None, threshold: float | None) -> ScoreResponse:
        uploads, rejected = _read_checked(files)
        scorer = _scorer(run)
        with _stored(uploads) as paths:
            try:
                result = drain(score_images(paths, scorer, settings, threshold=threshold))
            except ScorerUnavailable as exc:  # e.g. a feature run whose backbone weights were deleted
                raise HTTPException(503, str(exc)) from None
        by_path = {row.path: row for row in result.rows}
        scored = []
        for path, (name, _, _) in zip(paths, uploads):
            row = by_path[str(path)]
            if row.error is not None:  # readable above, yet the model could not use it; our temp name -> theirs
                scored.append(ImageScore(filename=name, score=None, error=row.error.replace(path.name, name)))
            else:
                scored.append(ImageScore(filename=name, score=row.score, std=row.std, distribution=row.distribution,
                                         percentile=row.percentile, verdict=row.verdict, rank=row.rank))
        if all(r.error for r in scored):
            failed = [*rejected.values(), *(RejectedFile(filename=r.filename, error=r.error) for r in scored)]
            raise HTTPException(422, {"message": f"none of the {len(files)} file(s) could be scored",
                                      "files": [f.model_dump() for f in failed]})
        # every upload in its place: the readable ones as scored, the others with their reason
        later = iter(scored)
        results = [ImageScore(filename=rejected[i].filename, score=None, error=rejected[i].error) if i in rejected
                   else next(later) for i in range(len(files))]
        return ScoreResponse(scorer=scorer.id, scale=scorer.scale, threshold=result.threshold,
                             weights=scorer.weights_note, bins=scorer.bin_centres, results=results)

    @api.post(
        "/cull", response_model=CullResponse, tags=["culling"],
        responses={413: {"description": "the upload is over server.max_upload_mb"},
                   415: {"description": "a file is not a readable image; `detail.files` lists each with its reason"},
                   404: {"description": "no stored run with that id"},
                   422: {"description": "a threshold is out of its range"},
                   503: {"description": "the scorer cannot be used, or the server is busy (then with Retry-After)"}},
    )
    def cull_uploads(
        files: Annotated[list[UploadFile], File(description="the shoot's photos; keep their EXIF for bursts")],
        run: Annotated[str | None, Form(description="a run id, or 'nima'; default: the best run by held-out "
                                                       "SRCC if above 0, else nima")] = None,
        similarity: Annotated[float, Form(description="cosine at or above which two photos are near-duplicates")]
        = CULL_DEFAULTS.similarity,
        burst_seconds: Annotated[float, Form(description="a burst: each photo at most this many seconds after the last")]
        = CULL_DEFAULTS.burst_seconds,
        burst_similarity: Annotated[float, Form(description="... and at least this alike (cosine)")]
        = CULL_DEFAULTS.burst_similarity,
        layout_similarity: Annotated[float, Form(description="... or their 16x16 luminance layouts at least this "
                                                             "alike (correlation; keeps a blurred frame in its burst)")]
        = CULL_DEFAULTS.layout_similarity,
        blur_threshold: Annotated[float, Form(description="flag out of focus below this Laplacian sharpness")]
        = CULL_DEFAULTS.blur_threshold,
        highlight_threshold: Annotated[float, Form(description="flag clipped highlights at this share of pixels")]
        = CULL_DEFAULTS.highlight_threshold,
        shadow_threshold: Annotated[float, Form(description="flag crushed shadows at this share of pixels")]
        = CULL_DEFAULTS.shadow_threshold,
        closed_eyes: Annotated[bool, Form(description="also look for closed eyes (a heuristic on frontal faces; slower)")]
        = CULL_DEFAULTS.closed_eyes,
        eyes_threshold: Annotated[float, Form(description="flag when at least this share of the faces look closed-eyed")]
        = CULL_DEFAULTS.eyes_threshold,
    ) -> CullResponse:
        """Group bursts and near-duplicates, flag blur and clipping, and pick the best photo of each group.

        Multipart form: ``files`` (repeat for each photo), optional ``run`` and the
        thresholds of ``python -m workbench cull``. The same rules as the CLI and the
        Predict tab's Cull view; photos are named by their upload names. Nothing is
        copied, moved or written: the caller holds the files and acts on the picks.
        """
        try:
            options = CullOptions(similarity=similarity, burst_seconds=burst_seconds,
                                  burst_similarity=burst_similarity, layout_similarity=layout_similarity,
                                  blur_threshold=blur_threshold,
                                  highlight_threshold=highlight_threshold, shadow_threshold=shadow_threshold,
                                  closed_eyes=closed_eyes, eyes_threshold=eyes_threshold).check()
        except CullError as exc:
            raise HTTPException(422, str(exc)) from None
        with gate.enter():
            uploads, rejected = _read_checked(files)
            if rejected:  # a cull compares the photos with one another: it runs on the whole shoot or not at all
                raise HTTPException(415, {"message": f"{len(rejected)} of {len(files)} file(s) are not readable images",
                                          "files": [r.model_dump() for r in rejected.values()]})
            scorer = _scorer(run)
            with _stored(uploads) as paths:
                try:
                    result = drain(cull(paths, scorer, settings, options=options))
                except ScorerUnavailable as exc:
                    raise HTTPException(503, str(exc)) from None
                except CullError as exc:  # e.g. closed eyes asked for where the face model is not installed
                    raise HTTPException(422, str(exc)) from None
                index = {str(path): i for i, path in enumerate(paths)}
        name = {path: uploads[i][0] for path, i in index.items()}
        groups = [CullGroupOut(id=g.id, photos=[
            CulledFile(filename=name[p.path], index=index[p.path], score=p.score, flags=p.flags, pick=p.status == "pick",
                       rejected=p.status == "reject", taken=p.taken) for p in g.photos]) for g in result.groups]
        failed = [RejectedFile(filename=name[path], error=error.replace(Path(path).name, name[path]))
                  for path, error in result.errors.items()]
        return CullResponse(scorer=result.scorer_id, scale=result.scale, n_photos=len(result.photos),
                            options=dict(options.__dict__), unavailable_flags=unavailable_flags(options), groups=groups,
                            picks=[name[p] for p in result.picks], rejected=[name[p] for p in result.rejected],
                            failed=failed)

    return api
