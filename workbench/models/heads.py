"""Small PyTorch heads on cached frozen features: ``head`` (an MLP) and ``nima_head``.

Both are scikit-learn style estimators (hyper-parameters are constructor
arguments; ``fit(X [N, D], y [N])``, ``predict(X) -> [N]``) that additionally
stream EpochEnd events through ``fit_events``. Features and scores are
standardised inside the estimator, so learning rates mean the same on any
backbone and any score range. The fitted state is plain tensors plus JSON
(``state_tensors``/``state_meta``), saved as safetensors by the run store.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn
from torch.nn import functional as F

from workbench.events import NEVER_STOP, EpochEnd, StopFlag, drain
from workbench.models.registry import Capabilities, Param, register_family
from workbench.models.torch_loop import LoopResult, fit_loop, seeded_generator

N_BINS = 10
TORCH_ESTIMATORS: dict[str, type] = {}  # class name -> class, for loading runs without importing by name


def torch_estimator(cls):
    TORCH_ESTIMATORS[cls.__name__] = cls
    return cls


# ------------------------------------------------------------- modules
class MLP(nn.Module):
    """[N, D] standardised features -> [N, out]."""

    def __init__(self, in_dim: int, hidden: int, out: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": lambda p, t: F.huber_loss(p, t, delta=1.0)}


def emd_loss(p: torch.Tensor, q: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Earth mover's distance between distributions [N, K] over ordered bins (NIMA, Talebi & Milanfar 2018)."""
    cdf_diff = torch.cumsum(p, dim=1) - torch.cumsum(q, dim=1)
    return torch.mean(torch.mean(torch.abs(cdf_diff) ** r, dim=1) ** (1.0 / r))


def score_to_distribution(scores_1_10: np.ndarray, sigma: float) -> np.ndarray:
    """A single score on 1..10 becomes a narrow distribution over the 10 bins [N, 10] whose mean is the score.

    A discretised normal of width ``sigma`` bins, its centre shifted (by
    bisection) so that the truncation at bins 1 and 10 does not pull the mean
    of extreme scores towards the middle.
    """
    target = np.clip(np.asarray(scores_1_10, dtype=np.float64), 1.0, float(N_BINS))
    bins = np.arange(1, N_BINS + 1, dtype=np.float64)

    def dist(centre):
        logits = -0.5 * ((bins[None, :] - centre[:, None]) / sigma) ** 2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    low, high = target - 3 * N_BINS, target + 3 * N_BINS
    for _ in range(60):  # the mean grows monotonically with the centre
        mid = (low + high) / 2
        too_high = dist(mid) @ bins > target
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    return dist((low + high) / 2).astype(np.float32)


