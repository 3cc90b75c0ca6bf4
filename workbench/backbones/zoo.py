"""Backbones defined by torchvision and timm, with their published weight files.

None of these weights exist offline on a fresh machine: they resolve to a file in
the weights folder, a file downloaded earlier, or a download. The definitions
are real, so random-weight builds and the download path are tested here.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from workbench.backbones.registry import l2_normalized, register_backbone, timm_features
from workbench.backbones.weights import StateDict, WeightSource

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn  # the networks are built on first use: registering them imports no torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


TORCHVISION_WEIGHTS_URL = "https://download.pytorch.org/models/"


def torchvision_weights(filename: str, convert=None) -> WeightSource:
    """torchvision's own file; its name carries the first hex digits of its SHA-256.

    ``filename`` is the last part of the model's ``<Model>_Weights.DEFAULT.url``, kept
    here as data so that registering a backbone needs no torchvision import (about a
    second, paid by every start of the app); tests/test_startup.py checks each URL
    against torchvision's.
    """
    url = TORCHVISION_WEIGHTS_URL + filename
    prefix = re.search(r"-([a-f0-9]+)\.", filename)
    return WeightSource(filename=filename, url=url, sha256_prefix=prefix.group(1) if prefix else None, convert=convert)


def hf_timm_weights(hub_id: str, filename: str = "model.safetensors", convert=None) -> WeightSource:
    """A checkpoint in a timm repository of the Hugging Face hub (safetensors)."""
    return WeightSource(filename=f"{hub_id.split('/')[-1]}.safetensors",
                        url=f"https://huggingface.co/{hub_id}/resolve/main/{filename}", convert=convert)


def _openai_clip_keys(state: StateDict) -> StateDict:
    # timm's CLIP repos ship the whole OpenCLIP model (text tower too); timm's own
    # converter keeps the image tower and renames it (the projection becomes the head).
    from timm.models.vision_transformer import _convert_openai_clip

    return _convert_openai_clip(state, None) if "visual.class_embedding" in state else state


def _densenet_keys(state: StateDict) -> StateDict:
    # The published DenseNet file predates torchvision's module names ('norm.1' -> 'norm1').
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}


def _resnet_stages(first: int) -> tuple[tuple[str, int], ...]:
    """ResNet's four stages double their channels (64.. for basic blocks, 256.. for bottlenecks)."""
    return tuple((f"layer{i}", first * 2 ** (i - 1)) for i in range(1, 5))


def _tv():
    """``torchvision.models``, imported when a network is built (not when one is registered)."""
    import torchvision.models

    return torchvision.models


def _timm_model(name: str) -> nn.Module:
    import timm  # as _tv(): only when a network is built

    return timm.create_model(name, pretrained=False)


# ---------------------------------------------------------------- torchvision
@register_backbone(description="ResNet-18 (torchvision, ImageNet)", input_size=224, feature_dim=512,
                   interpolation="bilinear", weights=(torchvision_weights("resnet18-f37072fd.pth"),),
                   head="fc", gradcam_layer="layer4", stage_taps=_resnet_stages(64))
def resnet18() -> nn.Module:
    return _tv().resnet18(weights=None)


@register_backbone(description="ResNet-50 (torchvision, ImageNet V2 recipe)", input_size=224, feature_dim=2048,
                   interpolation="bilinear", weights=(torchvision_weights("resnet50-11ad3fa6.pth"),),
                   head="fc", gradcam_layer="layer4", stage_taps=_resnet_stages(256))
def resnet50() -> nn.Module:
    return _tv().resnet50(weights=None)


@register_backbone(description="VGG-16 (torchvision, ImageNet); fc7 features", input_size=224, feature_dim=4096,
                   interpolation="bilinear", weights=(torchvision_weights("vgg16-397923af.pth"),),
                   head="classifier.6", gradcam_layer="features.29")
def vgg16() -> nn.Module:
    return _tv().vgg16(weights=None)


@register_backbone(description="DenseNet-121 (torchvision, ImageNet)", input_size=224, feature_dim=1024,
                   interpolation="bilinear", weights=(torchvision_weights("densenet121-a639ec97.pth", _densenet_keys),),
                   head="classifier", gradcam_layer="features.norm5")
