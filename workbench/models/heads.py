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
from workbench.models.declarations import HEAD_START_MARGIN, NIMA_HEAD_MEMBERS, RIDGE_ALPHA
from workbench.models.torch_loop import LoopResult, fit_loop, seeded_generator

N_BINS = 10
TORCH_ESTIMATORS: dict[str, type] = {}  # class name -> class, for loading runs without importing by name


def torch_estimator(cls):
    TORCH_ESTIMATORS[cls.__name__] = cls
    return cls


# ------------------------------------------------------------- modules
class MLP(nn.Module):
    """[N, D] standardised features -> [N, out].

    With ``skip``, a linear path runs beside the hidden layer and the hidden
    layer's output starts at zero: the network starts as the linear model it is
    given (ridge) and learns only what it can add to it.
    """

    def __init__(self, in_dim: int, hidden: int, out: int, dropout: float, skip: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, out))
        self.linear = nn.Linear(in_dim, out) if skip else None
        if skip:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if self.linear is None else out + self.linear(x)


class Ensemble(nn.Module):
    """Members trained apart (own seed, own early stopping), outputs averaged (for nima_head the
    logits: its distribution is the members' normalised geometric mean)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


# On standardised features: below 100, leave-one-out picked near-interpolating fits on sets smaller
# than the feature count, which generalised worse than the workbench ridge's 1000.
_FITTED = ("module_", "x_mean_", "x_std_", "y_mean_", "y_std_", "y_range_", "hidden_", "ridge_alpha_",
           "residual_scale_")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(3, 5, 5))
# Shares of the trained hidden path tried on the validation part (0: ridge alone). Shrinking a
# network fitted on a few hundred photos towards the linear model is the cheapest guard against its
# variance; one number chosen on held-out photos cannot overfit much.
RESIDUAL_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


def hidden_units(hidden: int, n_train: int) -> int:
    """``hidden`` if set, else capacity that shrinks with the set: n/8, between 16 and 256."""
    return hidden if hidden > 0 else int(min(256, max(16, n_train // 8)))


def _plcc_loss(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """1 - Pearson correlation over the batch: rewards getting the order and spacing right, not the level."""
    p, t = p[:, 0] - p[:, 0].mean(), t[:, 0] - t[:, 0].mean()
    return 1.0 - (p * t).sum() / (p.norm() * t.norm() + 1e-8)


LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": lambda p, t: F.huber_loss(p, t, delta=1.0),
          "huber_plcc": lambda p, t: F.huber_loss(p, t, delta=1.0) + _plcc_loss(p, t)}


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
    """Shared machinery: standardisation, batching, the loop, (de)serialisation.

    With ``ridge_start`` (the default) the head is ridge plus what a hidden layer can add: the
    linear path is the ridge family's model (same standardisation, same alpha (``ridge_alpha``), closed form) and
    stays fixed; only the hidden path trains, on what ridge gets wrong. On the validation part the
    best epoch is kept (epoch 0 is ridge alone), then the hidden path's share (``RESIDUAL_SCALES``,
    0 = ridge). So where the hidden layer does not help the head is ridge, to the last digit.
    """

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
        """Train on (X, y), early-stopping on (X_val, y_val); one EpochEnd per epoch.

        With ``refit`` and a validation part, the network is then trained again from
        the start on training and validation images together, for the number of
        epochs that validation chose (no events: the curves shown are the first fit's).
        A network on a few hundred photos cannot spare 15% of them.

        With ``members`` > 1, that many networks (seeds seed, seed+1, ...) are fitted one after
        the other and their outputs averaged; the events shown are the first member's.
        """
        if self.members > 1:
            yield from self._fit_members(X, y, X_val, y_val, stop)
            return
        yield from self._fit_once(X, y, X_val, y_val, self.epochs, stop)
        has_val = X_val is not None and len(X_val) > 0
        if self.refit and has_val and not self.stopped_:
            first = self.loop_
            kept = {k: getattr(self, k) for k in _FITTED if hasattr(self, k)}
            both_X = np.concatenate([np.asarray(X, dtype=np.float32), np.asarray(X_val, dtype=np.float32)])
            both_y = np.concatenate([np.asarray(y, dtype=np.float64), np.asarray(y_val, dtype=np.float64)])
            share = self.residual_scale_
            for _ in self._fit_once(both_X, both_y, None, None, first.best_epoch, stop):
                pass
            self.residual_scale_ = share  # chosen on the validation part; the refit has none
            self._scale_residual(share)
            if self.stopped_:  # a Stop during the refit: keep the first fit's best epoch, not half a refit
                for k, v in kept.items():
                    setattr(self, k, v)
            self.refit_epochs_ = first.best_epoch
            self.loop_, first.stopped = first, self.stopped_  # the curves shown are the first fit's

    def _fit_members(self, X, y, X_val, y_val, stop: StopFlag) -> Iterator[EpochEnd]:
        fitted = []
        for k in range(self.members):
            member = type(self)(**{**self.get_params(), "members": 1, "seed": self.seed + k})
            events = member.fit_events(X, y, X_val, y_val, stop=stop)
            if k == 0:
                yield from events
            else:
                drain(events)
            fitted.append(member)
            if member.stopped_:
                break
        first = fitted[0]
        for key in _FITTED + ("n_features_in_", "loop_", "stopped_", "refit_epochs_"):
            if hasattr(first, key):
                setattr(self, key, getattr(first, key))
        self.stopped_ = any(m.stopped_ for m in fitted)
        self.module_ = Ensemble([m.module_ for m in fitted]) if len(fitted) > 1 else first.module_
        self.module_.eval()

    def _fit_once(self, X, y, X_val, y_val, epochs: int, stop: StopFlag) -> Iterator[EpochEnd]:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.x_mean_ = X.mean(axis=0)
        self.x_std_ = X.std(axis=0) + 1e-6
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() + 1e-9)
        self.y_range_ = (float(y.min()), float(y.max()))
        self.hidden_ = hidden_units(self.hidden, len(X))
        xt = torch.from_numpy(self._standardise(X))
        yt = torch.from_numpy(self._targets(y))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = MLP(X.shape[1], self.hidden_, self.out_dim, self.dropout, skip=self.ridge_start)
        if self.ridge_start:
            self._start_from_ridge(xt.numpy(), yt.numpy())
        self.residual_scale_ = 1.0
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

        # With ridge_start the linear path stays ridge (frozen): the hidden path learns only the residual,
        # so whatever training does, the linear part is the ridge family's model to the last digit.
        trained = self.module_.net if self.ridge_start else self.module_
        if self.ridge_start:
            self.module_.linear.requires_grad_(False)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.loop_ = LoopResult()
        self.stopped_ = False
        if epochs > 0:
            yield from fit_loop(self.module_, optimizer, batches, lambda m, xb, yb: self._loss(m(xb), yb),
                                evaluate, epochs=epochs, patience=self.patience, stop=stop,
                                device=torch.device("cpu"), result=self.loop_, seed=self.seed,
                                start_counts=self.ridge_start, start_margin=self.start_margin)
        self.module_.eval()
        self.stopped_ = self.loop_.stopped
        if self.ridge_start and evaluate is not None and self.loop_.best_epoch > 0:
            self.residual_scale_ = self._choose_residual_scale(evaluate)
            self._scale_residual(self.residual_scale_)

    def _choose_residual_scale(self, evaluate) -> float:
        """The share of the hidden path (``RESIDUAL_SCALES``) with the lowest validation loss; 0 is ridge."""
        last = self.module_.net[-1]
        weight, bias = last.weight.detach().clone(), last.bias.detach().clone()
        losses = {}
        with torch.no_grad():
            for share in RESIDUAL_SCALES:
                last.weight.copy_(weight * share)
                last.bias.copy_(bias * share)
                losses[share] = evaluate(self.module_)[0]
            last.weight.copy_(weight)
            last.bias.copy_(bias)
        return float(min(RESIDUAL_SCALES, key=lambda share: (losses[share], share)))

    def _scale_residual(self, share: float) -> None:
        """Multiply the hidden path's output by ``share`` (folded into its last layer: the saved format is unchanged)."""
        if share != 1.0:
            with torch.no_grad():
                self.module_.net[-1].weight.mul_(share)
                self.module_.net[-1].bias.mul_(share)

    def _start_from_ridge(self, xs: np.ndarray, targets: np.ndarray) -> None:
        """Set the linear path to the ridge family's model: ridge with penalty ``ridge_alpha`` on the standardised
        features, in closed form (the targets are an affine map of the scores, so the ranking is ridge's)."""
        from sklearn.linear_model import Ridge

        ridge = Ridge(alpha=self.ridge_alpha).fit(xs, self._linear_targets(targets))
        self.ridge_alpha_ = float(self.ridge_alpha)
        weight, bias = self._linear_layer(np.ravel(ridge.coef_), float(np.ravel(ridge.intercept_)[0]))
        with torch.no_grad():
            self.module_.linear.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.module_.linear.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

    def _linear_targets(self, targets: np.ndarray) -> np.ndarray:
        """The 1-d target the linear path's ridge is fitted to, from the training targets."""
        return targets[:, 0]

    def _linear_layer(self, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, np.ndarray]:
        """Ridge's (coef [D], intercept) as the linear path's (weight [out, D], bias [out])."""
        return coef[None, :], np.array([intercept])

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
                "y_mean": self.y_mean_, "y_std": self.y_std_, "y_range": list(self.y_range_),
                "hidden": self.hidden_, "members": len(getattr(self.module_, "members", [None]))}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], settings=None):
        model = cls(**meta["params"])
        model.n_features_in_ = int(meta["n_features_in"])
        model.y_mean_, model.y_std_ = float(meta["y_mean"]), float(meta["y_std"])
        model.y_range_ = tuple(meta["y_range"])
        model.x_mean_ = tensors["x_mean"].numpy().astype(np.float32)
        model.x_std_ = tensors["x_std"].numpy().astype(np.float32)
        model.hidden_ = int(meta.get("hidden", model.hidden))
        build = lambda: MLP(model.n_features_in_, model.hidden_, model.out_dim, model.dropout,  # noqa: E731
                            skip=bool(meta["params"].get("ridge_start", False)))
        members = int(meta.get("members", 1))
        model.module_ = Ensemble([build() for _ in range(members)]) if members > 1 else build()
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

    def __init__(self, epochs: int = 80, learning_rate: float = 3e-4, batch_size: int = 32,
                 weight_decay: float = 0.05, dropout: float = 0.3, hidden: int = 0, loss: str = "huber",
                 patience: int = 15, ridge_start: bool = True, refit: bool = True, members: int = 1,
                 start_margin: float = HEAD_START_MARGIN, ridge_alpha: float = RIDGE_ALPHA, seed: int = 42):
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.weight_decay, self.dropout, self.hidden, self.loss = weight_decay, dropout, hidden, loss
        self.patience, self.ridge_start, self.refit, self.seed = patience, ridge_start, refit, seed
        self.members, self.start_margin, self.ridge_alpha = members, start_margin, ridge_alpha

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

    def __init__(self, epochs: int = 80, learning_rate: float = 3e-4, batch_size: int = 32,
                 weight_decay: float = 0.05, dropout: float = 0.3, hidden: int = 0, sigma: float = 1.0,
                 patience: int = 15, ridge_start: bool = True, refit: bool = True, members: int = NIMA_HEAD_MEMBERS,
                 start_margin: float = HEAD_START_MARGIN, ridge_alpha: float = RIDGE_ALPHA, seed: int = 42):
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.weight_decay, self.dropout, self.hidden, self.sigma = weight_decay, dropout, hidden, sigma
        self.patience, self.ridge_start, self.refit, self.seed = patience, ridge_start, refit, seed
        self.members, self.start_margin, self.ridge_alpha = members, start_margin, ridge_alpha

    def _to_bins(self, y):
        low, high = self.y_range_
        return 1.0 + 9.0 * (np.asarray(y, dtype=np.float64) - low) / max(high - low, 1e-9)

    def _targets(self, y):
        return score_to_distribution(self._to_bins(y), self.sigma)

    def _linear_targets(self, targets):
        return targets @ np.arange(1, N_BINS + 1)  # each training distribution's mean, in bins

    def _linear_layer(self, coef, intercept):
        # Logits k*m/sigma^2 - k^2/(2 sigma^2) are a normal over bins centred on m = coef.x + intercept
        # (the m^2 term is the same for every bin and cancels in the softmax): linear in x, and the
        # predicted mean rises with m, so the head starts ranking photos exactly as ridge does.
        k = np.arange(1, N_BINS + 1, dtype=np.float64)
        s2 = self.sigma ** 2
        return np.outer(k / s2, coef), k * intercept / s2 - k ** 2 / (2 * s2)

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


# ------------------------------------------------------------ families (declared in workbench.models.declarations)
def build_head(*, seed: int, context: Any = None, **params):
    return MLPHeadRegressor(**params, seed=seed)


def build_nima_head(*, seed: int, context: Any = None, **params):
    return NimaHeadRegressor(**params, seed=seed)
