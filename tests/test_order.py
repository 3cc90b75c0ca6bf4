"""The order photos are listed in must never change a result.

A folder whose names start with the score is listed sorted by score. Before
this was fixed, stacking's unshuffled inner KFold gave each inner fold one band
of scores, and a real set went from SRCC 0.68 to -0.38. Here the same real
photos (the package-photo brightness set, efficientnet_lite0 features from the
package weights) are stored twice: once named by score, once under random
numbers, and every feature family must measure the same on both.
"""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr
from training_fixtures import make_brightness_set, settings_for

from workbench import compat  # noqa: F401
from workbench.events import drain
from workbench.models import get_family
from workbench.training import compare, kfold, stratified_split

FEATURE_FAMILIES = ["ridge", "svr", "rf", "gbr", "hgb", "stacking", "head", "nima_head", "auto"]
FAST = {"rf": {"n_estimators": 60}, "gbr": {"n_estimators": 60}, "hgb": {"max_iter": 60},
        "stacking": {"n_estimators": 40}, "head": {"epochs": 40}, "nima_head": {"epochs": 40}}
# Held-out metrics of the two listings may differ by at most this much (SRCC and PLCC; MAE in
# score points). Folds and fitting order follow content, so in practice they are equal.
TOLERANCE = 0.01
N_PHOTOS = 60


@pytest.fixture(scope="module")
def two_listings(photos, tmp_path_factory):
    """(sorted by score, shuffled) settings over the same image bytes and scores."""
    root = tmp_path_factory.mktemp("order")
    source = make_brightness_set(photos, root / "source", n=N_PHOTOS)
    rows = list(csv.DictReader(open(source / "scores.csv", encoding="utf-8")))
    rng = np.random.default_rng(5)
    randoms = rng.permutation(len(rows))
    made = {}
    for kind, name_of in {
        "sorted": lambda i, row: f"{float(row['score']):07.3f}_{i:03d}.png",  # names start with the score
        "shuffled": lambda i, row: f"{randoms[i]:03d}_{i:03d}.png",
    }.items():
        folder = root / kind
        folder.mkdir()
        named = sorted((name_of(i, row), row) for i, row in enumerate(rows))
        with open(folder / "scores.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["filename", "score"])
            for name, row in named:  # the file lists the photos in name order, as an import would
                shutil.copyfile(source / row["filename"], folder / name)
                writer.writerow([name, row["score"]])
        made[kind] = settings_for(folder, root / f"runs-{kind}", root / "cache", root / "weights")
    return made


def test_sorted_listing_really_is_sorted_by_score(two_listings):
    from workbench.training import labelled_set

    listed = labelled_set(two_listings["sorted"]).scores
    assert np.all(np.diff(listed) >= 0)  # the trap the test is about is really set
    assert not np.all(np.diff(labelled_set(two_listings["shuffled"]).scores) >= 0)


def test_compare_measures_the_same_on_a_sorted_and_a_shuffled_listing(two_listings):
    # ungrouped: crops of the same six package photos look alike, and grouping them changes the folds;
    # this test isolates order (the grouped folds are checked for order just below)
    reports = {kind: drain(compare(FEATURE_FAMILIES, s, backbone="efficientnet_lite0", folds=4, seed=3,
                                   params=FAST, grouped=False))
               for kind, s in two_listings.items()}
    by_model = {kind: {r.model: r for r in report.results} for kind, report in reports.items()}
    assert set(by_model["sorted"]) == set(FEATURE_FAMILIES) == set(by_model["shuffled"])
    for family in FEATURE_FAMILIES:
        a, b = by_model["sorted"][family], by_model["shuffled"][family]
        for metric, tol in (("srcc", TOLERANCE), ("plcc", TOLERANCE), ("mae", TOLERANCE * 100)):
            assert abs(getattr(a, metric) - getattr(b, metric)) <= tol, (family, metric, a, b)
    grouped = [drain(compare(["ridge"], s, folds=4, seed=3)) for s in two_listings.values()]
    assert grouped[0].near_duplicates["merged"] > 0  # the look-alike crops really were grouped
    for a, b in zip(grouped[0].results[0].folds, grouped[1].results[0].folds):  # groups follow content too
        assert a == pytest.approx(b, abs=1e-6)
    ridge = by_model["sorted"]["ridge"].srcc
    assert ridge > 0.5  # the features carry the signal, so the comparison below means something
    assert by_model["sorted"]["stacking"].srcc >= ridge - 0.03


@pytest.mark.parametrize("family", ["stacking", "ridge", "svr", "hgb", "head"])
def test_an_estimator_fitted_on_rows_sorted_by_score_predicts_as_well(two_listings, family):
    """Below compare's content ordering: the estimators themselves (inner CV, validation split,
    minibatches) must not depend on row order. Same training photos, rows sorted by score or shuffled."""
    from workbench.features import feature_matrix
    from workbench.training.data import labelled_set

    settings = two_listings["shuffled"]
    data = labelled_set(settings)
    X = drain(feature_matrix(data.paths, ("efficientnet_lite0",), settings)).X
    y = data.scores
    train_idx, test_idx = kfold(y, folds=4, seed=1)[0]
    fam = get_family(family)
    held_out = {}
    for kind, rows in (("sorted", train_idx[np.argsort(y[train_idx], kind="stable")]),
                       ("shuffled", np.random.default_rng(0).permutation(train_idx))):
        estimator = fam.make(FAST.get(family), seed=3)
        estimator.fit(X[rows], y[rows])
        held_out[kind] = spearmanr(y[test_idx], estimator.predict(X[test_idx]))[0]
    # row order may only move a randomised fit's result by chance, never turn it into nonsense
    assert held_out["sorted"] >= held_out["shuffled"] - 0.1, held_out
    assert held_out["sorted"] > 0.3, held_out


def test_splits_and_folds_follow_content_not_listing_order():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 100, 50)
    keys = [f"{k:064x}" for k in rng.integers(0, 2**62, 50)]
    perm = rng.permutation(50)
    folds = kfold(scores, folds=5, seed=2, keys=keys)
    folds_permuted = kfold(scores[perm], folds=5, seed=2, keys=[keys[i] for i in perm])
    as_keys = lambda fs, ks: sorted(tuple(sorted(ks[i] for i in te)) for _, te in fs)  # noqa: E731
    assert as_keys(folds, keys) == as_keys(folds_permuted, [keys[i] for i in perm])
    split = stratified_split(scores, seed=2, keys=keys)
    split_permuted = stratified_split(scores[perm], seed=2, keys=[keys[i] for i in perm])
    for part in ("train", "val", "test"):
        assert sorted(keys[i] for i in getattr(split, part)) == \
            sorted(keys[perm[i]] for i in getattr(split_permuted, part))
