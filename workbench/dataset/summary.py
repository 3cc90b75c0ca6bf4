"""Looking at the set: counts and histogram, and the paged Training-data gallery.

The gallery works on 5,000 images by never touching more than one page of
them: the table of names and scores is cheap (one directory listing and one
CSV read); only the page's thumbnails are made, each once per content + size
and then served from the cache.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from workbench.dataset.names import natural_key
from workbench.dataset.store import Entry, ScoreStore
from workbench.images import DEFAULT_MAX_PIXELS, ImageError, thumbnail


@dataclass(frozen=True)
class HistogramBin:
    lo: float
    hi: float
    count: int


@dataclass
class ScoreSummary:
    """Counts and distribution of a list of scores (None = unlabelled)."""

    total: int
    labelled: int
    unlabelled: int
    lowest: float | None
    highest: float | None
    mean: float | None
    histogram: list[HistogramBin]
    range: tuple[float, float]

    def line(self) -> str:
        """One line for a person: "12 images: 10 labelled (30–85, mean 61.5), 2 unlabelled"."""
        text = f"{self.total} images: {self.labelled} labelled"
        if self.labelled:
            text += f" ({self.lowest:g}–{self.highest:g}, mean {self.mean:.1f})"
        return text + f", {self.unlabelled} unlabelled"


@dataclass
class DatasetSummary(ScoreSummary):
    data_dir: str = ""
    unlabelled_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["histogram"] = [asdict(b) for b in self.histogram]
        doc["range"] = list(self.range)
        return doc


def summarize_scores(scores: Iterable[float | None], score_min: float, score_max: float,
                     bins: int = 10) -> ScoreSummary:
    """Histogram over the configured range [score_min, score_max] in ``bins`` equal bins."""
    values = list(scores)
    labelled = [float(v) for v in values if v is not None and not math.isnan(v)]
    width = (score_max - score_min) / bins
    counts = [0] * bins
    for v in labelled:
        counts[min(bins - 1, max(0, int((v - score_min) // width)))] += 1
    histogram = [HistogramBin(score_min + i * width, score_min + (i + 1) * width, c) for i, c in enumerate(counts)]
    return ScoreSummary(
        total=len(values), labelled=len(labelled), unlabelled=len(values) - len(labelled),
        lowest=min(labelled) if labelled else None, highest=max(labelled) if labelled else None,
        mean=sum(labelled) / len(labelled) if labelled else None, histogram=histogram,
        range=(score_min, score_max),
    )


def summarize(store: ScoreStore, bins: int = 10) -> DatasetSummary:
    """Counts, score range, histogram and unlabelled files of the set on disk."""
    entries = store.entries()
    base = summarize_scores([e.score for e in entries], store.score_min, store.score_max, bins)
    return DatasetSummary(**vars(base), data_dir=str(store.data_dir),
                          unlabelled_files=[e.filename for e in entries if e.score is None],
                          problems=store.problems())


# ----------------------------------------------------------------- gallery
SortKey = Literal["name", "score", "score_desc"]


@dataclass(frozen=True)
class GalleryQuery:
    """What the Training-data gallery shows; ``page`` counts from 0."""

    page: int = 0
    page_size: int = 48
    sort: SortKey = "name"
    unlabelled_first: bool = True
    min_score: float | None = None  # a score filter hides unlabelled images unless they come first
    max_score: float | None = None
    only_unlabelled: bool = False
    search: str = ""  # case-insensitive substring of the file name


@dataclass(frozen=True)
class GalleryItem:
    filename: str
    score: float | None
    text: str | None
    path: Path
    thumbnail: Path | None  # None when the image cannot be read; see ``error``
    error: str | None = None


@dataclass(frozen=True)
class GalleryPage:
    items: list[GalleryItem]
    page: int
    pages: int
    total: int        # entries matching the query
    total_all: int    # entries in the set


def query_entries(entries: list[Entry], query: GalleryQuery) -> list[Entry]:
    """Filter and sort ``entries`` as the gallery (and the table next to it) shows them."""
    needle = query.search.strip().casefold()
    ranged = query.min_score is not None or query.max_score is not None
    lo = -math.inf if query.min_score is None else query.min_score
    hi = math.inf if query.max_score is None else query.max_score

    def keep(e: Entry) -> bool:
        if needle and needle not in e.filename.casefold():
            return False
        if query.only_unlabelled:
            return e.score is None
        if e.score is None:
            return query.unlabelled_first or not ranged
        return lo <= e.score <= hi

    chosen = [e for e in entries if keep(e)]
    by_name = lambda e: (natural_key(e.filename), e.filename)  # noqa: E731  (1_x before 19_x, as people count)
    if query.sort == "name":
        chosen.sort(key=by_name)
    else:
        chosen.sort(key=by_name)
        chosen.sort(key=lambda e: math.inf if e.score is None else
                    (-e.score if query.sort == "score_desc" else e.score))
    if query.unlabelled_first:
        chosen.sort(key=lambda e: e.score is not None)  # stable: keeps the order within each group
    return chosen


def gallery_page(store: ScoreStore, query: GalleryQuery, thumbnails_dir: str | Path,
                 thumbnail_size: int = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 workers: int | None = None) -> GalleryPage:
    """One page of the gallery with cached thumbnails (made now if missing)."""
    entries = store.entries()
    chosen = query_entries(entries, query)
    size = max(1, query.page_size)
    pages = max(1, math.ceil(len(chosen) / size))
    page = min(max(0, query.page), pages - 1)
    window = chosen[page * size:(page + 1) * size]

    def item(entry: Entry) -> GalleryItem:
        path = store.data_dir / entry.filename
        try:
            thumb, error = thumbnail(path, thumbnail_size, thumbnails_dir, max_pixels=max_pixels), None
        except (ImageError, OSError) as exc:
            thumb, error = None, str(exc)
        return GalleryItem(entry.filename, entry.score, entry.text, path, thumb, error)

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        items = list(pool.map(item, window))
    return GalleryPage(items, page, pages, len(chosen), len(entries))
