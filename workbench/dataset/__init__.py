"""The labelled photo set: scores from file names, the store on disk, import.

API summary (what the UI, the CLI and the other engine modules call); kept true::

    from workbench.dataset import (...)   # everything below is re-exported here

Scores (scores.py)
    ``parse_filename_score(name, pattern="", score_min=0, score_max=100) -> ParsedScore(score, note)``:
    ``score`` float or None; ``note`` says why there is none ("no number at the start of the name",
    "1234 is outside the score range 0–100, so it is not taken as a score", ...).
    ``ScoreRule.compile(pattern, score_min, score_max)`` checks a custom regex once (``ScoreError`` with a
    readable message if invalid); ``rule.parse(name)``.
    ``validate_score(value, lo, hi) -> float`` (typed text or number; ``ScoreError`` for empty/NaN/text/range).
    ``format_score(85.0) -> "85"``.

The store (store.py): ``data/`` + ``data/scores.csv``, every write atomic under a file lock
    ``store = ScoreStore(data_dir, score_min, score_max)`` or ``ScoreStore.from_settings(settings)``
    ``store.entries() -> list[Entry(filename, score | None, text | None)]``   images on disk, sorted by name
    ``store.labelled() -> list[tuple[Path, float]]``       what training uses
    ``store.get(filename) -> Entry`` (KeyError if absent); ``store.path_of(filename) -> Path`` (UnsafePath)
    ``store.set_score(filename, value) -> float``   value may be typed text; ScoreError/KeyError, nothing changes
    ``store.set_scores({filename: value, ...})``    the table: all validated before anything is written
    ``store.write_scores(scores, expected={filename: score_the_tab_showed}) -> ScoreWrite(saved, replaced,
        changed_elsewhere: [ChangedElsewhere(filename, seen, found, saved)])``: saves all the same, and says
        which scores another tab or the CLI had changed since the writer saw them (``.note()``: the sentence)
    ``store.clear_score(filename)``; ``store.set_text(filename, text)``
    ``store.add_image(path_or_bytes_or_file, name, score=None, text=None) -> AddResult(filename, copied,
        duplicate_of, renamed_from, score_applied, error)``  (ImageError for a non-image, ScoreError for a bad score)
    ``store.delete(filename) -> Entry`` (image + row to data/.trash/); ``store.undo_delete() -> Entry | None``;
    ``store.can_undo() -> bool``; ``store.problems() -> list[str]``; ``store.fingerprint() -> str``
    ``store.validate_score(value) -> float``

Import (importer.py): Tab 1 and ``python -m workbench import``
    ``preview = scan_source(source, pattern="", score_min=0, score_max=100, max_pixels=...,
                            staging_dir=None, thumbnails_dir=None, thumbnail_size=256, stop=NEVER_STOP)``
        ``source``: a folder path, a .zip path, or a list of uploaded paths or (original_name, path) pairs
        (a .zip among them is opened, zip-slip safe). ``scan_source_events(...)`` is the same as a generator of
        ``Progress`` ending with ``Finished(ImportPreview)`` (for a progress bar).
        ``preview.items: list[PreviewItem(name, origin, source, score, note, width, height, format, thumbnail)]``
        ``preview.skipped: list[Skipped(file, reason)]``; ``preview.scores -> {name: score}``;
        ``preview.cleanup()`` removes extracted zip members.
    ``import_into_store(preview.items, store, scores={name: value_or_None}, stop=StopFlag(), skipped=preview.skipped)``
        generator: ``Progress`` ... ``Finished(ImportReport)``; edited scores are validated first (ScoreError,
        nothing copied). ``report.to_json()`` -> ``{"imported", "labelled", "unlabelled",
        "skipped": [{"file", "reason"[, "same_as"]}], "renamed": [{"file", "saved_as"}], "notes": [{"file", "note"}]}``;
        ``report.saved`` lists the names written into data/. A file byte-identical to another of the same source
        is in ``preview.skipped`` with ``same_as`` (the one imported: first by name, its score or else the other's);
        ``renamed`` lists only files saved under a name unlike their own (zip folders and prefixes aside).

Star ratings (xmp.py, ratings.py): what photo managers wrote, and sidecars they read
    ``read_rating(image, sidecars=None) -> Rating(stars 1-5 | None, rejected, label, source) | None``: the first of
    ``IMG_1.jpg.xmp``, ``IMG_1.xmp``, XMP in the photo, EXIF Rating. ``write_rating(image, stars, score,
    new_sidecar="stem"|"name", embed=False) -> [files written]`` merges into existing sidecars (other tags kept).
    ``StarMapping.from_settings(settings).score(rating) -> (score | None, note)``;
    ``stars_for_scores(scores, "thresholds"|"percentile", lo, hi)``;
    ``write_star_ratings([(path, score)], method, lo, hi, new_sidecar=, embed=) -> WrittenRatings``.
    ``scan_source(..., ratings="auto"|"xmp"|"filename", star_mapping=...)``: items carry ``from_rating``;
    the import report counts ``from_ratings``.

Comparisons (comparisons.py): ``data/comparisons.csv``, atomic and locked like scores.csv
    ``ComparisonStore(data_dir).add(left, right, outcome)`` with outcome "left" | "right" | "tie";
    ``.all() -> [Comparison]``; ``.undo() -> Comparison | None``.

Summary and the Training-data gallery (summary.py)
    ``summarize(store, bins=10) -> DatasetSummary`` (``.to_json()``, ``.line()``): total, labelled, unlabelled,
    lowest, highest, mean, ``histogram: [HistogramBin(lo, hi, count)]`` over the configured range,
    unlabelled_files, problems. ``summarize_scores(scores, score_min, score_max, bins) -> ScoreSummary`` does the
    same for the import preview's (edited) scores.
    ``gallery_page(store, GalleryQuery(page=0, page_size=48, sort="name"|"score"|"score_desc",
        unlabelled_first=True, min_score=None, max_score=None, only_unlabelled=False, search=""),
        thumbnails_dir, thumbnail_size=256) -> GalleryPage(items=[GalleryItem(filename, score, text, path,
        thumbnail | None, error | None)], page, pages, total, total_all)``: thumbnails cached per content + size.
    ``query_entries(store.entries(), query) -> list[Entry]``: the same filter/sort for the table (all pages).
"""
from workbench.dataset.importer import (
    ImportPreview,
    ImportReport,
    PreviewItem,
    Skipped,
    import_into_store,
    scan_source,
    scan_source_events,
)
from workbench.dataset.scores import (
    ParsedScore,
    ScoreError,
    ScoreRule,
    format_score,
    parse_filename_score,
    validate_score,
)
from workbench.dataset.store import AddResult, ChangedElsewhere, Entry, ScoreStore, ScoreWrite, UnsafePath
from workbench.dataset.summary import (
    DatasetSummary,
    GalleryItem,
    GalleryPage,
    GalleryQuery,
    HistogramBin,
    ScoreSummary,
    gallery_page,
    query_entries,
    summarize,
    summarize_scores,
)

__all__ = [
    "AddResult", "ChangedElsewhere", "DatasetSummary", "Entry", "GalleryItem", "GalleryPage", "GalleryQuery",
    "HistogramBin", "ImportPreview", "ImportReport", "ParsedScore", "PreviewItem", "ScoreError", "ScoreRule", "ScoreStore",
    "ScoreSummary", "ScoreWrite", "Skipped", "UnsafePath", "format_score", "gallery_page", "import_into_store",
    "parse_filename_score", "query_entries", "scan_source", "scan_source_events", "summarize",
    "summarize_scores", "validate_score",
]
