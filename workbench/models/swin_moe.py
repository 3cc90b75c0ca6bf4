"""``swin_moe``: a Swin Transformer with a Mixture-of-Experts regression head.

The head has N expert MLPs and a softmax gating network; each image is routed
to its top-k experts (their gate weights renormalised), and a load-balancing
loss (Switch Transformer: N * sum_i f_i * P_i, f_i the share of routings to
expert i, P_i its mean gate probability) keeps every expert in use. The
backbone is frozen (its features computed once, fast) or fine-tuned with a
smaller learning rate.

``swin_micro`` is a miniature Swin configuration (64 px, one block per stage)
with no pretrained weights anywhere: it exists so the whole path can be tested
in seconds on a CPU, and is only built with random weights, knowingly.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from workbench.backbones.registry import IMAGENET_MEAN, IMAGENET_STD
from workbench.events import NEVER_STOP, EpochEnd, StopFlag
from workbench.models.declarations import SWIN_MICRO
from workbench.models.finetune import backbone_network
from workbench.models.heads import torch_estimator
from workbench.models.image_models import ImageRegressorBase, PixelRegressor
from workbench.models.torch_loop import LoopResult, fit_loop, seeded_generator


class MoEHead(nn.Module):
    """[N, D] -> [N, 1]: top-k routed mixture of expert MLPs; ``balance_loss`` is set by every forward."""

    def __init__(self, in_dim: int, n_experts: int, top_k: int, hidden: int, dropout: float):
        super().__init__()
        self.top_k = min(top_k, n_experts)
        self.gate = nn.Linear(in_dim, n_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
            for _ in range(n_experts))
        self.balance_loss = torch.zeros(())

    def routing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gate probabilities [N, E], routing weights [N, E] with only the top-k non-zero)."""
        probs = torch.softmax(self.gate(x), dim=1)
        top_values, top_index = probs.topk(self.top_k, dim=1)
        weights = torch.zeros_like(probs).scatter(1, top_index, top_values / top_values.sum(1, keepdim=True))
        return probs, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs, weights = self.routing(x)
        expert_out = torch.cat([expert(x) for expert in self.experts], dim=1)  # [N, E]
        n_experts = probs.shape[1]
        routed_share = (weights > 0).float().mean(0) / self.top_k
        self.balance_loss = n_experts * torch.sum(routed_share * probs.mean(0))
        return (weights * expert_out).sum(dim=1, keepdim=True)


def swin_micro() -> nn.Module:
    import timm

    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=64, window_size=4,
                             embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), num_classes=0)


@torch_estimator
class SwinMoERegressor(ImageRegressorBase):
    def __init__(self, backbone: str = "swin_tiny", epochs: int = 15, learning_rate: float = 1e-3,
                 backbone_lr_factor: float = 0.05, freeze_backbone: bool = True, n_experts: int = 4,
                 top_k: int = 2, hidden: int = 128, balance_weight: float = 0.01, batch_size: int = 16,
                 weight_decay: float = 1e-2, dropout: float = 0.2, augment: str = "crop_flip",
                 color_jitter: bool = False, patience: int = 5, loss: str = "huber", amp: bool = True,
                 random_weights: bool = False, seed: int = 42, settings: Any = None):
        self.backbone, self.epochs, self.learning_rate = backbone, epochs, learning_rate
        self.backbone_lr_factor, self.freeze_backbone = backbone_lr_factor, freeze_backbone
        self.n_experts, self.top_k, self.hidden, self.balance_weight = n_experts, top_k, hidden, balance_weight
        self.batch_size, self.weight_decay, self.dropout = batch_size, weight_decay, dropout
        self.augment, self.color_jitter, self.patience, self.loss, self.amp = augment, color_jitter, patience, loss, amp
        self.random_weights, self.seed, self.settings = random_weights, seed, settings

    def _build_network(self, pretrained: bool):
        if self.backbone == SWIN_MICRO:
            model, dim, record = swin_micro(), 128, {}
            if pretrained:
                record = {SWIN_MICRO: {"source": "random", "weights_id": "random",
                                       "detail": "miniature test configuration, random initialisation"}}
            spec = (64, IMAGENET_MEAN, IMAGENET_STD, "bicubic")
            self.gradcam_path_ = "layers.3"
        else:
            model, bspec, record = backbone_network(self.backbone, self.settings, pretrained=pretrained,
                                                    random_weights=self.random_weights and pretrained)
            dim = bspec.feature_dim
            spec = (bspec.input_size, bspec.mean, bspec.std, bspec.interpolation)
            self.gradcam_path_ = bspec.gradcam_layer
        head = MoEHead(dim, self.n_experts, self.top_k, self.hidden, self.dropout)
        return PixelRegressor(model, head), spec, record

    def _extra_loss(self, net):
        return self.balance_weight * net.head.balance_loss

    def _gradcam_layer(self) -> nn.Module:
        import operator

        return operator.attrgetter(self.gradcam_path_)(self.net_.backbone)

    def fit_events(self, X, y, X_val=None, y_val=None, stop: StopFlag = NEVER_STOP) -> Iterator[EpochEnd]:
        if not self.freeze_backbone:
            yield from super().fit_events(X, y, X_val, y_val, stop=stop)
            return
        # Frozen: the backbone sees every image once; only the MoE head trains, on those features.
        device = self._start_fit(y)
        for p in self.net_.backbone.parameters():
            p.requires_grad_(False)
        self.net_.to(device).eval()
        features = self._features(list(X), device)
        targets = self._target_tensor(y).to(device)
        generator = seeded_generator(self.seed)
        head = self.net_.head

        def batches(epoch: int):
            order = torch.randperm(len(features), generator=generator)
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                yield features[idx], targets[idx]

        evaluate = None
        if X_val is not None and len(X_val):
            val_features = self._features(list(X_val), device)
            y_val = np.asarray(y_val, dtype=np.float64)
            val_targets = self._target_tensor(y_val)

            def evaluate(module):
                out = module(val_features).float().cpu()
                return float(self._loss(out, val_targets)), y_val, out[:, 0].numpy() * self.y_std_ + self.y_mean_

        optimizer = torch.optim.AdamW(head.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.loop_ = LoopResult()
        yield from fit_loop(head, optimizer, batches,
                            lambda m, x, t: self._loss(m(x), t) + self.balance_weight * m.balance_loss,
                            evaluate, epochs=self.epochs, patience=self.patience, stop=stop, device=device,
                            result=self.loop_, seed=self.seed)
        self.net_.to("cpu").eval()
        self.stopped_ = self.loop_.stopped

    def _features(self, paths, device) -> torch.Tensor:
        images = self._load_uint8(paths)
        outs = []
        with torch.no_grad():
            for start in range(0, len(images), 32):
                outs.append(self.net_.backbone(self._normalise(images[start:start + 32], device)).float())
        return torch.cat(outs)

    def expert_usage(self, X) -> np.ndarray:
        """Share of images routed to each expert [E] (a collapsed gate shows as one expert near 1)."""
        features = self._features(list(X), torch.device("cpu"))
        with torch.no_grad():
            _, weights = self.net_.head.routing(features)
        return ((weights > 0).float().mean(0) / self.net_.head.top_k).numpy()


def build_swin_moe(*, seed: int, context: Any = None, **params):
    return SwinMoERegressor(backbone=context.backbone or "swin_tiny", random_weights=bool(context.random_weights),
                            seed=seed, settings=context.settings, **params)
