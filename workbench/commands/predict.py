"""``python -m workbench predict RUN_ID PATH...`` and ``python -m workbench describe IMAGE``.

``predict`` scores images and folders with a stored run or ``nima`` (the ready
AVA scorer), best first; ``--csv OUT`` writes ``path,score`` first, then ``std``
(distribution models), ``rank,percentile,verdict,error`` and ``p1..p10``
(distribution models); ``--json`` prints
``{"scorer", "scale", "threshold", "weights", "stopped", "scored", "failed",
"results": [{"path", "score", "std", "distribution", "percentile", "verdict", "error", "rank"}]}``.
``describe`` prints one photo's score, BLIP caption and LLM critique.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.cli import CommandError, NothingDone, command
from workbench.commands.engine import add_engine_arguments, check_engine_arguments, ray_document
from workbench.commands.progress import result_of
from workbench.config import Settings

if TYPE_CHECKING:
    from workbench.predict import BatchResult


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.dataset.ratings import STAR_METHODS

    parser.add_argument("run_id", metavar="RUN_ID", help="a stored run id, or 'nima' for the ready AVA scorer")
    parser.add_argument("paths", metavar="PATH", nargs="+", help="images or folders (searched recursively)")
    parser.add_argument("--csv", metavar="OUT", help="also write the results to this CSV file")
    parser.add_argument("--threshold", type=_finite_float, help="good/bad threshold (default: the scorer's own)")
    parser.add_argument("--write-xmp", action="store_true",
                        help="also write each photo's stars (xmp:Rating) and exact score into its XMP sidecar, "
                             "merged into an existing one; the photo itself is not touched")
    parser.add_argument("--stars", choices=STAR_METHODS, default=None,
                        help="how scores become 1-5 stars: thresholds = five equal parts of the scorer's scale, "
                             "percentile = each fifth of this batch by rank (default: ratings.stars_out)")
    parser.add_argument("--text", action="append", metavar="[FILE=]TEXT", default=[],
                        help="text for image+text runs (multimodal_*): 'IMG_1.jpg=golden hour portrait' for one "
                             "photo, or a plain text for every photo given; repeatable. Without it a photo's text "
                             "comes from scores.csv, its XMP keywords/title/description, or a cached caption")
    parser.add_argument("--embed-xmp", action="store_true",
                        help="with --write-xmp, also write the rating into each photo file itself (rewrites the photo)")
    add_engine_arguments(parser, "scores.parquet", "path, sha256, score, std, distribution (distribution models), error")


def typed_texts(values: list[str], paths: list[str]) -> dict[str, str] | None:
    """``--text`` values -> file name -> text; 'NAME.jpg=text' is for one photo, anything else for all given."""
    from workbench.images import is_supported

    texts: dict[str, str] = {}
    one: dict[str, str] = {}  # a photo's own text wins over a text for all, whatever the order given
    for value in values:
        name, sep, rest = value.partition("=")
        if sep and is_supported(name.strip()) and rest.strip():
            one[Path(name.strip()).name] = rest.strip()
        elif value.strip():
            texts.update({Path(p).name: value.strip() for p in paths if not Path(p).is_dir()})
    return {**texts, **one} or None


def _finite_float(text: str) -> float:
    """argparse type: a number, but not nan/inf (which would make every photo "bad")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _document(result: BatchResult, scorer) -> dict:
    return {"scorer": scorer.id, "scale": list(scorer.scale), "threshold": result.threshold,
            "weights": scorer.weights_note, "stopped": result.stopped,
            "scored": len(result.scored), "failed": len(result.failed),
            "results": [asdict(row) for row in result.rows]}


