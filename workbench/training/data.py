"""What training reads: the labelled images.

``LabelledSet`` is a plain list of (path, score); the store provides it, and
the benchmark and tests can build one from any folder. Their features come
from ``workbench.features.feature_matrix``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class LabelledSet:
    paths: list[Path]
    scores: np.ndarray  # [N] float64, in the person's score units
    fingerprint: str = ""
    _keys: list[str] | None = field(default=None, repr=False, compare=False)
    texts: list[str | None] | None = None  # per image (scores.csv text column); None: not gathered

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> "LabelledSet":
        keep = list(keep)
        texts = None if self.texts is None else [self.texts[i] for i in keep]
        keys = [self._keys[i] for i in keep] if self._keys is not None else None
        return LabelledSet([self.paths[i] for i in keep], self.scores[keep], self.fingerprint, keys,
                           texts=texts)

    def content_keys(self) -> list[str]:
        """One key per photo from its bytes (SHA-256; unreadable files by name), computed once.

        Splits and folds are drawn in the order of these keys, so renaming or
        re-listing the same photos (e.g. names that start with the score, which
        lists them sorted by score) never changes which photos are held out.
        """
        if self._keys is None:
            from concurrent.futures import ThreadPoolExecutor

            from workbench.fsutil import cached_file_sha256

            def key(path: Path) -> str:
                try:
                    return cached_file_sha256(path)
                except OSError:
                    return f"unreadable:{path.name}"

            with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib releases the GIL
                self._keys = list(pool.map(key, self.paths))
        return self._keys

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[Path, float]], fingerprint: str = "") -> "LabelledSet":
        paths = [Path(p) for p, _ in pairs]
        scores = np.array([float(s) for _, s in pairs], dtype=np.float64)
        if not fingerprint:
            digest = hashlib.sha256()
            for p, s in zip(paths, scores):
                digest.update(f"{p.name}\x00{s!r}\x00{p.stat().st_size if p.exists() else -1}\n".encode())
            fingerprint = digest.hexdigest()[:16]
        return cls(paths, scores, fingerprint)


def labelled_set(settings) -> LabelledSet:
    """The labelled images of the person's data folder (``settings.data_dir``)."""
    from workbench.dataset import ScoreStore

    store = ScoreStore.from_settings(settings)
    data = LabelledSet.from_pairs(store.labelled(), fingerprint=store.fingerprint())
    notes = {e.filename: e.text for e in store.entries() if e.text}
    data.texts = [notes.get(p.name) for p in data.paths]
    return data
