"""Networks trained end to end on pixels: the shared base of ``finetune`` and ``swin_moe``.

X is an array of image paths; y the scores. Images are decoded once (Pillow,
through ``workbench.images``), squashed to the network's input size like the
frozen backbones see them, and kept as uint8 in memory; augmentation works on
those tensors: random resized crops and horizontal flips, which do not change
what makes a photo good. Colour jitter changes exactly that, so it is off
unless asked for. The backbone learns with a smaller learning rate than the
head; the best validation checkpoint is kept; mixed precision on a GPU.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn
from torch.nn import functional as F

from workbench.events import NEVER_STOP, EpochEnd, StopFlag, drain
from workbench.models.declarations import AUGMENTATIONS  # noqa: F401  (declared where the families' options are)
from workbench.models.torch_loop import LoopResult, fit_loop, pick_device, seeded_generator


class PixelRegressor(nn.Module):
    """backbone (normalised [N,3,S,S] -> [N,D]) then head ([N,D] -> [N,out]).

    The backbone's BatchNorm layers stay in eval mode while training: their
    pretrained statistics are better than what batches of 8-16 photos give.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def train(self, mode: bool = True) -> "PixelRegressor":
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class _ScoreOutput(nn.Module):
    """Wraps a PixelRegressor so it returns scores [N] in the person's units (for Grad-CAM)."""

    def __init__(self, net: nn.Module, y_mean: float, y_std: float):
        super().__init__()
        self.net, self.y_mean, self.y_std = net, y_mean, y_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        out = out[0] if isinstance(out, tuple) else out
        return out[:, 0] * self.y_std + self.y_mean


