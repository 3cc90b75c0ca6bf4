"""Grad-CAM explanations of a score, through torchcam.

Where in the photo did the model look to give this score? The gradient of the
score with respect to the scorer's last spatial feature map weights that map
(Grad-CAM); the heatmap is blended over the photo at a chosen opacity. Models
with no gradient path back to the pixels (tree ensembles on cached features)
get an ``Explanation`` whose ``reason`` says so instead of a heatmap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from workbench.config import Settings
from workbench.images import load_image

if TYPE_CHECKING:  # pragma: no cover
    from workbench.predict import Scorer

EXPLAIN_LONG_SIDE = 768  # px of the photo shown under the heatmap


@dataclass
class Explanation:
    """A Grad-CAM heatmap [H, W] in 0-1 over ``image``, or ``reason`` why there is none."""

    image: Image.Image
    heatmap: np.ndarray | None = None
    score: float | None = None
    reason: str | None = None

    def overlay(self, opacity: float = 0.5, colormap: str = "jet") -> Image.Image:
        """The photo with the heatmap blended in at ``opacity`` (0: photo only, 1: heatmap only)."""
        if self.heatmap is None:
            return self.image
        from torchcam.utils import overlay_mask

        opacity = float(np.clip(opacity, 0.0, 1.0))
        if opacity == 0.0:
            return self.image
        # a float ("F") mask in 0-1, as torchcam squares it (a uint8 mask would overflow)
        mask = Image.fromarray(np.clip(self.heatmap, 0, 1).astype(np.float32), mode="F")
        # torchcam's alpha is the photo's share and must be below 1
        return overlay_mask(self.image, mask, colormap=colormap, alpha=float(min(1.0 - opacity, 0.999)))


def explain(image_path: str | Path, scorer: "Scorer", settings: Settings) -> Explanation:
    """Grad-CAM (torchcam) of the score w.r.t. the scorer's last feature map.

    Raises ImageError for an unreadable photo; a model with no gradient path to
    the pixels gives an Explanation whose ``reason`` says so.
    """
    from torchcam.methods import GradCAM

    photo = load_image(image_path, max_pixels=settings.max_pixels, min_size=(EXPLAIN_LONG_SIDE,) * 2)
    photo.thumbnail((EXPLAIN_LONG_SIDE, EXPLAIN_LONG_SIDE))
    target = scorer.gradcam_target()
    if target is None or target[1] is None:
        reason = scorer.not_explainable_reason or (
            f"This {scorer.family} run has no spatial feature map to explain (a transformer backbone or "
            f"features from several backbones), so Grad-CAM cannot show where it looked.")
        return Explanation(image=photo, reason=reason)
    module, layer, transform = target
    with scorer.lock, torch.enable_grad():
        x = transform(photo)[None].requires_grad_(True)  # gradients reach the layer even with frozen weights
        with GradCAM(module, target_layer=layer, input_shape=tuple(x.shape[1:])) as cam:
            score = module(x).reshape(-1, 1)
            maps = cam(class_idx=0, scores=score)
    heatmap = maps[0][0].detach().float().numpy()
    heatmap = np.nan_to_num(heatmap, nan=0.0)
    return Explanation(image=photo, heatmap=heatmap, score=float(score.detach()[0, 0]))
