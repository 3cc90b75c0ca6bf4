"""The labelled photo set: scores from file names, the store on disk, import.

API summary (what the UI, the CLI and the other engine modules call)::

    from workbench.dataset import (
        ScoreStore, Entry, ScoreError,                 # store.py
        parse_filename_score, ScoreRule, ParsedScore,  # filename_scores.py
        scan_source, import_into_store,                # importer.py
        ImportPreview, PreviewItem, Skipped, ImportReport,
        summarize, summarize_scores, DatasetSummary,   # summary.py
        gallery_page, GalleryQuery, GalleryPage, GalleryItem,
    )

Scores from file names
    ``parse_filename_score(name, pattern="", score_min=0, score_max=100) -> ParsedScore(score, note)``.
    ``score`` is a float or None; ``note`` says why there is none ("no number at the
    start of the name", "1234 is outside the score range 0-100", ...).
    ``ScoreRule.compile(pattern, score_min, score_max)`` validates a custom regex once
    (raises ``ScoreError`` with a readable message for a bad regex); ``rule.parse(name)``.

The store (``data/`` + ``data/scores.csv``), every write atomic under a file lock
    ``store = ScoreStore(data_dir, score_min, score_max)`` or ``ScoreStore.from_settings(settings)``
    ``store.entries() -> list[Entry(filename, score | None, text | None)]``  images on disk, sorted by name
    ``store.labelled() -> list[tuple[Path, float]]``      what training uses
    ``store.get(filename) -> Entry``;  ``store.path_of(filename) -> Path`` (raises UnsafePath/KeyError)
    ``store.set_score(filename, value)``  value may be a str typed by a person; raises ScoreError, changes nothing
    ``store.set_scores({filename: value, ...})``  many at once (the table); all validated before anything is written
    ``store.clear_score(filename)``  make it unlabelled
    ``store.add_image(source_path_or_bytes, name, score=None, text=None) -> AddResult(filename, copied, duplicate_of)``
    ``store.delete(filename) -> Entry``  (image + row to data/.trash/);  ``store.undo_delete() -> Entry | None``
    ``store.can_undo() -> bool``;  ``store.fingerprint() -> str``;  ``store.validate_score(value) -> float``

Import (Tab 1 and ``python -m workbench import``)
    ``preview = scan_source(source, pattern="", score_min=0, score_max=100, max_pixels=..., staging_dir=None,
                            thumbnails_dir=None)``
        ``source``: a folder path, a .zip path, or a list of uploaded file paths (a .zip among them is opened).
        ``preview.items: list[PreviewItem(name, source, score, note, width, height)]``  importable images
        ``preview.skipped: list[Skipped(file, reason)]``                               with a person-readable reason
    ``for event in import_into_store(preview.items, store, scores={name: score_or_None}, stop=StopFlag()): ...``
        yields ``Progress`` then ``Finished(ImportReport)``; ``report.to_json()`` ->
        ``{"imported", "labelled", "unlabelled", "skipped": [{"file", "reason"}], "renamed": [...], "notes": [...]}``

Summary, histogram and the Training-data gallery
    ``summarize(store, bins=10) -> DatasetSummary`` (``.to_json()``): counts, score range, mean, histogram bins
    (``[HistogramBin(lo, hi, count)]``), unlabelled files.  ``summarize_scores(scores, score_min, score_max, bins)``
    does the same for the import preview's (edited) scores.
    ``gallery_page(store, GalleryQuery(page=0, page_size=48, sort="name"|"score"|"score_desc",
                   unlabelled_first=True, min_score=None, max_score=None, only_unlabelled=False),
                   thumbnails_dir, thumbnail_size=256) -> GalleryPage(items=[GalleryItem(filename, score, path,
                   thumbnail)], page, pages, total)``  thumbnails are cached (made once per content + size).
"""
