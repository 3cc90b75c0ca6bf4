"""``finetune``: a whole pretrained CNN plus a linear head, trained end to end on pixels."""
from __future__ import annotations

import operator
from typing import Any

from torch import nn

from workbench.models.heads import torch_estimator
from workbench.models.image_models import ImageRegressorBase, PixelRegressor


def backbone_network(name: str, settings, *, pretrained: bool, random_weights: bool) -> tuple[nn.Module, Any, dict]:
    """(trainable feature model, backbone spec, weights record) of a registered backbone."""
    from workbench.backbones import get_backbone, load_backbone
    from workbench.backbones.registry import feature_model
    from workbench.features import weights_record

    spec = get_backbone(name)
    if pretrained or random_weights:
        loaded = load_backbone(name, settings, random_weights=random_weights, progress=False)
        model, record = loaded.model, {name: weights_record(loaded.weights)}
    else:  # rebuilding a saved run: its file holds every weight
        model, record = feature_model(spec, spec.create()), {}
    for p in model.parameters():
        p.requires_grad_(True)
    return model, spec, record


@torch_estimator
class FinetuneRegressor(ImageRegressorBase):
    """A registered backbone fine-tuned end to end with a dropout + linear head."""

    def __init__(self, backbone: str = "efficientnet_lite0", epochs: int = 8, learning_rate: float = 1e-3,
                 backbone_lr_factor: float = 0.1, batch_size: int = 16, weight_decay: float = 1e-4,
                 dropout: float = 0.2, augment: str = "crop_flip", color_jitter: bool = False,
                 image_size: int = 0, patience: int = 3, loss: str = "huber", amp: bool = True,
                 random_weights: bool = False, seed: int = 42, settings: Any = None):
        self.backbone, self.epochs, self.learning_rate = backbone, epochs, learning_rate
        self.backbone_lr_factor, self.batch_size, self.weight_decay = backbone_lr_factor, batch_size, weight_decay
        self.dropout, self.augment, self.color_jitter = dropout, augment, color_jitter
        self.image_size, self.patience, self.loss, self.amp = image_size, patience, loss, amp
        self.random_weights, self.seed, self.settings = random_weights, seed, settings

    def _build_network(self, pretrained: bool):
        model, spec, record = backbone_network(self.backbone, self.settings, pretrained=pretrained,
                                               random_weights=self.random_weights and pretrained)
        self.spec_ = spec
        head = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(spec.feature_dim, 1))
        size = self.image_size or spec.input_size
        return PixelRegressor(model, head), (size, spec.mean, spec.std, spec.interpolation), record

    def _gradcam_layer(self) -> nn.Module:
        return operator.attrgetter(self.spec_.gradcam_layer)(self.net_.backbone)


def build_finetune(*, seed: int, context: Any = None, **params):
    return FinetuneRegressor(backbone=context.backbone or context.settings.default_backbone,
                             random_weights=bool(context.random_weights), seed=seed, settings=context.settings,
                             **params)
