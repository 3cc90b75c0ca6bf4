"""Import and Training-data gallery benchmark on realistic 12-megapixel JPEGs.

    .venv/bin/python bench/dataset_bench.py                      # 2,000 imported, 5,000 in the gallery
    .venv/bin/python bench/dataset_bench.py --n-import 200 --n-gallery 500   # quicker

What it does, all in a temporary folder (nothing large is committed):
1. renders 4000x3000 JPEGs from the photos that ship with scikit-image and
   scikit-learn (upscaled, flipped/cropped, with sensor-like noise); every file
   gets distinct bytes (distinct renders, plus a unique JPEG comment) so no
   duplicate detection kicks in;
2. times ``python -m workbench import``'s engine (scan + copy, thumbnails made
   on the way) against a naive import (full decode to check + plain copy),
   the naive one on a subset and compared by throughput;
3. grows the set to ``--n-gallery`` images and times the Training-data tab's
   first page (``gallery_page``, the function the tab calls): cold (no
   thumbnails), after a restart (thumbnails on disk, nothing in memory) and
   warm (same process), against a naive page (full decode + resize of each
   image on the page, every time).
Prints medians, ratios and the peak resident memory. Never asserts on time.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import io
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from workbench import fsutil
from workbench.dataset import (
    GalleryQuery,
    ScoreStore,
    gallery_page,
    import_into_store,
    scan_source_events,
)
from workbench.events import drain

SIZE = (4000, 3000)  # 12 megapixels


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def base_photos() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
            load_sample_image("china.jpg"), load_sample_image("flower.jpg")]


def render_variants(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct 12-MP JPEG renders (upscaled photo, random crop/flip, noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 5, (SIZE[1], SIZE[0], 3)).astype(np.int16)
    photos, out = base_photos(), []
    for i in range(count):
        pixels = photos[i % len(photos)]
        h, w = pixels.shape[:2]
        top, left = rng.integers(0, h // 8), rng.integers(0, w // 8)
        crop = pixels[top:top + h - h // 8, left:left + w - w // 8]
        if (i // len(photos)) % 2:
            crop = crop[:, ::-1]
        big = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(SIZE, Image.Resampling.BICUBIC))
        shifted = np.roll(noise, (int(rng.integers(0, SIZE[1])), int(rng.integers(0, SIZE[0]))), axis=(0, 1))
        noisy = np.clip(big.astype(np.int16) + shifted, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def stamped(jpeg: bytes, text: str) -> bytes:
    """The same picture with a JPEG comment segment: distinct bytes, same decode work."""
    body = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def write_photos(folder: Path, n: int, variants: list[bytes], prefix: str, rng) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        score = rng.integers(0, 101)
        name = f"{score}_{prefix}{i:05d}.jpg" if rng.random() > 0.05 else f"IMG_{prefix}{i:05d}.jpg"
        (folder / name).write_bytes(stamped(variants[i % len(variants)], f"{prefix}{i}"))
        names.append(name)
    return names


def engine_import(src: Path, store: ScoreStore, thumbs: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    preview = drain(scan_source_events(src, thumbnails_dir=thumbs, thumbnail_size=256))
    report = drain(import_into_store(preview.items, store, skipped=preview.skipped))
    return time.perf_counter() - start, report.to_json()


def naive_import(src: Path, dst: Path, names: list[str]) -> float:
    """What a first version does: fully decode each file to check it, then copy it."""
    dst.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        with Image.open(src / name) as image:
            image.load()
        shutil.copy2(src / name, dst / name)
    return time.perf_counter() - start


def naive_first_page(store: ScoreStore, page_size: int, size: int) -> float:
    """Read everything, then full-decode and resize each image of the page (no cache, no draft)."""
    start = time.perf_counter()
    entries = sorted(store.entries(), key=lambda e: (e.score is not None, e.filename))[:page_size]
    for entry in entries:
        with Image.open(store.data_dir / entry.filename) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
            image.save(io.BytesIO(), format="JPEG", quality=85)
    return time.perf_counter() - start


def timed_page(store: ScoreStore, thumbs: Path, page_size: int, size: int) -> float:
    start = time.perf_counter()
    page = gallery_page(store, GalleryQuery(page=0, page_size=page_size), thumbs, size)
    elapsed = time.perf_counter() - start
    assert len(page.items) == min(page_size, page.total_all) and all(i.thumbnail for i in page.items)
    return elapsed


def median_of(fn, repeats: int, before=None) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        if before:
            before()
        runs.append(fn())
    return statistics.median(runs), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-import", type=int, default=2000, help="12-MP JPEGs to import (default 2000)")
    parser.add_argument("--n-gallery", type=int, default=5000, help="images in the gallery set (default 5000)")
    parser.add_argument("--n-naive-import", type=int, default=200, help="files for the naive import baseline")
    parser.add_argument("--variants", type=int, default=24, help="distinct renders the files cycle through")
    parser.add_argument("--page-size", type=int, default=48)
    parser.add_argument("--thumb-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each gallery measurement (median)")
    parser.add_argument("--workdir", help="folder to work in (default: a new temporary folder, deleted after)")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="dataset-bench-"))
    rng = np.random.default_rng(1)
    print(f"work folder {work}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        t0 = time.perf_counter()
        variants = render_variants(args.variants)
        src = work / "camera"
        names = write_photos(src, args.n_import, variants, "p", rng)
        size_mb = sum((src / n).stat().st_size for n in names) / 1e6
        print(f"generated {args.n_import} JPEGs of {SIZE[0]}x{SIZE[1]} ({size_mb / len(names):.1f} MB each) "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)

        # ---- import: naive and engine back to back on the same subset, then the engine on everything
        n_naive = min(args.n_naive_import, args.n_import)
        subset = work / "subset"
        subset.mkdir()
        for name in names[:n_naive]:
            os.link(src / name, subset / name)
        naive_seconds = naive_import(subset, work / "naive-data", names[:n_naive])
        sub_seconds, _ = engine_import(subset, ScoreStore(work / "subset-data", 0, 100), work / "subset-thumbs")
        for folder in ("naive-data", "subset-data", "subset-thumbs", "subset"):
            shutil.rmtree(work / folder)
        store, thumbs = ScoreStore(work / "data", 0, 100), work / "cache" / "thumbnails"
        seconds, report = engine_import(src, store, thumbs)
        assert report["imported"] == args.n_import, report
        engine_rate = args.n_import / seconds
        print(f"\nIMPORT {args.n_import} images: {seconds:.1f} s wall = {engine_rate:.1f} img/s "
              f"({size_mb / seconds:.0f} MB/s), thumbnails included")
        print(f"  same {n_naive} files back to back: engine {n_naive / sub_seconds:.1f} img/s, naive (full decode "
              f"+ copy) {n_naive / naive_seconds:.1f} img/s -> {naive_seconds / sub_seconds:.2f}x faster "
              f"(the engine also hashes, dedupes, fsyncs, writes scores and makes thumbnails)")
        print(f"  peak RSS so far {peak_rss_mb():.0f} MB", flush=True)

        # ---- gallery of n_gallery images
        extra = max(0, args.n_gallery - args.n_import)
        # the rest is written straight into data/ with its scores, as a set built up over months would be
        more_names = write_photos(store.data_dir, extra, variants[::-1], "g", rng)
        store.set_scores({n: n.split("_", 1)[0] for n in more_names if not n.startswith("IMG_")})
        total = len(store.image_files())
        print(f"\nGALLERY first page ({args.page_size} thumbnails of {args.thumb_size} px) "
              f"of {total} images, median of {args.repeats}:", flush=True)

        def clear_all():
            shutil.rmtree(thumbs, ignore_errors=True)
            fsutil.forget_file_hashes()

        cold, cold_runs = median_of(lambda: timed_page(store, thumbs, args.page_size, args.thumb_size),
                                    args.repeats, clear_all)
        restart, restart_runs = median_of(lambda: timed_page(store, thumbs, args.page_size, args.thumb_size),
                                          args.repeats, fsutil.forget_file_hashes)
        warm, warm_runs = median_of(lambda: timed_page(store, thumbs, args.page_size, args.thumb_size),
                                    args.repeats)
        naive, naive_runs = median_of(lambda: naive_first_page(store, args.page_size, args.thumb_size),
                                      args.repeats)
        print(f"  cold (no thumbnails yet):                 {cold:6.2f} s  runs {fmt(cold_runs)}")
        print(f"  thumbnails cached, fresh process memory:  {restart:6.2f} s  runs {fmt(restart_runs)}")
        print(f"  thumbnails cached, same process:          {warm:6.2f} s  runs {fmt(warm_runs)}")
        print(f"  naive (full decode + resize every time):  {naive:6.2f} s  runs {fmt(naive_runs)}")
        print(f"  ratios naive/engine: cold {naive / cold:.1f}x, cached {naive / restart:.1f}x, "
              f"warm {naive / warm:.1f}x  (aim: cached < 2 s)")
        print(f"\npeak RSS {peak_rss_mb():.0f} MB; load average now {os.getloadavg()[0]:.1f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def fmt(runs: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in runs)


if __name__ == "__main__":
    main()
