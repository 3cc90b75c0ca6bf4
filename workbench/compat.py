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
   matches torch, the real ops exist and this does nothing. The guard runs on
   the first import of torchvision (an import hook), not on import of this
   module, so commands that never touch a model never pay for importing torch.
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

import sys  # noqa: E402
import threading  # noqa: E402

TORCHVISION_OPS_STUBBED = False
_torchvision_lib = None  # must live as long as the process


def _declare_missing_torchvision_ops() -> None:
    global TORCHVISION_OPS_STUBBED, _torchvision_lib
    import torch

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


class _GuardBeforeTorchvision:  # a sys.meta_path finder (importlib.abc would cost 20 ms of imports)
    """Runs the guard the moment anything (timm, transformers, our code) first imports torchvision.

    Importing torch costs about a second, so the guard waits for the first import of
    torchvision instead of running when ``workbench`` is imported: ``--help`` and the
    data commands never load torch. It finds nothing itself; the normal finders then
    import torchvision, after the op schemas exist.
    """

    _lock = threading.Lock()

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            self.run()
        return None

    def run(self) -> None:
        with self._lock:
            if self in sys.meta_path:  # once; torch's own imports need not come back here
                sys.meta_path.remove(self)
                _declare_missing_torchvision_ops()


def guard_torchvision() -> None:
    """Apply the guard now (a no-op once done); after torchvision itself was imported it is too late."""
    for finder in list(sys.meta_path):
        if isinstance(finder, _GuardBeforeTorchvision):
            finder.run()


if "torchvision" in sys.modules:  # imported before us: too late to help it load, but declare what is missing
    _declare_missing_torchvision_ops()
elif not any(type(f).__name__ == "_GuardBeforeTorchvision" for f in sys.meta_path):
    sys.meta_path.insert(0, _GuardBeforeTorchvision())
