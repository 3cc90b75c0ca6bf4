"""A stored run loaded for scoring: its images' scores, and its differentiable path for Grad-CAM."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from workbench.events import NEVER_STOP, Finished, Notice, StopFlag, relay
from workbench.features import feature_matrix
from workbench.models import get_family
from workbench.runs.persist import load_model
from workbench.runs.store import RunManifest, RunStore


@dataclass
class ImagePredictions:
    paths: list[Path]  # the images that could be scored, in input order
    scores: np.ndarray  # [N] in the run's score units
    distributions: np.ndarray | None = None  # [N, 10] for distribution families
    errors: dict[str, str] = field(default_factory=dict)  # path -> reason, for the rest
    spreads: np.ndarray | None = None  # [N] std of the distribution, score units
    texts: list | None = None  # [N] PhotoText (text, source) for image+text families; source None: no text


def load_run(run_id: str, settings) -> "LoadedRun":
    """Load a stored run for prediction; raises RunNotFound, RunCorrupt (hash mismatch) or UnsafeModel."""
    store = RunStore(settings.models_dir)
    folder = store.folder(run_id)
    manifest = store._read(folder)
    model = load_model(folder, manifest, settings)
    return LoadedRun(manifest=manifest, model=model, folder=folder, settings=settings)


@dataclass
class LoadedRun:
    manifest: RunManifest
    model: Any
    folder: Path
    settings: Any = None

    def predict_images(self, paths: Sequence[str | Path], settings, *, stop: StopFlag = NEVER_STOP,
                       texts: Mapping[str, str] | None = None) -> Iterator[Any]:
        yield from predict_images(self, [Path(p) for p in paths], settings, stop=stop, texts=texts)

    def gradcam_target(self, head: nn.Module | None = None):
        return gradcam_target(self, head=head)


def predict_images(run, paths: Sequence[Path], settings, *, stop: StopFlag = NEVER_STOP,
                   texts: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Events, then ``Finished(ImagePredictions)``; unreadable images land in ``errors``.

    ``texts``: file name -> text typed for that photo, for image+text families
    (else the scores.csv text, XMP keywords/title/description, or a cached caption).
    """
    manifest = run.manifest
    family = get_family(manifest.family)
    paths = [Path(p) for p in paths]
    if family.capabilities.needs_features:
        finished = yield from relay(feature_matrix(paths, manifest.backbones, settings, stop=stop,
                                                   random_weights=manifest.random_weights,
                                                   view=manifest.feature_view))
        if finished.stopped:
            yield Finished(None, stopped=True)
            return
        matrix = finished.result
        for name, now in matrix.weights.items():
            then = manifest.weights.get(name, {})
            if then and then.get("weights_id") != now["weights_id"]:
                yield Notice(f"{name}: the weights found now ({now['detail']}) differ from those this run was "
                             f"trained with ({then.get('detail')}); its scores may be off", level="warning")
        ok = [paths[i] for i in matrix.keep]
        X, errors = matrix.X, matrix.errors
    else:
        X, ok, errors = run.model.readable_inputs(paths, settings)
    if len(ok) == 0:
        yield Finished(ImagePredictions(paths=[], scores=np.zeros(0), errors=errors))
        return
    found = None
    if family.capabilities.needs_text:
        from workbench.multimodal import coverage_note, store_texts, text_weights_record, with_text_block

        then, now = manifest.weights.get("text", {}), text_weights_record()
        if then and then.get("weights_id") != now["weights_id"]:
            yield Notice(f"text encoder: the weights found now ({now['detail']}) differ from those this run was "
                         f"trained with ({then.get('detail')}); its scores may be off", level="warning")
        X, found = with_text_block(X, ok, settings, typed=texts, table=store_texts(settings))
        yield Notice(coverage_note(found), level="info" if all(f.text for f in found) else "warning")
    scores, distributions, spreads = head_outputs(run, X)
    yield Finished(ImagePredictions(paths=ok, scores=scores, distributions=distributions, errors=errors,
                                    spreads=spreads, texts=found))


def head_outputs(run, X) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(scores [N] clipped to the run's range, distributions [N,10] | None, spreads [N] | None) of the
    run's model on inputs X: features [N, D], or for image families what ``readable_inputs`` gives."""
    manifest = run.manifest
    scores = np.clip(run.model.predict(X), manifest.score_min, manifest.score_max)
    distributions = spreads = None
    if get_family(manifest.family).capabilities.distribution:
        distributions = run.model.predict_distribution(X)
        spreads = run.model.predict_spread(X)
    return scores, distributions, spreads


class ScoreFromPixels(nn.Module):
    """Backbone then head: normalised images [N, 3, S, S] -> scores [N] (what Grad-CAM differentiates)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class _FirstColumn(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[:, 0]


def gradcam_target(run, head: nn.Module | None = None):
    """(module: normalised [N,3,S,S] -> scores [N], target layer, transform), or None without a torch path.

    Image families (finetune, swin_moe) own their network; a torch head on one
    backbone's features (the run's own, or ``head``: its predictor re-expressed
    in torch by ``workbench.explain.torch_predictor``) is composed with that
    backbone; anything else (features of several backbones, no head): None.
    """
    from workbench.backbones import load_backbone

    if hasattr(run.model, "gradcam_target"):
        return run.model.gradcam_target()
    if len(run.manifest.backbones) != 1:
        return None
    head = run.model.torch_head() if hasattr(run.model, "torch_head") else head
    if head is None:
        return None
    backbone = load_backbone(run.manifest.backbones[0], run.settings, random_weights=run.manifest.random_weights)
    for p in backbone.model.parameters():
        p.requires_grad_(True)  # Grad-CAM needs gradients flowing through the feature maps
    features = backbone.model
    if getattr(run.manifest, "feature_view", "pooled") == "multilevel":
        from workbench.backbones import MultiLevel

        features = MultiLevel(backbone.model, backbone.spec.stage_taps)  # the same vector the head was fitted on
    module = ScoreFromPixels(features, head).eval()
    return module, backbone.gradcam_layer, backbone.transform
