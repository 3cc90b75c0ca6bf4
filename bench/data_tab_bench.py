"""The Training-data tab, end to end through a real server, on a large set.

    .venv/bin/python bench/data_tab_bench.py              # 5,000 images
    .venv/bin/python bench/data_tab_bench.py --n 1000     # quicker

``bench/dataset_bench.py`` times the engine's ``gallery_page`` on 12-MP photos.
This one times what a person waits for when the tab opens or Refresh is
pressed: the HTTP round trip of the tab's refresh event (disk re-read, page of
cached thumbnails, summary, histogram, Gradio's post-processing), with the
thumbnails already cached, against a naive tab that sends every thumbnail in
one gallery (no paging), measured in the same run. It also prints the response
size and an in-process breakdown. Never asserts on time.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from workbench.config import load_settings
from workbench.dataset import GalleryQuery, ScoreStore, gallery_page, summarize

ROOT = Path(__file__).resolve().parent.parent


def make_set(data_dir: Path, n: int, rng: np.random.Generator) -> None:
    """``n`` distinct 800x600 JPEGs (package photos + noise) and their scores."""
    from skimage import data

    bases = [Image.fromarray(a).convert("RGB").resize((800, 600)) for a in
             (data.chelsea(), data.coffee(), data.astronaut(), data.rocket())]
    data_dir.mkdir(parents=True, exist_ok=True)
    scores = {}
    for i in range(n):
        pixels = np.asarray(bases[i % len(bases)], dtype=np.int16)
        noisy = np.clip(pixels + rng.integers(-6, 7, size=(1, 1, 3)), 0, 255).astype(np.uint8)
        name = f"photo_{i:05d}.jpg"
        Image.fromarray(noisy).save(data_dir / name, quality=85, comment=f"bench {i}".encode())
        if i % 10:  # every tenth unlabelled
            scores[name] = float(rng.integers(0, 101))
    ScoreStore(data_dir).set_scores(scores)


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "gradio_app.py", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def timed_refresh(url: str, repeats: int) -> tuple[list[float], int]:
    """Wall times of the Training-data tab's Refresh event, and the response size in bytes."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    endpoint = next(name for name in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
                    if name.startswith("/refresh_view"))
    query = ("File name", True, False, 0, 100)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = client.predict(*query, api_name=endpoint)
        times.append(time.perf_counter() - started)
    return times, len(json.dumps(result, default=str))


def breakdown(settings, store: ScoreStore) -> dict[str, float]:
    from workbench.ui.widgets import histogram

    parts = {}
    started = time.perf_counter()
    store.entries()
    parts["read scores.csv + list folder"] = time.perf_counter() - started
    started = time.perf_counter()
    gallery_page(store, GalleryQuery(page_size=settings.gallery_page_size), settings.thumbnails_dir,
                 settings.thumbnail_size)
    parts["gallery_page (cached thumbnails)"] = time.perf_counter() - started
    started = time.perf_counter()
    summary = summarize(store)
    parts["summarize"] = time.perf_counter() - started
    started = time.perf_counter()
    plot = histogram(summary.histogram)
    plot.postprocess(plot.value)
    parts["histogram (bar-plot data)"] = time.perf_counter() - started
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="images in the training set")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="workbench-tab-bench-") as tmp:
        tmp = Path(tmp)
        env = {"WORKBENCH_DATA_DIR": str(tmp / "data"), "WORKBENCH_CACHE_DIR": str(tmp / "cache"),
               "WORKBENCH_MODELS_DIR": str(tmp / "runs"), "WORKBENCH_WEIGHTS_DIR": str(tmp / "weights")}
        os.environ.update(env)
        started = time.perf_counter()
        make_set(tmp / "data", args.n, rng)
        print(f"made {args.n} images in {time.perf_counter() - started:.1f} s")
        settings = load_settings()
        store = ScoreStore.from_settings(settings)
        started = time.perf_counter()
        gallery_page(store, GalleryQuery(page_size=args.n), settings.thumbnails_dir, settings.thumbnail_size)
        print(f"thumbnails for all {args.n} made in {time.perf_counter() - started:.1f} s (the cache both tabs share)")
        for part, seconds in breakdown(settings, store).items():
            print(f"  in process: {part:36s} {seconds * 1000:8.1f} ms")

        naive_config = tmp / "naive.yaml"
        naive_config.write_text(f"images:\n  gallery_page_size: {args.n}\n")
        results = {}
        for label, extra in (("paged tab (48 per page)", {}), ("naive tab (all in one gallery)",
                                                             {"WORKBENCH_CONFIG": str(naive_config)})):
            port = 7990 + len(results)
            proc = start_server({**env, **extra}, port, tmp / f"server{port}.log")
            try:
                times, size = timed_refresh(f"http://127.0.0.1:{port}/", args.repeats)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            results[label] = statistics.median(times)
            print(f"{label:32s} refresh round trip: median {results[label]:.3f} s "
                  f"(runs {', '.join(f'{t:.3f}' for t in times)}), response {size / 1024:.0f} KiB")
        paged, naive = results.values()
        print(f"speed-up of paging over the naive tab: {naive / paged:.1f}x")


if __name__ == "__main__":
    main()
