"""``auto``: the strongest recipe measured on real data, offered as the default choice.

Multi-level features (every stage's output, pooled: colour, texture and layout as
well as objects; MLSP, Hosu et al. 2019) of two backbones that see different
things are concatenated: NIMA's MobileNet trained on AVA (what photographers
rate) and the chosen ImageNet backbone (what is in the picture). On that, an
ensemble averages a ridge whose penalty is tuned by efficient leave-one-out CV
(RidgeCV: no folds, so no order can leak in) and an RBF SVR on standardised
targets. Measured on SAVOIAS (1,218 photos, 5-fold CV, seed 42, content-keyed
folds; ``bench/compare_bench.py``):

==========================================  ======  ======
features (efficientnet_lite0 chosen)        ridge   auto
==========================================  ======  ======
lite0, last layer (pooled)                  0.787   0.795
lite0, multilevel                           0.848   0.855
NIMA + lite0, pooled (the previous auto)    0.826   0.834
NIMA + lite0, multilevel (auto now)         0.866   0.870
==========================================  ======  ======

(SRCC; ridge here is RidgeCV.) SVR C in 1..10 and its share 0.5..0.7 moved SRCC
by under 0.002; per-stage reweighting did not help. When NIMA's weights cannot
be found, auto uses the chosen backbone alone (the weights notice says so).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from workbench.models.registry import Capabilities, Param, register_family

NIMA = "nima_mobilenet"
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(1, 5, 9))  # 10 .. 100000: SAVOIAS's optimum lies inside


def auto_backbones(chosen: str, settings: Any = None) -> tuple[str, ...]:
    """NIMA's AVA features plus the chosen backbone's, when NIMA's weights can be had."""
    if chosen == NIMA:
        return (NIMA,)
    if settings is not None:
        from workbench.backbones import weight_status

        if weight_status(NIMA, settings).source == "unavailable":
            return (chosen,)
    return (NIMA, chosen)


def auto_input_note(chosen: str, settings: Any = None) -> str | None:
    if chosen != NIMA and NIMA not in auto_backbones(chosen, settings):
        from workbench.backbones import get_backbone
        from workbench.backbones.weights import other_names, primary_source

        spec = get_backbone(NIMA)
        primary = primary_source(spec).filename  # the file Predict's message names too
        others = other_names(spec, primary)
        return (f"auto: NIMA's weights are not available, so it uses {chosen} features alone (place {primary}"
                f"{f' (or {others})' if others else ''} in the weights folder for the stronger two-backbone recipe)")
    return None


AUTO_PARAMS = [
    Param("svr_C", float, 3.0, "SVR regularisation (inverse)", low=1e-3, high=1e4, log=True),
    Param("svr_weight", float, 0.5, "share of the SVR in the average (the rest: ridge)", low=0.0, high=1.0),
]


@register_family("auto", "The best recipe found on real photo sets: multi-level NIMA (AVA) + ImageNet "
                 "features, an ensemble of a tuned ridge and an SVR. The default.",
                 params=AUTO_PARAMS, capabilities=Capabilities(needs_features=True),
                 feature_backbones=auto_backbones, input_note=auto_input_note, feature_view="multilevel")
def build_auto(svr_C: float, svr_weight: float, *, seed: int, context: Any = None):
    # scikit-learn (and scipy) load when a model is built, not when the app lists the families
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import VotingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    svr = TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), SVR(C=svr_C, epsilon=0.1)),
                                     transformer=StandardScaler())
    if svr_weight <= 0:
        return ridge
    if svr_weight >= 1:
        return svr
    return VotingRegressor([("ridge", ridge), ("svr", svr)], weights=[1.0 - svr_weight, svr_weight])
