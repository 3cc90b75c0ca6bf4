"""Stars <-> scores: how a photo manager's rating becomes a label, and a score becomes stars.

Stars in (``StarMapping``): by default each star count stands for the middle
of its fifth of the score range (on 0–100: 1★=10, 2★=30, 3★=50, 4★=70,
5★=90), so a 5★ photo is not claimed to be perfect; ``ratings.star_scores``
in the config may list five scores instead. "Not rated" (0★) is no label. A
rejected photo gets the range's minimum, or is not imported at all
(``ratings.rejected: skip``).

Stars out (:func:`stars_for_scores`): ``thresholds`` cuts the score range in
five equal parts (the inverse of the mapping above); ``percentile`` gives
each fifth of the batch, by rank, one more star, so any set of photos spreads
over 1–5 stars whatever the model's calibration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from workbench.dataset.xmp import MetadataError, Rating, write_rating
from workbench.errors import BadInput

SOURCES = {  # --ratings: the order in which the sources of a score are tried
    "auto": ("ratings", "filename"),
    "xmp": ("ratings",),
    "filename": ("filename",),
}
REJECTED_CHOICES = ("minimum", "skip")
STAR_METHODS = ("thresholds", "percentile")


def source_order(choice: str) -> tuple[str, ...]:
    if choice not in SOURCES:
        raise BadInput(f"--ratings must be one of {', '.join(SOURCES)}, not {choice!r}")
    return SOURCES[choice]


def describe_order(choice: str) -> str:
    """The order of the sources as a person reads it."""
    from workbench.dataset.xmp import RATING_SOURCES

    names = {"ratings": " > ".join(RATING_SOURCES), "filename": "the number in the file name"}
    return " > ".join(names[s] for s in source_order(choice))


@dataclass(frozen=True)
class StarMapping:
    """``scores[k-1]`` is the score of a k-star photo; ``rejected``: "minimum" or "skip"."""

    scores: tuple[float, float, float, float, float]
    score_min: float
    rejected: str = "minimum"

    @classmethod
    def build(cls, score_min: float, score_max: float, star_scores: str | Sequence[float] = "",
              rejected: str = "minimum") -> "StarMapping":
        if rejected not in REJECTED_CHOICES:
            raise BadInput(f"ratings.rejected must be one of {', '.join(REJECTED_CHOICES)}, not {rejected!r}")
        if isinstance(star_scores, str):
            parts = [p for p in star_scores.replace(";", ",").split(",") if p.strip()]
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise BadInput(f"ratings.star_scores {star_scores!r}: give five numbers, like 10,30,50,70,90") from None
        else:
            values = [float(v) for v in star_scores]
        if not values:
            step = (score_max - score_min) / 5
            values = [score_min + step * (k + 0.5) for k in range(5)]
        if len(values) != 5 or any(not math.isfinite(v) or not score_min <= v <= score_max for v in values):
            raise BadInput(f"ratings.star_scores needs five scores within {score_min:g}–{score_max:g} "
                           f"(for 1 to 5 stars), got {values}")
        return cls(tuple(values), float(score_min), rejected)

    @classmethod
    def from_settings(cls, settings) -> "StarMapping":
        return cls.build(settings.score_min, settings.score_max, settings.star_scores, settings.rejected)

    def score(self, rating: Rating | None) -> tuple[float | None, str | None]:
        """(score, note): the label a rating gives, or None with why not (note "skip" for a skipped reject)."""
        if rating is None:
            return None, "no rating in its metadata"
        where = f"{rating.label} label, {rating.source}" if rating.label else rating.source
        if rating.rejected:
            if self.rejected == "skip":
                return None, "skip"
            return self.score_min, f"rejected ({where})"
        if rating.stars is None:
            return None, f"not rated ({where})"
        return self.scores[rating.stars - 1], f"{rating.stars}★ ({where})"


def stars_for_scores(scores: Sequence[float], method: str, score_min: float, score_max: float) -> list[int]:
    """1–5 stars for each score: by fixed fifths of the range, or by rank within the batch."""
    if method not in STAR_METHODS:
        raise BadInput(f"--stars must be one of {', '.join(STAR_METHODS)}, not {method!r}")
    if method == "thresholds":
        span = (score_max - score_min) or 1.0
        return [min(5, max(1, 1 + int(5 * (s - score_min) / span))) for s in scores]
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    stars = [0] * len(scores)
    for rank, i in enumerate(order):
        stars[i] = 1 + (5 * rank) // max(1, len(scores))
    return stars


@dataclass
class WrittenRatings:
    """What :func:`write_star_ratings` did: files written, and photos it could not rate, with why."""

    written: list[Path]
    failed: list[tuple[Path, str]]
    stars: dict[Path, int]

    def to_json(self) -> dict:
        return {"written": [str(p) for p in self.written],
                "failed": [{"path": str(p), "error": e} for p, e in self.failed],
                "stars": {str(p): s for p, s in self.stars.items()}}


def write_star_ratings(items: Sequence[tuple[str | Path, float]], method: str, score_min: float,
                       score_max: float, *, new_sidecar: str = "stem", embed: bool = False) -> WrittenRatings:
    """Write ``xmp:Rating`` and the exact score for each (photo, score) into its XMP sidecar.

    Stars by ``method`` (see :func:`stars_for_scores`; percentile ranks within
    ``items``). Existing sidecars keep their other tags; a photo whose sidecar
    cannot be written is listed in ``failed`` and the others still get theirs.
    """
    paths = [Path(p) for p, _ in items]
    stars = stars_for_scores([float(s) for _, s in items], method, score_min, score_max)
    out = WrittenRatings([], [], {})
    for path, (_, score), star in zip(paths, items, stars):
        try:
            out.written += write_rating(path, star, float(score), new_sidecar=new_sidecar, embed=embed)
            out.stars[path] = star
        except (MetadataError, OSError) as exc:
            out.failed.append((path, str(exc)))
    return out
