"""Learning curves on real photos (package-photo brightness set, efficientnet_lite0 package weights):
the points, their band, the projection sentence and the command-line JSON contract."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_fixtures import make_brightness_set, settings_for

from workbench import compat  # noqa: F401
from workbench.events import drain
from workbench.training import compare
from workbench.training.learning_curve import CurvePoint, label_sizes, learning_curve, project
from workbench.training.reporting import learning_curve_figure


@pytest.fixture(scope="module")
def brightness(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    data = make_brightness_set(photos, root / "data", n=60)
    return settings_for(data, root / "runs", root / "cache", root / "weights")


def test_the_curve_rises_and_its_last_point_is_compares_result(brightness):
    curves = drain(learning_curve(["ridge"], brightness, folds=4, seed=2, repeats=3, sizes=(10, 25)))
    curve = curves[0]
    assert [p.n_labels for p in curve.points] == [10, 25, 45]  # 45 = a whole training fold of 60
    assert curve.points[0].srcc_std > 0 and curve.points[-1].srcc_std == 0  # one draw of "all"
    assert curve.points[-1].srcc_mean > curve.points[0].srcc_mean  # more labels, better ranking
    report = drain(compare(["ridge"], brightness, folds=4, seed=2))
    assert curve.points[-1].srcc_mean == pytest.approx(report.results[0].srcc, abs=1e-9)  # same folds
    doc = curve.to_json()
    assert set(doc) >= {"n_images", "model", "points", "projection"} and doc["n_images"] == 60
    assert set(doc["points"][0]) == {"n_labels", "srcc_mean", "srcc_std", "draws"}
    assert [p["draws"] for p in doc["points"]] == [3, 3, 1]  # "all" is one draw: its std of 0 is no certainty
    projection = doc["projection"]  # three points: a slope with its range of two standard errors
    assert projection["per_doubling_se"] > 0  # drawn points have a spread, so the slope is never exact
    assert projection["per_doubling_low"] < projection["per_doubling"] < projection["per_doubling_high"]
    assert f"anywhere from {projection['per_doubling_low']:+.2f}" in projection["sentence"]
    # its sizes are training photos per fold: 45 of the 60 labelled at 4 folds (it once said "your labels")
    assert "(from 45 to 90 training photos per fold; 60 labelled at 4 folds give 45" in projection["sentence"]


def test_the_projection_is_the_slope_per_doubling_of_the_last_three_points():
    points = [CurvePoint(n, s, 0.0) for n, s in ((25, 0.40), (50, 0.50), (100, 0.60), (200, 0.70))]
    projection = project(points)
    assert projection["per_doubling"] == pytest.approx(0.10) and projection["to_n"] == 400
    assert "from 200 to 400" in projection["sentence"] and "+0.10 SRCC" in projection["sentence"]
    flat = project([CurvePoint(n, 0.8, 0.0) for n in (100, 200, 400)])
    assert "flattened" in flat["sentence"]
    assert project(points[:2])["per_doubling"] is None
    assert label_sizes(150, (10, 25, 200)) == [10, 25, 150]


def test_nearly_equal_sizes_are_not_both_measured_and_noise_is_not_projected_as_a_gain():
    # a user's 52 photos: 50 and 52 (all) were both measured, and a line through 25, 50, 52 promised +0.16
    assert label_sizes(52) == [10, 25, 52]  # 50 gives way to the whole fold: less than 1.25x apart
    assert label_sizes(60, (10, 11, 25, 50)) == [10, 25, 60]
    noisy = project([CurvePoint(10, 0.146, 0.10), CurvePoint(25, 0.117, 0.142), CurvePoint(52, 0.286, 0.0)])
    assert noisy["noisy"] and noisy["per_doubling_low"] < 0 < noisy["per_doubling_high"]
    assert noisy["sentence"].startswith("The curve is too noisy to project")
    assert f"anywhere from {noisy['per_doubling_low']:+.2f} to {noisy['per_doubling_high']:+.2f}" in noisy["sentence"]
    # a steady rise with a small spread keeps its number, hedged by its range
    steady = project([CurvePoint(100, 0.60, 0.03), CurvePoint(200, 0.65, 0.03), CurvePoint(400, 0.70, 0.0)])
    assert not steady["noisy"] and 0 < steady["per_doubling_low"] < 0.05 < steady["per_doubling_high"]
    assert "would add about +0.05 SRCC (anywhere from +0.01 to +0.09" in steady["sentence"]


def test_the_noisy_flag_and_the_sentence_agree():
    # a user's curve: the JSON said "noisy": false while the sentence ended "the points are noisy"
    wide = project([CurvePoint(50, 0.30, 0.08, 3), CurvePoint(100, 0.40, 0.08, 3), CurvePoint(200, 0.65, 0.0, 1)])
    assert wide["per_doubling_low"] > 0 and wide["per_doubling_high"] - wide["per_doubling_low"] > wide["per_doubling"]
    cases = [wide, project([CurvePoint(10, 0.146, 0.10), CurvePoint(25, 0.117, 0.142), CurvePoint(52, 0.286, 0.0)]),
             project([CurvePoint(100, 0.60, 0.03), CurvePoint(200, 0.65, 0.03), CurvePoint(400, 0.70, 0.0)]),
             project([CurvePoint(n, 0.8, 0.0) for n in (100, 200, 400)])]
    assert [c["noisy"] for c in cases] == [False, True, False, False]
    for c in cases:
        assert ("noisy" in c["sentence"]) == c["noisy"], c["sentence"]


def test_the_plot_labels_the_sizes_measured():
    curve = {"model": "ridge", "points": [{"n_labels": n, "srcc_mean": 0.2, "srcc_std": 0.1} for n in (10, 25, 52)]}
    ax = learning_curve_figure([curve]).axes[0]
    assert list(ax.get_xticks()) == [10, 25, 52]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "25", "52"]
    assert not [t for t in ax.texts if "one draw" in t.get_text()]  # no draws recorded: nothing claimed
    curve["points"][-1].update(srcc_std=0.0, draws=1)  # "all": one draw, its band pinches to nothing
    ax = learning_curve_figure([curve]).axes[0]
    assert [t.get_text() for t in ax.texts] == ["all photos:\none draw, no spread"]
    curve.update(n_images=65, folds=5)  # a curve says what "all" is: the photos outside one fold
    ax = learning_curve_figure([curve]).axes[0]
    assert [t.get_text() for t in ax.texts] == ["all photos = 52 training photos per fold (65 labelled, 5 folds):\n"
                                                "one draw, no spread"]


def test_the_learning_curve_panel_takes_its_folds_and_says_what_all_photos_are(brightness):
    """The panel drew at the configured 5 folds only, and called 50 of 63 photos "All photos"."""
    from types import SimpleNamespace

    import gradio as gr
    from ui_wiring import callback

    from workbench.ui.train_panels import build_learning_curve_panel
    from workbench.ui.widgets import StopFlags

    with gr.Blocks() as blocks:
        build_learning_curve_panel(brightness, StopFlags())
    run = callback(blocks, "curve-start", "click")
    *_, (_, _, _, _, words, table) = run(["ridge"], "efficientnet_lite0", 3, 2, "pooled",
                                         SimpleNamespace(session_hash="curve"))
    last = int(list(table["n_labels"])[-1])  # 3 folds of 60: each model learns from about 40 (the smallest fold's)
    assert 36 <= last <= 40
    assert f"All photos = {last} training photos per fold (60 labelled, 3 folds): one draw" in words
    assert f"60 labelled at 3 folds give {last}" in words


def test_learning_curve_command_json(run_cli, workbench_env, photos):
    make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=30)
    doc = json.loads(run_cli("learning-curve", "--models", "ridge", "--sizes", "10", "--folds", "3",
                             "--json").stdout)
    assert doc["model"] == "ridge" and doc["n_images"] == 30
    assert [p["n_labels"] for p in doc["points"]] == [10, 20]
    assert np.isfinite(doc["points"][-1]["srcc_mean"]) and "sentence" in doc["projection"]
    bad = run_cli("learning-curve", "--sizes", "ten", check=False)
    assert bad.returncode == 2 and "--sizes must be whole numbers" in bad.stderr
