"""NIMA (Talebi & Milanfar 2018): MobileNet v1 trained on AVA, a ready aesthetic scorer.

An exact PyTorch port of idealo/image-quality-assessment's Keras 2.1.6 model:

- ``ZeroPadding2D(1)`` (symmetric, also before the stride-2 convs) before EVERY
  3x3 conv, then a 'valid' conv. Newer Keras pads bottom/right only, which moves
  scores by up to 0.27: the padding is the detail that makes the port exact.
- ReLU6 activations; BatchNorm with eps 1e-3 (Keras' default, not torch's 1e-5).
- Global average pool -> Dropout(0.75) -> Dense(10) -> softmax over scores 1..10.
- Input: RGB 224x224 resized nearest-neighbour (Keras' ``load_img``), x/127.5 - 1.

The HDF5 file is read with h5py (no Keras, no pickle): Keras stores each
weight at ``f[layer][layer][name + ":0"]``; conv kernels (kh, kw, in, out)
become (out, in, kh, kw), depthwise kernels (kh, kw, C, 1) become (C, 1, kh, kw).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.backbones.registry import HALF, get_backbone, make_transform, register_backbone
from workbench.backbones.weights import StateDict, WeightSource, WeightStatus

if TYPE_CHECKING:  # pragma: no cover
    from workbench.config import Settings

KERAS_BN_EPS = 1e-3
# (output channels, stride) of MobileNet v1's 13 depthwise-separable blocks
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
SCORES = np.arange(1, 11, dtype=np.float64)

NIMA_URL = ("https://raw.githubusercontent.com/idealo/image-quality-assessment/master/"
            "models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5")
# SHA-256 of the known-good file (13,174,216 bytes): a download must match it.
NIMA_SHA256 = "e563ad91b3d47410e45f7238f07ab8f6abd1bd0c4b18a4b0af9c681a21a91cb2"


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS)


class DepthwiseSeparable(nn.Module):
    """pad 1 -> depthwise 3x3 (stride) -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels_in, channels_in, 3, stride=stride, groups=channels_in, bias=False)
        self.dw_bn = _bn(channels_in)
        self.pw = nn.Conv2d(channels_in, channels_out, 1, bias=False)
        self.pw_bn = _bn(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.dw_bn(self.dw(F.pad(x, (1, 1, 1, 1)))))
        return F.relu6(self.pw_bn(self.pw(x)))


class NimaModel(nn.Module):
    """``model(x)``: [N,3,224,224] in [-1, 1] -> score distribution [N,10]; ``.features(x)`` -> [N,1024]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self.conv1_bn = _bn(32)
        blocks, channels = [], 32
        for out, stride in MOBILENET_V1_BLOCKS:
            blocks.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.75)
        self.dense = nn.Linear(1024, 10)
        self.weights: WeightStatus | None = None  # set by load_nima
        self.transform = make_transform(get_backbone("nima_mobilenet"))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv1_bn(self.conv1(F.pad(x, (1, 1, 1, 1)))))
        return self.blocks(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.dense(self.dropout(self.features(x))), dim=-1)


class NimaFeatures(nn.Module):
    """NIMA as a backbone: the 1024-d pooled features."""

    def __init__(self, nima: NimaModel) -> None:
        super().__init__()
        self.nima = nima

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nima.features(x)


def read_keras_hdf5(path: Path) -> StateDict:
    """Read the Keras MobileNet HDF5 into NimaModel's state dict (torch layouts)."""
    import h5py

    def get(f, layer: str, name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(f[layer][layer][f"{name}:0"], dtype=np.float32))

    def conv(kernel: torch.Tensor) -> torch.Tensor:  # (kh, kw, in, out) -> (out, in, kh, kw)
        return kernel.permute(3, 2, 0, 1).contiguous()

    def depthwise(kernel: torch.Tensor) -> torch.Tensor:  # (kh, kw, C, 1) -> (C, 1, kh, kw)
        return kernel.permute(2, 3, 0, 1).contiguous()

    def batch_norm(f, layer: str, prefix: str) -> StateDict:
        return {
            f"{prefix}.weight": get(f, layer, "gamma"), f"{prefix}.bias": get(f, layer, "beta"),
            f"{prefix}.running_mean": get(f, layer, "moving_mean"),
            f"{prefix}.running_var": get(f, layer, "moving_variance"),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }

    state: StateDict = {}
    with h5py.File(path, "r") as f:
        state["conv1.weight"] = conv(get(f, "conv1", "kernel"))
        state.update(batch_norm(f, "conv1_bn", "conv1_bn"))
        for i in range(1, len(MOBILENET_V1_BLOCKS) + 1):
            block = f"blocks.{i - 1}"
            state[f"{block}.dw.weight"] = depthwise(get(f, f"conv_dw_{i}", "depthwise_kernel"))
            state.update(batch_norm(f, f"conv_dw_{i}_bn", f"{block}.dw_bn"))
            state[f"{block}.pw.weight"] = conv(get(f, f"conv_pw_{i}", "kernel"))
            state.update(batch_norm(f, f"conv_pw_{i}_bn", f"{block}.pw_bn"))
        state["dense.weight"] = get(f, "dense_1", "kernel").t().contiguous()
        state["dense.bias"] = get(f, "dense_1", "bias")
    return state


@register_backbone(
    description="NIMA MobileNet trained on AVA (idealo); 1024-d features and a ready 1-10 aesthetic scorer",
    input_size=224, feature_dim=1024, mean=HALF, std=HALF, interpolation="nearest",
    weights=(
        WeightSource(filename="nima_mobilenet_aesthetic_ava.hdf5", reader=read_keras_hdf5),
        WeightSource(filename="weights_mobilenet_aesthetic_0.07.hdf5", url=NIMA_URL, sha256=NIMA_SHA256,
                     cache="weights_dir", reader=read_keras_hdf5),
    ),
    to_features=NimaFeatures, gradcam_layer="nima.blocks.12",
    # the last block of each resolution (112, 56, 28, 14, 7 px); the last is the pooled view's input
    stage_taps=(("nima.blocks.0", 64), ("nima.blocks.2", 128), ("nima.blocks.4", 256),
                ("nima.blocks.10", 512), ("nima.blocks.12", 1024)),
    # Keras resized the full decode nearest-neighbour; a draft decode moves scores by up to 0.5.
    draft_decode=False,
)
def nima_mobilenet() -> nn.Module:
    return NimaModel()


def load_nima(settings: "Settings", *, random_weights: bool = False, progress: bool = True) -> NimaModel:
    """The NIMA scorer in eval mode; ``.weights`` says where its weights came from, ``.transform``
    turns a PIL image into its input. Raises WeightsUnavailable (naming the file and folder)."""
    from workbench.backbones.registry import load_backbone

    loaded = load_backbone("nima_mobilenet", settings, random_weights=random_weights, progress=progress)
    model: NimaModel = loaded.model.nima
    model.weights = loaded.weights
    return model.eval()


def distribution_mean_std(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of score distributions ``p`` [N,10] over scores 1..10."""
    p = np.asarray(p, dtype=np.float64)
    mean = p @ SCORES
    var = p @ (SCORES**2) - mean**2
    return mean, np.sqrt(np.clip(var, 0.0, None))
