"""Where in the photo did the model look to give this score? Every run can answer.

Two methods, and the explanation says which one it used:

- **Grad-CAM** (through torchcam) wherever there is a gradient path from the
  pixels to the score: networks trained end to end, heads on one backbone's
  features, and linear or kernel predictors (ridge, SVR, ``auto``'s
  ridge + SVR average) on one backbone's features, which
  :func:`workbench.explain_torch.torch_predictor` re-expresses in torch so gradients flow through them.
- **Occlusion sensitivity** for every other model (tree ensembles, stacking,
  features of several backbones): a patch of the photo is covered at a time and
  the photo scored again; where covering lowers the score most is what raised
  it. Slower (a few dozen scorings) but it needs nothing from the model.

The heatmap is blended over the photo at a chosen opacity.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from PIL import Image

from workbench.config import Settings
from workbench.images import load_image

if TYPE_CHECKING:  # pragma: no cover
    from workbench.predict import Scorer

EXPLAIN_LONG_SIDE = 768  # px of the photo shown under the heatmap
OCCLUSION_LONG_SIDE = 320  # px of the copies scored with a patch covered (models see 224-260 px anyway)
OCCLUSION_STEPS = 7  # patch positions per side; the patch covers two steps (about 2/7 of the side)

GRADCAM, OCCLUSION = "Grad-CAM", "occlusion"
EMPTY_MAP = 1e-6  # a heatmap whose largest value is below this shows nothing
EMPTY_NOTE = ("Occlusion: covering any one region of this photo did not lower the score, so no region stands "
              "out as what raised it (the map is empty).")
METHOD_NOTES = {
    GRADCAM: "Grad-CAM: warm colours are the regions that raised the score most.",
    OCCLUSION: "Occlusion: each region was covered in turn and the photo scored again; warm colours are "
               "where covering it lowered the score most, i.e. what raised it.",
}


@dataclass
class Explanation:
    """A heatmap [H, W] in 0-1 over ``image`` and the ``method`` that made it, or ``reason`` why there is none."""

    image: Image.Image
    heatmap: np.ndarray | None = None
    score: float | None = None
    reason: str | None = None
    method: str | None = None  # GRADCAM | OCCLUSION

    @property
    def note(self) -> str:
        """One sentence for the person: which method, and how to read the colours."""
        if self.method == OCCLUSION and self.heatmap is not None and float(self.heatmap.max()) < EMPTY_MAP:
            return EMPTY_NOTE
        return METHOD_NOTES.get(self.method or "", self.reason or "")

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
    """Grad-CAM where the scorer has a gradient path to the pixels, occlusion sensitivity otherwise.

    Raises ImageError for an unreadable photo.
    """
    photo = load_image(image_path, max_pixels=settings.max_pixels, min_size=(EXPLAIN_LONG_SIDE,) * 2)
    photo.thumbnail((EXPLAIN_LONG_SIDE, EXPLAIN_LONG_SIDE))
    target = scorer.gradcam_target()
    if target is not None and target[1] is not None:
        found = _gradcam(photo, scorer, target)
        # Grad-CAM keeps only what raised the score (a ReLU): where every region of the last feature layer
        # lowered it, its map is empty, yet its note would still point at warm colours; occlusion measures
        # what covering each region does, whichever way the model leans
        if float(found.heatmap.max()) >= EMPTY_MAP:
            return found
    return occlusion(photo, scorer, settings)


def _gradcam(photo: Image.Image, scorer: "Scorer", target: tuple) -> Explanation:
    import torch
    from torchcam.methods import GradCAM

    module, layer, transform = target
    with scorer.lock, torch.enable_grad():
        x = transform(photo)[None].requires_grad_(True)  # gradients reach the layer even with frozen weights
        with GradCAM(module, target_layer=layer, input_shape=tuple(x.shape[1:])) as cam:
            score = module(x).reshape(-1, 1)
            maps = cam(class_idx=0, scores=score)
    heatmap = np.nan_to_num(maps[0][0].detach().float().numpy(), nan=0.0)
    return Explanation(image=photo, heatmap=heatmap, score=float(score.detach()[0, 0]), method=GRADCAM)


# ------------------------------------------------------------- occlusion
def occluded_copies(photo: Image.Image, steps: int = OCCLUSION_STEPS) -> tuple[list[Image.Image], list[tuple]]:
    """Copies of ``photo`` with one patch covered by the photo's mean colour, and each patch's box.

    The patch is two steps wide and moves one step at a time, so every region is
    covered by up to four patches and the map is smooth.
    """
    w, h = photo.size
    fill = tuple(int(v) for v in np.asarray(photo.convert("RGB")).reshape(-1, 3).mean(axis=0))
    xs = np.linspace(0, w, steps + 2).round().astype(int)
    ys = np.linspace(0, h, steps + 2).round().astype(int)
    copies, boxes = [], []
    for j in range(steps):
        for i in range(steps):
            box = (xs[i], ys[j], xs[i + 2], ys[j + 2])
            copy = photo.convert("RGB")  # a new image each time
            copy.paste(fill, box)
            copies.append(copy)
            boxes.append(box)
    return copies, boxes


def occlusion_map(size: tuple[int, int], base: float, scores: np.ndarray, boxes: list[tuple]) -> np.ndarray:
    """[H, W] in 0-1: the average drop of the score when each pixel's patches were covered (rises count 0)."""
    w, h = size
    drop, count = np.zeros((h, w)), np.zeros((h, w))
    for score, (x0, y0, x1, y1) in zip(scores, boxes):
        if np.isfinite(score):
            drop[y0:y1, x0:x1] += max(base - float(score), 0.0)
            count[y0:y1, x0:x1] += 1
    heat = np.divide(drop, count, out=np.zeros_like(drop), where=count > 0)
    top = heat.max()
    return heat / top if top > 0 else heat


