"""What training reads: the labelled images and, for feature families, their features.

``LabelledSet`` is a plain list of (path, score); the store provides it, and
the benchmark and tests can build one from any folder. ``feature_matrix``
concatenates the cached features of one or more backbones (``auto`` uses
several) and drops images any backbone could not read, saying which.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from workbench.events import Finished, Notice, Progress, StopFlag


@dataclass
class LabelledSet:
    paths: list[Path]
    scores: np.ndarray  # [N] float64, in the person's score units
    fingerprint: str = ""
    _keys: list[str] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> "LabelledSet":
        keep = list(keep)
        keys = [self._keys[i] for i in keep] if self._keys is not None else None
        return LabelledSet([self.paths[i] for i in keep], self.scores[keep], self.fingerprint, keys)

    def content_keys(self) -> list[str]:
        """One key per photo from its bytes (SHA-256; unreadable files by name), computed once.

        Splits and folds are drawn in the order of these keys, so renaming or
        re-listing the same photos (e.g. names that start with the score, which
        lists them sorted by score) never changes which photos are held out.
        """
        if self._keys is None:
            from concurrent.futures import ThreadPoolExecutor

            from workbench.fsutil import file_sha256

            def key(path: Path) -> str:
                try:
                    return file_sha256(path)
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
    return LabelledSet.from_pairs(store.labelled(), fingerprint=store.fingerprint())


@dataclass
class FeatureMatrix:
    X: np.ndarray  # [N_ok, sum of feature dims] float32
    keep: np.ndarray  # indices into the input paths that every backbone could read
    errors: dict[str, str] = field(default_factory=dict)  # path -> reason
    weights: dict[str, dict] = field(default_factory=dict)  # backbone -> {source, detail, weights_id}


def weights_record(status) -> dict:
    return {"source": status.source, "detail": status.detail, "weights_id": status.weights_id}


def feature_matrix(paths: Sequence[Path], backbones: Sequence[str], settings, *, stop: StopFlag | None = None,
                   random_weights: bool = False, view: str = "pooled") -> Iterator[Progress | Notice | Finished]:
    """Yield the extraction events of each backbone (in feature ``view``), then ``Finished(FeatureMatrix)``.

    Ends with ``Finished(None, stopped=True)`` if stopped during extraction.
    """
    from workbench.features import extract_features

    paths = [Path(p) for p in paths]
    blocks, errors, weights = [], {}, {}
    for name in backbones:
        result = None
        for event in extract_features(paths, name, settings, stop=stop, random_weights=random_weights, view=view):
            if isinstance(event, Finished):
                result = event.result
                if event.stopped:
                    yield Finished(None, stopped=True)
                    return
            else:
                yield event
        if stop is not None and stop.is_set():
            yield Finished(None, stopped=True)
            return
        weights[name] = weights_record(result.weights)
        errors.update(result.errors)
        row_of = {str(p): i for i, p in enumerate(result.paths)}
        blocks.append((row_of, np.asarray(result.features, dtype=np.float32)))
    keep = [i for i, p in enumerate(paths) if all(str(p) in row_of for row_of, _ in blocks)]
    X = np.concatenate([feats[[row_of[str(paths[i])] for i in keep]] for row_of, feats in blocks], axis=1) \
        if keep else np.zeros((0, sum(f.shape[1] for _, f in blocks)), dtype=np.float32)
    if errors:
        yield Notice(f"{len(errors)} image(s) could not be read and are left out: "
                     + "; ".join(f"{Path(p).name}: {why}" for p, why in list(errors.items())[:5])
                     + (" ..." if len(errors) > 5 else ""), level="warning")
    yield Finished(FeatureMatrix(X=X, keep=np.array(keep, dtype=np.int64), errors=errors, weights=weights))
