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
    assert set(doc["points"][0]) == {"n_labels", "srcc_mean", "srcc_std"}


def test_the_projection_is_the_slope_per_doubling_of_the_last_three_points():
    points = [CurvePoint(n, s, 0.0) for n, s in ((25, 0.40), (50, 0.50), (100, 0.60), (200, 0.70))]
    projection = project(points)
    assert projection["per_doubling"] == pytest.approx(0.10) and projection["to_n"] == 400
    assert "from 200 to 400" in projection["sentence"] and "+0.10 SRCC" in projection["sentence"]
    flat = project([CurvePoint(n, 0.8, 0.0) for n in (100, 200, 400)])
    assert "flattened" in flat["sentence"]
    assert project(points[:2])["per_doubling"] is None
    assert label_sizes(150, (10, 25, 200)) == [10, 25, 150]


def test_learning_curve_command_json(run_cli, workbench_env, photos):
    make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=30)
    doc = json.loads(run_cli("learning-curve", "--models", "ridge", "--sizes", "10", "--folds", "3",
                             "--json").stdout)
    assert doc["model"] == "ridge" and doc["n_images"] == 30
    assert [p["n_labels"] for p in doc["points"]] == [10, 20]
    assert np.isfinite(doc["points"][-1]["srcc_mean"]) and "sentence" in doc["projection"]
    bad = run_cli("learning-curve", "--sizes", "ten", check=False)
    assert bad.returncode == 2 and "--sizes must be whole numbers" in bad.stderr
