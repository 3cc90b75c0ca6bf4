"""``python -m workbench cull RUN_ID PATH...``: group bursts and near-duplicates, flag technical
failures, pick the best photo of each group, and optionally act on the picks.

``--json`` prints ``{"scorer", "n_photos", "stopped", "options", "unavailable_flags",
"groups": [{"id", "photos": [{"path", "score", "flags": {name: {"value", "flagged"}}, "pick",
"rejected", "stars", "taken"}]}], "picks", "rejected", "failed"}`` (+ "copied_picks",
"copied_rejects", "xmp", "training").
``--csv OUT`` writes path,score,group,status,stars and each flag's value and 1/0.
Flags: out_of_focus, clipped_highlights, crushed_shadows, and closed_eyes with
``--closed-eyes`` (a heuristic; its value is null, and it is never flagged, when
the check is off or no face was found; "faces" says how many were found).
A file that could not be culled is named once, with its reason: a row of the report and the
summary line ("2 files skipped: a.txt (not an image ...), b.jpg (the file is truncated)"), "failed"
with ``--json``, the error column with ``--csv``; no warning line repeats it (it is logged at debug level).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli import CommandError, NothingDone, command
from workbench.commands.progress import result_of
from workbench.config import Settings
from workbench.events import FilesSkipped


def _arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.commands.predict import _finite_float
    from workbench.cull import CullOptions

    defaults = CullOptions()

    parser.add_argument("run_id", metavar="RUN_ID", help="a stored run id, or 'nima' for the ready AVA scorer")
    parser.add_argument("paths", metavar="PATH", nargs="+", help="photos or folders (searched recursively)")
    parser.add_argument("--copy-picks", metavar="DIR", help="copy the picks into DIR (never overwrites: a name "
                                                            "clash gets 'name (1).jpg')")
    parser.add_argument("--copy-rejects", metavar="DIR", help="copy the rejected photos into DIR")
    parser.add_argument("--move", action="store_true", help="move instead of copying (the original goes only "
                                                             "once its copy is complete)")
    parser.add_argument("--write-xmp", action="store_true",
                        help="write each photo's stars, score and pick flag (xmpDM:pick 1/-1/0) into its XMP "
                             "sidecar, merged into an existing one; the photo itself is not touched")
    parser.add_argument("--send-to-training", action="store_true",
                        help="copy the photos you rated or rejected (XMP sidecar or embedded, EXIF Rating: in "
                             "Lightroom, darktable...) into the training set, stars scored as ratings.star_scores "
                             "says; the stars --write-xmp wrote and nobody changed are the model's, not yours, "
                             "and are left out")
    parser.add_argument("--csv", metavar="OUT", help="also write path,score,group,status,stars and the flags")
    parser.add_argument("--closed-eyes", action="store_true",
                        help="also flag photos whose faces look closed-eyed. A HEURISTIC: frontal faces of about "
                             "80 px and more at 1024 px (dlib's HOG detector), eyes judged by the aspect ratio of "
                             "their landmarks (a squint can read as closed; profiles and small faces are not seen). "
                             "Off by default: it catches few blinks (BENCHMARKS.md). Slower: up to ~0.7 s more a "
                             "12-MP photo")
    parser.add_argument("--backbone", help="features used for content similarity (default: features.default_backbone)")
    for name, help_text in (
            ("similarity", "cosine similarity at or above which two photos are near-duplicates, whenever taken"),
            ("burst_seconds", "a burst: photos each taken at most this many seconds after the previous one"),
            ("burst_similarity", "... and at least this alike (cosine) to join the same group"),
            ("layout_similarity", "... or their 16x16 luminance layouts at least this alike (correlation), which "
                                  "blur barely moves: keeps a blurred frame in its burst; also links photos without "
                                  "a capture time that are neighbours in name order"),
            ("blur_threshold", "flag out of focus below this Laplacian sharpness"),
            ("highlight_threshold", "flag clipped highlights at this share of pixels >= 250/255"),
            ("shadow_threshold", "flag crushed shadows at this share of pixels <= 5/255"),
            ("eyes_threshold", "with --closed-eyes: flag when at least this share of the faces found look closed-eyed")):
        parser.add_argument("--" + name.replace("_", "-"), type=_finite_float, default=getattr(defaults, name),
                            help=f"{help_text} (default: {getattr(defaults, name):g})")


def _print(result) -> None:
    for group in result.groups:
        print(f"group {group.id} ({len(group.photos)} photo{'s' if len(group.photos) > 1 else ''})")
        for p in group.photos:
            mark = {"pick": "PICK", "reject": "  x ", "none": "    "}[p.status]
            flags = ", ".join(name.replace("_", " ") for name, f in p.flags.items() if f["flagged"])
            print(f"  {mark} {p.score:8.3f}  {p.path}" + (f"  [{flags}]" if flags else ""))
    for path, error in result.errors.items():
        print(f"  -    {'-':>8}  {path}  ({error})")


SKIPPED_NAMED = 10  # files named in the summary line; the rows above (and --json/--csv) list them all


def skipped_summary(errors: dict[str, str]) -> str:
    """"2 files skipped: a.txt (not an image), b.jpg (the file is truncated)" ("" when none)."""
    if not errors:
        return ""
    named = []
    for path, reason in list(errors.items())[:SKIPPED_NAMED]:
        name = Path(path).name
        reason = reason[len(name) + 2:] if reason.startswith(name + ": ") else reason  # "b.jpg: truncated"
        named.append(f"{name} ({reason})")
    more = len(errors) - len(named)
    return (f"{len(errors)} file{'s' if len(errors) > 1 else ''} skipped: " + ", ".join(named)
            + (f" and {more} more" if more else ""))


def _quiet(events):
    """The cull's events less its notes on skipped files (logged at debug level): the report names each
    skipped file with its reason, so a warning line beside it would say it twice."""
    import logging

    for event in events:
        if isinstance(event, FilesSkipped):
            logging.getLogger(__name__).debug("%s", event.message)
        else:
            yield event


def _send_to_training(result, settings: Settings, *, quiet: bool) -> dict:
    from workbench.cull import metadata_ratings, send_to_training
    from workbench.dataset.ratings import StarMapping

    ratings, own = metadata_ratings(result)
    mapping = StarMapping.from_settings(settings)  # the same mapping star-rated imports use
    items = [(path, score) for path, rating in ratings.items() if (score := mapping.score(rating)[0]) is not None]
    if not items:  # said, not fatal: the cull itself (and what else was asked) still stands
        note = ("none of these photos has a rating of yours (1-5 stars or rejected) in its metadata"
                + (f"; {len(own)} carry only the stars --write-xmp wrote" if own else ""))
        print(f"--send-to-training: {note}", file=sys.stderr)
        return {"sent": [], "added": 0, "left_out_as_written": own, "note": note}
    report = result_of(send_to_training(items, settings), "sending to the training set", unit="img", bars=False)
    if not quiet:
        print(f"training set: {len(items)} rated photo(s) sent, {report.imported} added "
              f"({len(items) - report.imported} already there)", file=sys.stderr)
    return {"sent": [{"path": p, "score": s} for p, s in items], "added": report.imported, "left_out_as_written": own}


@command("cull", "Group bursts and near-duplicates, flag blur and clipping, pick the best of each group.", _arguments)
def cull_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.cull import CullOptions, copy_photos, cull, cull_csv_text, write_cull_xmp
    from workbench.predict import load_scorer  # torch: only when culling

    options = CullOptions(similarity=args.similarity, burst_seconds=args.burst_seconds,
                          burst_similarity=args.burst_similarity, layout_similarity=args.layout_similarity,
                          blur_threshold=args.blur_threshold,
                          highlight_threshold=args.highlight_threshold, shadow_threshold=args.shadow_threshold,
                          closed_eyes=args.closed_eyes, eyes_threshold=args.eyes_threshold,
                          backbone=args.backbone).check()  # before loading a model
    scorer = load_scorer(args.run_id, settings)
    result = result_of(_quiet(cull(args.paths, scorer, settings, options=options)), "culling", unit="img")
    if not result.photos and not result.errors:
        raise CommandError(f"no photos found in {', '.join(args.paths)}")
    document = result.to_json()
    if args.csv:
        from workbench.fsutil import atomic_write_text

        atomic_write_text(Path(args.csv), cull_csv_text(result))
    if args.send_to_training:  # before --write-xmp, which would write the model's stars over the person's
        document["training"] = _send_to_training(result, settings, quiet=args.json)
    if args.write_xmp:  # before copying, so that copies and moves take their sidecars along
        document["xmp"] = write_cull_xmp(result, new_sidecar=settings.new_sidecar)
        if not args.json:
            print(f"XMP: {len(document['xmp']['written'])} sidecars written", file=sys.stderr)
    for key, folder, paths in (("copied_picks", args.copy_picks, result.picks),
                               ("copied_rejects", args.copy_rejects, result.rejected)):
        if folder:
            report = result_of(copy_photos(paths, folder, move=args.move), "moving" if args.move else "copying",
                               unit="img", bars=False)
            document[key] = report.to_json()
            if not args.json:
                print(f"{len(report.copied)} photo(s) {'moved' if args.move else 'copied'} to {folder}"
                      + "".join(f"\n  {p}: {e}" for p, e in report.failed.items()), file=sys.stderr)
    if not args.json:
        _print(result)
        print(f"{len(result.photos)} photos in {len(result.groups)} groups: {len(result.picks)} picks, "
              f"{len(result.rejected)} rejected"
              + (f"; {skipped_summary(result.errors)}" if result.errors else "")
              + (f"; CSV: {args.csv}" if args.csv else "")
              + "".join(f"; {name.replace('_', ' ')}: {why}" for name, why in document["unavailable_flags"].items()),
              file=sys.stderr)
    if result.errors and not result.photos:  # a script must not read "all failed" as success
        raise NothingDone(f"nothing could be culled: all {len(result.errors)} file(s) failed", document)
    return document