class ImageRegressorBase(BaseEstimator, RegressorMixin):
    """Subclasses take every argument in ``__init__`` (scikit-learn's contract: ``clone`` rebuilds them)
    and implement ``_build_network``.

    ``settings`` is an argument but not a hyper-parameter: it says where backbone weights are and how
    large an image may be; it is not saved with a run (the loading side passes its own).
    """

    NOT_SAVED = ("settings",)

    # -- subclass hooks
    def _build_network(self, pretrained: bool) -> tuple[nn.Module, Any, dict]:
        """(PixelRegressor, transform spec (size, mean, std, interpolation), weights record)."""
        raise NotImplementedError

    def _extra_loss(self, net: nn.Module) -> torch.Tensor | float:
        return 0.0

    def _param_groups(self, net: PixelRegressor) -> list[dict]:
        backbone = [p for p in net.backbone.parameters() if p.requires_grad]
        groups = [{"params": list(net.head.parameters()), "lr": self.learning_rate}]
        if backbone:
            groups.append({"params": backbone, "lr": self.learning_rate * self.backbone_lr_factor})
        return groups

    # -- pixels
    def _image_size(self) -> int:
        return int(self.input_spec_[0])

    def _load_uint8(self, paths) -> torch.Tensor:
        """Decode and squash every image to S x S: uint8 [N, 3, S, S]."""
        from workbench.backbones.registry import RESAMPLE
        from workbench.images import load_image

        size = self._image_size()
        resample = RESAMPLE[self.input_spec_[3]]
        max_pixels = getattr(self.settings, "max_pixels", 200_000_000)
        out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
        for i, path in enumerate(paths):
            image = load_image(path, max_pixels=max_pixels, min_size=(size, size)).resize((size, size), resample)
            out[i] = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return out

    def _normalise(self, batch_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
        _, mean, std, _ = self.input_spec_
        x = batch_uint8.to(device).float().div_(255.0)
        mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
        return (x - mean_t) / std_t

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random resized crop (75-100 % of the area) and horizontal flip, per image, on [N,3,S,S] floats."""
        n, _, size, _ = x.shape
        if self.augment == "none":
            out = x
        else:
            flips = torch.rand(n, generator=generator) < 0.5
            out = torch.where(flips.view(n, 1, 1, 1).to(x.device), x.flip(dims=[3]), x)
            if self.augment == "crop_flip":
                crops = []
                for i in range(n):
                    scale = 0.75 + 0.25 * float(torch.rand(1, generator=generator))
                    side = max(8, int(round(size * math.sqrt(scale))))
                    top = int(torch.randint(0, size - side + 1, (1,), generator=generator))
                    left = int(torch.randint(0, size - side + 1, (1,), generator=generator))
                    patch = out[i:i + 1, :, top:top + side, left:left + side]
                    crops.append(F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False,
                                               antialias=True))
                out = torch.cat(crops)
        if self.color_jitter:  # off by default: colour is part of what a person judges
            factors = 1.0 + 0.2 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
            out = out * factors.to(x.device)
        return out

    # -- sklearn contract
    def fit(self, X, y, X_val=None, y_val=None):
        drain(self.fit_events(X, y, X_val, y_val))
        return self

    def _start_fit(self, y) -> torch.device:
        """Learn the target scaling from ``y`` and build a freshly seeded network; return the device."""
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() + 1e-9)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net_, self.input_spec_, self.weights_ = self._build_network(pretrained=True)
        return pick_device()

    def _target_tensor(self, y) -> torch.Tensor:
        """Scores [N] -> standardised float32 targets [N, 1] (the network learns z-scores)."""
        y = np.asarray(y, dtype=np.float64)
        return torch.from_numpy(((y - self.y_mean_) / self.y_std_).astype(np.float32))[:, None]

    def fit_events(self, X, y, X_val=None, y_val=None, stop: StopFlag = NEVER_STOP) -> Iterator[EpochEnd]:
        device = self._start_fit(y)
        self.net_.to(device)
        images = self._load_uint8(list(X))
        targets = self._target_tensor(y)
        generator = seeded_generator(self.seed)
        batch_size = self.batch_size

        def batches(epoch: int):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # BatchNorm cannot learn from a batch of one
                x = self._augment(self._normalise(images[idx], device), generator)
                yield x, targets[idx].to(device)

        evaluate = None
        if X_val is not None and len(X_val):
            val_images = self._load_uint8(list(X_val))
            y_val = np.asarray(y_val, dtype=np.float64)
            val_targets = self._target_tensor(y_val)

            def evaluate(net):
                out = self._forward_batches(val_images, device)
                loss = float(self._loss(out, val_targets))
                return loss, y_val, out[:, 0].numpy() * self.y_std_ + self.y_mean_

        optimizer = torch.optim.AdamW(self._param_groups(self.net_), weight_decay=self.weight_decay)
        self.loop_ = LoopResult()

        def step_loss(net, x, target):
            return self._loss(self._head_output(net, x), target) + self._extra_loss(net)

        yield from fit_loop(self.net_, optimizer, batches, step_loss, evaluate, epochs=self.epochs,
                            patience=self.patience, stop=stop, device=device, amp=self.amp, result=self.loop_,
                            seed=self.seed)
        self.net_.to("cpu").eval()
        self.stopped_ = self.loop_.stopped

    def _head_output(self, net, x):
        out = net(x)
        return out[0] if isinstance(out, tuple) else out

    def _loss(self, out, target):
        return F.huber_loss(out.float(), target, delta=1.0) if self.loss == "huber" else F.mse_loss(out.float(), target)

    def _forward_batches(self, images_uint8: torch.Tensor, device=None) -> torch.Tensor:
        device = device or next(self.net_.parameters()).device
        self.net_.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, len(images_uint8), max(self.batch_size, 16)):
                x = self._normalise(images_uint8[start:start + max(self.batch_size, 16)], device)
                outs.append(self._head_output(self.net_, x).float().cpu())
        return torch.cat(outs) if outs else torch.zeros((0, 1))

    def predict(self, X) -> np.ndarray:
        """Scores [N] for image paths X (decoded here; unreadable files raise ImageError)."""
        out = self._forward_batches(self._load_uint8(list(X)))
        return out[:, 0].numpy().astype(np.float64) * self.y_std_ + self.y_mean_

    def readable_inputs(self, paths, settings) -> tuple[np.ndarray, list[Path], dict[str, str]]:
        """(X of the readable paths, those paths, {path: reason} for the rest)."""
        from workbench.images import ImageError, check_image

        ok, errors = [], {}
        for path in paths:
            try:
                check_image(path, settings.max_pixels)
                ok.append(Path(path))
            except ImageError as exc:
                errors[str(path)] = str(exc)
        return np.array([str(p) for p in ok], dtype=object), ok, errors

    def gradcam_target(self):
        from workbench.backbones import ImageTransform

        size, mean, std, interpolation = self.input_spec_
        net = _ScoreOutput(self.net_, self.y_mean_, self.y_std_).eval()
        for p in net.parameters():
            p.requires_grad_(True)
        return net, self._gradcam_layer(), ImageTransform(size, mean, std, interpolation)

    def _gradcam_layer(self) -> nn.Module:
        raise NotImplementedError

    # -- (de)serialisation: safetensors + JSON, never pickle
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}

    def state_meta(self) -> dict[str, Any]:
        size, mean, std, interpolation = self.input_spec_
        params = {k: v for k, v in self.get_params().items() if k not in self.NOT_SAVED}
        return {"class": type(self).__name__, "params": params, "y_mean": self.y_mean_,
                "y_std": self.y_std_, "input_spec": [size, list(mean), list(std), interpolation],
                "weights": self.weights_}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], settings=None):
        model = cls(**meta["params"], settings=settings)
        model.y_mean_, model.y_std_ = float(meta["y_mean"]), float(meta["y_std"])
        model.weights_ = meta.get("weights", {})
        model.net_, _, _ = model._build_network(pretrained=False)  # the file holds every weight
        size, mean, std, interpolation = meta["input_spec"]
        model.input_spec_ = (int(size), tuple(mean), tuple(std), interpolation)
        model.net_.load_state_dict(tensors, strict=True)
        model.net_.eval()
        return model
