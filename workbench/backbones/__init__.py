"""Pretrained feature extractors ("backbones"): a registry plus offline-first weights.

    from workbench.backbones import BACKBONES, get_backbone, load_backbone, weight_status
    backbone = load_backbone("efficientnet_lite0", settings)   # raises WeightsUnavailable
    backbone.model(x)          # [N,3,S,S] normalised -> [N, feature_dim]
    backbone.transform(image)  # PIL RGB -> [3,S,S]
    backbone.weights.source    # "local file" | "package" | "download" | "random"

Adding a backbone is one function decorated with ``@register_backbone(...)``
in one of the modules imported below.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

from workbench.backbones.registry import (
    BACKBONES,
    FEATURE_VIEWS,
    PREPROCESSING_VERSION,
    VIEWS,
    BackboneSpec,
    ImageTransform,
    LoadedBackbone,
    backbone_choices,
    check_view,
    get_backbone,
    load_backbone,
    load_for_view,
    make_transform,
    register_backbone,
    register_view,
    view_weight_status,
    weight_status,
)
from workbench.backbones.weights import WeightSource, WeightStatus, WeightsUnavailable

# Registration happens on import; the order here is the order people see.
# isort: off
from workbench.backbones import lite  # noqa: F401  (efficientnet_lite0/1/2: the offline default first)
from workbench.backbones import nima  # noqa: F401
from workbench.backbones import zoo  # noqa: F401
from workbench.backbones import clip_prompts  # noqa: F401  (the clip_prompts feature view of the CLIP backbones)
# isort: on

__all__ = [
    "BACKBONES", "FEATURE_VIEWS", "VIEWS", "MultiLevel", "check_view", "PREPROCESSING_VERSION", "BackboneSpec",
    "load_for_view", "register_view", "view_weight_status",
    "ImageTransform", "LoadedBackbone",
    "WeightSource", "WeightStatus", "WeightsUnavailable", "backbone_choices", "get_backbone", "load_backbone",
    "make_transform", "register_backbone", "weight_status",
]


def __getattr__(name: str):
    # ``MultiLevel`` (an nn.Module, in .modules) is imported when asked for: torch loads with it
    if name == "MultiLevel":
        from workbench.backbones.modules import MultiLevel

        return MultiLevel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
