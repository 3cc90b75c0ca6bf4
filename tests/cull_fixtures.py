"""A synthetic shoot for cull tests and bench/cull_bench.py: real photos expanded into bursts.

Each source photo becomes a burst of frames taken 0.4 s apart (small crops and
shifts, exposure changes, JPEG re-encoding, and one frame blurred as a missed
focus would be) or stays a singleton; bursts are 30-120 s apart. Every frame
carries EXIF DateTimeOriginal + SubsecTimeOriginal like a camera's.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageEnhance, ImageFilter

START = datetime(2025, 6, 14, 14, 0, 0)


@dataclass
class Shoot:
    folder: Path
    groups: list[list[Path]] = field(default_factory=list)  # the true groups
    blurred: list[Path] = field(default_factory=list)  # the frames blurred on purpose
    sharp_siblings: list[Path] = field(default_factory=list)  # the other frames of bursts with a blurred one

    @property
    def group_of(self) -> dict[str, int]:
        return {str(p): i for i, g in enumerate(self.groups) for p in g}


def _exif(when: datetime) -> Image.Exif:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[36867] = when.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    sub[37521] = f"{when.microsecond // 10000:02d}"  # SubsecTimeOriginal, hundredths
    return exif


def _frame(base: Image.Image, rng: random.Random) -> tuple[Image.Image, int]:
    w, h = base.size
    scale = rng.uniform(0.90, 0.98)  # the photographer reframes a little
    cw, ch = int(w * scale), int(h * scale)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    frame = base.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)
    frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.8, 1.2))  # exposure changes
    return frame, rng.randint(70, 95)  # re-encoded at another quality


def make_shoot(sources: Sequence[Path], folder: Path, *, seed: int = 0, long_side: int = 800,
               burst_share: float = 0.7, burst_sizes: tuple[int, int] = (2, 8), megapixels: float | None = None,
               max_photos: int | None = None, start: datetime = START, blur: float = 0.008) -> Shoot:
    """Write the shoot into ``folder``: ``burst_share`` of the sources become bursts of
    ``burst_sizes`` frames (inclusive), the rest singletons; bursts of 3+ get one blurred frame.
    ``megapixels``: frames of that area, whatever their aspect (instead of ``long_side``);
    ``max_photos``: stop there (the last burst may be cut short); ``start``: the first capture time;
    ``blur``: the blurred frame's Gaussian radius as a share of the long side (0.008: a missed focus)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shoot = Shoot(folder)
    when = start
    n = 0
    for source in sources:
        if max_photos is not None and n >= max_photos:
            break
        with Image.open(source) as image:
            base = image.convert("RGB")
        # to the camera's size: enlarged when the source is smaller
        scale = (megapixels * 1e6 / (base.width * base.height)) ** 0.5 if megapixels else long_side / max(base.size)
        base = base.resize((round(base.width * scale), round(base.height * scale)), Image.Resampling.LANCZOS)
        size = rng.randint(*burst_sizes) if rng.random() < burst_share else 1
        if max_photos is not None:
            size = min(size, max_photos - n)
        blurred_at = rng.randrange(size) if size >= 3 else -1
        group = []
        for k in range(size):
            frame, quality = _frame(base, rng) if size > 1 else (base, 90)
            if k == blurred_at:  # missed focus: by default a blur of ~1 % of the long side
                frame = frame.filter(ImageFilter.GaussianBlur(radius=max(2.0, blur * max(frame.size))))
            n += 1
            path = folder / f"IMG_{n:05d}.jpg"
            frame.save(path, quality=quality, exif=_exif(when))
            when += timedelta(seconds=0.4)
            group.append(path)
            (shoot.blurred if k == blurred_at else shoot.sharp_siblings if blurred_at >= 0 else []).append(path)
        shoot.groups.append(group)
        when += timedelta(seconds=rng.uniform(30, 120))
    return shoot


def pairwise_precision_recall(true_groups: Sequence[Sequence[str]], found_groups: Sequence[Sequence[str]]) \
        -> tuple[float, float]:
    """Pairwise precision and recall: of the pairs put together, the share truly together, and
    of the pairs truly together, the share put together (1.0 when there are no such pairs)."""
    def pairs(groups):
        out = set()
        for g in groups:
            g = sorted(map(str, g))
            out.update((a, b) for i, a in enumerate(g) for b in g[i + 1:])
        return out

    truth, found = pairs(true_groups), pairs(found_groups)
    both = len(truth & found)
    return (both / len(found) if found else 1.0), (both / len(truth) if truth else 1.0)
