"""How fast does a folder of camera photos become a feature matrix?

Generates COUNT realistic 12-megapixel JPEGs (package test photos upscaled to
4000x3000 with per-image sensor-like noise, so every file is distinct), then for
each backbone measures in one process:

  (a) naive    a first prototype: full-size decode, torchvision Resize, one image per forward, no cache
  (b) cold     workbench.features.extract_features with an empty cache
  (c) warm     the same again: the cache answers, only the files are hashed
  (d) forward  the network alone on pre-decoded tensors (the compute limit), same batch size as (b)
  (e) bf16     (d) under bf16 autocast, with the largest relative feature difference

and prints images/s, the ratios b/a, c/a, b/d and the peak RSS (this process
and its decoding workers). Aims (issue 3): b/a >= 4, b/d >= 0.7, c/a >= 50, RSS < 2 GB.

    .venv/bin/python bench/extract_bench.py [--count 200] [--naive-count N] [--backbones efficientnet_lite0,nima_mobilenet]
"""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.backbones import WeightsUnavailable, load_backbone
from workbench.config import load_settings
from workbench.features import features_for
from workbench.images import load_image

WIDTH, HEIGHT = 4000, 3000
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"


def _base_photos() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
            load_sample_image("china.jpg"), load_sample_image("flower.jpg")]


def _make_photo(job: tuple[int, str]) -> int:
    index, folder = job
    rng = np.random.default_rng(index)
    base = Image.fromarray(_base_photos()[index % 6]).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    if index % 2:
        base = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(base, dtype=np.int16)
    noise = rng.normal(0.0, 4.0, size=(HEIGHT, WIDTH, 1)).astype(np.int16)  # luminance grain
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(
        Path(folder) / f"photo_{index:04d}.jpg", quality=92)
    return index


def generate(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with Pool(2) as pool:
        for _ in pool.imap_unordered(_make_photo, [(i, str(folder)) for i in range(count)]):
            pass
    return sorted(folder.glob("*.jpg"))


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def naive(paths: list[Path], backbone) -> float:
    """What a first prototype does: full decode, torchvision Resize, batch of one."""
    import torchvision.transforms as T

    spec = backbone.spec
    mode = {"nearest": T.InterpolationMode.NEAREST, "bilinear": T.InterpolationMode.BILINEAR,
            "bicubic": T.InterpolationMode.BICUBIC}[spec.interpolation]
    transform = T.Compose([T.Resize((spec.input_size, spec.input_size), interpolation=mode), T.ToTensor(),
                           T.Normalize(spec.mean, spec.std)])
    model = backbone.model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB")
            model(transform(image)[None])
    return len(paths) / (time.perf_counter() - start)


def forward_only(tensors: torch.Tensor, backbone, batch_size: int, bf16: bool = False) -> tuple[float, torch.Tensor]:
    model = backbone.model.to(memory_format=torch.channels_last).eval()
    outputs = []
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(tensors), batch_size):
            outputs.append(model(tensors[i:i + batch_size].contiguous(memory_format=torch.channels_last)).float())
    return len(tensors) / (time.perf_counter() - start), torch.cat(outputs)


