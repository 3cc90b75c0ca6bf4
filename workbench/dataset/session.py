"""An import being prepared: the scanned preview plus the scores a person edited.

The Import tab holds one :class:`ImportSession` per browser session. Nothing
touches ``data/`` until :meth:`ImportSession.save`; until then a person can
look through the images page by page, correct scores one at a time or many at
once through a table, and watch the summary and histogram follow.

:func:`table_changes` is shared with the Training-data tab: it turns an edited
``filename, score`` table into just the rows that changed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from workbench.config import Settings
from workbench.dataset.importer import ImportPreview, import_into_store, same_picture_reason, scan_source_events
from workbench.dataset.names import natural_key
from workbench.dataset.ratings import StarMapping, describe_order
from workbench.dataset.scores import ScoreError, format_score, validate_score
from workbench.dataset.store import ScoreStore
from workbench.dataset.summary import ScoreSummary, summarize_scores
from workbench.errors import NotFound
from workbench.events import NEVER_STOP, Finished, StopFlag, drain, relay
from workbench.images import ImageError, thumbnail


def table_changes(rows: Iterable[tuple[str, Any]], current: dict[str, float | None]) -> dict[str, Any]:
    """The ``{filename: typed value}`` of table rows whose score differs from ``current``.

    A row reads the same as its stored score when the text matches the score as
    it is displayed ("85" for 85.0, "" for unlabelled) or parses to the same
    number ("85.0"); rows naming files not in ``current`` are ignored.
    """
    changes: dict[str, Any] = {}
    for filename, typed in rows:
        if filename not in current:
            continue
        before = current[filename]
        text = "" if typed is None or (isinstance(typed, float) and math.isnan(typed)) else str(typed).strip()
        if text == format_score(before):
            continue
        if before is not None:
            try:
                if float(text) == before:
                    continue
            except ValueError:
                pass
        changes[filename] = typed
    return changes


@dataclass
class SessionItem:
    """One importable image as the gallery shows it (the shape of a GalleryItem)."""

    filename: str
    score: float | None
    path: Path
    thumbnail: Path | None


@dataclass
class SessionPage:
    """One page of the preview (the shape of a GalleryPage)."""

    items: list[SessionItem]
    page: int
    pages: int
    total: int


@dataclass
class ImportSession:
    """A scanned import source and the scores as edited so far (keyed by item name)."""

    preview: ImportPreview
    score_min: float
    score_max: float
    scores: dict[str, float | None] = field(default_factory=dict)
    saved: bool = False  # copied into the training set already
    unlabelled_first: bool = True  # how the preview pages are ordered (see :meth:`page`)
    sources: str = ""  # where scores were looked for, in order (shown to the person)
    already: dict[str, str] = field(default_factory=dict)  # item name -> its name in the training set (same picture)
    report: Any = None  # the ImportReport of :meth:`save`: what was really copied

    def __post_init__(self) -> None:
        if not self.scores:
            self.scores = {item.name: item.score for item in self.preview.items}
        self._by_name = {item.name: item for item in self.preview.items}

    @classmethod
    def scan_events(cls, source: str | Path | Sequence[str | Path], settings: Settings, pattern: str = "",
                    stop: StopFlag = NEVER_STOP) -> Iterator[Any]:
        """Scan a folder, a zip, or uploaded files; yields Progress, then Finished(ImportSession).

        Raises ScoreError for a bad pattern and FileNotFoundError for a missing
        source before any work is done (see ``scan_source_events``).
        """
        finished = yield from relay(scan_source_events(
            source, pattern=pattern, score_min=settings.score_min, score_max=settings.score_max,
            max_pixels=settings.max_pixels, thumbnails_dir=settings.thumbnails_dir,
            thumbnail_size=settings.thumbnail_size, stop=stop, ratings=settings.ratings_source,
            star_mapping=StarMapping.from_settings(settings),
        ))
        preview = finished.result
        # said before saving, so a re-import is not mistaken for new photos
        copies = ScoreStore.from_settings(settings).copies_of([item.source for item in preview.items])
        already = {preview.items[i].name: name for i, name in copies.items()}
        yield Finished(cls(preview, settings.score_min, settings.score_max,
                           sources=describe_order(settings.ratings_source), already=already), finished.stopped)

    @classmethod
    def scan(cls, source: str | Path | Sequence[str | Path], settings: Settings,
             pattern: str = "") -> "ImportSession":
        """:meth:`scan_events` run to the end."""
        return drain(cls.scan_events(source, settings, pattern))

    def close(self) -> None:
        """Delete files extracted from zips; call when the session is replaced or done."""
        self.preview.cleanup()

    # ------------------------------------------------------------- reading
    @property
    def names(self) -> list[str]:
        return [item.name for item in self.preview.items]

    @property
    def skipped(self) -> list[Any]:
        """The preview's skipped files; a same-picture file's reason quotes the kept photo's score as edited."""
        return [replace(s, reason=same_picture_reason(s.same_as, self.scores[s.same_as], s.score, s.gave_score))
                if s.same_as in self.scores else s for s in self.preview.skipped]

    def counts(self) -> dict[str, int]:
        labelled = sum(score is not None for score in self.scores.values())
        return {"images": len(self.scores), "labelled": labelled,
                "unlabelled": len(self.scores) - labelled, "skipped": len(self.preview.skipped)}

    def summary(self, bins: int = 10) -> ScoreSummary:
        """Counts, range and histogram of the scores as edited so far."""
        return summarize_scores(self.scores.values(), self.score_min, self.score_max, bins)

    def page(self, page: int, page_size: int, thumbnails_dir: Path, thumbnail_size: int, *,
             unlabelled_first: bool = False) -> SessionPage:
        """Page ``page`` (0-based, clamped) with cached thumbnails made for just this page; names in
        natural order (``8_a`` before ``89_b``), the unlabelled ones first when asked."""
        ordered = sorted(self.preview.items, key=lambda item: (
            unlabelled_first and self.scores[item.name] is not None, natural_key(item.name)))
        total = len(ordered)
        pages = max(1, math.ceil(total / page_size))
        page = min(max(page, 0), pages - 1)
        chunk = ordered[page * page_size:(page + 1) * page_size]
        items = [SessionItem(item.name, self.scores[item.name], Path(item.source),
                             item.thumbnail or _thumbnail_or_none(item.source, thumbnail_size, thumbnails_dir))
                 for item in chunk]
        return SessionPage(items, page, pages, total)

    # ------------------------------------------------------------- editing
    def set_score(self, name: str, value: Any) -> float:
        """Set one typed score; ScoreError (nothing changed) when it is not a valid score."""
        if name not in self._by_name:
            raise NotFound(f"{name} is not in this import")
        score = validate_score(value, self.score_min, self.score_max)
        self.scores[name] = score
        return score

    def set_scores(self, values: dict[str, Any]) -> dict[str, float]:
        """Set many typed scores, all checked first: one bad value changes nothing.

        The ScoreError message names every bad row.
        """
        accepted: dict[str, float] = {}
        problems: list[str] = []
        for name, value in values.items():
            if name not in self._by_name:
                problems.append(f"{name}: not in this import")
                continue
            try:
                accepted[name] = validate_score(value, self.score_min, self.score_max)
            except ScoreError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ScoreError("Nothing was changed. " + " ".join(problems))
        self.scores.update(accepted)
        return accepted

    def apply_table(self, rows: Iterable[tuple[str, Any]]) -> dict[str, float]:
        """Apply the rows of an edited table that differ from the current scores."""
        return self.set_scores(table_changes(rows, self.scores))

    # -------------------------------------------------------------- saving
    def save(self, store: Any, stop: StopFlag = NEVER_STOP) -> Iterator[Any]:
        """Copy the images into ``store`` with the edited scores; yields Progress, then Finished(ImportReport)."""
        finished = yield from relay(import_into_store(self.preview.items, store, scores=dict(self.scores),
                                                      stop=stop, skipped=self.skipped))
        self.saved, self.report = True, finished.result
        yield finished


def _thumbnail_or_none(source: str | Path, size: int, thumbnails_dir: Path) -> Path | None:
    try:
        return thumbnail(source, size, thumbnails_dir)
    except (ImageError, OSError):
        return None
