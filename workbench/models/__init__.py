"""Model families: one registry, from which the CLI builds its options and the UI its controls.

API summary::

    from workbench.models import FAMILIES, get_family, Param, Capabilities
    FAMILIES: dict[str, Family]            every family, in display order (``auto`` first: the default)
    family = get_family("head")            raises UnknownFamily with the list of names
    family.params -> tuple[Param]          Param(name, type, default, help, low, high, choices, log, advanced)
    family.capabilities                    needs_features, iterative, distribution, explainable,
                                           needs_backbone_weights, torch, needs_text
                                           (needs_text: X = image features + the text block of
                                           workbench.multimodal: multimodal_concat, multimodal_moe)
    family.default_backbone                None: the person's chosen backbone (settings.default_backbone)
    family.builder                         the builder (a declared family's module is imported on first use)
    family.resolve_params({"epochs": "5"}) defaults overlaid, validated (raises BadParameter)
    family.make(params, seed=42, context=FitContext(settings=...)) -> unfitted estimator
                                           (scikit-learn contract: fit(X, y), predict(X) -> [N])
    family_table() -> list[dict]           every family as JSON (name, description, params, capabilities)
    torch_estimators() -> {name: class}    PyTorch estimator classes, for loading saved runs (imports torch)

Estimators on features take X [N, D] float32; image families (finetune,
swin_moe) take X = array of image paths. Iterative ones stream EpochEnd
events via ``fit_streaming(family, estimator, X, y, X_val, y_val, stop)``.
"""
from __future__ import annotations

from workbench.models.registry import (
    FAMILIES,
    BadParameter,
    Capabilities,
    Family,
    FitContext,
    Param,
    UnknownFamily,
    fit_streaming,
    get_family,
    register_family,
)

# Families register on import; this order is the order people see (``auto`` first: the default choice).
# isort: off
from workbench.models import auto as _auto  # noqa: F401
from workbench.models import sklearn_families as _sklearn  # noqa: F401
from workbench.models import declarations as _declarations  # noqa: F401  (head .. multimodal_moe, torch-free)
# isort: on

DEFAULT_FAMILY = "auto"


def torch_estimators() -> dict[str, type]:
    """Class name -> class of every PyTorch estimator, for loading saved runs.

    Resolving each torch family's builder imports its module, whose classes
    register themselves (``workbench.models.heads.torch_estimator``).
    """
    for family in FAMILIES.values():
        if family.capabilities.torch:
            family.builder  # noqa: B018  (imported for its registrations)
    from workbench.models.heads import TORCH_ESTIMATORS

    return TORCH_ESTIMATORS


def __getattr__(name: str):
    # ``from workbench.models import TORCH_ESTIMATORS`` still works; it imports torch, so only when asked for
    if name == "TORCH_ESTIMATORS":
        return torch_estimators()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def family_table() -> list[dict]:
    return [family.to_dict() for family in FAMILIES.values()]


__all__ = ["FAMILIES", "BadParameter", "Capabilities", "Family", "FitContext", "Param", "UnknownFamily",
           "fit_streaming", "get_family", "register_family", "TORCH_ESTIMATORS", "torch_estimators", "DEFAULT_FAMILY", "family_table"]
