"""The NIMA network in PyTorch (see ``workbench.backbones.nima`` for the port's details).

Apart from ``nima`` because defining ``nn.Module`` classes imports PyTorch; the
registry imports ``nima`` at every start, and this module when NIMA is first built.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.backbones.registry import get_backbone, make_transform
from workbench.backbones.weights import WeightStatus

KERAS_BN_EPS = 1e-3
# (output channels, stride) of MobileNet v1's 13 depthwise-separable blocks
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

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


class NimaMeanScore(nn.Module):
    """NIMA's distribution reduced to its mean score [N] (what Grad-CAM differentiates)."""

    def __init__(self, nima: NimaModel):
        super().__init__()
        self.nima = nima

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins = torch.arange(1, 11, dtype=x.dtype, device=x.device)
        return self.nima(x) @ bins
