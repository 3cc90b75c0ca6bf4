"""Culling a shoot: group bursts and near-duplicates, flag technical failures, pick the best of each group.

    result = drain(cull(["shoot/"], scorer, settings))          # CullResult, groups best first
    result.set_status("shoot/IMG_2.jpg", "pick")                # the person overrides
    drain(copy_photos(result.picks, "keepers/"))               # never overwrites; a clash gets "name (1).jpg"
    write_cull_xmp(result)                                     # xmp:Rating stars + xmpDM:pick in sidecars

**The grouping rule.** Photos are sorted by EXIF capture time (photos without
one go last, in natural name order: ``IMG_9`` before ``IMG_10``). Two photos belong to one group when

* their content is near-identical: cosine similarity of their cached backbone
  features ``>= similarity`` (default 0.85), whenever they were taken; or
* they are one burst: in a run of photos each taken ``<= burst_seconds`` after
  the previous one (default 2 s), at most :data:`BURST_WINDOW` frames apart, their
  *layouts* agree (see below) at least :data:`LAYOUT_GATE` (0.5), and either their
  features are at least ``burst_similarity`` alike (default 0.45) or their layouts
  at least ``layout_similarity`` (default 0.8). The feature bar is lower than for
  duplicates because a burst reframes, re-exposes and may miss focus; the layout
  link is what keeps a heavily blurred frame in its burst (a Gaussian blur of 3 %
  of the long side drops its features' cosine to its sharp siblings to 0.13-0.3,
  yet leaves its layout at 0.65-0.99 to the nearest one), and the layout gate keeps
  two different scenes shot a second apart from merging on features alone; or
* neither has a capture time, they are at most :data:`NAME_WINDOW` apart in name
  order, and their layouts agree at least ``layout_similarity`` (exported copies
  and edits often lose their EXIF).

A photo's *layout* is its luminance at 16x16 (:data:`LAYOUT_SIZE`), less its mean,
scaled to unit length: two layouts' dot product is the correlation of the photos'
large-scale light and dark, which blur, exposure and re-encoding barely move. A
nearly flat photo (a lens cap, a white wall) has no layout: the gate lets its feature
links through and it gets no layout link. Measured on 600-photo synthetic shoots
(BENCHMARKS.md): with every scene shot 1 s after the last, features alone merged
different scenes (pairwise precision 0.69-0.73); with the layout gate 0.93-0.98.

Groups are the connected components of these links (union-find). Content links
come from scikit-learn's ``NearestNeighbors`` radius query on L2-normalised
features (euclidean radius ``sqrt(2 - 2 * similarity)`` is cosine similarity):
at a wedding's 3,000-6,000 photos a brute-force index over 1,280-d float32
vectors is ~30 MB and sklearn walks it in memory-bounded chunks, so no
approximate index is needed; time links only compare neighbours in time order.

**Technical flags** (a number each, and a yes/no against a threshold the person
sets; a flag never drops a photo):

* ``out_of_focus``: variance of the Laplacian of the luminance (0-1) at a fixed
  working size (long side :data:`WORKING_SIZE`), divided by the luminance's own
  variance so that exposure does not move it; flagged below ``blur_threshold``.
  The working size makes it independent of resolution: a 24-MP frame and its
  2-MP copy measure the same (photos smaller than it are measured as they are).
* ``clipped_highlights`` / ``crushed_shadows``: share of pixels with luminance
  >= 250/255 or <= 5/255, flagged at or above their thresholds.
* ``closed_eyes`` (off unless ``CullOptions.closed_eyes``; a heuristic, see
  :mod:`workbench.faces`): frontal faces found by dlib's HOG detector, each eye's
  aspect ratio from 68 landmarks; the value is the share of faces whose eyes look
  closed, flagged at or above ``eyes_threshold``. No face found (or the check
  off): no value, never flagged. :func:`unavailable_flags` says why a flag has no
  value (off, or its package missing).

**Picks.** In each group the photos are ordered by score (best first); the best
photo without a flag is the pick; flagged photos are rejected; the rest are left
unmarked. Scores equal within :data:`TIE` of the scale's range are a tie (a photo
and its resized copy can score the same): the one with more pixels goes first,
then the file name. The person overrides any of it (:meth:`CullResult.set_status`, stars).
"""
from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import takewhile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from workbench.config import Settings
from workbench.dataset.names import natural_key  # IMG_9 before IMG_10
from workbench.errors import BadInput
from workbench.events import NEVER_STOP, FilesSkipped, Finished, Notice, Progress, StopFlag, relay
from workbench.images import ImageError, load_luma