def bench_backbone(name: str, paths: list[Path], settings, naive_count: int) -> dict:
    try:
        backbone = load_backbone(name, settings)
    except WeightsUnavailable as exc:
        print(f"{name}: skipped ({exc})", flush=True)
        return {"backbone": name, "skipped": str(exc)}
    print(f"\n== {name} ({backbone.weights.label()}), {len(paths)} images of {WIDTH}x{HEIGHT}")
    a = naive(paths[:naive_count], backbone)
    print(f"(a) naive loop      {a:8.2f} images/s   (on {min(naive_count, len(paths))} images)")

    cache_settings = settings.replace(cache_dir=Path(tempfile.mkdtemp(prefix="extract-bench-cache-")))
    start = time.perf_counter()
    cold = features_for(paths, name, cache_settings)
    b = len(paths) / (time.perf_counter() - start)
    assert cold.computed == len(paths), "cold run must compute every image"
    print(f"(b) workbench cold  {b:8.2f} images/s")
    start = time.perf_counter()
    warm = features_for(paths, name, cache_settings)
    c = len(paths) / (time.perf_counter() - start)
    assert warm.cache_hits == len(paths) and np.array_equal(warm.features, cold.features)
    print(f"(c) workbench warm  {c:8.2f} images/s")
    shutil.rmtree(cache_settings.cache_dir, ignore_errors=True)

    size = backbone.spec.input_size
    draft = (size, size) if backbone.spec.draft_decode else None  # decoded exactly as (b) decodes
    tensors = torch.stack([backbone.transform(load_image(p, min_size=draft)) for p in paths])
    d, fp32 = forward_only(tensors, backbone, settings.batch_size)
    print(f"(d) forward only    {d:8.2f} images/s   (batch {settings.batch_size}, {torch.get_num_threads()} threads)")
    e, bf16 = forward_only(tensors, backbone, settings.batch_size, bf16=True)
    rel = float(((bf16 - fp32).norm(dim=1) / fp32.norm(dim=1).clamp_min(1e-12)).max())
    print(f"(e) forward bf16    {e:8.2f} images/s   (x{e / d:.2f} vs fp32; worst relative feature change {rel:.4f})")
    own, children = peak_rss_mb()
    print(f"b/a = {b / a:6.1f}   (aim >= 4)\nc/a = {c / a:6.1f}   (aim >= 50)\nb/d = {b / d:6.2f}   (aim >= 0.7)")
    print(f"peak RSS: {own:.0f} MB main process, {children:.0f} MB largest decoding worker (aim < 2048 MB)")
    del tensors
    return {"backbone": name, "weights": backbone.weights.source, "naive": a, "cold": b, "warm": c, "forward": d,
            "forward_bf16": e, "bf16_max_relative_change": rel, "b_over_a": b / a, "c_over_a": c / a,
            "b_over_d": b / d, "peak_rss_mb": own, "peak_worker_rss_mb": children}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="12-MP JPEGs to generate (default 200)")
    parser.add_argument("--naive-count", type=int, default=None,
                        help="time the naive loop on the first N images only (default: all)")
    parser.add_argument("--backbones", default="efficientnet_lite0,nima_mobilenet")
    parser.add_argument("--weights-dir", default=str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_dir() else None,
                        help="where the NIMA HDF5 is (default ../shared/weights when present)")
    parser.add_argument("--keep", action="store_true", help="keep the generated photos")
    parser.add_argument("--measure", metavar="BACKBONE", help=argparse.SUPPRESS)  # internal: one backbone
    parser.add_argument("--photos", help=argparse.SUPPRESS)
    args = parser.parse_args()

    settings = load_settings(weights_dir=args.weights_dir)
    if args.measure:
        paths = sorted(Path(args.photos).glob("*.jpg"))
        result = bench_backbone(args.measure, paths, settings, args.naive_count or len(paths))
        print(json.dumps(result), flush=True)
        return
    workdir = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    try:
        start = time.perf_counter()
        paths = generate(workdir / "photos", args.count)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"generated {len(paths)} JPEGs ({megabytes:.0f} MB) in {time.perf_counter() - start:.0f} s in {workdir}")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
              f"{'cuda' if torch.cuda.is_available() else 'cpu'}, batch {settings.batch_size}, "
              f"{settings.num_workers} decoding workers")
        results = []
        for name in args.backbones.split(","):
            # A fresh process per backbone: its peak RSS (and its decoding workers') is its own,
            # not the photo generator's.
            command = [sys.executable, __file__, "--measure", name, "--photos", str(workdir / "photos"),
                       "--naive-count", str(args.naive_count or len(paths))]
            if args.weights_dir:
                command += ["--weights-dir", args.weights_dir]
            proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
            lines = proc.stdout.strip().splitlines()
            print("\n".join(lines[:-1]), flush=True)
            results.append(json.loads(lines[-1]) if proc.returncode == 0 else {"backbone": name, "failed": proc.returncode})
        out = Path(__file__).resolve().parent / "output"
        out.mkdir(exist_ok=True)
        (out / "extract_bench.json").write_text(json.dumps({"count": len(paths), "results": results}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
