"""``python -m workbench suggest`` and ``python -m workbench compare-pairs``: labelling from the command line.

``suggest`` ranks the unlabelled photos of ``data/`` (or of ``--folder``) by
what would teach the model most; ``--json`` prints ``{"n_labelled", "n_pool",
"backbone", "method", "suggestions": [{"path", "filename", "disagreement",
"rank"}], "notes"}``. ``pairs`` fits Bradley–Terry on ``data/comparisons.csv``
and, with ``--apply``, saves the scores as labels.
"""
from __future__ import annotations

import argparse

from workbench.cli import command
from workbench.commands.progress import result_of
from workbench.config import Settings


def _suggest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=20, help="how many photos to suggest (default 20)")
    parser.add_argument("--folder", help="suggest from the images of this folder instead of data/'s unlabelled ones")
    parser.add_argument("--backbone", help="features to judge by (default: features.default_backbone)")


@command("suggest", "The unlabelled photos that would teach the model most, in order: the largest drop of "
                    "a ridge's uncertainty over all unlabelled photos (uncertain, typical, and unlike those "
                    "already chosen).", _suggest_arguments)
def suggest_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.labelling.suggest import suggest

    result = result_of(suggest(settings, args.n, folder=args.folder, backbone=args.backbone), "features", unit="img")
    if not args.json:
        print(f"{result.n_pool} photos to choose from, {result.n_labelled} labelled; by {result.method} "
              f"on {result.backbone} features. Label these next:")
        for item in result.items:
            print(f"  {item['rank']:>3}. {item['filename']}  (committee spread {item['disagreement']:.2f})")
        for note in result.notes:
            print(f"  note: {note}")
    return result.to_json()


def _pairs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true",
                        help="save the Bradley–Terry scores as the labels of compared photos without their own score")


@command("pairs", "Bradley–Terry scores from data/comparisons.csv, placed on the score scale by photos "
                  "that also have a score.", _pairs_arguments)
def pairs_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.dataset import ScoreStore
    from workbench.dataset.comparisons import ComparisonStore
    from workbench.labelling.pairwise import label_from_comparisons, pairwise_scores

    store = ScoreStore.from_settings(settings)
    comparisons = ComparisonStore(settings.data_dir).all()
    if args.apply:
        fit, written = label_from_comparisons(store, comparisons)
    else:
        anchors = {e.filename: e.score for e in store.entries() if e.score is not None}
        fit, written = (pairwise_scores(comparisons, anchors, store.score_min, store.score_max)
                        if comparisons else None), {}
    scores = fit.as_dict() if fit else {}
    if not args.json:
        print(f"{len(comparisons)} comparisons of {len(scores)} photos" + (f"; placed on the score scale by {fit.how}" if fit else ""))
        for name, (score, std) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
            print(f"  {score:7.2f} ± {std:5.2f}  {name}" + ("  (saved as its label)" if name in written else ""))
    return {"comparisons": len(comparisons), "how": fit.how if fit else None,
            "scores": [{"filename": n, "score": s, "std": d} for n, (s, d) in scores.items()],
            "labelled": sorted(written)}
