"""The torch modules the backbone registry wraps networks in (multi-level taps, L2 normalisation, CLIP prompts).

Apart from ``registry`` because defining ``nn.Module`` classes imports PyTorch;
the registry is read at every start, these are needed when a network is built.
"""
from __future__ import annotations

import operator
from typing import Sequence

import torch
from torch import nn


class MultiLevel(nn.Module):
    """Wraps a feature model: [N,3,S,S] -> [N, sum of tap channels], each tap's output pooled over space.

    Forward hooks read the stage outputs during the ordinary forward pass, so the
    wrapped model is not rebuilt and its weights stay the ones that were loaded.
    """

    def __init__(self, inner: nn.Module, taps: tuple[tuple[str, int], ...]) -> None:
        super().__init__()
        self.inner = inner
        self.taps = taps
        self._outputs: list[torch.Tensor] = []
        self._hooks = [operator.attrgetter(path)(inner).register_forward_hook(self._keep) for path, _ in taps]

    def remove(self) -> None:
        """Detach the hooks: the wrapped model is someone's LoadedBackbone and goes back to them unchanged."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _keep(self, module, args, output) -> None:
        self._outputs.append(output.float().mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._outputs = []
        try:
            self.inner(x)
            return torch.cat(self._outputs, dim=1)
        finally:
            self._outputs = []


class L2Normalized(nn.Module):
    """Wraps a feature model so its output rows have unit length."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.inner(x), dim=-1)


class ClipPromptFeatures(nn.Module):
    """Normalised images [N, 3, S, S] -> P(positive prompt) per pair [N, len(pairs)]."""

    def __init__(self, clip_model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]]):
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
