"""Good/bad accuracy is shown beside what a constant guess gets on the same held-out photos: on a set where
most photos are below the good threshold, a model that learnt nothing is "accurate" as often as always
answering "bad". Real photos (the package-photo brightness set, mostly dark), real ridge runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from training_fixtures import make_brightness_set, settings_for

from workbench import compat  # noqa: F401
from workbench.events import drain
from workbench.metrics import compute_metrics
from workbench.runs import MANIFEST, RunStore, leaderboard_rows
from workbench.training import train
from workbench.training.reporting import accuracy_text, comparison_frame, metrics_markdown, runs_frame


@pytest.fixture(scope="module")
def dark_set(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    data = make_brightness_set(photos, root / "data", n=40)
    return settings_for(data, root / "runs", root / "cache", root / "weights", test_fraction=0.25)


def test_a_useless_model_is_no_more_accurate_than_always_bad(dark_set):
    # the largest penalty leaves ridge predicting about the training mean: it tells no photo from another
    useless = drain(train("ridge", dark_set, params={"alpha": 1e7}))
    m = useless.metrics
    predicted = np.array([p["pred"] for p in useless.predictions])
    assert np.ptp(predicted) < 1 and predicted.max() < 50  # about one constant, "bad", for every held-out photo
    assert m["good_share"] < 0.5 and m["accuracy"] >= 0.6  # high accuracy on its own ...
    assert m["accuracy_baseline"] == pytest.approx(m["accuracy"])  # ... exactly what always-bad gets
    shown = f"{m['accuracy']:.1%} (always-bad would get {m['accuracy_baseline']:.1%})"
    assert accuracy_text(m) == shown and shown in metrics_markdown(m)

    learnt = drain(train("ridge", dark_set, params={"alpha": 1.0}))
    assert learnt.metrics["srcc"] > useless.metrics["srcc"]
    store = RunStore(dark_set.models_dir)
    assert store.best("srcc").run_id == learnt.run_id  # ranking is by SRCC, never by the baseline
    rows = leaderboard_rows(store)
    assert [r["run_id"] for r in rows] == [learnt.run_id, useless.run_id]
    frame = runs_frame(rows)
    column = list(frame.columns).index("accuracy")
    assert frame.columns[column + 1] == "accuracy_baseline"  # beside the accuracy it qualifies
    assert frame["accuracy_baseline"].iloc[1] == f"{m['accuracy_baseline']:.3f}"


def test_runs_stored_before_the_baseline_still_load_and_show_a_dash(dark_set):
    run = drain(train("ridge", dark_set, params={"alpha": 10.0}))
    path = dark_set.models_dir / run.run_id / MANIFEST
    manifest = json.loads(path.read_text())
    for key in ("accuracy_baseline", "good_share"):
        del manifest["metrics"][key]
    path.write_text(json.dumps(manifest))

    old = RunStore(dark_set.models_dir).get(run.run_id)
    assert "accuracy_baseline" not in old.metrics
    assert accuracy_text(old.metrics) == f"{old.metrics['accuracy']:.1%} (a constant guess would get —)"
    assert "(a constant guess would get —)" in metrics_markdown(old.metrics)
    row = next(r for r in leaderboard_rows(RunStore(dark_set.models_dir)) if r["run_id"] == run.run_id)
    assert row["accuracy_baseline"] is None
    assert runs_frame([row])["accuracy_baseline"].iloc[0] == "—"
    assert RunStore(dark_set.models_dir).best("srcc") is not None


def test_the_baseline_names_the_commoner_side_and_sits_beside_accuracy_in_compare():
    true = np.array([80.0, 90, 70, 20, 60])  # four of five good
    m = compute_metrics(true, np.full(5, 75.0), score_min=0, score_max=100)
    assert m["accuracy"] == m["accuracy_baseline"] == pytest.approx(0.8) and m["good_share"] == pytest.approx(0.8)
    assert accuracy_text(m) == "80.0% (always-good would get 80.0%)"
    half = compute_metrics(np.array([10.0, 90]), np.array([90.0, 10]), score_min=0, score_max=100)
    assert half["accuracy"] == 0.0 and half["accuracy_baseline"] == 0.5
    assert accuracy_text(half) == "0.0% (always guessing one side would get 50.0%)"
    frame = comparison_frame([{"model": "ridge", "srcc": 0.1, "accuracy": 0.875, "fit_seconds": 0.1,
                               "accuracy_baseline": 0.875, "good_share": 0.125}])
    assert list(frame.columns) == ["rank", "model", "srcc", "accuracy", "accuracy_baseline", "fit_seconds"]
