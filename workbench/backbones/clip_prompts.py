"""CLIP text-prompt similarity features (CLIP-IQA's antonym prompts), for machines that have a CLIP model.

For each pair of opposite prompts ("Good photo." / "Bad photo.", "a sharp photo" / "a blurry photo", ...)
the feature is the softmax probability of the positive prompt given the image (CLIP-IQA, Wang et al.
2023), so a photo becomes a short, readable vector: [N, len(PROMPT_PAIRS)].

No CLIP weights ship with the workbench and none are on this offline machine: ``load_clip_prompts``
reads a local folder or the Hugging Face cache (``openai/clip-vit-base-patch32`` where it was
downloaded). The path is tested here only on a tiny randomly initialised CLIP config, which proves
the plumbing (tokenise prompts, encode, pair softmax, shapes, determinism) and nothing about
accuracy: **the accuracy of these features is not measured here.**
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from workbench.backbones.weights import WeightsUnavailable

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


class ClipPromptFeatures(nn.Module):
    """Normalised images [N, 3, S, S] -> P(positive prompt) per pair [N, len(pairs)]."""

    def __init__(self, clip_model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]] = PROMPT_PAIRS):
        super().__init__()
        self.clip, self.pairs = clip_model.eval(), tuple(pairs)
        prompts = [p for pair in self.pairs for p in pair]
        tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        with torch.no_grad():  # the prompts never change: encode them once
            text = self.clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        text = getattr(text, "pooler_output", text)
        self.register_buffer("prompt_embeddings", nn.functional.normalize(text, dim=-1))
        self.feature_dim = len(self.pairs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = self.clip.get_image_features(pixel_values=images)
        image = nn.functional.normalize(getattr(image, "pooler_output", image), dim=-1)
        logits = self.clip.logit_scale.exp() * image @ self.prompt_embeddings.T  # [N, 2 * pairs]
        pairs = logits.view(len(images), len(self.pairs), 2)
        return torch.softmax(pairs, dim=-1)[..., 0]


def load_clip_prompts(source: str | Path = DEFAULT_CLIP, *, local_only: bool = True) -> ClipPromptFeatures:
    """From a model folder or the Hugging Face cache; raises WeightsUnavailable when neither has it."""
    from transformers import AutoTokenizer, CLIPModel

    try:
        model = CLIPModel.from_pretrained(str(source), local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local_only)
    except OSError as exc:
        raise WeightsUnavailable(f"no CLIP model at {source} on this machine ({exc}); the CLIP-prompt view "
                                 f"needs one downloaded while online") from None
    return ClipPromptFeatures(model, tokenizer)


def tiny_random_clip(tokenizer, seed: int = 0) -> ClipPromptFeatures:
    """A CLIP of a few thousand random parameters over ``tokenizer``'s vocabulary: for testing the path only."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64,
                         # CLIP pools the text at its end token: tell it which one this tokenizer writes
                         eos_token_id=tokenizer.sep_token_id or tokenizer.eos_token_id,
                         bos_token_id=tokenizer.cls_token_id or tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    return ClipPromptFeatures(model, tokenizer)


def prompt_features(module: ClipPromptFeatures, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return module(images).numpy().astype(np.float32)
