"""The run store: safe round trips (skops, safetensors), refusal of tampered or foreign
model files, rename/annotate/delete, and splits/metrics the runs are judged by."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import json

import numpy as np
import pytest

from workbench.models import get_family
from workbench.runs import RunCorrupt, RunNotFound, RunStore, leaderboard_rows, load_run, loss_curves
from workbench.runs.persist import UnsafeModel, load_model, save_model
from workbench.training import compute_metrics, kfold, stratified_split
from workbench.training.train import _write_run

RNG = np.random.default_rng(0)
X = RNG.normal(size=(120, 16)).astype(np.float32)
Y = 50 + 10 * X[:, 0] - 5 * X[:, 1] + RNG.normal(size=120)


def _stored_run(settings, family: str, params=None, reshape=None):
    """Fit ``family`` on synthetic features and store it through the same writer training uses
    (``reshape``: a function applied to its predictions before they are judged)."""
    fam = get_family(family)
    estimator = fam.make(params, seed=0)
    estimator.fit(X[:100], Y[:100])
    pred = estimator.predict(X[100:])
    pred = reshape(pred) if reshape is not None else pred
    store = RunStore(settings.models_dir)
    manifest = _write_run(store, fam, estimator, settings, backbone="efficientnet_lite0",
                          backbones=["efficientnet_lite0"], weights={}, random_weights=False, params={}, seed=0,
                          status="complete", data_fingerprint="x", n_images=120,
                          split={"train": [], "val": [], "test": []}, fit_on="train",
                          metrics=compute_metrics(Y[100:], pred), history=[{"epoch": 1, "train_loss": 1.0,
                                                                              "val_loss": 2.0}],
                          predictions=[], score_min=0.0, score_max=100.0, good_threshold=50.0, fit_seconds=0.1,
                          skipped={})
    return store, manifest, pred


def test_runs_that_tie_on_srcc_are_ranked_by_plcc_then_mae(settings):
    # the same ranking of the held-out photos (equal SRCC up to float noise), one bent out of line: worse PLCC
    for newest_bent in (True, False):  # whichever was stored last
        order = [("bent", lambda p: np.exp((p - p.mean()) / 4)), ("straight", None)]
        runs = {}
        for name, reshape in (order if newest_bent else order[::-1]):
            store, runs[name], _ = _stored_run(settings, "ridge", reshape=reshape)
        bent, straight = runs["bent"], runs["straight"]
        assert abs(bent.metrics["srcc"] - straight.metrics["srcc"]) < 1e-9
        assert bent.metrics["plcc"] < straight.metrics["plcc"]
        assert store.best("srcc").run_id == straight.run_id
        assert [r["run_id"] for r in leaderboard_rows(store)] == [straight.run_id, bent.run_id]
        for run in runs.values():
            store.delete(run.run_id)


@pytest.mark.parametrize("family", ["ridge", "svr", "rf", "gbr", "hgb", "stacking", "auto", "head", "nima_head"])
def test_model_files_round_trip_exactly(settings, family):
    params = {"n_estimators": 20} if family in ("rf", "gbr", "stacking") else (
        {"epochs": 5} if family in ("head", "nima_head") else None)
    store, manifest, pred = _stored_run(settings, family, params)
    assert manifest.model_format == ("safetensors" if get_family(family).capabilities.torch else "skops")
    model = load_model(store.folder(manifest.run_id), manifest, settings)
    np.testing.assert_allclose(model.predict(X[100:]), pred, rtol=1e-12, atol=1e-9)  # parallel tree sums: last-bit noise


def test_a_tampered_model_file_is_refused(settings):
    store, manifest, _ = _stored_run(settings, "ridge")
    path = store.folder(manifest.run_id) / manifest.model_file
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RunCorrupt, match="does not match its manifest"):
        load_run(manifest.run_id, settings)


def test_a_skops_file_with_foreign_types_is_refused_even_with_a_matching_hash(settings):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from workbench.fsutil import file_sha256

    store, manifest, _ = _stored_run(settings, "ridge")
    folder = store.folder(manifest.run_id)
    # a run folder someone sent: a model calling an arbitrary function, hash updated to match
    sio.dump(FunctionTransformer(func=print), folder / manifest.model_file)
    data = json.loads((folder / "manifest.json").read_text())
    data["model_sha256"] = file_sha256(folder / manifest.model_file)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UnsafeModel, match="never writes"):
        load_run(manifest.run_id, settings)


def test_rename_annotate_delete_best_and_curves(settings):
    store, first, _ = _stored_run(settings, "ridge", {"alpha": 1.0})
    _, second, _ = _stored_run(settings, "ridge", {"alpha": 1e6})
    assert first.run_id != second.run_id  # same second, same family: still two runs
    assert [m.run_id for m in store.list()][:2] in ([second.run_id, first.run_id], [first.run_id, second.run_id])
    store.rename(first.run_id, "  sharp ridge ")
    store.annotate(first.run_id, "alpha 1")
    assert store.get(first.run_id).name == "sharp ridge" and store.get(first.run_id).notes == "alpha 1"
    assert store.best("srcc").run_id == first.run_id  # alpha 1e6 predicts almost a constant
    assert store.best("mae").run_id == first.run_id
    rows = leaderboard_rows(store)
    assert rows[0]["run_id"] == first.run_id and rows[0]["name"] == "sharp ridge"
    assert loss_curves(store, [first.run_id])[first.run_id] == {"epoch": [1], "train_loss": [1.0], "val_loss": [2.0],
                                                                "kept_epoch": None}  # ridge: fitted in one step
    store.delete(second.run_id)
    with pytest.raises(RunNotFound):
        store.get(second.run_id)
    for hostile in ("../etc", "/etc/passwd", ".partial-x"):
        with pytest.raises(RunNotFound):
            store.get(hostile)


def test_save_refuses_a_model_with_untrusted_types(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsafeModel):
        save_model(FunctionTransformer(func=print), tmp_path, torch_format=False)


def test_split_is_stratified_reproducible_and_disjoint():
    scores = np.r_[np.full(50, 10.0), np.linspace(20, 80, 100), np.full(50, 95.0)]
    a = stratified_split(scores, val_fraction=0.15, test_fraction=0.15, seed=3)
    b = stratified_split(scores, val_fraction=0.15, test_fraction=0.15, seed=3)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    parts = np.concatenate([a.train, a.val, a.test])
    assert len(parts) == len(set(parts)) == 200
    assert len(a.test) == 30 and len(a.val) == 30
    # both extremes reach the test split in proportion
    assert 4 <= np.sum(scores[a.test] == 10.0) <= 11 and 4 <= np.sum(scores[a.test] == 95.0) <= 11
    folds = kfold(scores, folds=5, seed=1)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(200))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(folds, kfold(scores, folds=5, seed=1)))


def test_metrics_on_known_values():
    true = np.array([10.0, 20, 30, 40, 90])
    m = compute_metrics(true, true + 5, score_min=0, score_max=100)
    assert m["srcc"] == pytest.approx(1) and m["plcc"] == pytest.approx(1) and m["krcc"] == pytest.approx(1)
    assert m["mae"] == pytest.approx(5) and m["rmse"] == pytest.approx(5)
    assert m["accuracy"] == 1.0  # 90 and 95 are good, the rest bad, threshold 50
    flipped = compute_metrics(true, true[::-1], score_min=0, score_max=100)
    assert flipped["srcc"] == pytest.approx(-1) and flipped["accuracy"] == pytest.approx(0.6)
    constant = compute_metrics(true, np.full(5, 38.0))
    assert constant["srcc"] == 0.0 and constant["r2"] == pytest.approx(-np.mean((true - 38) ** 2) / np.var(true) + 1)


def test_a_head_run_records_the_epoch_it_kept_and_the_overlay_marks_it(settings):
    """Heads keep the epoch with the best validation loss (0: ridge alone); the Runs overlay marks it."""
    from workbench.training.reporting import KEPT_LEGEND, overlay_figure
    from workbench.training.train import chosen_epoch

    fam = get_family("head")
    store = RunStore(settings.models_dir)
    estimator = fam.make({"epochs": 30, "patience": 0}, seed=0)
    history = [e.record() for e in estimator.fit_events(X[:80], Y[:80], X[80:100], Y[80:100])]
    kept = chosen_epoch(estimator, history)
    losses = {h["epoch"]: h["val_loss"] for h in history}
    assert kept == 0 or losses[kept] == min(losses.values())  # the best validation epoch, or ridge alone
    manifest = _write_run(store, fam, estimator, settings, backbone="efficientnet_lite0", backbones=[],
                          weights={}, random_weights=False, params={}, seed=0, status="complete",
                          data_fingerprint="x", n_images=100, split={"train": [], "val": [], "test": []},
                          fit_on="train", metrics={"srcc": 0.5}, history=history, kept_epoch=kept,
                          predictions=[], score_min=0.0, score_max=100.0, good_threshold=50.0,
                          fit_seconds=0.1, skipped={})
    curves = loss_curves(store, [manifest.run_id])
    assert store.get(manifest.run_id).kept_epoch == curves[manifest.run_id]["kept_epoch"] == kept
    ax = overlay_figure({"head run": curves[manifest.run_id]}).axes[0]
    marks = [line for line in ax.lines if line.get_gid() == "kept-epoch"]
    assert [list(line.get_xdata()) for line in marks] == [[kept, kept], [kept]]  # the tick and the ●
    assert KEPT_LEGEND in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_run_stored_before_kept_epochs_were_recorded_falls_back_to_its_early_stop(settings):
    from workbench.runs import kept_epoch

    store, manifest, _ = _stored_run(settings, "ridge")
    path = store.folder(manifest.run_id) / "manifest.json"
    data = json.loads(path.read_text())
    del data["kept_epoch"]
    data["best_epoch"] = 7
    path.write_text(json.dumps(data))
    assert kept_epoch(store.get(manifest.run_id)) == 7
    data["kept_epoch"] = "seven"
    path.write_text(json.dumps(data))
    with pytest.raises(RunCorrupt, match="kept_epoch"):
        store.get(manifest.run_id)
