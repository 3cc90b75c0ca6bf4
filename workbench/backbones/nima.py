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

The network itself is in ``nima_net`` (it imports PyTorch); this module is what
the registry reads when the app starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.backbones.registry import HALF, register_backbone
from workbench.backbones.weights import StateDict, WeightSource

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from workbench.backbones.nima_net import NimaModel
    from workbench.config import Settings

SCORES = np.arange(1, 11, dtype=np.float64)

NIMA_URL = ("https://raw.githubusercontent.com/idealo/image-quality-assessment/master/"
            "models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5")
# SHA-256 of the known-good file (13,174,216 bytes): a download must match it.
NIMA_SHA256 = "e563ad91b3d47410e45f7238f07ab8f6abd1bd0c4b18a4b0af9c681a21a91cb2"


def read_keras_hdf5(path: Path) -> StateDict:
    """Read the Keras MobileNet HDF5 into NimaModel's state dict (torch layouts)."""
    import h5py
    import torch

    from workbench.backbones.nima_net import MOBILENET_V1_BLOCKS

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


def nima_features(nima: "NimaModel") -> "nn.Module":
    """NIMA as a backbone: the 1024-d pooled features (``nima_net.NimaFeatures``)."""
    from workbench.backbones.nima_net import NimaFeatures

    return NimaFeatures(nima)


@register_backbone(
    description="NIMA MobileNet trained on AVA (idealo); 1024-d features and a ready 1-10 aesthetic scorer",
    input_size=224, feature_dim=1024, mean=HALF, std=HALF, interpolation="nearest",
    weights=(
        WeightSource(filename="nima_mobilenet_aesthetic_ava.hdf5", reader=read_keras_hdf5),
        WeightSource(filename="weights_mobilenet_aesthetic_0.07.hdf5", url=NIMA_URL, sha256=NIMA_SHA256,
                     cache="weights_dir", reader=read_keras_hdf5),
    ),
    to_features=nima_features, gradcam_layer="nima.blocks.12",
    # the last block of each resolution (112, 56, 28, 14, 7 px); the last is the pooled view's input
    stage_taps=(("nima.blocks.0", 64), ("nima.blocks.2", 128), ("nima.blocks.4", 256),
                ("nima.blocks.10", 512), ("nima.blocks.12", 1024)),
    # Keras resized the full decode nearest-neighbour; a draft decode moves scores by up to 0.5.
    draft_decode=False,
)
def nima_mobilenet() -> nn.Module:
    from workbench.backbones.nima_net import NimaModel  # the network imports torch: on first use

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


def __getattr__(name: str):
    # the network's classes live in workbench.backbones.nima_net (they import torch); importing them
    # from here still works, and loads torch only then
    if name in ("DepthwiseSeparable", "NimaModel", "NimaFeatures", "NimaMeanScore", "KERAS_BN_EPS", "MOBILENET_V1_BLOCKS"):
        import workbench.backbones.nima_net as nima_net

        return getattr(nima_net, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