def occlusion(photo: Image.Image, scorer: "Scorer", settings: Settings,
              steps: int = OCCLUSION_STEPS) -> Explanation:
    """Occlusion sensitivity of ``scorer`` on ``photo``: works for any model that scores image files."""
    small = photo.convert("RGB")
    small.thumbnail((OCCLUSION_LONG_SIDE, OCCLUSION_LONG_SIDE))
    copies, boxes = occluded_copies(small, steps)
    with tempfile.TemporaryDirectory(prefix="workbench-occlusion-") as folder:
        # the covered copies are throwaway: their features must not fill the person's cache
        scratch = dataclasses.replace(settings, cache_dir=Path(folder) / "cache")
        paths = []
        for index, image in enumerate([small, *copies]):
            path = Path(folder) / f"{index:03d}.png"
            image.save(path)
            paths.append(path)
        scores = _score_files(scorer, paths, scratch)
    base = scores[0]
    if not np.isfinite(base):
        return Explanation(image=photo, reason="The model could not score this photo, so there is nothing to explain.")
    heat = occlusion_map(small.size, base, scores[1:], boxes)
    heatmap = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(photo.size, Image.BILINEAR))
    return Explanation(image=photo, heatmap=np.clip(heatmap, 0, 1), score=float(base), method=OCCLUSION)


def _score_files(scorer: "Scorer", paths: list[Path], settings: Settings) -> np.ndarray:
    """Scores of ``paths`` in order (NaN where one failed), through the scorer's own batch path."""
    from workbench.events import NEVER_STOP, Finished

    predictions = None
    for event in scorer.predict_chunk(paths, settings, stop=NEVER_STOP):
        if isinstance(event, Finished):
            predictions = event.result
    by_path = {str(p): float(s) for p, s in zip(predictions.paths, predictions.scores)} if predictions else {}
    return np.array([by_path.get(str(p), np.nan) for p in paths])


def gradcam_target_of(run: Any) -> tuple | None:
    """(module: normalised [N,3,S,S] -> scores [N], target layer, transform) for a loaded run, or None
    where there is no gradient path (then :func:`explain` uses occlusion)."""
    from workbench.explain_torch import torch_predictor
    from workbench.runs.inference import gradcam_target

    if hasattr(run.model, "gradcam_target") or hasattr(run.model, "torch_head"):
        return gradcam_target(run)
    head: Callable | None = torch_predictor(run.model)
    return gradcam_target(run, head=head) if head is not None else None


def __getattr__(name: str):
    # the torch re-expression of fitted predictors lives in workbench.explain_torch (it imports torch);
    # ``from workbench.explain import torch_predictor`` still works, loading it when asked for
    if name == "torch_predictor":
        from workbench.explain_torch import torch_predictor

        return torch_predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