@command("predict", "Score images or folders with a trained run or 'nima', best first.", _predict_arguments)
def predict_command(args: argparse.Namespace, settings: Settings) -> dict:
    check_engine_arguments(args, {"--csv": bool(args.csv), "--write-xmp": args.write_xmp, "--text": bool(args.text)})
    if args.engine == "ray":
        return _predict_on_ray(args, settings)
    from workbench.dataset.ratings import write_star_ratings
    from workbench.predict import load_scorer, score_images, write_csv  # torch: only when scoring

    scorer = load_scorer(args.run_id, settings)
    if not args.json:
        print(f"{scorer.id}: scale {scorer.scale[0]:g}-{scorer.scale[1]:g}; {scorer.weights_note}", file=sys.stderr)
    folders = any(Path(p).is_dir() for p in args.paths)
    texts = typed_texts(args.text, args.paths)
    result = result_of(score_images(args.paths, scorer, settings, threshold=args.threshold, texts=texts),
                       "scoring", unit="img", bars=folders or len(args.paths) > 1)
    if not result.rows:
        raise CommandError(f"no images found in {', '.join(args.paths)}")
    if args.csv:
        write_csv(result, args.csv)
    if args.embed_xmp and not args.write_xmp:
        raise CommandError("--embed-xmp only goes with --write-xmp")
    xmp = None
    if args.write_xmp:
        xmp = write_star_ratings([(row.path, row.score) for row in result.scored], args.stars or settings.stars_out,
                                 *scorer.scale, new_sidecar=settings.new_sidecar, embed=args.embed_xmp)
        if not args.json:
            print(f"XMP: {len(xmp.stars)} photos rated, {len(xmp.written)} sidecars written"
                  + "".join(f"\n  {p}: {e}" for p, e in xmp.failed), file=sys.stderr)
    if not args.json:
        for row in result.rows:
            if row.error is None:
                spread = f" ± {row.std:.2f}" if row.std is not None else ""
                note = "" if row.text_source is None else f"  [text: {row.text_source}]"
                print(f"{row.score:8.3f}{spread}  {row.verdict:<4}  {row.path}{note}")
            else:
                # the path is on the line already: not "notes.jpg  (notes.jpg: not an image)"
                print(f"{'-':>8}  {'':<4}  {row.path}  ({row.error.removeprefix(Path(row.path).name + ': ')})")
        print(f"{len(result.scored)} scored, {len(result.failed)} could not be scored; good from "
              f"{result.threshold:g}" + (f"; CSV: {args.csv}" if args.csv else ""), file=sys.stderr)
    document = _document(result, scorer)
    if xmp is not None:
        document["xmp"] = xmp.to_json()
    if result.failed and not result.scored:  # a script must not read "all failed" as success
        raise NothingDone(f"nothing could be scored: all {len(result.failed)} file(s) failed", document)
    return document


def _predict_on_ray(args: argparse.Namespace, settings: Settings) -> dict:
    """Scores into --out (Parquet) on Ray; the JSON says what the scorer is and where the rows went."""
    from workbench.scale.ray_engine import ray_predict, scorer_info

    info = scorer_info(args.run_id, settings)
    job = result_of(ray_predict(args.run_id, args.paths, settings, args.out, address=args.ray_address),
                    "scoring on Ray", unit="img")
    threshold = info["threshold"] if args.threshold is None else args.threshold
    if not args.json:
        print(f"{job.new} scored, {job.skipped} already in {job.out}, {job.failed} could not be scored "
              f"({job.rows} rows in it) in {job.seconds:.1f} s on Ray at {job.address}", file=sys.stderr)
    return ray_document(job, scorer=args.run_id, scale=info["scale"], threshold=threshold, weights=info["weights"],
                        stopped=False, scored=job.new, failed=job.failed)


def _describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="one photo")
    parser.add_argument("--run", metavar="RUN_ID", help="run id or 'nima' (default: the best run by held-out SRCC if above 0, else nima)")
    parser.add_argument("--caption", action=argparse.BooleanOptionalAction, default=True,
                        help="caption the photo with BLIP (describe.caption_model) first")
    parser.add_argument("--send-image", action="store_true",
                        help="send the photo itself to the LLM (only for models that accept images)")
    parser.add_argument("--language", help="language of the critique (default: describe.language)")
    parser.add_argument("--llm-base-url", help="OpenAI-compatible base URL (default: describe.llm_base_url / "
                                               "OPENAI_BASE_URL); the key is read from OPENAI_API_KEY only")
    parser.add_argument("--llm-model", help="model name (default: describe.llm_model / WORKBENCH_LLM_MODEL)")


@command("describe", "Score one photo and add a BLIP caption and an LLM critique.", _describe_arguments)
def describe_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.describe.critique import LLMConfig
    from workbench.describe.report import describe_photo
    from workbench.predict import default_scorer_id, load_scorer, score_images

    scorer = load_scorer(args.run or default_scorer_id(settings), settings)
    result = result_of(score_images([args.image], scorer, settings), bars=False)
    row = result.rows[0]
    if row.error is not None:
        raise CommandError(row.error)
    overrides = {"language": args.language} if args.language else {}
    llm = LLMConfig.from_settings(settings, base_url=args.llm_base_url, model=args.llm_model,
                                  send_image=args.send_image, **overrides)
    description = describe_photo(args.image, score=row.score, scale=scorer.scale, threshold=result.threshold,
                                 settings=settings, caption=args.caption, llm=llm, scorer_about=scorer.about)
    if not args.json:
        low, high = scorer.scale
        spread = f" ± {row.std:.2f}" if row.std is not None else ""
        percentile = f", higher than {row.percentile:.0f}% of the training set" if row.percentile is not None else ""
        print(f"Score: {row.score:.2f}{spread} on {low:g}-{high:g} ({row.verdict} at {result.threshold:g}"
              f"{percentile}) by {scorer.id}")
        print(f"Caption: {description.caption}" if description.caption is not None
              else f"Caption: none. {description.caption_note}")
        print("Critique:")
        print(description.critique if description.critique is not None else description.critique_note)
    return {"path": row.path, "scorer": scorer.id, "scale": list(scorer.scale), "threshold": result.threshold,
            "score": row.score, "std": row.std, "distribution": row.distribution, "percentile": row.percentile,
            "verdict": row.verdict, **description.to_json()}
