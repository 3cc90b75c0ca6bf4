"""Text as a signal: where each photo's text comes from, and the text block the multimodal families read.

Sources, first found wins per photo (:data:`TEXT_SOURCES`):

1. text the person typed for this photo (Predict);
2. the ``text`` column of ``scores.csv`` (notes, titles, comments);
3. XMP title, description and keywords a photo manager wrote (sidecar, then embedded);
4. a BLIP caption cached for the photo's content hash (``cache/captions/<sha>.txt``),
   written when a caption was made; never computed here.

A photo may have none: its text embedding is zeros and its has-text flag 0,
so the families handle it per photo. The block appended to the image
features is ``[embedding (384) | has_text (1)]``; the families split X by
that fixed width from the right.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from workbench.backbones.text import DEFAULT_TEXT_BACKBONE, embed_texts, get_text_backbone, text_weight_status
from workbench.fsutil import atomic_write_text, file_sha256

TEXT_SOURCES = ("typed", "scores.csv", "XMP", "caption")
TEXT_DIM = get_text_backbone(DEFAULT_TEXT_BACKBONE).dim
BLOCK_DIM = TEXT_DIM + 1  # embedding + has-text flag


@dataclass(frozen=True)
class PhotoText:
    text: str | None
    source: str | None  # one of TEXT_SOURCES, None when the photo has no text


def _caption_path(settings, image_sha: str) -> Path:
    return Path(settings.cache_dir) / "captions" / f"{image_sha}.txt"


def cached_caption(path: Path, settings) -> str | None:
    try:
        text = _caption_path(settings, file_sha256(path)).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def remember_caption(path: Path, caption: str, settings) -> None:
    """Keep a caption for the photo's content, so it is never recomputed and can serve as its text."""
    target = _caption_path(settings, file_sha256(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, caption.strip())


def store_texts(settings) -> dict[str, str]:
    """File name -> the ``text`` column of scores.csv in the person's data folder (empty when none)."""
    from workbench.dataset import ScoreStore

    try:
        return {e.filename: e.text for e in ScoreStore.from_settings(settings).entries() if e.text}
    except (OSError, ValueError):
        return {}


def texts_for(paths: Sequence[Path], settings, *, typed: Mapping[str, str] | None = None,
              table: Mapping[str, str] | None = None, use_xmp: bool = True,
              use_captions: bool = True) -> list[PhotoText]:
    """Each photo's text and where it came from; ``typed``/``table`` are keyed by file name."""
    from workbench.dataset.xmp import read_text

    out = []
    for path in map(Path, paths):
        found = PhotoText(None, None)
        for source, get in (("typed", lambda: (typed or {}).get(path.name)),
                            ("scores.csv", lambda: (table or {}).get(path.name)),
                            ("XMP", lambda: read_text(path) if use_xmp else None),
                            ("caption", lambda: cached_caption(path, settings) if use_captions else None)):
            text = get()
            if text and text.strip():
                found = PhotoText(text.strip(), source)
                break
        out.append(found)
    return out


def text_block(texts: Sequence[str | None], settings) -> np.ndarray:
    """[N, BLOCK_DIM] float32: the text embedding (zeros without text) and a has-text flag."""
    block = np.zeros((len(texts), BLOCK_DIM), dtype=np.float32)
    present = [i for i, t in enumerate(texts) if t]
    if present:
        block[present, :TEXT_DIM] = embed_texts([texts[i] for i in present], settings)
        block[present, TEXT_DIM] = 1.0
    return block


def coverage_note(found: Sequence[PhotoText]) -> str:
    """"7 of 10 photos have text (scores.csv 5, XMP 2); 3 have none and are scored from the image alone"."""
    counts = {s: sum(1 for f in found if f.source == s) for s in TEXT_SOURCES}
    have = sum(counts.values())
    where = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
    none = len(found) - have
    tail = f"; {none} have none and are scored from the image alone" if none else ""
    return f"{have} of {len(found)} photos have text{f' ({where})' if where else ''}{tail}"


def text_weights_record() -> dict:
    status = text_weight_status()
    return {"source": status.source, "detail": status.detail, "weights_id": status.weights_id}


def with_text_block(X: np.ndarray, paths: Sequence[Path], settings, *, typed: Mapping[str, str] | None = None,
                    table: Mapping[str, str] | None = None) -> tuple[np.ndarray, list[PhotoText]]:
    """Image features X [N, D] with each photo's text block appended: [N, D + BLOCK_DIM], and the texts found."""
    found = texts_for(paths, settings, typed=typed, table=table)
    block = text_block([f.text for f in found], settings)
    return np.concatenate([np.asarray(X, dtype=np.float32), block], axis=1), found
