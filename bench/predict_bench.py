"""Batch scoring throughput: ``score_images`` with NIMA against a naive loop.

    .venv/bin/python bench/predict_bench.py [--n 96] [--threads 2]

Two image sets: SAVOIAS photos as they are (about 512 px) and the same photos
re-saved at camera size (4000 x 3000 JPEG, about 12 MP). For each set it
prints images/s, wall time and peak RSS of

- ``score_images``: batches of ``features.batch_size``, JPEG decoded at reduced
  scale (Image.draft) when much larger than the 224 px input, broken files
  listed instead of raised;
- the naive baseline a script would write: full decode, resize, one forward
  pass per image.

Each variant runs in its own child process so the peak memory is its own.
Scores of both are compared (they differ only by the reduced-scale decode).
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
NIMA_FILE = SHARED / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"


def make_sets(n: int, root: Path) -> dict[str, list[Path]]:
    photos = sorted((SHARED / "datasets" / "savoias" / "images").glob("*.jpg"))[:n]
    camera = root / "camera"
    camera.mkdir()
    big = []
    for path in photos:
        target = camera / path.name
        Image.open(path).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(target, quality=90)
        big.append(target)
    return {"savoias (~512 px)": photos, "camera size (12 MP)": big}


def run_engine(paths: list[Path], settings) -> list[float]:
    from workbench.events import drain
    from workbench.predict import load_scorer, score_images

    scorer = load_scorer("nima", settings)
    result = drain(score_images(paths, scorer, settings))
    by_path = {r.path: r.score for r in result.rows}
    return [by_path[str(p)] for p in paths]


def run_naive(paths: list[Path], settings) -> list[float]:
    import torch

    from workbench.backbones.nima import load_nima

    model = load_nima(settings, progress=False)
    bins = np.arange(1, 11)
    scores = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize((224, 224), Image.NEAREST)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.inference_mode():
            scores.append(float(model(x)[0].numpy() @ bins))
    return scores


def child(variant: str, paths_file: Path, weights_dir: Path) -> None:
    import torch

    from workbench.config import load_settings

    settings = load_settings(weights_dir=weights_dir)
    paths = [Path(p) for p in json.loads(paths_file.read_text())]
    run = {"engine": run_engine, "naive": run_naive}[variant]
    run(paths[:2], settings)  # warm-up: model load and first-call overheads are not throughput
    start = time.perf_counter()
    scores = run(paths, settings)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "peak_mb": peak_mb, "scores": scores, "threads": torch.get_num_threads()}))


def measure(variant: str, paths: list[Path], weights_dir: Path, threads: int, tmp: Path) -> dict:
    paths_file = tmp / f"{variant}.json"
    paths_file.write_text(json.dumps([str(p) for p in paths]))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--child", variant, str(paths_file), str(weights_dir)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=96, help="images per set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    if not NIMA_FILE.is_file():
        sys.exit(f"needs {NIMA_FILE}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights = tmp / "weights"
        weights.mkdir()
        (weights / NIMA_FILE.name).symlink_to(NIMA_FILE)
        sets = make_sets(args.n, tmp)
        print(f"NIMA batch scoring, {args.n} images per set, {args.threads} threads")
        print(f"{'set':<22} {'variant':<14} {'img/s':>7} {'wall s':>7} {'peak MB':>8}  {'speed-up':>8}  max |Δscore|")
        for name, paths in sets.items():
            naive = measure("naive", paths, weights, args.threads, tmp)
            engine = measure("engine", paths, weights, args.threads, tmp)
            diff = float(np.max(np.abs(np.array(engine["scores"]) - np.array(naive["scores"]))))
            for label, m in (("naive loop", naive), ("score_images", engine)):
                ratio = naive["wall"] / m["wall"]
                print(f"{name:<22} {label:<14} {len(paths) / m['wall']:7.1f} {m['wall']:7.2f} "
                      f"{m['peak_mb']:8.0f}  {ratio:7.2f}x  {diff if label == 'score_images' else 0:.3f}")


if __name__ == "__main__":
    main()