# ---------------------------------------------------------- estimators
class FeatureHeadRegressor(BaseEstimator, RegressorMixin):
    """Shared machinery: standardisation, batching, the loop, (de)serialisation."""

    out_dim = 1

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _scores(self, out: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    # -- fitting
    def fit(self, X, y, X_val=None, y_val=None):
        drain(self.fit_events(X, y, X_val, y_val))
        return self

    def fit_events(self, X, y, X_val=None, y_val=None, stop: StopFlag = NEVER_STOP) -> Iterator[EpochEnd]:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.x_mean_ = X.mean(axis=0)
        self.x_std_ = X.std(axis=0) + 1e-6
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() + 1e-9)
        self.y_range_ = (float(y.min()), float(y.max()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = MLP(X.shape[1], self.hidden, self.out_dim, self.dropout)
        xt = torch.from_numpy(self._standardise(X))
        yt = torch.from_numpy(self._targets(y))
        generator = seeded_generator(self.seed)

        def batches(epoch: int):
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                yield xt[idx], yt[idx]

        evaluate = None
        if X_val is not None and len(X_val):
            xv = torch.from_numpy(self._standardise(np.asarray(X_val, dtype=np.float32)))
            yv_true = np.asarray(y_val, dtype=np.float64)
            yv = torch.from_numpy(self._targets(yv_true))

            def evaluate(module):
                out = module(xv)
                return float(self._loss(out, yv)), yv_true, self._scores(out)

        optimizer = torch.optim.AdamW(self.module_.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        self.loop_ = LoopResult()
        yield from fit_loop(self.module_, optimizer, batches, lambda m, xb, yb: self._loss(m(xb), yb),
                            evaluate, epochs=self.epochs, patience=self.patience, stop=stop,
                            device=torch.device("cpu"), result=self.loop_)
        self.stopped_ = self.loop_.stopped

    # -- predicting
    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_mean_) / self.x_std_).astype(np.float32)

    def _forward(self, X) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        self.module_.eval()
        with torch.no_grad():
            return self.module_(torch.from_numpy(self._standardise(X)))

    def predict(self, X) -> np.ndarray:
        """Scores [N] in the units of the training scores."""
        return self._scores(self._forward(X))

    def torch_head(self) -> nn.Module:
        """A module mapping raw (unstandardised) features [N, D] to scores [N], for Grad-CAM."""
        return _StandardisedHead(self)

    # -- (de)serialisation: plain tensors + JSON, never pickle
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        tensors["x_mean"] = torch.from_numpy(np.ascontiguousarray(self.x_mean_, dtype=np.float32))
        tensors["x_std"] = torch.from_numpy(np.ascontiguousarray(self.x_std_, dtype=np.float32))
        return tensors

    def state_meta(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "params": self.get_params(), "n_features_in": self.n_features_in_,
                "y_mean": self.y_mean_, "y_std": self.y_std_, "y_range": list(self.y_range_)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], settings=None):
        model = cls(**meta["params"])
        model.n_features_in_ = int(meta["n_features_in"])
        model.y_mean_, model.y_std_ = float(meta["y_mean"]), float(meta["y_std"])
        model.y_range_ = tuple(meta["y_range"])
        model.x_mean_ = tensors["x_mean"].numpy().astype(np.float32)
        model.x_std_ = tensors["x_std"].numpy().astype(np.float32)
        model.module_ = MLP(model.n_features_in_, model.hidden, model.out_dim, model.dropout)
        model.module_.load_state_dict({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
        model.module_.eval()
        return model


class _StandardisedHead(nn.Module):
    def __init__(self, est: FeatureHeadRegressor):
        super().__init__()
        self.est = est
        self.register_buffer("mean", torch.from_numpy(np.asarray(est.x_mean_, dtype=np.float32)))
        self.register_buffer("std", torch.from_numpy(np.asarray(est.x_std_, dtype=np.float32)))
        self.module = est.module_

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.est._scores_tensor(self.module((features - self.mean) / self.std))


@torch_estimator
class MLPHeadRegressor(FeatureHeadRegressor):
    """A one-hidden-layer MLP regressing the standardised score from features [N, D]."""

    def __init__(self, epochs: int = 80, learning_rate: float = 1e-3, batch_size: int = 32,
                 weight_decay: float = 0.05, dropout: float = 0.3, hidden: int = 256, loss: str = "huber",
                 patience: int = 15, seed: int = 42):
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.weight_decay, self.dropout, self.hidden, self.loss = weight_decay, dropout, hidden, loss
        self.patience, self.seed = patience, seed

    def _targets(self, y):
        return ((y - self.y_mean_) / self.y_std_).astype(np.float32)[:, None]

    def _loss(self, out, target):
        return LOSSES[self.loss](out, target)

    def _scores_tensor(self, out):
        return out[:, 0] * self.y_std_ + self.y_mean_

    def _scores(self, out):
        return self._scores_tensor(out).numpy().astype(np.float64)


@torch_estimator
class NimaHeadRegressor(FeatureHeadRegressor):
    """NIMA-style: a 10-bin score distribution trained with the EMD loss.

    Scores are mapped linearly onto 1..10 using the training range; a score
    becomes a discretised normal of width ``sigma`` bins. Predicts the
    distribution's mean (in score units) and, via ``predict_distribution``,
    the distribution itself [N, 10] and its spread.
    """

    out_dim = N_BINS

    def __init__(self, epochs: int = 80, learning_rate: float = 1e-3, batch_size: int = 32,
                 weight_decay: float = 0.05, dropout: float = 0.3, hidden: int = 256, sigma: float = 1.0,
                 patience: int = 15, seed: int = 42):
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.weight_decay, self.dropout, self.hidden, self.sigma = weight_decay, dropout, hidden, sigma
        self.patience, self.seed = patience, seed

    def _to_bins(self, y):
        low, high = self.y_range_
        return 1.0 + 9.0 * (np.asarray(y, dtype=np.float64) - low) / max(high - low, 1e-9)

    def _targets(self, y):
        return score_to_distribution(self._to_bins(y), self.sigma)

    def _loss(self, out, target):
        return emd_loss(torch.softmax(out, dim=1), target)

    def _scores_tensor(self, out):
        p = torch.softmax(out, dim=1)
        mean_bins = p @ torch.arange(1, N_BINS + 1, dtype=p.dtype, device=p.device)
        low, high = self.y_range_
        return low + (mean_bins - 1.0) * (high - low) / 9.0

    def _scores(self, out):
        return self._scores_tensor(out).numpy().astype(np.float64)

    def predict_distribution(self, X) -> np.ndarray:
        """Probabilities [N, 10] over bins 1..10 (bin 1 = the lowest training score)."""
        return torch.softmax(self._forward(X), dim=1).numpy().astype(np.float64)

    def predict_spread(self, X) -> np.ndarray:
        """Standard deviation [N] of the predicted distribution, in score units."""
        p = self.predict_distribution(X)
        bins = np.arange(1, N_BINS + 1)
        mean = p @ bins
        std_bins = np.sqrt(np.maximum(p @ bins ** 2 - mean ** 2, 0.0))
        low, high = self.y_range_
        return std_bins * (high - low) / 9.0


# ------------------------------------------------------------ families
def _common_params(epochs: int = 80) -> list[Param]:
    return [
        Param("epochs", int, epochs, "passes over the training images", low=1, high=5000),
        Param("learning_rate", float, 1e-3, "AdamW step size", low=1e-6, high=1.0, log=True),
        Param("batch_size", int, 32, "images per step", low=1, high=4096),
        Param("weight_decay", float, 0.05, "AdamW weight decay", low=0.0, high=10.0),
        Param("dropout", float, 0.3, "dropout before the output layer (half of it on the inputs)", low=0.0, high=0.95),
        Param("hidden", int, 256, "hidden units", low=1, high=8192, advanced=True),
        Param("patience", int, 15, "stop after this many epochs without a better validation loss (0: never)",
              low=0, high=1000, advanced=True),
    ]


HEAD_CAPS = Capabilities(needs_features=True, iterative=True, explainable=True, torch=True)


@register_family("head", "A small MLP in PyTorch on frozen features (MSE, MAE or Huber loss), with live loss curves.",
                 params=_common_params() + [Param("loss", str, "huber", "training loss", choices=tuple(LOSSES))],
                 capabilities=HEAD_CAPS)
def build_head(*, seed: int, context: Any = None, **params):
    return MLPHeadRegressor(**params, seed=seed)


@register_family("nima_head", "NIMA's way: a 10-bin score distribution trained with the EMD loss; "
                 "predicts the mean and the spread.",
                 params=_common_params() + [Param("sigma", float, 1.0, "width (in bins) of the distribution a "
                                                  "single score becomes", low=0.1, high=5.0)],
                 capabilities=Capabilities(needs_features=True, iterative=True, distribution=True,
                                           explainable=True, torch=True))
def build_nima_head(*, seed: int, context: Any = None, **params):
    return NimaHeadRegressor(**params, seed=seed)
