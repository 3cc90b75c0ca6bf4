"""The CPU path: PyTorch eager vs ONNX Runtime vs OpenVINO (each checked against torch), forward and end to end.

    python bench/cpu_path_bench.py                       # every measured backbone, 5 repeats
    python bench/cpu_path_bench.py --backbones efficientnet_lite0,nima_mobilenet --repeats 3 --images 96

1. Forward: img/s at batch 16 of each backbone, eager (channels-last, inference
   mode, as workbench.features runs it) and every engine of ``onnx_runtime.ENGINES``
   (ONNX Runtime, OpenVINO) running the export the workbench makes, with its parity
   figures: max relative difference of features on the probe batch, and on the batch
   timed here, and which engine the workbench's own check chose. Backbones without
   weights on this machine run with random weights (the time does not depend on the
   numbers; the row says so).
2. End to end: ``extract_features`` over a folder of real-size JPEGs (photos
   upscaled to 3000x2000), feature cache emptied before each run, once with
   ``features.runtime: torch`` and once ``auto`` (the export already made).

Repeats are interleaved (eager, onnxruntime, openvino, eager, ...) so that load from
other processes falls on all alike; medians are reported, with the ratios. Threads:
torch and the engines all use the cores this process may use (``--threads`` pins
torch's and, through the affinity, all).
``main()`` returns the rows, so bench/scale_bench.py can call it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench import compat  # noqa: E402,F401  (first: the torchvision guard)

# isort: split

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from workbench import onnx_runtime  # noqa: E402
from workbench.backbones import MultiLevel, load_backbone, weight_status  # noqa: E402
from workbench.config import load_settings  # noqa: E402

DEFAULT_BACKBONES = ("efficientnet_lite0", "nima_mobilenet", "resnet18", "efficientnet_b0", "resnet50",
                     "densenet121", "inception_v3", "vgg16", "efficientnet_lite0:multilevel", "resnet18:multilevel")
SHARED = ROOT.parent / "shared"


def _settings(cache: Path, runtime: str = "auto"):
    overrides = {"cache_dir": str(cache), "runtime": runtime}
    nima = SHARED / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
    if nima.is_file() and not os.environ.get("WORKBENCH_WEIGHTS_DIR"):
        weights = cache / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        if not (weights / nima.name).exists():
            (weights / nima.name).symlink_to(nima)
        overrides["weights_dir"] = str(weights)
    return load_settings(**overrides)


def _photos() -> list[Image.Image]:
    import importlib.util

    folder = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0]) / "datasets" / "images"
    images = [Image.open(folder / n).convert("RGB") for n in ("china.jpg", "flower.jpg")]
    savoias = SHARED / "datasets" / "savoias" / "images"
    if savoias.is_dir():
        images += [Image.open(p).convert("RGB") for p in sorted(savoias.rglob("*.jpg"))[:14]]
    return images


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def forward_row(entry: str, settings, batch: int, repeats: int, photos) -> dict:
    name, _, view = entry.partition(":")
    view = view or "pooled"
    status = weight_status(name, settings, check_online=False)
    random_weights = status.path is None
    loaded = load_backbone(name, settings, random_weights=random_weights, progress=False)
    model = loaded.model.to(memory_format=torch.channels_last).eval()
    net = MultiLevel(model, loaded.spec.stage_taps) if view == "multilevel" else model
    started = time.perf_counter()
    choice = onnx_runtime.prepare(net, settings, backbone=name, weights_id=loaded.weights.weights_id, output=view,
                                  transform=loaded.transform, load=False)
    export_s = time.perf_counter() - started
    row = {"backbone": name, "view": view, "weights": "random (none here)" if random_weights else loaded.weights.source,
           "batch": batch, "threads": torch.get_num_threads(), "export_and_check_s": round(export_s, 1),
           "runtime": choice.label}
    x = np.stack([loaded.transform(photos[i % len(photos)]).numpy() for i in range(batch)]).astype(np.float32)
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode():
            return net(xt).float().numpy()

    want = eager()  # also the warm-up
    calls = {"eager": eager}
    check = choice.export.check if choice.export is not None else {}
    row["chosen"] = check.get("fastest")
    for engine, result in check.get("engines", {}).items():
        row[f"{engine}_max_rel_diff_probe"] = result.get("max_rel_diff")
        if not result["passed"]:
            row[f"{engine}_refused"] = result["reason"]
            continue
        runner = onnx_runtime.prepare(net, settings, backbone=name, weights_id=loaded.weights.weights_id, output=view,
                                      transform=loaded.transform, export=False, engine=engine).runner
        got = runner.run(x)  # warm-up
        row[f"{engine}_max_rel_diff_batch"] = onnx_runtime.max_relative_difference(got, want)
        calls[engine] = lambda runner=runner: runner.run(x)
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):  # interleaved: load from other processes falls on all
        for key, call in calls.items():
            times[key].append(_timed(call))
    medians = {key: statistics.median(t) for key, t in times.items()}
    for key, seconds in medians.items():
        row[f"{key}_img_s"] = round(batch / seconds, 2)
        if key != "eager":
            row[f"{key}_ratio"] = round(medians["eager"] / seconds, 2)
    engines = [key for key in medians if key != "eager"]
    if engines:
        best = min(engines, key=medians.get)
        row.update(best=best, best_ratio=row[f"{best}_ratio"])
    row["load_avg_1min"] = round(os.getloadavg()[0], 1)
    return row


def make_images(folder: Path, n: int, photos) -> list[Path]:
    """``n`` JPEGs of 3000x2000 (a 6 MP camera's size), upscaled from real photos; made once."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo_{i:04d}.jpg"
        if not path.exists():
            image = photos[i % len(photos)].resize((3000, 2000), Image.Resampling.BICUBIC)
            if i >= len(photos):  # different bytes for every file: no two share a cache entry
                image = image.rotate((i * 7) % 360 or 1, expand=False)
            image.save(path, quality=90)
        paths.append(path)
    return paths


def end_to_end_rows(names, cache: Path, paths: list[Path], repeats: int) -> list[dict]:
    from workbench.events import drain
    from workbench.features import clear_cache, extract_features

    rows = []
    for name in names:
        auto, plain = _settings(cache, "auto"), _settings(cache, "torch")
        random_weights = weight_status(name, auto, check_online=False).path is None
        loaded = load_backbone(name, auto, random_weights=random_weights, progress=False)
        choice = onnx_runtime.prepare(loaded.model, auto, backbone=name, weights_id=loaded.weights.weights_id,
                                      output="pooled", transform=loaded.transform)
        times: dict[str, list[float]] = {"torch": [], "auto": []}
        runtimes = {}
        for _ in range(repeats):
            for key, settings in (("torch", plain), ("auto", auto)):
                clear_cache(settings, name)
                result = drain(extract_features(paths, loaded, settings))
                assert result.computed == len(paths), result.errors
                times[key].append(result.seconds)
                runtimes[key] = result.runtime
        e, o = statistics.median(times["torch"]), statistics.median(times["auto"])
        rows.append({"backbone": name, "images": len(paths), "image_size": "3000x2000 JPEG q90",
                     "weights": "random (none here)" if random_weights else loaded.weights.source,
                     "eager_img_s": round(len(paths) / e, 1), "onnx_img_s": round(len(paths) / o, 1),
                     "ratio": round(e / o, 2), "runtime": runtimes["auto"],
                     "exported": choice.runner is not None})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES),
                        help="comma-separated NAME or NAME:multilevel (forward figures)")
    parser.add_argument("--e2e-backbones", default="efficientnet_lite0,nima_mobilenet",
                        help="backbones measured end to end (empty: none)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--e2e-repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=128, help="photos in the end-to-end folder")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores available)")
    parser.add_argument("--work-dir", default=None, help="folder for exports and photos (default: a temp folder)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", default=None, help="also write the report's JSON to FILE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or onnx_runtime.cpu_count())
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="cpu_path_bench_"))
    cache = work / "cache"
    photos = _photos()
    report = {"cores": onnx_runtime.cpu_count(), "torch_threads": torch.get_num_threads(),
              **onnx_runtime.versions(), "load_avg_1min_at_start": round(os.getloadavg()[0], 1),
              "forward": [], "end_to_end": []}
    settings = _settings(cache)
    for entry in filter(None, args.backbones.split(",")):
        row = forward_row(entry, settings, args.batch, args.repeats, photos)
        report["forward"].append(row)
        if not args.json:
            print(_line(row), flush=True)
    names = [n for n in args.e2e_backbones.split(",") if n]
    if names:
        paths = make_images(work / "photos", args.images, photos)
        for row in end_to_end_rows(names, cache, paths, args.e2e_repeats):
            report["end_to_end"].append(row)
            if not args.json:
                print("end to end " + _line(row), flush=True)
    if args.json:
        print(json.dumps(report, indent=1))
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _line(row: dict) -> str:
    view = f":{row['view']}" if row.get("view", "pooled") != "pooled" else ""
    if "onnx_img_s" in row:  # an end-to-end row: torch against auto
        return (f"{row['backbone'] + view:<30} {row['eager_img_s']:>6} img/s eager {row['onnx_img_s']:>6} img/s "
                f"auto x{row['ratio']}  ({row['runtime']})")
    engines = "".join(f"  {e} {row[e + '_img_s']:>6} x{row[e + '_ratio']} maxrel {row[e + '_max_rel_diff_batch']:.1e}"
                      for e in onnx_runtime.ENGINES if e + "_img_s" in row)
    return (f"{row['backbone'] + view:<30} eager {row['eager_img_s']:>6} img/s{engines or '  -- ' + row['runtime']}"
            f"  chosen {row.get('chosen')}  load {row['load_avg_1min']}  ({row['weights']})")


if __name__ == "__main__":
    main()