def densenet121() -> nn.Module:
    return _tv().densenet121(weights=None)


@register_backbone(description="EfficientNet-B0 (torchvision, ImageNet)", input_size=224, feature_dim=1280,
                   interpolation="bicubic", weights=(torchvision_weights("efficientnet_b0_rwightman-7f5810bc.pth"),),
                   head="classifier", gradcam_layer="features.8",
                   stage_taps=tuple((f"features.{i}", c) for i, c in
                                    enumerate((16, 24, 40, 80, 112, 192, 320, 1280), start=1)))
def efficientnet_b0() -> nn.Module:
    return _tv().efficientnet_b0(weights=None)


def _inception_features(model: nn.Module) -> nn.Module:
    from torch import nn

    model.fc = nn.Identity()
    model.AuxLogits = None  # only used in training
    model.aux_logits = False
    return model


@register_backbone(description="Inception-v3 (torchvision, ImageNet; 299 px)", input_size=299, feature_dim=2048,
                   interpolation="bilinear", weights=(torchvision_weights("inception_v3_google-0cc3c7bd.pth"),),
                   to_features=_inception_features, gradcam_layer="Mixed_7c")
def inception_v3() -> nn.Module:
    # transform_input=True: the Google weights expect [-1, 1] inputs; the model
    # converts from ImageNet normalisation itself, as torchvision does for them.
    return _tv().inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True)


@register_backbone(description="MobileNet-V3 Large (torchvision, ImageNet)", input_size=224, feature_dim=1280,
                   interpolation="bilinear", weights=(torchvision_weights("mobilenet_v3_large-5c1a4163.pth"),),
                   head="classifier.3", gradcam_layer="features.16")
def mobilenet_v3_large() -> nn.Module:
    return _tv().mobilenet_v3_large(weights=None)


@register_backbone(description="ConvNeXt-Tiny (torchvision, ImageNet)", input_size=224, feature_dim=768,
                   interpolation="bilinear", weights=(torchvision_weights("convnext_tiny-983f1562.pth"),),
                   head="classifier.2", gradcam_layer="features.7",
                   stage_taps=(("features.1", 96), ("features.3", 192), ("features.5", 384), ("features.7", 768)))
def convnext_tiny() -> nn.Module:
    return _tv().convnext_tiny(weights=None)


# ----------------------------------------------------------------------- timm
@register_backbone(description="Swin-T (timm swin_tiny_patch4_window7_224, ImageNet-1k)", input_size=224,
                   feature_dim=768, interpolation="bicubic",
                   weights=(hf_timm_weights("timm/swin_tiny_patch4_window7_224.ms_in1k"),),
                   to_features=timm_features, gradcam_layer="layers.3", tags=("nhwc_gradcam",))
def swin_tiny() -> nn.Module:
    return _timm_model("swin_tiny_patch4_window7_224")


def _clip_features(model: nn.Module) -> nn.Module:
    # Keep the CLIP projection head: the image embedding is what aesthetic
    # predictors (LAION's among them) are trained on, L2-normalised.
    return l2_normalized(model)


@register_backbone(description="CLIP ViT-B/32 image tower (OpenAI; timm); online only", input_size=224, feature_dim=512,
                   mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, interpolation="bicubic",
                   weights=(hf_timm_weights("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors", _openai_clip_keys),),
                   to_features=_clip_features, gradcam_layer="", online_only=True,
                   prompt_model="openai/clip-vit-base-patch32")
def clip_vit_b32() -> nn.Module:
    return _timm_model("vit_base_patch32_clip_224.openai")


@register_backbone(description="CLIP ViT-L/14 image tower (OpenAI; timm); online only, large", input_size=224,
                   feature_dim=768, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, interpolation="bicubic",
                   weights=(hf_timm_weights("timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors", _openai_clip_keys),),
                   to_features=_clip_features, gradcam_layer="", online_only=True,
                   prompt_model="openai/clip-vit-large-patch14")
def clip_vit_l14() -> nn.Module:
    return _timm_model("vit_large_patch14_clip_224.openai")

