"""Where a cull's time goes per photo at camera size, and what reduced-scale decoding would change.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cull_stages_bench.py FOLDER [--n 30]

On the first N JPEGs of FOLDER (e.g. a shoot built by bench/cull_bench.py --shoot-dir),
one thread, each stage timed over all N (median of --repeats runs, interleaved):

- NIMA's input: full decode + nearest resize (what scoring does), and the NIMA mean
  scores' change if the JPEG were decoded at 1/2, 1/4, 1/8 scale instead (draft);
- the technical pass: the former RGB draft decode + grey conversion against the luma-only
  draft decode it does now, and against deriving its luma from a full decode (decode once),
  and the largest change the luma-only decode makes to the sharpness (relative) and to the clipped/crushed shares (absolute);
- the features pass's decode (efficientnet_lite0's draft decode) and the hashing.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WORKBENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from workbench.backbones import get_backbone, load_backbone
    from workbench.backbones.nima import distribution_mean_std, load_nima
    from workbench.config import load_settings
    from workbench.cull import WORKING_SIZE, laplacian_sharpness, luminance
    from workbench.features import decode_tensor, draft_size
    from workbench.images import load_image, load_luma

    torch.set_num_threads(1)
    paths = sorted(args.folder.rglob("*.jpg"))[:args.n]
    if not paths:
        sys.exit(f"no JPEGs in {args.folder}")
    settings = load_settings()
    nima = load_nima(settings, progress=False)
    lite0 = load_backbone("efficientnet_lite0", settings, progress=False)
    lite0_draft = draft_size(get_backbone("efficientnet_lite0"))
    with Image.open(paths[0]) as im:
        print(f"{len(paths)} photos of {im.width}x{im.height} ({im.width * im.height / 1e6:.1f} MP), "
              f"load average {os.getloadavg()[0]:.1f}")

    def rgb_then_grey(p):
        return luminance(load_image(p, max_pixels=settings.max_pixels, min_size=(WORKING_SIZE, WORKING_SIZE)))

    def luma_only(p):
        return luminance(load_luma(p, WORKING_SIZE, max_pixels=settings.max_pixels))

    stages = {
        "NIMA input: full decode + nearest resize": lambda p: nima.transform(load_image(p, max_pixels=settings.max_pixels)),
        "technical pass, before: RGB draft decode + grey": rgb_then_grey,
        "technical pass, now: luma-only draft decode": luma_only,
        "technical measures from NIMA's full decode (grey + resize to the working size)":
            lambda p: luminance(load_image(p, max_pixels=settings.max_pixels)),
        "features pass: lite0 draft decode + resize": lambda p: decode_tensor(p, lite0.transform, lite0_draft,
                                                                              settings.max_pixels),
        "features pass: SHA-256 of the file": lambda p: hashlib.sha256(p.read_bytes()).hexdigest(),
    }
    times: dict[str, list[float]] = {k: [] for k in stages}
    for _ in range(args.repeats):
        for name, fn in stages.items():
            t0 = time.perf_counter()
            for p in paths:
                fn(p)
            times[name].append((time.perf_counter() - t0) / len(paths))
    with torch.inference_mode():
        batch = torch.stack([nima.transform(load_image(p, max_pixels=settings.max_pixels)) for p in paths[:16]])
        t0 = time.perf_counter()
        nima(batch)
        forward = (time.perf_counter() - t0) / len(batch)
    print("| stage | ms/photo (median) |\n| --- | --- |")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} |")
    print(f"| NIMA forward, torch eager, 1 thread, batch 16 (scoring runs ONNX Runtime: faster) | {forward * 1000:.0f} |")

    before = [rgb_then_grey(p) for p in paths]
    now = [luma_only(p) for p in paths]
    sharp = max(abs(laplacian_sharpness(a) - laplacian_sharpness(b)) / max(laplacian_sharpness(a), 1e-9)
                for a, b in zip(before, now))
    high = max(abs(float(np.mean(a >= 250 / 255)) - float(np.mean(b >= 250 / 255))) for a, b in zip(before, now))
    low = max(abs(float(np.mean(a <= 5 / 255)) - float(np.mean(b <= 5 / 255))) for a, b in zip(before, now))
    print(f"luma-only vs RGB+grey: sharpness max relative change {sharp:.2e}; clipped share max change {high:.2e}; "
          f"crushed share max change {low:.2e}")

    def nima_means(images):
        with torch.inference_mode():
            return distribution_mean_std(nima(torch.stack([nima.transform(i) for i in images])).numpy())[0]

    def decoded(p, scale):
        with Image.open(p) as im:
            if scale > 1:
                im.draft("RGB", (im.width // scale, im.height // scale))
            return im.convert("RGB")

    full = nima_means([decoded(p, 1) for p in paths])
    for scale in (2, 4, 8):
        d = np.abs(nima_means([decoded(p, scale) for p in paths]) - full)
        print(f"NIMA mean with a 1/{scale} draft decode instead of the full one: |change| max {d.max():.3f}, "
              f"median {np.median(d):.3f} (the project's parity bar: 0.005)")


if __name__ == "__main__":
    main()
