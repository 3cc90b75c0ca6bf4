"""The torch heads are ridge (the ridge family's model, fixed) plus a hidden path that learns the
residual and is kept only as far as it helps on validation photos, so they do not lose to ridge.
Real features: efficientnet_lite0 (package weights) on the package-photo brightness set."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from training_fixtures import make_brightness_set, settings_for

from workbench import compat  # noqa: F401
from workbench.events import drain
from workbench.features import feature_matrix
from workbench.models import get_family
from workbench.models.heads import hidden_units
from workbench.training import compare, labelled_set


@pytest.fixture(scope="module")
def brightness(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    data = make_brightness_set(photos, root / "data", n=60)
    return settings_for(data, root / "runs", root / "cache", root / "weights")


@pytest.fixture(scope="module")
def features(brightness):
    data = labelled_set(brightness)
    return drain(feature_matrix(data.paths, ("efficientnet_lite0",), brightness)).X, data.scores


def _ridge_family(X, y):
    return get_family("ridge").make({}, seed=0).fit(X, y)


@pytest.mark.parametrize("family", ["head", "nima_head"])
def test_an_untrained_head_ranks_photos_exactly_as_ridge(features, family):
    X, y = features
    head = get_family(family).make({"epochs": 1}, seed=0)
    drain(head._fit_once(X[:45], y[:45], None, None, 0, None))  # zero epochs: the start itself
    expected = _ridge_family(X[:45], y[:45]).predict(X[45:])
    assert spearmanr(head.predict(X[45:]), expected)[0] == pytest.approx(1.0, abs=1e-9)
    if family == "head":  # same scores, not only the same order: the linear path is the ridge family's model
        np.testing.assert_allclose(head.predict(X[45:]), expected, rtol=1e-4)


@pytest.mark.parametrize("family", ["head", "nima_head"])
def test_training_leaves_the_ridge_path_alone_and_never_ends_worse_on_validation(features, family):
    X, y = features
    head = get_family(family).make({"epochs": 15, "patience": 0, "start_margin": 0.0, "refit": False, "members": 1},
                                   seed=0)  # one network: its own paths are looked at below
    head.fit(X[:40], y[:40], X[40:52], y[40:52])
    target = torch.from_numpy(head._targets(y[40:52]))
    kept = float(head._loss(head._forward(X[40:52]), target))
    with torch.no_grad():  # the hidden path off: what is left must be the ridge family's model
        head.module_.net[-1].weight.zero_()
        head.module_.net[-1].bias.zero_()
    linear_only = float(head._loss(head._forward(X[40:52]), target))
    assert head.residual_scale_ in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert kept <= linear_only + 1e-6  # the hidden path is kept only in the share that helped on validation
    expected = _ridge_family(X[:40], y[:40]).predict(X[52:])
    assert spearmanr(head.predict(X[52:]), expected)[0] == pytest.approx(1.0, abs=1e-9)


def test_head_capacity_shrinks_with_the_set():
    assert [hidden_units(0, n) for n in (40, 400, 4000)] == [16, 50, 256]
    assert hidden_units(32, 4000) == 32  # a chosen size is kept


def test_heads_do_not_lose_to_ridge_on_the_same_folds(brightness):
    # ungrouped: this set is crops of six photos, which group into a few look-alike clusters, and then a
    # head's 15% validation part is one or two source photos (measured: head 0.67 vs ridge 0.82 grouped)
    report = drain(compare(["ridge", "head", "nima_head"], brightness, folds=4, seed=2, grouped=False))
    srcc = {r.model: r.srcc for r in report.results}
    assert srcc["head"] >= srcc["ridge"] - 0.02 and srcc["nima_head"] >= srcc["ridge"] - 0.02, srcc


def test_the_refit_uses_every_image_for_the_chosen_epochs(features):
    X, y = features
    head = get_family("head").make({"epochs": 5, "patience": 0}, seed=0)
    head.fit(X[:40], y[:40], X[40:50], y[40:50])
    assert head.refit_epochs_ == head.loop_.best_epoch and len(head.loop_.history) == 5
    np.testing.assert_allclose(head.x_mean_, X[:50].mean(0), rtol=1e-5)  # standardised on all 50


@pytest.mark.parametrize("family", ["head", "nima_head"])
def test_members_average_their_seeds_and_survive_saving(features, family):
    X, y = features
    params = {"epochs": 4, "patience": 0, "members": 3, "start_margin": 0.0}
    ensemble = get_family(family).make(params, seed=5).fit(X[:40], y[:40], X[40:50], y[40:50])
    singles = [get_family(family).make({**params, "members": 1}, seed=5 + k).fit(X[:40], y[:40], X[40:50], y[40:50])
               for k in range(3)]
    assert len({tuple(np.round(s.predict(X[50:]), 6)) for s in singles}) == 3  # three different networks
    if family == "head":  # outputs are scores: the ensemble predicts their mean
        np.testing.assert_allclose(ensemble.predict(X[50:]), np.mean([s.predict(X[50:]) for s in singles], 0),
                                   rtol=1e-5)
    loaded = type(ensemble).from_state(ensemble.state_tensors(), ensemble.state_meta())
    np.testing.assert_allclose(loaded.predict(X[50:]), ensemble.predict(X[50:]), rtol=1e-6)


def test_plcc_loss_rewards_order_not_level():
    import torch

    from workbench.models.heads import LOSSES

    t = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    shifted = t * 2 + 5  # same order and spacing, another level and scale: only the Huber part minds
    assert float(LOSSES["huber_plcc"](shifted, t) - LOSSES["huber"](shifted, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(LOSSES["huber_plcc"](-t, t) - LOSSES["huber"](-t, t)) == pytest.approx(2.0, abs=1e-6)
