"""BLIP captions through transformers, with honest weight resolution.

Weights are looked for, in order, like the backbones': a folder (the setting
itself, or under ``settings.weights_dir``) -> the Hugging Face cache -> a
download when online -> a :class:`CaptionWeightsUnavailable` whose message
names the model and the folder to put it in. A captioner never runs on random
weights.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from workbench.config import Settings
from workbench.errors import WorkbenchError

REQUIRED_FILES = ("config.json",)
_CACHE: dict[tuple[str, str], "Captioner"] = {}
_CACHE_LOCK = threading.Lock()


class CaptionWeightsUnavailable(WorkbenchError):
    """The caption model's weights are in none of the places looked at."""


@dataclass(frozen=True)
class CaptionSource:
    """Where the caption weights come from: ``kind`` is "local folder",
    "Hugging Face cache" or "download"; ``location`` a folder or a model id."""

    kind: str
    location: str

    def describe(self) -> str:
        return f"{self.kind}: {self.location}"


def candidate_folders(model: str, settings: Settings) -> list[Path]:
    """Folders that may hold a saved model (``save_pretrained`` layout)."""
    named = Path(model).expanduser()
    folders = [named] if named.is_absolute() else []
    folders += [settings.weights_dir / model, settings.weights_dir / model.rstrip("/").rsplit("/", 1)[-1]]
    return list(dict.fromkeys(folders))


def _is_model_folder(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in REQUIRED_FILES)


def _in_hf_cache(model: str, cache_dir: Path | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json", cache_dir=str(cache_dir) if cache_dir else None)
    return isinstance(found, str)


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick look whether the Hugging Face hub answers at all, so an offline
    machine gets the missing-weights message at once instead of after the
    download's own minutes of retries."""
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def resolve_caption_weights(settings: Settings, *, model: str | None = None, hf_cache_dir: Path | None = None,
                            allow_download: bool | None = None) -> CaptionSource:
    """Where the caption model would be loaded from now, without loading it.

    ``allow_download`` None means: when Hugging Face offline mode is off and the hub answers.
    Raises :class:`CaptionWeightsUnavailable` when nothing is found.
    """
    from huggingface_hub import is_offline_mode

    model = model or settings.caption_model
    for folder in candidate_folders(model, settings):
        if _is_model_folder(folder):
            return CaptionSource("local folder", str(folder))
    if _in_hf_cache(model, hf_cache_dir):
        return CaptionSource("Hugging Face cache", model)
    if allow_download is None:
        allow_download = not is_offline_mode() and hub_reachable()
    if allow_download and not Path(model).is_absolute():
        return CaptionSource("download", model)
    raise CaptionWeightsUnavailable(missing_message(model, settings))


def local_folder(model: str, settings: Settings) -> Path:
    """Where the caption model's folder is looked for: ``weights_dir/<last part of the model id>``."""
    return settings.weights_dir / model.rstrip("/").rsplit("/", 1)[-1]


def model_page(model: str) -> str:
    """The model's Hugging Face page, where its files can be downloaded in a browser."""
    return f"https://huggingface.co/{model.strip('/')}"


def missing_message(model: str, settings: Settings) -> str:
    short = model.rstrip("/").rsplit("/", 1)[-1]
    return (
        f"The caption model '{model}' is not available offline. Download it on a machine with internet "
        f"(e.g. `huggingface-cli download {model} --local-dir {settings.weights_dir / short}`) and put the "
        f"folder (config.json, model.safetensors, the processor files) at {settings.weights_dir / short}, "
        f"or run once with internet so it lands in the Hugging Face cache. Scores work without it."
    )


class Captioner:
    """A loaded BLIP captioning model; ``caption(image)`` gives one sentence."""

    def __init__(self, model, processor, source: CaptionSource):
        self.model = model.eval()
        self.processor = processor
        self.source = source
        self._lock = threading.Lock()  # generate() is not re-entrant on a shared model

    def caption(self, image: Image.Image, *, max_new_tokens: int = 30, num_beams: int = 3) -> str:
        import torch

        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt")
        with self._lock, torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams)
        return self.processor.decode(ids[0], skip_special_tokens=True).strip()


def load_captioner(settings: Settings, *, model: str | None = None, hf_cache_dir: Path | None = None,
                   allow_download: bool | None = None) -> Captioner:
    """Load (once per process) the caption model named by ``settings.caption_model``.

    Raises :class:`CaptionWeightsUnavailable` naming what is missing.
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = model or settings.caption_model
    source = resolve_caption_weights(settings, model=model, hf_cache_dir=hf_cache_dir, allow_download=allow_download)
    key = (model, source.describe())
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        kwargs = {"local_files_only": source.kind != "download"}
        if hf_cache_dir is not None:
            kwargs["cache_dir"] = str(hf_cache_dir)
        where = source.location
        try:
            processor = BlipProcessor.from_pretrained(where, **kwargs)
            blip = BlipForConditionalGeneration.from_pretrained(where, **kwargs)
        except Exception as exc:  # an incomplete folder, a failed download (hub errors vary by version)
            raise CaptionWeightsUnavailable(
                f"Could not load the caption model from {source.describe()} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}). " + missing_message(model, settings)
            ) from None
        captioner = Captioner(blip, processor, source)
        _CACHE[key] = captioner
        return captioner
