"""``python -m workbench import SRC`` and ``python -m workbench dataset``.

``import`` copies the images of a folder (or a .zip) into the data folder and
reads scores from file names; with ``--json`` it prints
``{"imported", "labelled", "unlabelled", "skipped": [{"file", "reason"}], ...}``.
``dataset`` describes the labelled set: counts, score range, histogram and the
unlabelled files. Progress bars go to stderr.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import CommandError, command
from workbench.commands.progress import result_of
from workbench.config import Settings


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.dataset.ratings import SOURCES

    parser.add_argument("src", metavar="SRC_DIR", help="folder of photos (only files directly inside), or a .zip")
    parser.add_argument("--pattern", default=None,
                        help="regular expression reading the score from the file stem (group 'score', else the "
                             "first group, else the whole match); default: a number at the start of the name")
    parser.add_argument("--ratings", choices=sorted(SOURCES), default=None,
                        help="where scores come from: auto = star ratings (XMP sidecar photo.jpg.xmp, then "
                             "photo.xmp, then XMP in the photo, then EXIF Rating) and then the file name; "
                             "xmp = ratings only; filename = the name only (default: ratings.source in the config)")


@command("import", "Copy photos from a folder into the training set, reading scores from star ratings "
                   "(XMP/EXIF) and file names.",
         _import_arguments)
def import_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.dataset import ScoreStore, import_into_store, scan_source_events
    from workbench.dataset.importer import skipped_text
    from workbench.dataset.ratings import StarMapping, describe_order

    src = Path(args.src).expanduser()
    if not src.exists():
        raise CommandError(f"{src} does not exist")
    if not (src.is_dir() or src.suffix.lower() == ".zip"):
        raise CommandError(f"{src} is neither a folder nor a .zip file")
    pattern = settings.filename_pattern if args.pattern is None else args.pattern
    ratings = args.ratings or settings.ratings_source
    store = ScoreStore.from_settings(settings)
    preview = result_of(scan_source_events(
        src, pattern=pattern, score_min=settings.score_min, score_max=settings.score_max,
        max_pixels=settings.max_pixels, thumbnails_dir=settings.thumbnails_dir,
        thumbnail_size=settings.thumbnail_size, ratings=ratings,
        star_mapping=StarMapping.from_settings(settings)), "checking", unit="img")
    try:
        report = result_of(import_into_store(preview.items, store, skipped=preview.skipped), "copying", unit="img")
    finally:
        preview.cleanup()
    document = report.to_json()
    if not args.json:
        print(f"Imported {report.imported} images into {settings.data_dir}: "
              f"{report.labelled} labelled ({report.from_ratings} from star ratings), "
              f"{report.unlabelled} unlabelled.")
        print(f"Scores read from: {describe_order(ratings)}")
        for origin, saved in report.renamed:
            print(f"  {origin} saved as {saved} (the name was taken, or held characters a file name cannot)")
        for name, note in report.notes:
            print(f"  {name}: no score ({note})")
        if report.skipped:
            print(f"{skipped_text(report.skipped)}:")  # every file counted under a named reason
            for skipped in report.skipped:
                print(f"  {skipped.file}: {skipped.reason}")
    return document


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bins", type=int, default=10, help="histogram bins over the score range (default 10)")


@command("dataset", "Describe the training set: counts, score range, histogram, unlabelled files.",
         _dataset_arguments)
def dataset_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.dataset import ScoreStore, summarize
    from workbench.dataset.scores import format_range, format_score

    if args.bins < 1:
        raise CommandError("--bins must be at least 1")
    summary = summarize(ScoreStore.from_settings(settings), bins=args.bins)
    if not args.json:
        print(f"{settings.data_dir}: {summary.line()}")
        print(f"Score range allowed: {format_range(settings.score_min, settings.score_max)}")
        peak = max((b.count for b in summary.histogram), default=0) or 1
        for b in summary.histogram:
            bar = "#" * round(40 * b.count / peak)
            print(f"  {format_score(b.lo):>6} – {format_score(b.hi):<6} {b.count:>6}  {bar}")
        if summary.unlabelled_files:
            shown = summary.unlabelled_files[:20]
            more = len(summary.unlabelled_files) - len(shown)
            print("Unlabelled: " + ", ".join(shown) + (f" and {more} more" if more else ""))
        for problem in summary.problems:
            print(f"  note: {problem}")
    return summary.to_json()
