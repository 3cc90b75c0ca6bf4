"""The registry of model families.

A family is a name, a builder that turns hyper-parameters into an estimator
following scikit-learn's contract, the hyper-parameters themselves (so the CLI
builds its options and the UI its controls from one list), and capabilities
the training loop, the run store and the UI ask about. Adding a family is one
decorated builder function::

    @register_family("ridge", "Ridge regression on frozen features.",
                     params=[Param("alpha", float, 10.0, "L2 strength", low=1e-4, high=1e5, log=True)])
    def build_ridge(alpha: float, *, seed: int, context: FitContext):
        from sklearn.linear_model import Ridge  # imported when a model is built, not when the app starts
        ...

A family whose module must import PyTorch (to subclass ``nn.Module``) is declared
with ``declare_family(name, ..., build="package.module:function")`` in
``workbench.models.declarations`` instead: the declaration is all the CLI and the
UI read, and the builder's module is imported when a model is first built.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from workbench.errors import BadInput, NotFound
from workbench.events import NEVER_STOP, EpochEnd, StopFlag


class UnknownFamily(NotFound):
    """A model family name that is not registered; the message lists the names."""


class BadParameter(BadInput):
    """A hyper-parameter value outside its type, range or choices."""


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: what the CLI turns into ``--name`` and the UI into a control.

    ``low``/``high`` bound numbers (inclusive); ``log`` suggests a log-scale
    slider; ``choices`` lists the allowed strings.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    log: bool = False
    advanced: bool = False  # hidden behind an "advanced" fold in the UI

    def coerce(self, value: Any) -> Any:
        """Validate and convert ``value`` (a string from the CLI is fine)."""
        try:
            if self.type is bool:
                if isinstance(value, str):
                    value = value.strip().lower() in {"1", "true", "yes", "on"}
                value = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif self.type is float:
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise BadParameter(f"{self.name} must be a {self.type.__name__}, got {value!r}") from None
        if self.type in (int, float):
            if value != value:  # NaN
                raise BadParameter(f"{self.name} must be a number, got NaN")
            if self.low is not None and value < self.low:
                raise BadParameter(f"{self.name} must be at least {self.low}, got {value}")
            if self.high is not None and value > self.high:
                raise BadParameter(f"{self.name} must be at most {self.high}, got {value}")
        if self.choices is not None and value not in self.choices:
            raise BadParameter(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help,
            "low": self.low, "high": self.high, "choices": list(self.choices) if self.choices else None,
            "log": self.log, "advanced": self.advanced,
        }


@dataclass(frozen=True)
class Capabilities:
    """What a family needs and offers.

    needs_features: trains on cached frozen-backbone features (else on image paths).
    iterative: streams an EpochEnd per epoch / boosting stage / batch of trees, and
        uses the validation split while training (early stopping, live curves).
    distribution: predicts a 10-bin score distribution besides the score.
    explainable: has a differentiable path from pixels to score (Grad-CAM).
    needs_backbone_weights: pretrained weights of the backbone must exist to train
        (else the person must opt in to random weights, loudly).
    torch: the fitted model is saved as safetensors (else skops).
    needs_text: X also carries each photo's text block (embedding + has-text flag,
        workbench.multimodal.text_block); a photo may have none.
    """

    needs_features: bool = True
    iterative: bool = False
    distribution: bool = False
    explainable: bool = False
    needs_backbone_weights: bool = True
    torch: bool = False
    needs_text: bool = False


@dataclass
class FitContext:
    """Facts a builder may need that are not hyper-parameters."""

    settings: Any = None
    backbone: str | None = None
    random_weights: bool = False
    score_min: float = 0.0
    score_max: float = 100.0
    n_train: int | None = None  # images the estimator will be fitted on (for size-dependent defaults)


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    build: Callable[..., Any] | str  # the builder, or "package.module:function" imported on first use
    params: tuple[Param, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    # Backbones whose features are concatenated, given the one the person chose
    # and the settings (most families: just that one; ``auto`` picks its own set).
    feature_backbones: Callable[[str, Any], tuple[str, ...]] = lambda chosen, settings=None: (chosen,)
    # Optional ``stream(estimator, X, y, X_val, y_val, stop) -> Iterator[EpochEnd]``
    # for scikit-learn estimators used as they are (GBR stages, RF tree batches).
    stream: Callable[..., Iterator[EpochEnd]] | None = None
    default_backbone: str | None = None  # e.g. swin_moe trains on swin_tiny
    # Networks a family builds from its own config, with no pretrained weights
    # anywhere (name -> description); only trained with random weights, knowingly.
    private_backbones: dict[str, str] = field(default_factory=dict)
    # Optional ``(chosen, settings) -> str | None``: what the person should know about the inputs
    # this family will use (e.g. auto falling back to one backbone), shown before training.
    input_note: Callable[[str, Any], str | None] | None = None
    # Cap on BLAS/OpenMP threads while fitting (None: the libraries' own choice).
    max_threads: int | None = None
    # The feature view this family always uses (``auto`` chooses its own); None: the person's choice.
    feature_view: str | None = None

    def view_for(self, requested: str | None, backbones: tuple[str, ...] = ()) -> str:
        """The feature view a fit uses, given the one asked for (None: "pooled").

        A family with its own view falls back to "pooled" when one of its
        ``backbones`` declares no stage taps (a ViT, say), rather than failing.
        """
        if self.feature_view is None:
            return requested or "pooled"
        from workbench.backbones import get_backbone

        if self.feature_view == "multilevel" and not all(get_backbone(b).stage_taps for b in backbones):
            return "pooled"
        return self.feature_view

    def own_view(self, chosen: str, settings: Any = None) -> str | None:
        """The view this family takes by itself on backbone ``chosen`` (with the backbones it adds to
        it), for the person to see; None when the view is the person's choice."""
        if self.feature_view is None:
            return None
        return self.view_for(None, self.feature_backbones(chosen, settings))

    @property
    def builder(self) -> Callable[..., Any]:
        """The builder function (imports its module the first time, for a declared family)."""
        return resolve(self.build)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise BadParameter(f"{name} is not a hyper-parameter of {self.name} "
                           f"(it has: {', '.join(p.name for p in self.params) or 'none'})")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``params``, each validated; unknown names are an error."""
        values = self.defaults()
        for name, value in (params or {}).items():
            values[name] = self.param(name).coerce(value)
        return values

    def make(self, params: dict[str, Any] | None = None, *, seed: int = 42,
             context: FitContext | None = None) -> Any:
        """A fresh, unfitted estimator with these hyper-parameters."""
        return self.builder(**self.resolve_params(params), seed=seed, context=context or FitContext())

    def to_dict(self) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "name": self.name, "description": self.description,
            "params": [p.to_dict() for p in self.params],
            "capabilities": {k: getattr(caps, k) for k in caps.__dataclass_fields__},
            "default_backbone": self.default_backbone,
        }


FAMILIES: dict[str, Family] = {}


def resolve(ref: Any) -> Any:
    """``"package.module:attribute"`` -> that attribute (importing the module once); anything else as it is."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def declare_family(name: str, description: str, *, build: Callable[..., Any] | str,
                   params: list[Param] | tuple[Param, ...] = (), capabilities: Capabilities | None = None,
                   **extra: Any) -> Family:
    """Register a family: ``build(**params, seed, context) -> estimator``, or its "module:function" path."""
    if name in FAMILIES:  # as register_backbone: a second family must not silently replace the first
        raise ValueError(f"model family {name} registered twice")
    FAMILIES[name] = Family(name, description, build, tuple(params), capabilities or Capabilities(), **extra)
    return FAMILIES[name]


def register_family(name: str, description: str, *, params: list[Param] | tuple[Param, ...] = (),
                    capabilities: Capabilities | None = None, **extra: Any):
    """Decorator registering ``build(**params, seed, context) -> estimator`` as a family."""

    def decorate(build: Callable[..., Any]):
        declare_family(name, description, build=build, params=params, capabilities=capabilities, **extra)
        return build

    return decorate


def get_family(name: str) -> Family:
    # every family is registered: importing this module first ran workbench/models/__init__.py
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamily(f"unknown model family {name!r}; choose one of: {', '.join(FAMILIES)}") from None


def fit_streaming(family: Family, estimator: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None,
                  stop: StopFlag = NEVER_STOP) -> Iterator[EpochEnd]:
    """Fit ``estimator`` yielding EpochEnd events where the family can stream them.

    Workbench estimators stream through their own ``fit_events``; scikit-learn
    estimators through the family's ``stream`` function; others fit in one go.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=family.max_threads):
        if hasattr(estimator, "fit_events"):
            yield from estimator.fit_events(X, y, X_val, y_val, stop=stop)
        elif family.stream is not None and X_val is not None:
            yield from family.stream(estimator, X, y, X_val, y_val, stop)
        else:
            estimator.fit(X, y)
