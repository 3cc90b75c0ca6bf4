"""``python -m workbench backbones | features | cache``: pretrained networks and their feature cache.

- ``backbones`` lists every backbone with its input size, feature dimension and
  where its weights would come from right now (local file, package, download, unavailable).
- ``features --backbone NAME`` extracts (and caches) features for the images of
  the data set; a second run only hashes.
- ``cache [--clear]`` shows the size of the feature cache and of the ONNX exports beside it, or empties both.
"""
from __future__ import annotations

import argparse

from workbench.cli import CommandError, command
from workbench.commands.engine import add_engine_arguments, check_engine_arguments, ray_document
from workbench.commands.progress import result_of
from workbench.config import Settings


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@command("backbones", "List the pretrained backbones and where each one's weights would come from now.")
def backbones_command(args: argparse.Namespace, settings: Settings) -> list[dict]:
    from workbench.backbones import BACKBONES, weight_status  # timm: only for the commands that use it

    rows = []
    for name, spec in BACKBONES.items():
        status = weight_status(name, settings)
        rows.append({
            "name": name, "input_size": spec.input_size, "feature_dim": spec.feature_dim,
            "weights": status.source, "detail": status.detail, "weights_id": status.weights_id,
            "default": name == settings.default_backbone, "description": spec.description,
        })
    from workbench.backbones.text import TEXT_BACKBONES, text_weight_status

    for name, spec in TEXT_BACKBONES.items():  # text backbones: what the image+text families embed text with
        status = text_weight_status(name)
        rows.append({"name": name, "input_size": "text", "feature_dim": spec.dim, "weights": status.source,
                     "detail": status.detail, "weights_id": status.weights_id, "default": False,
                     "description": spec.description})
    if not args.json:
        print(f"Weights folder: {settings.weights_dir}")
        print(f"{'backbone':<20} {'input':>5} {'dim':>5}  weights")
        for row in rows:
            mark = " (default)" if row["default"] else ""
            print(f"{row['name']:<20} {row['input_size']:>5} {row['feature_dim']:>5}  {row['weights']}{mark}")
        missing = [r for r in rows if r["weights"] == "unavailable"]
        if missing:
            print(f"\n{len(missing)} backbone(s) need weights. For example:\n  {missing[0]['detail']}")
    return rows


def _features_arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.backbones import BACKBONES, FEATURE_VIEWS

    parser.add_argument("--backbone", default=None, choices=list(BACKBONES), metavar="NAME",
                        help="backbone to extract with (default: features.default_backbone)")
    parser.add_argument("--random-weights", action="store_true",
                        help="use random, untrained weights (tests only: the features mean nothing)")
    parser.add_argument("--labelled-only", action="store_true", help="only the images that carry a score")
    parser.add_argument("--features", choices=list(FEATURE_VIEWS), default="pooled",
                        help="feature view: " + "; ".join(f"{k}: {v}" for k, v in FEATURE_VIEWS.items()))
    parser.add_argument("paths", metavar="PATH", nargs="*",
                        help="images or folders to extract (default: the images of the data set)")
    add_engine_arguments(parser, "features.parquet", "path, sha256, features, error")


@command("features", "Extract and cache backbone features for the images of the data set.", _features_arguments)
def features_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.dataset import ScoreStore
    from workbench.features import extract_features

    name = args.backbone or settings.default_backbone
    check_engine_arguments(args, {})
    store = ScoreStore.from_settings(settings)
    if args.paths:
        if args.labelled_only:
            raise CommandError("--labelled-only picks images of the data set: leave it out when giving PATHs")
        paths = args.paths
    elif args.labelled_only:
        paths = [path for path, _ in store.labelled()]
    else:
        paths = [store.data_dir / entry.filename for entry in store.entries()]
    if not paths:
        raise CommandError(f"no images in {settings.data_dir}; import some first (python -m workbench import FOLDER)")
    if args.engine == "ray":
        from workbench.scale.ray_engine import ray_features

        job = result_of(ray_features(name, paths, settings, args.out, address=args.ray_address,
                                     random_weights=args.random_weights, view=args.features), name, unit="img")
        if not args.json:
            print(f"{name}: {job.new} extracted, {job.skipped} already in {job.out}, {job.failed} skipped "
                  f"({job.rows} rows in it) in {job.seconds:.1f} s on Ray at {job.address}")
        return ray_document(job, backbone=name, features=args.features, random_weights=args.random_weights)
    if args.paths:
        from workbench.predict import expand_inputs

        paths, missing = expand_inputs(args.paths)
        if missing:
            raise CommandError("; ".join(f"{p}: {why}" for p, why in missing.items()))
    result = result_of(extract_features(paths, name, settings, random_weights=args.random_weights,
                                        view=args.features), name, unit="img")
    document = {
        "backbone": name, "features": args.features, "weights": result.weights.source, "weights_detail": result.weights.detail,
        "weights_id": result.weights.weights_id, "random_weights": result.weights.is_random,
        "n_images": len(paths), "n_features": len(result.paths), "feature_dim": int(result.features.shape[1]),
        "cache_hits": result.cache_hits, "computed": result.computed, "seconds": round(result.seconds, 3),
        "errors": [{"file": path, "reason": reason} for path, reason in result.errors.items()],
        "notes": result.notes, "runtime": result.runtime or "none (all from cache)",
    }
    if not args.json:
        if result.weights.is_random:
            print("WARNING: RANDOM WEIGHTS — these features carry no learned meaning.")
        print(f"{name}: {len(result.paths)} of {len(paths)} images -> {result.features.shape[1]}-d features "
              f"({result.cache_hits} from cache, {result.computed} computed) in {result.seconds:.1f} s; "
              f"weights: {result.weights.label()}")
        if result.computed:
            print(f"computed by {result.runtime}")
        for path, reason in result.errors.items():
            print(f"  skipped: {reason}")
    return document


def _cache_arguments(parser: argparse.ArgumentParser) -> None:
    from workbench.backbones import BACKBONES

    parser.add_argument("--clear", action="store_true",
                        help="delete every cached feature and ONNX export (both rebuilt on demand)")
    parser.add_argument("--backbone", default=None, choices=list(BACKBONES), metavar="NAME",
                        help="with --clear: only this backbone's features and exports")


@command("cache", "Show the size of the feature cache and the ONNX exports beside it, or clear them.", _cache_arguments)
def cache_command(args: argparse.Namespace, settings: Settings) -> dict:
    from workbench.features import cache_size, clear_cache

    if args.clear:
        document = clear_cache(settings, args.backbone, onnx_exports=True)
        if not args.json:
            print(f"Cleared {_megabytes(document['freed_bytes'])} ({document['freed_files']} files) "
                  f"from {document['path']}")
            print(f"Cleared {_megabytes(document['onnx_freed_bytes'])} ({document['onnx_freed_files']} files) "
                  f"of ONNX exports from {document['onnx']['path']}")
        return document
    document = cache_size(settings)
    if not args.json:
        print(f"Feature cache {document['path']}: {_megabytes(document['bytes'])} in {document['files']} files")
        for name, size in sorted(document["backbones"].items()):
            print(f"  {name:<20} {_megabytes(size)}")
        onnx = document["onnx"]
        print(f"ONNX exports {onnx['path']}: {_megabytes(onnx['bytes'])} in {onnx['files']} files")
    return document
