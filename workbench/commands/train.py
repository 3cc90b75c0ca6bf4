"""``python -m workbench train|compare|runs|families``: training from the command line.

``train MODEL`` gets one option per hyper-parameter of that family, generated
from the registry (``python -m workbench train head --help`` lists them).
Progress goes to stderr as tqdm bars; ``--json`` prints one document on stdout.
The first Ctrl-C asks training to stop and keeps the best model so far as a
run marked "stopped"; a second one aborts (and leaves no run behind).
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from workbench.cli import CommandError, command
from workbench.commands.progress import drive
from workbench.config import Settings
from workbench.events import StopFlag

COMMON_FAMILY_OPTIONS = ("json", "backbone", "random_weights", "seed", "model")


class _StopOnCtrlC:
    """First Ctrl-C sets the stop flag (training saves what it has); a second one interrupts."""

    def __init__(self, stop: StopFlag):
        self.stop = stop

    def __enter__(self):
        def handler(signum, frame):
            self.stop.set()
            print("\nstopping after this batch (Ctrl-C again to abort)...", file=sys.stderr)
            signal.signal(signal.SIGINT, signal.default_int_handler)

        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self.previous = None
        return self.stop

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


# ------------------------------------------------------------------- train
def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _features_option(parser) -> None:
    from workbench.backbones import FEATURE_VIEWS

    parser.add_argument("--features", choices=list(FEATURE_VIEWS), default=None,
                        help="feature view: " + "; ".join(f"{k}: {v}" for k, v in FEATURE_VIEWS.items())
                        + " (default: pooled; auto chooses its own)")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.models import FAMILIES
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True,
                                   help="model family: " + ", ".join(FAMILIES))
    for family in FAMILIES.values():
        sub = models.add_parser(family.name, help=family.description, description=family.description)
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print one JSON document on stdout and nothing else there")
        default = family.default_backbone or "the configured default backbone"
        sub.add_argument("--backbone", help=f"feature extractor / network (default: {default})")
        sub.add_argument("--random-weights", action="store_true",
                         help="train on a RANDOMLY INITIALISED backbone (no pretrained weights); the run is marked")
        sub.add_argument("--seed", type=int, help="split and initialisation seed (default: configs' training.seed)")
        if family.capabilities.needs_features and family.feature_view is None:
            _features_option(sub)
        group = sub.add_argument_group(f"{family.name} hyper-parameters")
        for p in family.params:
            help_text = f"{p.help} (default: {p.default})"
            if p.type is bool:
                group.add_argument(_option(p.name), dest=p.name, action=argparse.BooleanOptionalAction,
                                   default=None, help=help_text)
            else:
                group.add_argument(_option(p.name), dest=p.name, type=p.type, default=None,
                                   choices=list(p.choices) if p.choices else None, help=help_text)


def train_json(manifest, run_dir) -> dict[str, Any]:
    return {
        "run_id": manifest.run_id, "status": manifest.status, "family": manifest.family,
        "backbone": manifest.backbone, "backbones": manifest.backbones, "features": manifest.feature_view,
        "weights": manifest.weights,
        "random_weights": manifest.random_weights, "params": manifest.params, "seed": manifest.seed,
        "n_images": manifest.n_images, **{f"n_{part}": len(files) for part, files in manifest.split.items()},
        "metrics": manifest.metrics, **manifest.metrics, "fit_seconds": manifest.fit_seconds,
        "epochs": len(manifest.history), "run_dir": str(run_dir),
    }


@command("train", "Train a model family on the labelled set, judge it on held-out images, store the run.",
         _train_arguments)
def train_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.models import get_family
    from workbench.training import train
    from workbench.training.reporting import accuracy_text

    family = get_family(args.model)
    params = {p.name: getattr(args, p.name) for p in family.params if getattr(args, p.name, None) is not None}
    with _StopOnCtrlC(StopFlag()) as stop:
        finished = drive(train(family.name, settings, backbone=args.backbone, params=params, stop=stop,
                               random_weights=args.random_weights, seed=args.seed,
                               features=getattr(args, "features", None)))
    if finished is None or finished.result is None:
        raise CommandError("training was stopped before anything was learnt; no run was saved")
    manifest = finished.result
    run_dir = settings.models_dir / manifest.run_id
    document = train_json(manifest, run_dir)
    if not args.json:
        m = manifest.metrics
        state = " (STOPPED early: best checkpoint kept)" if manifest.status == "stopped" else ""
        print(f"run {manifest.run_id}{state}\n  held-out ({len(manifest.split['test'])} images): "
              f"SRCC {m['srcc']:.3f}  PLCC {m['plcc']:.3f}  KRCC {m['krcc']:.3f}  MAE {m['mae']:.2f}  "
              f"RMSE {m['rmse']:.2f}  R2 {m['r2']:.3f}  good/bad accuracy {accuracy_text(m)}\n  saved in {run_dir}")
        if manifest.random_weights:
            print("  WARNING: trained on RANDOM backbone weights")
        if "gate_image" in m:  # multimodal_moe: how much the model leaned on text
            print(f"  gate (average over the training photos): image {m['gate_image']:.2f}, "
                  f"text {m['gate_text']:.2f}, fusion {m['gate_fusion']:.2f}; "
                  f"{m.get('text_coverage', 0):.0%} of the photos had text")
    return document


# ----------------------------------------------------------------- compare
def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", help="feature extractor (default: the configured default backbone)")
    parser.add_argument("--models", help="comma-separated families (default: every family on features)")
    parser.add_argument("--folds", type=int, help="cross-validation folds (default: configs' training.folds)")
    parser.add_argument("--seed", type=int, help="fold seed (default: configs' training.seed)")
    parser.add_argument("--random-weights", action="store_true", help="use a RANDOMLY INITIALISED backbone")
    _features_option(parser)


def default_compare_families() -> list[str]:
    from workbench.models import FAMILIES
    # image+text families are compared when named (--models multimodal_concat,...): without text they add time only
    return [f.name for f in FAMILIES.values() if f.capabilities.needs_features and not f.capabilities.needs_text]


@command("compare", "Cross-validate several model families on the same folds and print a leaderboard.",
         _compare_arguments)
def compare_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.training import compare

    families = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else default_compare_families()
    with _StopOnCtrlC(StopFlag()) as stop:
        finished = drive(compare(families, settings, backbone=args.backbone, folds=args.folds, seed=args.seed,
                                 stop=stop, random_weights=args.random_weights, features=args.features))
    if finished is None or finished.result is None:
        raise CommandError("stopped before any family finished")
    report = finished.result
    if not args.json:
        print(f"{report.folds}-fold cross-validation on {report.n_images} images, backbone {report.backbone} "
              f"({report.features} features)"
              f"{' (RANDOM WEIGHTS)' if report.random_weights else ''}")
        print(f"{'model':<12}{'SRCC':>8}{'PLCC':>8}{'MAE':>8}{'RMSE':>8}{'R2':>8}{'fit s':>9}")
        for r in report.leaderboard():
            print(f"{r.model:<12}{r.srcc:>8.3f}{r.plcc:>8.3f}{r.mae:>8.2f}{r.rmse:>8.2f}{r.r2:>8.3f}"
                  f"{r.fit_seconds:>9.2f}")
    return report.to_json()


# ---------------------------------------------------------- learning curve
def _curve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="ridge", help="comma-separated families (default: ridge)")
    parser.add_argument("--backbone", help="feature extractor (default: the configured default backbone)")
    parser.add_argument("--folds", type=int, help="cross-validation folds (default: configs' training.folds)")
    parser.add_argument("--seed", type=int, help="fold seed (default: configs' training.seed)")
    parser.add_argument("--repeats", type=int, default=3, help="draws of the labelled photos per size (default: 3)")
    parser.add_argument("--sizes", help="comma-separated label counts (default: 10,25,50,100,200,... up to all)")
    parser.add_argument("--random-weights", action="store_true", help="use a RANDOMLY INITIALISED backbone")
    _features_option(parser)


@command("learning-curve", "Would more labels help? Cross-validated SRCC at growing numbers of labelled "
         "photos, with a projection for doubling them. JSON: one model -> {n_images, model, points: "
         "[{n_labels, srcc_mean, srcc_std, draws}], projection: {per_doubling, per_doubling_low, per_doubling_high, "
         "noisy, sentence, ...}}; several -> {curves: [...]}.", _curve_arguments)
def learning_curve_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.training.learning_curve import DEFAULT_SIZES, all_photos_note, learning_curve

    families = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else DEFAULT_SIZES
    except ValueError:
        raise CommandError(f"--sizes must be whole numbers separated by commas, got {args.sizes!r}") from None
    with _StopOnCtrlC(StopFlag()) as stop:
        finished = drive(learning_curve(families, settings, backbone=args.backbone, folds=args.folds,
                                        seed=args.seed, repeats=args.repeats, sizes=sizes, stop=stop,
                                        features=args.features, random_weights=args.random_weights))
    if finished is None or not finished.result:
        raise CommandError("stopped before any curve was finished")
    curves = finished.result
    if not args.json:
        for curve in curves:
            print(f"{curve.model} ({curve.features} features), {curve.folds}-fold CV on {curve.n_images} photos, "
                  f"{curve.repeats} draws per size")
            print(f"{'labels':>8}{'SRCC':>8}{'±':>7}")
            for p in curve.points:
                one = (f"  ({all_photos_note(p.n_labels, curve.n_images, curve.folds)}: one draw, no spread)"
                       if p.draws == 1 and curve.repeats > 1 else "")
                print(f"{p.n_labels:>8}{p.srcc_mean:>8.3f}{p.srcc_std:>7.3f}{one}")
            print(curve.projection["sentence"])
    documents = [c.to_json() for c in curves]
    return documents[0] if len(documents) == 1 else {"curves": documents}


# -------------------------------------------------------------------- runs
def _runs_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for name, help_text in (("list", "list stored runs, newest first (the default)"),
                            ("show", "print one run's manifest"), ("rename", "give a run a display name"),
                            ("annotate", "attach notes to a run"), ("delete", "delete a run")):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        if name != "list":
            sub.add_argument("run_id", metavar="RUN_ID")
        if name in ("rename", "annotate"):
            sub.add_argument("text", metavar="NAME" if name == "rename" else "NOTES")


@command("runs", "List, show, rename, annotate or delete stored training runs.", _runs_arguments)
def runs_command(args: argparse.Namespace, settings: Settings) -> Any:
    from workbench.runs import RunStore, leaderboard_rows

    store = RunStore(settings.models_dir)
    action = args.action or "list"
    if action == "list":
        rows = leaderboard_rows(store, metric="srcc")
        rows.sort(key=lambda r: r["created"], reverse=True)
        if not args.json:
            for r in rows:
                srcc = "—" if r["srcc"] is None else f"{r['srcc']:.3f}"
                print(f"{r['run_id']:<48} {r['family']:<10} {r['backbone']:<20} SRCC {srcc} "
                      f"{r['status']}{'  ' + r['name'] if r['name'] != r['run_id'] else ''}")
            if not rows:
                print(f"no runs in {settings.models_dir}")
        return {"runs": rows}
    if action == "show":
        manifest = store.get(args.run_id).to_json()
    elif action == "rename":
        manifest = store.rename(args.run_id, args.text).to_json()
    elif action == "annotate":
        manifest = store.annotate(args.run_id, args.text).to_json()
    else:
        store.delete(args.run_id)
        if not args.json:
            print(f"deleted {args.run_id}")
        return {"deleted": args.run_id}
    if not args.json:
        if action == "show":
            import json

            print(json.dumps({k: v for k, v in manifest.items() if k not in ("predictions", "split")}, indent=1))
        else:
            print(f"{action}d {args.run_id}")
    return manifest


@command("families", "List the model families with their hyper-parameters and capabilities.")
def families_command(args: argparse.Namespace, settings: Settings) -> Any:
    from workbench.models import family_table

    table = family_table()
    if not args.json:
        for family in table:
            caps = [k for k, v in family["capabilities"].items() if v is True]
            print(f"{family['name']:<10} {family['description']}\n{'':<10} capabilities: {', '.join(caps)}")
            for p in family["params"]:
                print(f"{'':<12}--{p['name'].replace('_', '-')} ({p['type']}, default {p['default']}): {p['help']}")
    return {"families": table}
