"""Model families keep scikit-learn's estimator contract (ARCHITECTURE.md, "Models follow scikit-learn's contract").

scikit-learn's own checks run where they apply: on the sklearn compositions we configure (fully), on the
feature heads (the checks of the contract itself: parameters, clone, fit not touching them; not the
input-validation checks, which the workbench does before a model sees data), and on the image families
(construction only: they read image paths, not arrays). The hyper-parameter defaults the UI and CLI show
must be the constructors' own.
"""
from __future__ import annotations

import inspect
import re
import warnings

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from workbench.config import load_settings
from workbench.models import FAMILIES, FitContext, get_family
from workbench.models.finetune import FinetuneRegressor
from workbench.models.heads import MLPHeadRegressor, NimaHeadRegressor
from workbench.models.swin_moe import SwinMoERegressor

ESTIMATOR_OF = {"head": MLPHeadRegressor, "nima_head": NimaHeadRegressor, "finetune": FinetuneRegressor,
                "swin_moe": SwinMoERegressor}
# what makes an estimator an estimator: clone, get/set_params, fit leaving the parameters alone
CONTRACT_CHECKS = ("check_no_attributes_set_in_init", "check_parameters_default_constructible",
                   "check_get_params_invariance", "check_set_params", "check_estimators_overwrite_params",
                   "check_dont_overwrite_parameters", "check_estimator_repr", "check_estimator_cloneable",
                   "check_fit_score_takes_y", "check_estimators_dtypes", "check_regressor_multioutput")


@pytest.mark.parametrize("name", ["svr", "hgb", "auto"])  # ridge, rf, gbr, stacking: see the note below
def test_sklearn_families_pass_scikit_learns_checks(name):
    # ridge is a bare Pipeline (sklearn does not check Pipeline itself: fitting fits its steps in place);
    # rf and gbr are sklearn's own estimators unchanged, and their checks take half a minute each.
    family = get_family(name)
    fewer = {"hgb": {"max_iter": 30}}.get(name, {})  # 300 boosting rounds per check made hgb's checks 43 s
    estimator = family.make(family.resolve_params(fewer), seed=0, context=FitContext(settings=load_settings()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(estimator)


@pytest.mark.parametrize("cls", [MLPHeadRegressor, NimaHeadRegressor])
def test_feature_heads_keep_the_estimator_contract(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls(epochs=2, patience=0), on_fail=None)
    status = {r["check_name"]: r["status"] for r in results}
    ran = [name for name in CONTRACT_CHECKS if name in status]
    assert len(ran) >= 8, sorted(status)
    assert {name: status[name] for name in ran if status[name] != "passed"} == {}


@pytest.mark.parametrize("cls", [FinetuneRegressor, SwinMoERegressor])
def test_image_families_survive_clone_with_their_settings(cls):
    settings = load_settings()
    estimator = cls(epochs=3, settings=settings)
    copy = clone(estimator)
    assert copy.settings == settings and copy.epochs == 3  # set after construction, it used to be lost
    for check in (check_no_attributes_set_in_init, check_get_params_invariance, check_set_params):
        check(cls.__name__, estimator)
    check_parameters_default_constructible(cls.__name__, cls())


@pytest.mark.parametrize("family", sorted(ESTIMATOR_OF))
def test_shown_defaults_are_the_constructors_defaults(family):
    signature = inspect.signature(ESTIMATOR_OF[family])
    shown = {p.name: p.default for p in FAMILIES[family].params}
    built = {name: signature.parameters[name].default for name in shown}
    assert shown == built


def test_a_family_name_cannot_be_registered_twice():
    from workbench.models import register_family

    before = dict(FAMILIES)
    with pytest.raises(ValueError, match="ridge registered twice"):
        register_family("ridge", "an impostor")(lambda **params: None)
    assert FAMILIES == before


@pytest.mark.parametrize("family", [f for f in FAMILIES.values() if any(p.name == "loss" for p in f.params)],
                         ids=lambda f: f.name)
def test_a_family_description_names_every_loss_it_offers(family):
    """`train head --help` said "(MSE, MAE or Huber loss)" while --loss also offered huber_plcc."""
    (loss,) = [p for p in family.params if p.name == "loss"]
    words = set(re.findall(r"[a-z_]+", family.description.lower()))
    named = [c for c in loss.choices if c in words]
    assert not named or named == list(loss.choices), family.description  # names none (finetune) or them all
