"""Image + text families: ``multimodal_concat`` (the baseline) and ``multimodal_moe``.

Both read X = [image features | text embedding (384) | has-text flag], built
by ``workbench.multimodal.text_block``; a photo without text has a zero
embedding and flag 0, so text is optional per photo.

``multimodal_moe`` follows AesFormer's mixture of modality experts: an image
expert, a text expert and a fusion expert over both, weighted by a gate that
sees a summary of each modality *and which are present*. Where a photo has
no text the text and fusion experts are masked out of the gate, so the score
comes from the image expert alone (never from a made-up text). Each expert
is also trained to predict the score on its own (an auxiliary loss), which
keeps every expert useful and the gate's choice meaningful. The gate's
average weights (how much the model leaned on text) are reported per run.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from torch import nn
from torch.nn import functional as F

from workbench.errors import BadInput
from workbench.events import NEVER_STOP, EpochEnd, StopFlag, drain
from workbench.models.heads import MLP, RIDGE_ALPHAS, torch_estimator
from workbench.models.torch_loop import LoopResult, fit_loop, seeded_generator
from workbench.multimodal import BLOCK_DIM

EXPERTS = ("image", "text", "fusion")


def split_inputs(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image [N, Di], text [N, 384], has_text [N]) from the concatenated X."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] <= BLOCK_DIM:
        raise BadInput(f"a multimodal family needs image features plus the {BLOCK_DIM}-column text block; "
                       f"got inputs of shape {X.shape}")
    return X[:, :-BLOCK_DIM], X[:, -BLOCK_DIM:-1], X[:, -1]


# ---------------------------------------------------------- concat
def build_multimodal_concat(regressor: str, alpha: float, C: float, *, seed: int, context: Any = None):
    if regressor == "svr":
        return TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), SVR(C=C)),
                                          transformer=StandardScaler())
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


# ------------------------------------------------------------- moe
GATE_START = 3.0  # initial gate logit of the starting expert (softmax weight about 0.9)


class ModalityMoE(nn.Module):
    """(image [N, Di], text [N, Dt], has_text [N]) -> (score [N], gate [N, 3], experts [N, 3]).

    Every expert is an MLP beside a linear path (its hidden path starting at zero), and each linear
    path starts as ridge on that expert's own input: image, text, image ⊕ text. The gate starts the
    same for every photo, leaning on one expert (``start_gate``), so the untrained mixture is a
    blend of three fitted ridges rather than one ridge shrunk by zeros; training (and the validation
    split) decides whether to move from there.
    """

    def __init__(self, image_dim: int, text_dim: int, hidden: int, dropout: float, gate_dim: int = 16):
        super().__init__()
        self.image = MLP(image_dim, hidden, 1, dropout, skip=True)
        self.text = MLP(text_dim, hidden, 1, dropout, skip=True)
        self.fusion = MLP(image_dim + text_dim, hidden, 1, dropout, skip=True)
        self.image_summary = nn.Linear(image_dim, gate_dim)
        self.text_summary = nn.Linear(text_dim, gate_dim)
        self.gate = nn.Sequential(nn.Linear(2 * gate_dim + 1, gate_dim), nn.GELU(), nn.Linear(gate_dim, len(EXPERTS)))
        with torch.no_grad():
            # the same start for every photo: random per-photo gate weights reshuffled ridge's ranking
            self.gate[-1].weight.zero_()
        self.start_gate("image")

    def start_gate(self, expert: str) -> None:
        """Lean the gate on ``expert`` (softmax weight about 0.9) for every photo that has its inputs."""
        with torch.no_grad():
            self.gate[-1].bias.zero_()
            self.gate[-1].bias[EXPERTS.index(expert)] = GATE_START

    def forward(self, image: torch.Tensor, text: torch.Tensor, has_text: torch.Tensor):
        present = has_text[:, None]
        text = text * present  # a missing text is exactly zero, whatever standardisation did
        experts = torch.cat([self.image(image), self.text(text), self.fusion(torch.cat([image, text], 1))], 1)
        logits = self.gate(torch.cat([self.image_summary(image), self.text_summary(text), present], 1))
        # without text, the text and fusion experts are out of the question: mask them before the softmax
        mask = torch.cat([torch.ones_like(present), present, present], 1)
        gate = torch.softmax(logits.masked_fill(mask == 0, float("-inf")), dim=1)
        return (gate * experts).sum(1), gate, experts

@torch_estimator
class ModalityMoERegressor(BaseEstimator, RegressorMixin):
    """AesFormer-style mixture of modality experts on [image | text | has_text] features."""

    def __init__(self, epochs: int = 80, learning_rate: float = 1e-3, batch_size: int = 32,
                 weight_decay: float = 0.05, dropout: float = 0.3, hidden: int = 128, aux_weight: float = 0.5,
                 patience: int = 15, seed: int = 42):
        self.epochs, self.learning_rate, self.batch_size = epochs, learning_rate, batch_size
        self.weight_decay, self.dropout, self.hidden, self.aux_weight = weight_decay, dropout, hidden, aux_weight
        self.patience, self.seed = patience, seed

    # -- inputs
    def _tensors(self, X) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, text, has = split_inputs(X)
        image = (image - self.image_mean_) / self.image_std_
        text = (text - self.text_mean_) / self.text_std_
        return torch.from_numpy(image.astype(np.float32)), torch.from_numpy(text.astype(np.float32)), \
            torch.from_numpy((has > 0.5).astype(np.float32))

    def _loss(self, module, batch, target):
        image, text, has = batch
        score, _, experts = module(image, text, has)
        loss = F.huber_loss(score, target)
        if self.aux_weight > 0:  # every expert learns the score alone; the text expert only where there is text
            aux = F.huber_loss(experts[:, 0], target)
            if has.sum() > 0:
                per = F.huber_loss(experts[:, 1:], target[:, None].expand(-1, 2), reduction="none").mean(1)
                aux = aux + (per * has).sum() / has.sum()
            loss = loss + self.aux_weight * aux
        return loss

    # -- fitting
    def fit(self, X, y, X_val=None, y_val=None):
        drain(self.fit_events(X, y, X_val, y_val))
        return self

    def fit_events(self, X, y, X_val=None, y_val=None, stop: StopFlag = NEVER_STOP) -> Iterator[EpochEnd]:
        image, text, has = split_inputs(X)
        y = np.asarray(y, dtype=np.float64)
        self.n_features_in_ = np.asarray(X).shape[1]
        self.image_mean_, self.image_std_ = image.mean(0), image.std(0) + 1e-6
        with_text = text[has > 0.5]
        # text statistics over the photos that have text (zeros of the others would skew them)
        self.text_mean_ = with_text.mean(0) if len(with_text) else np.zeros(text.shape[1], np.float32)
        self.text_std_ = (with_text.std(0) if len(with_text) > 1 else np.ones(text.shape[1], np.float32)) + 1e-6
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() + 1e-9)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = ModalityMoE(image.shape[1], text.shape[1], self.hidden, self.dropout)
        xt = self._tensors(X)
        yt = torch.from_numpy(((y - self.y_mean_) / self.y_std_).astype(np.float32))
        generator = seeded_generator(self.seed)

        def batches(epoch: int):
            order = torch.randperm(len(yt), generator=generator)
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                yield tuple(t[idx] for t in xt), yt[idx]

        evaluate, xv, yv = None, None, None
        if X_val is not None and len(X_val):
            xv = self._tensors(X_val)
            yv_true = np.asarray(y_val, dtype=np.float64)
            yv = torch.from_numpy(((yv_true - self.y_mean_) / self.y_std_).astype(np.float32))

            def evaluate(module):
                score = module(*xv)[0]
                return float(F.huber_loss(score, yv)), yv_true, self._scores(score)

        self._start_from_ridge(xt, yt.numpy(), xv, yv)
        optimizer = torch.optim.AdamW(self.module_.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        self.loop_ = LoopResult()
        yield from fit_loop(self.module_, optimizer, batches, self._loss, evaluate, epochs=self.epochs,
                            patience=self.patience, stop=stop, device=torch.device("cpu"), result=self.loop_,
                            seed=self.seed, start_counts=True)
        self.stopped_ = self.loop_.stopped
        if xv is not None and self.loop_.best_epoch == 0 and not self.stopped_:
            # No epoch beat the ridge start, so the model *is* the ridges: fit them again on the
            # training and validation photos together (nothing is chosen on validation any more).
            both = tuple(torch.cat([a, b]) for a, b in zip(xt, xv))
            self._fit_linear_paths(both, torch.cat([yt, yv]).numpy())
        self.run_report_ = self.gate_report(X)

    def _start_from_ridge(self, xt, targets: np.ndarray, xv=None, yv=None) -> None:
        """Each expert's linear path := ridge on its own standardised input (as ``head`` starts);
        the gate then leans on the expert whose ridge scores the validation photos with text best.

        Before this, only the image expert started from ridge and the text and fusion experts
        from zero: the untrained model was image ridge shrunk on every texted photo, and on
        SAVOIAS no epoch beat that start by the loop's margin, so text was never used (−0.009 SRCC).
        """
        with_text = self._fit_linear_paths(xt, targets)
        self.start_expert_ = "image"
        if xv is None or with_text.sum() < 2 or float(xv[2].sum()) < 1:
            self.module_.start_gate("image")
            return
        val_has = xv[2] > 0.5
        self.module_.eval()
        with torch.no_grad():
            experts = self.module_(*xv)[2][val_has]  # each expert alone on the validation photos with text
        losses = {name: float(F.huber_loss(experts[:, k], yv[val_has])) for k, name in enumerate(EXPERTS)}
        self.start_expert_ = min(losses, key=losses.get)
        self.module_.start_gate(self.start_expert_)

    def _fit_linear_paths(self, xt, targets: np.ndarray) -> np.ndarray:
        """Ridge (penalty by leave-one-out CV) per expert on its own rows; returns the has-text mask."""
        from sklearn.linear_model import RidgeCV

        image, text, has = (t.numpy() for t in xt)
        with_text = has > 0.5
        inputs = {"image": (image, np.ones(len(image), bool)), "text": (text, with_text),
                  "fusion": (np.concatenate([image, text], 1), with_text)}
        for name, (x, rows) in inputs.items():
            if rows.sum() < 2:
                continue  # no text to learn from: that expert stays at zero and the gate never picks it
            ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x[rows], targets[rows])
            expert = getattr(self.module_, name)
            with torch.no_grad():
                expert.linear.weight.copy_(torch.from_numpy(np.ravel(ridge.coef_)[None, :].astype(np.float32)))
                expert.linear.bias.fill_(float(np.ravel(ridge.intercept_)[0]))
        return with_text

    # -- predicting
    def _scores(self, score: torch.Tensor) -> np.ndarray:
        return (score * self.y_std_ + self.y_mean_).numpy().astype(np.float64)

    def _forward(self, X):
        self.module_.eval()
        with torch.no_grad():
            return self.module_(*self._tensors(X))

    def predict(self, X) -> np.ndarray:
        return self._scores(self._forward(X)[0])

    def gate_weights(self, X) -> np.ndarray:
        """[N, 3]: how much each photo's score leans on the image, text and fusion experts."""
        return self._forward(X)[1].numpy().astype(np.float64)

    def gate_report(self, X) -> dict[str, float]:
        """Average gate weights (over every photo, and over photos with text): goes into the run's metrics."""
        gate = self.gate_weights(X)
        has = split_inputs(X)[2] > 0.5
        report = {f"gate_{name}": float(gate[:, k].mean()) for k, name in enumerate(EXPERTS)}
        if has.any():
            report.update({f"gate_{name}_with_text": float(gate[has, k].mean()) for k, name in enumerate(EXPERTS)})
        return report

    # -- (de)serialisation: plain tensors + JSON, never pickle
    _ARRAYS = ("image_mean_", "image_std_", "text_mean_", "text_std_")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        for name in self._ARRAYS:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        return tensors

    def state_meta(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "params": self.get_params(), "n_features_in": self.n_features_in_,
                "y_mean": self.y_mean_, "y_std": self.y_std_, "run_report": getattr(self, "run_report_", {})}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], settings=None):
        model = cls(**meta["params"])
        model.n_features_in_ = int(meta["n_features_in"])
        model.y_mean_, model.y_std_ = float(meta["y_mean"]), float(meta["y_std"])
        model.run_report_ = dict(meta.get("run_report", {}))
        for name in cls._ARRAYS:
            setattr(model, name, tensors[name].numpy().astype(np.float32))
        model.module_ = ModalityMoE(len(model.image_mean_), len(model.text_mean_), model.hidden, model.dropout)
        model.module_.load_state_dict({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
        model.module_.eval()
        return model


def build_multimodal_moe(*, seed: int, context: Any = None, **params):
    return ModalityMoERegressor(**params, seed=seed)

