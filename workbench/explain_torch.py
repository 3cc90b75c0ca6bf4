"""Fitted scikit-learn predictors re-expressed as torch modules, so Grad-CAM's gradients flow through them.

Apart from ``workbench.explain`` because defining ``nn.Module`` classes imports
PyTorch: an explanation loads it when one is asked for, not when the app starts.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


# --------------------------------------------- fitted predictors in torch
class _Affine(nn.Module):
    """x * scale + shift, feature by feature (a fitted StandardScaler, or its inverse on targets)."""

    def __init__(self, scale: np.ndarray, shift: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float64)))
        self.register_buffer("shift", torch.as_tensor(np.asarray(shift, dtype=np.float64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class _Linear(nn.Module):
    """[N, D] -> [N]: x @ w + b."""

    def __init__(self, weight: np.ndarray, bias: float):
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(np.asarray(weight, dtype=np.float64).reshape(-1)))
        self.bias = float(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class _Kernel(nn.Module):
    """[N, D] -> [N]: sum_i a_i k(x, s_i) + b, for scikit-learn's linear, poly, rbf and sigmoid kernels."""

    def __init__(self, support: np.ndarray, dual: np.ndarray, bias: float, kernel: str, gamma: float,
                 coef0: float, degree: int):
        super().__init__()
        self.register_buffer("support", torch.as_tensor(np.asarray(support, dtype=np.float64)))
        self.register_buffer("dual", torch.as_tensor(np.asarray(dual, dtype=np.float64).reshape(-1)))
        self.bias, self.kernel, self.gamma, self.coef0, self.degree = float(bias), kernel, gamma, coef0, degree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dot = x @ self.support.T
        if self.kernel == "linear":
            k = dot
        elif self.kernel == "poly":
            k = (self.gamma * dot + self.coef0) ** self.degree
        elif self.kernel == "sigmoid":
            k = torch.tanh(self.gamma * dot + self.coef0)
        else:  # rbf
            squared = (x * x).sum(1, keepdim=True) - 2 * dot + (self.support * self.support).sum(1)[None, :]
            k = torch.exp(-self.gamma * squared.clamp_min(0))
        return k @ self.dual + self.bias


class _Chain(nn.Module):
    def __init__(self, *steps: nn.Module):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x


class _Average(nn.Module):
    """The weighted average of several predictors (scikit-learn's VotingRegressor)."""

    def __init__(self, members: list[nn.Module], weights: np.ndarray):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights = [float(w) for w in np.asarray(weights, dtype=np.float64) / np.sum(weights)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * m(x) for w, m in zip(self.weights, self.members))


class _AsFloat32(nn.Module):
    """Computes in float64 (kernel sums lose digits in float32) and hands float32 scores back."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.double()).float()


def _express(model: Any) -> nn.Module | None:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import VotingRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model._base import LinearModel
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    if isinstance(model, Pipeline):
        steps = [_express(step) for _, step in model.steps]
        return None if any(s is None for s in steps) else _Chain(*steps)
    if isinstance(model, StandardScaler):  # as a step: (x - mean) / scale
        scale = model.scale_ if model.with_std else np.ones_like(model.mean_)
        mean = model.mean_ if model.with_mean else np.zeros_like(scale)
        return _Affine(1.0 / scale, -mean / scale)
    if isinstance(model, LinearModel) and np.ndim(model.coef_) <= 2 and np.size(model.coef_) == model.n_features_in_:
        return _Linear(model.coef_, float(np.ravel(model.intercept_)[0]))
    if isinstance(model, SVR):
        return _Kernel(model.support_vectors_, model.dual_coef_, float(model.intercept_[0]), model.kernel,
                       float(model._gamma), float(model.coef0), int(model.degree))
    if isinstance(model, KernelRidge) and isinstance(model.kernel, str) and model.kernel in ("linear", "rbf", "poly",
                                                                                          "sigmoid"):
        gamma = model.gamma if model.gamma is not None else 1.0 / model.X_fit_.shape[1]
        return _Kernel(model.X_fit_, model.dual_coef_, 0.0, model.kernel, float(gamma), float(model.coef0),
                       int(model.degree))
    if isinstance(model, TransformedTargetRegressor):
        inner = _express(model.regressor_)
        target = model.transformer_
        if inner is None or not isinstance(target, StandardScaler):
            return None
        scale = float(np.ravel(target.scale_)[0]) if target.with_std else 1.0
        mean = float(np.ravel(target.mean_)[0]) if target.with_mean else 0.0
        return _Chain(inner, _Affine(np.array(scale), np.array(mean)))
    if isinstance(model, VotingRegressor):
        members = [_express(m) for m in model.estimators_]
        if any(m is None for m in members):
            return None
        weights = model.weights if model.weights is not None else np.ones(len(members))
        return _Average(members, np.asarray(weights, dtype=np.float64))
    return None


def torch_predictor(model: Any) -> nn.Module | None:
    """A fitted scikit-learn linear or kernel predictor on features as a torch module, [N, D] -> scores [N].

    Handles pipelines of StandardScaler and linear models (ridge, lasso, ...),
    SVR and kernel ridge (linear, poly, rbf, sigmoid kernels), targets
    standardised by TransformedTargetRegressor, and VotingRegressor averages of
    those (``auto``). Returns None for anything else (trees, stacking).
    """
    expressed = _express(model)
    return None if expressed is None else _AsFloat32(expressed).eval()
