"""The Runs panel's callbacks, called as the wired app calls them: an expected slip (no run chosen,
a run deleted meanwhile) warns and leaves the panel intact; it never raises gr.Error, which would
paint every output (the stored-runs table, the overlay pick, the run dropdown) with an error badge."""
from __future__ import annotations

import gradio as gr
import pytest
from ui_wiring import callback, skipped

from workbench.ui.train_panels import build_runs_panel


@pytest.fixture
def panel(settings):
    with gr.Blocks() as blocks:
        build_runs_panel(settings)
    return blocks


def test_delete_without_a_run_does_not_ask_to_confirm(panel):
    with pytest.warns(UserWarning, match="Choose a run first"):
        updates = callback(panel, "runs-delete", "click")(None)
    assert skipped(updates), updates  # the confirmation buttons stay hidden


def test_confirming_without_a_run_leaves_the_panel_intact(panel):
    with pytest.warns(UserWarning, match="Choose a run first"):
        updates = callback(panel, "runs-delete-confirm", "click")(None)
    assert skipped(updates), updates


def test_renaming_a_run_deleted_meanwhile_warns_and_shows_what_is_stored(panel):
    with pytest.warns(UserWarning, match="deleted meanwhile"):
        table, _overlay, run, _empty = callback(panel, "runs-rename", "click")("no-such-run", "new name")
    assert run.value is None and len(table) == 0


def _component(blocks: gr.Blocks, elem_id: str):
    return next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_the_train_tables_show_the_headers_their_results_fill_before_any_result(settings):
    """Compare's leaderboard once listed six placeholder headers that its results did not have."""
    from types import SimpleNamespace

    from workbench.training.compare import CompareReport, FamilyResult
    from workbench.training.learning_curve import CurvePoint, LearningCurve
    from workbench.training.reporting import comparison_frame, curve_points_frame, runs_frame
    from workbench.ui.train_panels import BASELINE, build_compare_panel, build_learning_curve_panel
    from workbench.ui.widgets import StopFlags

    flags = StopFlags()
    with gr.Blocks() as blocks:
        build_compare_panel(settings, flags)
        build_learning_curve_panel(settings, flags)
        build_runs_panel(settings)
    results = [FamilyResult(model, srcc, 0.5, 0.4, 9.0, 11.0, 0.2, 0.7, 0.01) for model, srcc in (("svr", 0.6),
                                                                                                   (BASELINE, 0.5))]
    report = CompareReport(n_images=40, backbone="efficientnet_lite0", folds=3, seed=0, results=results).to_json()
    real = list(comparison_frame(report["results"], baseline=BASELINE).columns)
    assert "srcc_gain_over_ridge" in real and _component(blocks, "compare-table").value["headers"] == real
    # a new comparison empties the table to the same headers (not Gradio's "1", "2", "3")
    run = callback(blocks, "compare-start", "click")(["svr"], "efficientnet_lite0", 3, 0, "pooled",
                                                   SimpleNamespace(session_hash="test"))
    first = next(run)
    run.close()
    table = next(value for key, value in first.items() if getattr(key, "elem_id", None) == "compare-table")
    assert list(table.columns) == real and table.empty

    curve = LearningCurve(n_images=40, model=BASELINE, points=[CurvePoint(10, 0.4, 0.05, 3)], projection={})
    real = list(curve_points_frame([curve.to_json()]).columns)
    assert _component(blocks, "curve-table").value["headers"] == real == ["model", "n_labels", "srcc_mean",
                                                                          "srcc_std", "draws"]
    assert _component(blocks, "runs-table").value["headers"] == list(runs_frame([{"name": "r"}]).columns)