log = logging.getLogger(__name__)

WORKING_SIZE = 640  # long side, pixels, at which every technical measure is taken
CHUNK = 64  # photos measured between stop checks
BURST_WINDOW = 12  # photos ahead compared within one burst
NAME_WINDOW = 2  # photos ahead in name order compared among photos without a capture time
LAYOUT_SIZE = 16  # side of the luminance thumbnail compared between burst frames
LAYOUT_GATE = 0.5  # burst frames' layouts must agree this much for any burst link
FLAT_LAYOUT = 0.01  # a thumbnail whose luminance spreads less than this (0-1) is flat: no layout
STATUSES = ("pick", "reject", "none")
# Scores this close (as a share of the scale's range) are a tie: float32 noise, e.g. the same pixels
# scored in another batch or on another device, is ~1e-7 relative; any larger gap is the model's own.
TIE = 1e-6
EYES_OFF = ("off: turn it on (--closed-eyes, closed_eyes in the API, the Cull view's checkbox) to look for them; "
            "a heuristic on frontal faces that catches few blinks, up to ~0.7 s more a 12-MP photo")


class CullError(BadInput):
    """A cull that cannot run or an action that cannot be done; the message says why."""


@dataclass(frozen=True)
class CullOptions:
    """The person's controls. Thresholds are on the measures' own scales (see the module docstring)."""

    similarity: float = 0.85
    burst_seconds: float = 2.0
    burst_similarity: float = 0.45
    layout_similarity: float = 0.8  # 16x16 luminance correlation linking burst frames whatever their blur
    blur_threshold: float = 0.008
    highlight_threshold: float = 0.20  # high enough that a white studio background is not a failure
    shadow_threshold: float = 0.30
    closed_eyes: bool = False  # look for faces with closed eyes (a heuristic, slower)
    eyes_threshold: float = 0.5  # flag when at least this share of the faces found look closed-eyed
    backbone: str | None = None  # None: the settings' default backbone

    def check(self) -> "CullOptions":
        for name in ("similarity", "burst_similarity", "layout_similarity", "highlight_threshold", "shadow_threshold",
                     "eyes_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise CullError(f"{name} must be between 0 and 1, not {value!r}")
        for name in ("burst_seconds", "blur_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise CullError(f"{name} must be a number >= 0, not {value!r}")
        return self


# ------------------------------------------------------------ measurements
@dataclass(frozen=True)
class Measures:
    sharpness: float
    highlights: float
    shadows: float
    taken: float | None  # capture time, seconds since the epoch (EXIF, camera's clock)
    eyes_closed: float | None = None  # share of the faces found that look closed-eyed; None: not looked, or no face
    faces: int | None = None  # faces found; None: not looked
    pixels: int | None = None  # width x height of the original (not of the reduced decode)
    layout: np.ndarray | None = field(default=None, compare=False, repr=False)  # see layout_of


def layout_of(luma: np.ndarray) -> np.ndarray | None:
    """The photo's 16x16 luminance, less its mean, of unit length (float32); None when nearly flat."""
    small = Image.fromarray(luma).resize((LAYOUT_SIZE, LAYOUT_SIZE), Image.Resampling.BOX)
    thumb = np.asarray(small, dtype=np.float32).ravel()
    thumb = thumb - thumb.mean()
    if thumb.std() < FLAT_LAYOUT:
        return None
    return thumb / np.linalg.norm(thumb)


def capture_time(path: str | Path) -> float | None:
    """EXIF DateTimeOriginal (+ sub-seconds), else DateTime; None when the photo has neither."""
    return read_header(path)[0]


def read_header(path: str | Path) -> tuple[float | None, int | None]:
    """(capture time as :func:`capture_time` says, width x height) from the file's header; None where unreadable."""
    try:
        with Image.open(path) as image:
            pixels = image.width * image.height
            exif = image.getexif()
            sub = exif.get_ifd(0x8769)
    except (OSError, ValueError, SyntaxError):
        return None, None
    return _exif_time(exif, sub), pixels


def _exif_time(exif, sub) -> float | None:
    stamp = sub.get(36867) or exif.get(306)  # DateTimeOriginal, DateTime
    if not stamp:
        return None
    try:
        when = datetime.strptime(str(stamp).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    fraction = str(sub.get(37521) or "").strip("\x00 ")  # SubsecTimeOriginal: digits after the point
    extra = float("0." + fraction) if fraction.isdigit() else 0.0
    return when.timestamp() + extra


def luminance(image: Image.Image) -> np.ndarray:
    """Rec. 601 luma in 0-1 at the working size (long side :data:`WORKING_SIZE`). A smaller photo is
    measured as it is: enlarging it would blur it, and flag it for a softness it does not have."""
    scale = min(1.0, WORKING_SIZE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    grey = image if image.mode == "L" else image.convert("L")
    return np.asarray(grey.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def laplacian_sharpness(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the luminance's variance (exposure-free)."""
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return 0.0
    lap = (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1])
    spread = float(luma.var())
    return float(lap.var()) / spread if spread > 1e-6 else 0.0


def measure(path: str | Path, settings: Settings, *, eyes: bool = False) -> Measures:
    """The technical measures of one photo (``eyes``: and its faces' eyes); raises ImageError when
    it cannot be decoded, FaceModelUnavailable when ``eyes`` and the face model is not installed."""
    # JPEG luma only, at a reduced scale: the measures need neither colour nor the full resolution
    image = load_luma(path, WORKING_SIZE, max_pixels=settings.max_pixels)
    try:
        luma = luminance(image)
    finally:
        image.close()
    closed, faces = None, None
    if eyes:  # faces need more pixels than the working size; a second, larger luma decode
        from workbench.faces import FACE_SIZE, eye_report

        with load_luma(path, FACE_SIZE, max_pixels=settings.max_pixels) as bigger:
            report = eye_report(bigger)
        closed, faces = report.share_closed, report.faces
    taken, pixels = read_header(path)
    return Measures(sharpness=laplacian_sharpness(luma), highlights=float(np.mean(luma >= 250 / 255)),
                    shadows=float(np.mean(luma <= 5 / 255)), taken=taken, eyes_closed=closed, faces=faces,
                    pixels=pixels, layout=layout_of(luma))


# Flag name -> (measure attribute, option holding the threshold, flagged when the value is below it?)
FLAGS: dict[str, tuple[str, str, bool]] = {
    "out_of_focus": ("sharpness", "blur_threshold", True),
    "clipped_highlights": ("highlights", "highlight_threshold", False),
    "crushed_shadows": ("shadows", "shadow_threshold", False),
    "closed_eyes": ("eyes_closed", "eyes_threshold", False),
}
FLAG_EXTRAS = {"closed_eyes": "faces"}  # a flag's companion number, shown with it (JSON, CSV)


def flags_of(m: Measures, options: CullOptions) -> dict[str, dict[str, Any]]:
    """Each flag's value and yes/no; a flag without a value (not measured) is never flagged."""
    out = {}
    for name, (attribute, option, below) in FLAGS.items():
        value, threshold = getattr(m, attribute), getattr(options, option)
        flagged = value is not None and (value < threshold if below else value >= threshold)
        out[name] = {"value": None if value is None else round(value, 6), "flagged": flagged}
        if name in FLAG_EXTRAS:
            out[name][FLAG_EXTRAS[name]] = getattr(m, FLAG_EXTRAS[name])
    return out


def unavailable_flags(options: CullOptions) -> dict[str, str]:
    """Flags that carry no value in this cull, and why (the check is off, or its model is missing)."""
    if not options.closed_eyes:
        return {"closed_eyes": EYES_OFF}
    from workbench.faces import unavailable_reason

    reason = unavailable_reason()
    return {"closed_eyes": reason} if reason else {}


# ------------------------------------------------------------------ grouping
def group_photos(features: np.ndarray, taken: Sequence[float | None], options: CullOptions,
                 layouts: Sequence[np.ndarray | None] | None = None,
                 names: Sequence[str] | None = None) -> list[list[int]]:
    """Indices grouped by the module's rule; each group in time order, groups in order of their first photo.

    ``layouts``: each photo's :func:`layout_of` (None: no layout links and no gate, features alone);
    ``names``: the order of the photos without a capture time (natural order; default: as given)."""
    n = len(taken)
    if n == 0:
        return []
    name_key = [natural_key(str(names[i])) if names is not None else () for i in range(n)]
    order = sorted(range(n), key=lambda i: (taken[i] is None, taken[i] or 0.0, name_key[i], i))
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    def layout(a: int, b: int) -> float | None:
        """Correlation of two photos' layouts; None when either has none."""
        if layouts is None or layouts[a] is None or layouts[b] is None:
            return None
        return float(layouts[a] @ layouts[b])

    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if n > 1:
        from sklearn.neighbors import NearestNeighbors

        radius = math.sqrt(max(0.0, 2.0 - 2.0 * options.similarity)) + 1e-6
        index = NearestNeighbors(radius=radius, algorithm="brute").fit(x)
        for i, neighbours in enumerate(index.radius_neighbors(x, return_distance=False)):
            for j in neighbours:
                if j != i:
                    union(i, int(j))
    # Bursts: within a run of photos each taken <= burst_seconds after the previous one, every photo is
    # compared with the next BURST_WINDOW ones, so a blurred frame in the middle still joins its burst.
    # Photos without a capture time: each with the next NAME_WINDOW ones in name order, by layout alone.
    for k, a in enumerate(order):
        for b_pos in range(k + 1, min(k + 1 + BURST_WINDOW, n)):
            b, prev = order[b_pos], order[b_pos - 1]
            if taken[a] is None:
                if b_pos - k > NAME_WINDOW:
                    break
                alike = layout(a, b)
                if alike is not None and alike >= options.layout_similarity:
                    union(a, b)
                continue
            if taken[b] is None or taken[prev] is None or taken[b] - taken[prev] > options.burst_seconds:
                break
            alike = layout(a, b)
            if alike is not None and alike < LAYOUT_GATE:
                continue  # different large-scale light and dark: not one moment, however alike the features
            if float(x[a] @ x[b]) >= options.burst_similarity or (alike is not None and alike >= options.layout_similarity):
                union(a, b)
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


# ------------------------------------------------------------------ results
@dataclass
class CullPhoto:
    path: str
    score: float | None
    flags: dict[str, dict[str, Any]]
    taken: float | None = None
    pixels: int | None = None  # width x height of the original; breaks ties in score
    status: str = "none"  # "pick" | "reject" | "none"
    stars: int | None = None  # set by the person; None: from the score when written

    @property
    def flagged(self) -> bool:
        return any(f["flagged"] for f in self.flags.values())

    def to_json(self) -> dict:
        return {"path": self.path, "score": self.score, "flags": self.flags, "pick": self.status == "pick",
                "rejected": self.status == "reject", "stars": self.stars, "taken": self.taken}


@dataclass
class CullGroup:
    id: int
    photos: list[CullPhoto]  # best first

    @property
    def pick(self) -> CullPhoto | None:
        return next((p for p in self.photos if p.status == "pick"), None)


@dataclass
class CullResult:
    scorer_id: str
    scale: tuple[float, float]
    groups: list[CullGroup]
    options: CullOptions
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be culled
    stopped: bool = False

    @property
    def photos(self) -> list[CullPhoto]:
        return [p for g in self.groups for p in g.photos]

    @property
    def picks(self) -> list[str]:
        return [p.path for p in self.photos if p.status == "pick"]

    @property
    def rejected(self) -> list[str]:
        return [p.path for p in self.photos if p.status == "reject"]

    def photo(self, path: str | Path) -> CullPhoto:
        for p in self.photos:
            if p.path == str(path):
                return p
        raise CullError(f"{path} is not part of this cull")

    def set_status(self, path: str | Path, status: str) -> CullPhoto:
        """The person's decision for one photo; picking one photo does not unpick its siblings
        (a group may hold two keepers)."""
        if status not in STATUSES:
            raise CullError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        photo = self.photo(path)
        photo.status = status
        return photo

    def set_stars(self, path: str | Path, stars: int | None) -> CullPhoto:
        if stars is not None and not 0 <= int(stars) <= 5:
            raise CullError(f"{stars} stars: a rating is 0 to 5")
        photo = self.photo(path)
        photo.stars = None if stars is None else int(stars)
        return photo

    def to_json(self) -> dict:
        return {"scorer": self.scorer_id, "n_photos": len(self.photos), "stopped": self.stopped,
                "options": {k: v for k, v in self.options.__dict__.items()},
                "unavailable_flags": unavailable_flags(self.options),
                "groups": [{"id": g.id, "photos": [p.to_json() for p in g.photos]} for g in self.groups],
                "picks": self.picks, "rejected": self.rejected,
                "failed": [{"path": p, "error": e} for p, e in self.errors.items()]}


def best_first(photos: Sequence[CullPhoto], scale: Sequence[float]) -> list[CullPhoto]:
    """Highest score first; scores within :data:`TIE` of the range of the first of their run are a
    tie, settled by more pixels, then the file name (never by the order the files were read in)."""
    tolerance = TIE * abs(scale[1] - scale[0]) if len(scale) == 2 else TIE
    ranked = sorted(photos, key=lambda p: (-(p.score if p.score is not None else -math.inf), p.path))
    out: list[CullPhoto] = []
    while ranked:
        head = ranked[0].score
        run = ranked[:1] if head is None else list(takewhile(lambda p: p.score is not None and head - p.score <= tolerance, ranked))
        out += sorted(run, key=lambda p: (-(p.pixels or 0), p.path))
        ranked = ranked[len(run):]
    return out


def decide(groups: list[CullGroup]) -> None:
    """Default decisions: the best unflagged photo of each group is the pick, flagged ones are rejected."""
    for group in groups:
        picked = False
        for photo in group.photos:
            if photo.flagged:
                photo.status = "reject"
            elif not picked and photo.score is not None:
                photo.status, picked = "pick", True
            else:
                photo.status = "none"


def reflag(result: CullResult, options: CullOptions) -> CullResult:
    """The same cull with new flag thresholds (no re-measuring); decisions are made afresh."""
    options = options.check()
    for photo in result.photos:
        values = {attribute: photo.flags.get(name, {}).get("value") for name, (attribute, _, _) in FLAGS.items()}
        extras = {extra: photo.flags.get(name, {}).get(extra) for name, extra in FLAG_EXTRAS.items()}
        photo.flags = flags_of(Measures(**values, **extras, taken=photo.taken), options)
    decide(result.groups)
    result.options = replace(result.options, **{option: getattr(options, option) for _, option, _ in FLAGS.values()})
    return result


# -------------------------------------------------------------------- the cull
def _without_skips(events):
    """A sub-job's events less its notes on skipped files (logged at debug level): the cull's result
    lists every file it could not cull with its reason, once."""
    for event in events:
        if isinstance(event, FilesSkipped):
            log.debug("%s", event.message)
        else:
            yield event


def _measure_all(paths: list[Path], settings: Settings, stop: StopFlag,
                 measures: dict[str, Measures], errors: dict[str, str], eyes: bool = False) -> Iterator[Progress]:
    def one(path: Path):
        try:
            return measure(path, settings, eyes=eyes)
        except (ImageError, OSError) as exc:
            return exc

    total = len(paths)
    with ThreadPoolExecutor(max_workers=max(1, settings.num_workers)) as pool:  # Pillow releases the GIL
        for start in range(0, total, CHUNK):
            if stop.is_set():
                return
            chunk = paths[start:start + CHUNK]
            for path, got in zip(chunk, pool.map(one, chunk)):
                if isinstance(got, Exception):
                    errors[str(path)] = str(got)
                else:
                    measures[str(path)] = got
            what = "focus, exposure and eyes" if eyes else "focus and exposure"
            yield Progress(start + len(chunk), total, f"checking {what} {start + len(chunk)}/{total}")


def cull(inputs: Sequence[str | Path], scorer, settings: Settings, *, options: CullOptions | None = None,
         stop: StopFlag = NEVER_STOP) -> Iterator[Any]:
    """Score, measure, group and pick; yields Progress/Notice and ends with ``Finished(CullResult)``.

    Three passes, each stoppable: scoring (``predict.score_images``), the
    technical measures, then the backbone features (cached by content). On Stop
    the result holds the photos that finished every pass so far, ``stopped`` true.
    """
    from workbench.features import extract_features
    from workbench.predict import expand_inputs, score_images

    options = (options or CullOptions()).check()
    if options.closed_eyes:
        from workbench.faces import unavailable_reason

        reason = unavailable_reason()
        if reason:  # asked for and impossible: say so before any work, rather than flag nothing
            raise CullError(reason)
    paths, errors = expand_inputs(inputs)
    if not paths and not errors:
        raise CullError("no photos to cull: the folders hold no supported images")
    started = time.perf_counter()
    batch = yield from relay(_without_skips(score_images(paths, scorer, settings, stop=stop)))
    scores = {r.path: r.score for r in batch.result.scored}
    errors.update({r.path: r.error for r in batch.result.failed})
    stopped = batch.stopped or stop.is_set()
    measures: dict[str, Measures] = {}
    if not stopped:
        yield from _measure_all([p for p in paths if str(p) in scores], settings, stop, measures, errors,
                                eyes=options.closed_eyes)
        stopped = stop.is_set()
    features: dict[str, np.ndarray] = {}
    if not stopped:
        todo = [p for p in paths if str(p) in measures]
        done = yield from relay(_without_skips(extract_features(todo, options.backbone or settings.default_backbone,
                                                                settings, stop=stop)))
        stopped = done.stopped or stop.is_set()
        errors.update(done.result.errors)
        features = {str(p): done.result.features[i] for i, p in enumerate(done.result.paths)}
    kept = [str(p) for p in paths if str(p) in features and str(p) in measures and str(p) in scores]
    groups = []
    if kept:
        index_groups = group_photos(np.stack([features[p] for p in kept]), [measures[p].taken for p in kept], options,
                                    layouts=[measures[p].layout for p in kept], names=kept)
        for gid, members in enumerate(index_groups, start=1):
            photos = [CullPhoto(path=kept[i], score=scores[kept[i]], flags=flags_of(measures[kept[i]], options),
                                taken=measures[kept[i]].taken, pixels=measures[kept[i]].pixels) for i in members]
            groups.append(CullGroup(gid, best_first(photos, scorer.scale)))
    groups.sort(key=lambda g: -(g.photos[0].score if g.photos[0].score is not None else -math.inf))  # best group first
    for gid, group in enumerate(groups, start=1):
        group.id = gid
    decide(groups)
    elapsed = time.perf_counter() - started
    if errors:
        yield FilesSkipped(f"{len(errors)} file(s) could not be culled; each is listed with its reason", "warning")
    yield Notice(f"culled {len(kept)} photo(s) into {len(groups)} group(s) in {elapsed:.1f} s")
    yield Finished(CullResult(scorer_id=scorer.id, scale=tuple(scorer.scale), groups=groups, options=options,
                              errors=errors, stopped=stopped), stopped=stopped)


# -------------------------------------------------------------------- acting
@dataclass
class CopyReport:
    copied: dict[str, str] = field(default_factory=dict)  # source -> where it is now
    failed: dict[str, str] = field(default_factory=dict)  # source -> why
    moved: bool = False
    stopped: bool = False

    def to_json(self) -> dict:
        return {"moved": self.moved, "stopped": self.stopped, "copied": self.copied,
                "failed": [{"path": p, "error": e} for p, e in self.failed.items()]}


def _place(source: Path, folder: Path, move: bool) -> Path:
    """Put ``source`` into ``folder`` under its own name, or ``name (1).ext`` ... on a clash.

    Every file appears whole or not at all (hard link, else temp file + link), and
    no existing file is replaced; a move removes the original only once the copy
    is complete, so at any moment the photo is where it was or fully in ``folder``.
    """
    from workbench.dataset.names import unique_name
    from workbench.fsutil import copy_file_exclusive

    taken = {p.name.casefold() for p in folder.iterdir()}
    for _ in range(100):  # another process may take the name between listing and linking
        target = folder / unique_name(source.name, taken)
        try:
            if move:
                try:
                    os.link(source, target)  # same disk: instant, atomic, refuses to overwrite
                except FileExistsError:
                    raise
                except OSError:
                    copy_file_exclusive(source, target)
                os.unlink(source)
            else:
                copy_file_exclusive(source, target)
            return target
        except FileExistsError:
            taken.add(target.name.casefold())
    raise CullError(f"{source.name}: no free name in {folder}")


def _carry_sidecars(source: Path, target: Path, move: bool) -> list[str]:
    """Copy (move) the XMP sidecars of ``source`` next to ``target``, renamed like it; returns problems."""
    from workbench.dataset.xmp import sidecar_paths
    from workbench.fsutil import copy_file_exclusive

    problems = []
    for sidecar in sidecar_paths(source):
        by_stem = sidecar.name.casefold() == (source.stem + ".xmp").casefold()
        new = target.with_name((target.stem if by_stem else target.name) + ".xmp")
        try:
            copy_file_exclusive(sidecar, new)
            shared = by_stem and any(p.suffix.casefold() != ".xmp" and p != source
                                     for p in source.parent.glob(source.stem + ".*"))
            if move and not shared:
                sidecar.unlink()
        except FileExistsError:
            problems.append(f"{new.name} exists already; the sidecar was left where it was")
        except OSError as exc:
            problems.append(f"{sidecar.name}: {exc.strerror or exc}")
    return problems


def copy_photos(paths: Sequence[str | Path], folder: str | Path, *, move: bool = False, sidecars: bool = True,
                stop: StopFlag = NEVER_STOP) -> Iterator[Progress | Finished]:
    """Copy (or move) photos into ``folder`` (created if needed), never overwriting; ends with
    ``Finished(CopyReport)``. Stop is checked between photos, so none is ever left half-copied.
    ``sidecars``: their XMP sidecars go along, renamed like the photo (a ``stem.xmp`` that another
    file of the same stem, such as the raw, still shares is copied, not moved)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CullError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise CullError(f"{folder} is not a folder")
    report = CopyReport(moved=move)
    total = len(paths)
    verb = "moving" if move else "copying"
    for done, path in enumerate(paths):
        if stop.is_set():
            report.stopped = True
            break
        source = Path(path)
        try:
            if not source.is_file():
                raise FileNotFoundError(f"{source} does not exist")
            if source.resolve().parent == folder.resolve():
                report.copied[str(source)] = str(source)  # already there: nothing to do
            else:
                target = _place(source, folder, move)
                report.copied[str(source)] = str(target)
                problems = _carry_sidecars(source, target, move) if sidecars else []
                if problems:
                    report.failed[str(source)] = "; ".join(problems)
        except (OSError, CullError) as exc:
            report.failed[str(source)] = str(exc)
        yield Progress(done + 1, total, f"{verb} {done + 1}/{total} to {folder}")
    yield Finished(report, stopped=report.stopped)


def stars_of(result: CullResult, photo: CullPhoto) -> int:
    """What goes into ``xmp:Rating``: the person's stars, else the score's fifth of the scale; -1 if rejected."""
    from workbench.dataset.ratings import stars_for_scores

    if photo.status == "reject":
        return -1
    if photo.stars is not None:
        return photo.stars
    if photo.score is None:
        return 0
    return stars_for_scores([photo.score], "thresholds", *result.scale)[0]


def write_cull_xmp(result: CullResult, *, new_sidecar: str = "stem", only_decided: bool = False) -> dict:
    """Write each photo's stars, exact score and pick flag (``xmpDM:pick`` 1 pick, -1 reject, 0 none)
    into its XMP sidecar, merged into an existing one. Returns ``{"written": [...], "failed": [...]}``."""
    from workbench.dataset.xmp import MetadataError, write_rating

    written, failed = [], []
    for photo in result.photos:
        if only_decided and photo.status == "none":
            continue
        pick = {"pick": 1, "reject": -1}.get(photo.status, 0)
        try:
            written += write_rating(photo.path, stars_of(result, photo), photo.score, new_sidecar=new_sidecar,
                                    extra={"Xmp.xmpDM.pick": str(pick)})
        except (MetadataError, OSError) as exc:
            failed.append({"path": photo.path, "error": str(exc)})
    return {"written": [str(p) for p in written], "failed": failed}


def send_to_training(items: Sequence[tuple[str | Path, float]], settings: Settings, *,
                     stop: StopFlag = NEVER_STOP) -> Iterator[Any]:
    """Copy chosen photos into the training set with the person's corrected scores (culling teaches
    the model); yields the import's events and ends with ``Finished(ImportReport)``. A photo whose
    content is already in the set is not copied twice."""
    from workbench.dataset.importer import import_into_store, scan_source
    from workbench.dataset.store import ScoreStore

    if not items:
        raise CullError("no photos chosen to send to the training set")
    store = ScoreStore.from_settings(settings)
    wanted = {str(Path(p)): store.validate_score(score) for p, score in items}
    preview = scan_source([Path(p) for p in wanted], score_min=store.score_min, score_max=store.score_max,
                          max_pixels=settings.max_pixels, ratings="filename")
    try:
        scores = {item.name: wanted[str(item.source)] for item in preview.items if str(item.source) in wanted}
        yield from import_into_store(preview.items, store, scores=scores, stop=stop, skipped=preview.skipped)
    finally:
        preview.cleanup()


# ----------------------------------------------------------------------- CSV
def csv_columns() -> list[str]:
    columns = ["path", "score", "group", "status", "stars"]
    for name in FLAGS:
        columns += [f"{name}_value", name] + ([FLAG_EXTRAS[name]] if name in FLAG_EXTRAS else [])
    return columns + ["error"]


def cull_csv_text(result: CullResult, *, for_spreadsheet: bool = False) -> str:
    """path,score,group,status,stars, each flag's value (empty when not measured) and yes/no (1/0), the
    faces found (empty when eyes were not looked at), error: one row a photo,
    groups best first, then the photos that could not be culled."""
    import csv
    import io

    from workbench.predict import spreadsheet_safe

    text = spreadsheet_safe if for_spreadsheet else str
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns())
    for group in result.groups:
        for p in group.photos:
            cells = [text(p.path), "" if p.score is None else f"{p.score:.4f}", group.id, p.status,
                     stars_of(result, p)]
            for name in FLAGS:
                value = p.flags[name]["value"]
                cells += ["" if value is None else f"{value:.6g}", int(p.flags[name]["flagged"])]
                if name in FLAG_EXTRAS:
                    extra = p.flags[name][FLAG_EXTRAS[name]]
                    cells.append("" if extra is None else extra)
            writer.writerow(cells + [""])
    for path, error in result.errors.items():
        writer.writerow([text(path)] + [""] * (len(csv_columns()) - 2) + [text(error)])
    return buffer.getvalue()


def corrected_scores(result: CullResult, mapping) -> list[tuple[str, float]]:
    """(path, training score) for the photos the person rated or rejected: stars through ``mapping``
    (a :class:`workbench.dataset.ratings.StarMapping`, the same one imports use), rejects to its
    minimum (or left out when rejects are set to be skipped)."""
    from workbench.dataset.xmp import Rating

    items = []
    for photo in result.photos:
        if photo.status != "reject" and not photo.stars:
            continue
        score, _ = mapping.score(Rating(photo.stars if photo.stars else None, photo.status == "reject", None, "cull"))
        if score is not None:
            items.append((photo.path, score))
    return items


def metadata_ratings(result: CullResult) -> tuple[dict[str, Any], list[str]]:
    """The person's ratings of the culled photos, read from their metadata (XMP sidecar, embedded XMP,
    EXIF Rating, as imports read them): ``({path: Rating}, [paths left out])``. A sidecar that holds the
    workbench's own score and the stars (or reject) the cull writes for it is the workbench's guess,
    not the person's, so it is left out: only a rating changed since (in Lightroom, darktable...) counts."""
    from workbench.dataset.ratings import stars_for_scores
    from workbench.dataset.xmp import SCORE_KEY, MetadataError, Rating, read_rating, read_sidecar, sidecar_paths

    ratings, own = {}, []
    for photo in result.photos:
        rating = read_rating(photo.path)
        if rating is None:
            continue
        sidecar = next((s for s in sidecar_paths(Path(photo.path)) if rating.source == f"XMP sidecar {s.name}"), None)
        try:
            tags = read_sidecar(sidecar) if sidecar else {}
            ours = float(tags[SCORE_KEY]) if SCORE_KEY in tags else None
            stars = int(float(tags.get("Xmp.xmp.Rating", "0")))
            pick = int(float(tags.get("Xmp.xmpDM.pick", "0")))
        except (MetadataError, OSError, ValueError):
            ours = None
        if ours is not None and math.isfinite(ours):
            written = -1 if pick == -1 else stars_for_scores([ours], "thresholds", *result.scale)[0]
            if stars == written:
                own.append(photo.path)
                continue
            rating = Rating(stars if stars >= 1 else None, stars < 0, rating.label, rating.source)
        ratings[photo.path] = rating
    return ratings, own
