"""The Predict tab's scorer choice: a failing scorer never leaves the last scorer's score on screen, and
the dropdown says plainly when NIMA's weights are missing and names each run once."""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import gradio as gr
import pytest
from PIL import Image
from ui_wiring import callback

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
