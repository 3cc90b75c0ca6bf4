"""The Predict tab's scorer choice: a failing scorer never leaves the last scorer's score on screen, and
the dropdown says plainly when NIMA's weights are missing and names each run once."""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import gradio as gr
import pytest
from PIL import Image
from ui_wiring import callback, skipped

from workbench.predict import NIMA_ID, run_label, scorer_choices
from workbench.ui import predict_tab


def test_a_scorer_that_cannot_load_replaces_the_last_result(settings, photos, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")  # and no NIMA weights in the weights folder
    photo = settings.data_dir / "chelsea.jpg"
    Image.fromarray(photos["chelsea"]).save(photo)
    with gr.Blocks() as blocks:
        predict_tab.build(settings)
    # the same callback runs when the person picks another scorer (after its info is loaded)
    verdict, figure, overlay, explanation, note = callback(blocks, "predict-photo", "change")(NIMA_ID, 5.1, str(photo), "")
    assert verdict.startswith("⚠ **Cannot score with this scorer:**") and "weights_mobilenet_aesthetic_0.07.hdf5" in verdict
    assert (figure, overlay, explanation, note) == (None, None, None, "")


def test_nima_is_called_ready_only_with_its_weights(settings, nima_weights, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    label = dict((v, k) for k, v in scorer_choices(settings))[NIMA_ID]
    assert "weights missing" in label and "ready" not in label
    (settings.weights_dir / nima_weights.name).symlink_to(nima_weights)
    label = dict((v, k) for k, v in scorer_choices(settings))[NIMA_ID]
    assert "(ready)" in label and "missing" not in label


def test_arun_label_says_each_fact_once():
    row = {"name": "head · efficientnet_lite0 · 30 photos · SRCC 0.80", "family": "head",
           "backbone": "efficientnet_lite0", "srcc": 0.8, "weights": "efficientnet_lite0: package"}
    assert run_label(row) == row["name"]
    renamed = {**row, "name": "Portraits", "weights": "efficientnet_lite0: random"}
    assert run_label(renamed) == "Portraits (head/efficientnet_lite0, SRCC 0.800, RANDOM weights)"


def test_train_and_predict_name_the_same_nima_file(settings, monkeypatch):
    from workbench.models.auto import auto_input_note
    from workbench.predict import ScorerUnavailable, load_scorer

    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    with pytest.raises(ScorerUnavailable) as caught:
        load_scorer(NIMA_ID, settings)
    note = auto_input_note("efficientnet_lite0", settings)
    for advice in (str(caught.value), note):  # Predict's error, then Train's auto note
        primary, other = advice.index("weights_mobilenet_aesthetic_0.07.hdf5"), advice.index("nima_mobilenet_aesthetic_ava.hdf5")
        assert primary < other, advice  # the downloadable file first, the other as also accepted


def _ridge_run(settings, alpha: float, backwards: bool = False):
    """A real ridge run stored through the writer training uses, on synthetic features; ``backwards``:
    judged against scores that run the other way, so it ranks its held-out photos worse than chance."""
    import numpy as np

    from workbench.models import get_family
    from workbench.runs import RunStore
    from workbench.training import compute_metrics
    from workbench.training.train import _write_run

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    y = 50 + 10 * X[:, 0] + rng.normal(size=60)
    fam = get_family("ridge")
    estimator = fam.make({"alpha": alpha}, seed=0).fit(X[:40], y[:40])
    held_out = 100 - y[40:] if backwards else y[40:]
    predictions = [{"filename": f"p{i}.jpg", "true": float(t), "pred": float(p)}
                   for i, (t, p) in enumerate(zip(held_out, estimator.predict(X[40:])))]
    return _write_run(RunStore(settings.models_dir), fam, estimator, settings, backbone="efficientnet_lite0",
                      backbones=["efficientnet_lite0"], weights={}, random_weights=False, params={"alpha": alpha},
                      seed=0, status="complete", data_fingerprint="x", n_images=60,
                      split={"train": [], "val": [], "test": []}, fit_on="train",
                      metrics=compute_metrics(held_out, estimator.predict(X[40:])), history=[], predictions=predictions,
                      score_min=0.0, score_max=100.0, good_threshold=50.0, fit_seconds=0.1, skipped={})


def test_predict_says_when_its_run_was_deleted_and_follows_a_rename(settings):
    """Deleting (in Runs) the run Predict used switched Predict to another run without a word."""
    from workbench.runs import RunStore

    store = RunStore(settings.models_dir)
    good, weak = _ridge_run(settings, 1.0), _ridge_run(settings, 1e6)  # 1e6: almost a constant, a worse SRCC
    with gr.Blocks() as blocks:
        with gr.Tab("Predict", elem_id="predict-tab"):
            predict_tab.build(settings)
    show_tab = callback(blocks, "predict-tab", "select")  # what runs each time the person opens Predict
    labels = dict((v, k) for k, v in scorer_choices(settings))

    picker, shown, noted = show_tab(good.run_id, True, scorer_choices(settings))  # nothing changed: nothing to say
    assert picker.value == good.run_id and picker.info == predict_tab.SCORER_INFO and not noted

    store.rename(weak.run_id, "dim ridge")  # a rename keeps the run picked, under its new name, silently
    picker, shown, noted = show_tab(weak.run_id, True, shown)
    assert picker.value == weak.run_id and picker.info == predict_tab.SCORER_INFO
    assert dict((v, k) for k, v in picker.choices)[weak.run_id].startswith("dim ridge")

    store.delete(weak.run_id)  # the run picked is deleted: Predict moves to the best one and says so
    picker, shown, noted = show_tab(weak.run_id, True, shown)
    assert picker.value == good.run_id
    assert picker.info.startswith("⚠ Run “dim ridge") and "was deleted; now using" in picker.info
    assert picker.info.endswith(f"“{labels[good.run_id]}” (best by held-out SRCC).")
    assert noted
    # the person's next pick takes the note away (and only then is the picker itself updated)
    pick = callback(blocks, "predict-scorer", "input")
    assert pick(True)[1].info == predict_tab.SCORER_INFO and pick(True)[2] is False
    assert skipped([pick(False)[1]])

    store.delete(good.run_id)  # the default (not picked) goes too: the ready AVA scorer, said as such
    picker, _, noted = show_tab(good.run_id, False, shown)
    assert picker.value == NIMA_ID
    assert picker.info.startswith(f"⚠ Run “{labels[good.run_id]}” was deleted") and "no run is left" in picker.info


def test_runs_of_the_same_name_can_be_told_apart_in_every_run_list(settings):
    """Two ridge runs of one set were both listed as "ridge · efficientnet_lite0 · 63 photos · SRCC -0.12"."""
    import json

    from workbench.runs import RunStore, leaderboard_rows
    from workbench.ui.train_panels import run_choices

    store = RunStore(settings.models_dir)
    first, second, third = runs = [_ridge_run(settings, 1.0) for _ in range(3)]
    name = "ridge · efficientnet_lite0 · 60 photos · SRCC 0.99"  # as training names them
    for run in runs:
        store.rename(run.run_id, name)
    # the first was made on another afternoon: its time tells it apart; the other two, made the same minute, by id
    manifest = store.root / first.run_id / "manifest.json"
    data = json.loads(manifest.read_text())
    data["created"] = "2026-11-28T14:18:03+00:00"
    manifest.write_text(json.dumps(data))
    assert store.get(first.run_id).created.startswith("2026-11-28")
    for listed in (scorer_choices(settings)[:-1], run_choices(leaderboard_rows(store))):  # Predict and Label; the Runs overlay
        labels = dict((v, k) for k, v in listed)
        assert len(set(labels.values())) == 3, labels
        assert labels[first.run_id] == f"{name} · created 2026-11-28 14:18 UTC"
        for run in (second, third):
            assert labels[run.run_id].startswith(f"{name} · created ") and labels[run.run_id].endswith(run.run_id)


def test_a_run_worse_than_chance_is_never_the_default_and_is_flagged_beside_the_picker(settings, monkeypatch):
    """A run of held-out SRCC -0.117 became the default scorer of Predict, Cull and Label's suggestions, unflagged."""
    from workbench.predict import chance_warning, default_scorer_id
    from workbench.ui import label_tab

    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    backwards = _ridge_run(settings, 1.0, backwards=True)
    with gr.Blocks() as blocks:
        with gr.Tab("Predict", elem_id="predict-tab"):
            predict_tab.build(settings)
        label_tab.build(settings)
    desk = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "label-desk")
    load = callback(blocks, "predict-scorer", "change")  # the line under the picker (Predict and Cull)

    assert default_scorer_id(settings) == NIMA_ID  # the only run ranks backwards: NIMA, not it
    start = desk.label_start()["ok"]
    assert start["run"] == ""  # Label: no suggestions unless the person picks the run
    (_, run_id, warning), = start["runs"]
    assert run_id == backwards.run_id and "no better than chance on its held-out photos" in warning
    assert "no better than chance" in load(backwards.run_id)[0] and "better than chance" not in load(NIMA_ID)[0]

    good = _ridge_run(settings, 1.0)  # a sound run becomes the default, with nothing to warn of
    assert default_scorer_id(settings) == good.run_id and desk.label_start()["ok"]["run"] == good.run_id
    assert chance_warning(good.run_id, settings) == "" and "better than chance" not in load(good.run_id)[0]


def test_a_run_whose_uncertainty_range_includes_zero_is_flagged(settings):
    from workbench.predict import chance_warning
    from workbench.runs import RunStore

    run = _ridge_run(settings, 1.0)
    manifest = RunStore(settings.models_dir).root / run.run_id / "manifest.json"
    import json

    data = json.loads(manifest.read_text())
    data["metrics"]["srcc"] = 0.15  # on 20 held-out photos: ± 0.25
    manifest.write_text(json.dumps(data))
    assert chance_warning(run.run_id, settings).startswith("⚠ This run may rank photos no better than chance")
    assert "0.150 ± 0.25 on 20 photos" in chance_warning(run.run_id, settings)
