"""Small real data sets for the training tests, built once per session.

- ``savoias_subset``: 100 SAVOIAS photos (human scores) copied to a session
  folder, with a feature cache shared by every training test, so each
  backbone runs over them once per session.
- ``brightness_set``: 48 crops of the package photos at 64 px whose score is
  their mean brightness, a visible property even a small or randomly
  initialised network can learn in a few epochs.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.config import load_settings

SUBSET_SIZE = 160


def copy_savoias_subset(savoias_dir: Path, target: Path, n: int = SUBSET_SIZE, seed: int = 0) -> Path:
    rows = list(csv.DictReader(open(savoias_dir / "scores.csv", encoding="utf-8")))
    rng = np.random.default_rng(seed)
    picked = [rows[i] for i in sorted(rng.choice(len(rows), size=n, replace=False))]
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "score"])
        for row in picked:
            shutil.copyfile(savoias_dir / "images" / row["filename"], target / row["filename"])
            writer.writerow([row["filename"], row["score"]])
    return target


def make_brightness_set(photos: dict[str, np.ndarray], target: Path, n: int = 48, size: int = 64,
                        seed: int = 0) -> Path:
    """Crops of real photos, darkened by a random factor; score = mean brightness on 0-100."""
    rng = np.random.default_rng(seed)
    target.mkdir(parents=True, exist_ok=True)
    arrays = list(photos.values())
    with open(target / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "score"])
        for i in range(n):
            pixels = arrays[i % len(arrays)]
            h, w = pixels.shape[:2]
            side = int(min(h, w) * rng.uniform(0.4, 0.9))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(pixels[top:top + side, left:left + side, :3]).resize((size, size))
            dimmed = (np.asarray(crop, dtype=np.float64) * rng.uniform(0.15, 1.0)).astype(np.uint8)
            name = f"crop_{i:03d}.png"
            Image.fromarray(dimmed).save(target / name)
            writer.writerow([name, round(float(dimmed.mean()) / 255 * 100, 3)])
    return target


def settings_for(data_dir: Path, models_dir: Path, cache_dir: Path, weights_dir: Path, **overrides):
    for folder in (models_dir, cache_dir, weights_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return load_settings(data_dir=data_dir, models_dir=models_dir, cache_dir=cache_dir, weights_dir=weights_dir,
                         **overrides)
