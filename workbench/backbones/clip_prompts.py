"""CLIP text-prompt similarity features (CLIP-IQA's antonym prompts), for machines that have a CLIP model.

For each pair of opposite prompts ("Good photo." / "Bad photo.", "a sharp photo" / "a blurry photo", ...)
the feature is the softmax probability of the positive prompt given the image (CLIP-IQA, Wang et al.
2023), so a photo becomes a short, readable vector: [N, len(PROMPT_PAIRS)].

It is the ``clip_prompts`` feature view (``--features clip_prompts``) of the CLIP backbones
(``clip_vit_b32``, ``clip_vit_l14``; ``BackboneSpec.prompt_model`` names the CLIP model). Its weights
are the whole CLIP model in transformers' format (image and text towers), found in this order: a
folder named like the model in the weights folder (``<weights>/clip-vit-base-patch32``), the Hugging
Face cache (downloaded earlier), a download when online; otherwise a clear message naming the folder.

No CLIP weights ship with the workbench and none exist on the offline build machines, so the view
is tested here only with ``--random-weights``, which builds a *tiny randomly initialised* CLIP over
the packaged MiniLM tokenizer. That proves the plumbing (tokenise prompts, encode, pair softmax,
shapes, cache, determinism) and nothing about accuracy: **the accuracy of these features is not
measured here.**
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.backbones.registry import FeatureView, LoadedBackbone, make_transform, register_view
from workbench.backbones.weights import WeightStatus, WeightsUnavailable, is_online, offline_requested, weights_id_of

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from workbench.backbones.modules import ClipPromptFeatures  # an nn.Module: torch loads with it, on first use

PROMPT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good photo.", "Bad photo."),
    ("a beautiful photo", "an ugly photo"),
    ("a sharp photo", "a blurry photo"),
    ("good composition", "bad composition"),
    ("a well exposed photo", "a badly exposed photo"),
    ("a colorful photo", "a dull photo"),
    ("a high quality photo", "a low quality photo"),
    ("a professional photograph", "an amateur snapshot"),
)
DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def load_clip_prompts(source: str | Path = DEFAULT_CLIP, *, local_only: bool = True) -> ClipPromptFeatures:
    """From a model folder or the Hugging Face cache; raises WeightsUnavailable when neither has it."""
    from transformers import AutoTokenizer, CLIPModel

    from workbench.backbones.modules import ClipPromptFeatures

    try:
        model = CLIPModel.from_pretrained(str(source), local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local_only)
    except OSError as exc:
        raise WeightsUnavailable(f"no CLIP model at {source} on this machine ({exc}); the CLIP-prompt view "
                                 f"needs one downloaded while online") from None
    return ClipPromptFeatures(model, tokenizer, PROMPT_PAIRS)


def tiny_random_clip(tokenizer, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> ClipPromptFeatures:
    """A CLIP of a few thousand random parameters over ``tokenizer``'s vocabulary: for testing the path only."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from workbench.backbones.modules import ClipPromptFeatures

    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64,
                         # CLIP pools the text at its end token: tell it which one this tokenizer writes
                         eos_token_id=tokenizer.sep_token_id or tokenizer.eos_token_id,
                         bos_token_id=tokenizer.cls_token_id or tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch_size),
        projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    return ClipPromptFeatures(model, tokenizer, PROMPT_PAIRS)


def prompt_features(module: ClipPromptFeatures, images: torch.Tensor) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(images).numpy().astype(np.float32)


# ------------------------------------------------------------ the clip_prompts view
HUB = "https://huggingface.co"
UNMEASURED = "its accuracy is not measured in the workbench"


def _local_folder(spec, settings) -> Path:
    return Path(settings.weights_dir) / spec.prompt_model.split("/")[-1]


def _weights_file(folder: Path) -> Path | None:
    return next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)


def _hub_cached(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _random_status() -> WeightStatus:
    import torch

    return WeightStatus("random", "a TINY randomly initialised CLIP over the packaged MiniLM tokenizer, as asked: it "
                        "tests the plumbing only, its prompt features mean nothing",
                        f"random:tiny-clip:seed0:torch{torch.__version__}")


def prompt_weight_status(spec, settings, *, random_weights: bool = False) -> WeightStatus:
    """Where the CLIP model (both towers) for ``spec``'s prompt view comes from now; loads nothing."""
    if random_weights:
        return _random_status()
    folder = _local_folder(spec, settings)
    local = _weights_file(folder)
    if local is not None:
        return WeightStatus("local file", f"{folder} (CLIP prompts; {UNMEASURED})", weights_id_of(local), path=folder)
    cached = _hub_cached(spec.prompt_model)
    if cached is not None:
        return WeightStatus("download", f"downloaded earlier: {spec.prompt_model} in the Hugging Face cache "
                            f"(CLIP prompts; {UNMEASURED})", weights_id_of(cached), path=cached.parent)
    hub_offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    if not offline_requested() and not hub_offline and is_online(HUB):
        return WeightStatus("download", f"will download {spec.prompt_model} from {HUB} (CLIP prompts; {UNMEASURED})",
                            "", url=f"{HUB}/{spec.prompt_model}")
    return WeightStatus("unavailable", (
        f"The clip_prompts view needs the whole CLIP model {spec.prompt_model} (image and text towers, "
        f"transformers format), and none is on this machine: no CLIP weights ship with the workbench or any "
        f"package. Download the files of {HUB}/{spec.prompt_model} (config.json, model.safetensors and the "
        f"tokenizer files) into {folder}, or connect to the internet once so it is downloaded; "
        f"--random-weights builds a tiny random CLIP that tests the plumbing only. Note: {UNMEASURED}."), "",
        path=folder, url=f"{HUB}/{spec.prompt_model}")


def load_prompt_view(spec, settings, *, random_weights: bool = False) -> LoadedBackbone:
    """The prompt-similarity network for ``spec`` as a LoadedBackbone (the backbone's own pixels);
    raises WeightsUnavailable as the other backbones do."""
    status = prompt_weight_status(spec, settings, random_weights=random_weights)
    if random_weights:
        from transformers import AutoTokenizer

        from workbench.backbones.text import DEFAULT_TEXT_BACKBONE, get_text_backbone

        tokenizer = AutoTokenizer.from_pretrained(str(get_text_backbone(DEFAULT_TEXT_BACKBONE).find()))
        module = tiny_random_clip(tokenizer, seed=0, image_size=spec.input_size, patch_size=32)
    elif not status.available:
        raise WeightsUnavailable(status.detail)
    else:
        local = status.source == "local file"
        module = load_clip_prompts(status.path if local else spec.prompt_model, local_only=local or not status.url)
        if not status.weights_id:  # downloaded just now: identify what came
            status = prompt_weight_status(spec, settings)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return LoadedBackbone(spec=spec, model=module.eval(), weights=status, transform=make_transform(spec))


register_view(FeatureView(
    "clip_prompts", "CLIP-IQA prompt similarities (P(good photo), P(sharp), ... of 8 antonym prompt pairs) from a "
    "CLIP model's image and text towers; CLIP backbones only, weights online only, accuracy not measured here",
    lambda spec: len(PROMPT_PAIRS),
    refuse=lambda spec: None if spec.prompt_model else
    f"{spec.name} is not a CLIP model, so it has no clip_prompts view; use --backbone clip_vit_b32 (or clip_vit_l14)",
    status=prompt_weight_status, load=load_prompt_view))


def __getattr__(name: str):
    if name == "ClipPromptFeatures":  # moved to .modules with the other nn.Modules; still importable from here
        from workbench.backbones.modules import ClipPromptFeatures

        return ClipPromptFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
