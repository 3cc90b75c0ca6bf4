"""Process-wide set-up that must happen before torchvision, timm or gradio load.

Every entry point (``gradio_app.py``, ``python -m workbench``, tests, benches)
imports this module first. Two things live here and nowhere else:

1. The torchvision guard. On machines where the torchvision wheel was built for
   a different torch (a CUDA torchvision next to a CPU torch), its compiled
   ``_C`` extension cannot load and ``import torchvision`` dies with
   ``operator torchvision::nms does not exist``. Declaring the two op schemas
   torchvision registers fake kernels for lets models and transforms import;
   only the compiled ops (nms, roi_align, torchvision.io decoding) stay
   unavailable, which is why images are decoded with Pillow. Where torchvision
   matches torch, the real ops exist and this does nothing.
2. Privacy defaults: a local tool does not phone home. Gradio analytics and
   Hugging Face telemetry are switched off unless the user set them.
"""
from __future__ import annotations

import os

for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402

TORCHVISION_OPS_STUBBED = False
_torchvision_lib = None  # must live as long as the process


def _declare_missing_torchvision_ops() -> None:
    global TORCHVISION_OPS_STUBBED, _torchvision_lib
    try:
        torch.ops.torchvision.nms
        return
    except (AttributeError, RuntimeError):
        pass
    _torchvision_lib = torch.library.Library("torchvision", "DEF")
    _torchvision_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision_lib.define(
        "qnms(Tensor dets, Tensor scores, float iou_threshold, float scale, int zero_point) -> Tensor"
    )
    TORCHVISION_OPS_STUBBED = True


_declare_missing_torchvision_ops()
