"""What the Train tab shows, computed without Gradio: live training state, curves, tables."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from workbench.events import EpochEnd, Finished, Notice, Progress
from workbench.training.reporting import (
    TrainingMonitor,
    comparison_chart_axes,
    comparison_frame,
    curve_frame,
    format_duration,
    leaderboard_place,
    metrics_markdown,
    overlay_figure,
    runs_frame,
    status_text,
    thin,
)


def test_monitor_follows_a_run_from_features_to_a_stopped_result(monkeypatch):
    clock = [100.0]  # a clock the test moves: 2 s per epoch
    monkeypatch.setattr("workbench.training.reporting.time.monotonic", lambda: clock[0])
    monitor = TrainingMonitor()
    monitor.add(Notice("efficientnet_lite0: weights from package"))
    monitor.add(Progress(10, 40, "efficientnet_lite0: 12 images/s", eta=3.4))
    assert monitor.phase == "preparing" and monitor.fraction == 0.25
    assert "12 images/s" in monitor.status_line() and "3 s left" in monitor.status_line()
    for epoch in range(1, 6):
        clock[0] += 2.0
        monitor.add(EpochEnd(epoch, 1.0 / epoch, 1.5 / epoch, {"srcc": 0.1 * epoch, "mae": 9.0, "seconds": 0.1},
                             total_epochs=20))
    assert monitor.fraction == pytest.approx(5 / 20)
    assert monitor.eta == pytest.approx(2.0 * 15)  # 15 epochs left at the 2 s each measured so far
    assert "about 30 s left" in monitor.status_line()
    assert monitor.latest_metrics == {"srcc": pytest.approx(0.5), "mae": 9.0}  # not "seconds"
    line = monitor.status_line()
    assert line.startswith("Training: epoch 5 / 20") and "validation loss 0.3" in line
    frame = monitor.curve()
    assert len(frame) == 10 and set(frame["curve"]) == {"train", "validation"}
    monitor.add(Finished("a run", stopped=True))
    assert monitor.finished and monitor.stopped and monitor.result == "a run"
    assert "marked stopped" in monitor.status_line()
    assert len(monitor.notices) == 1


def test_a_stop_before_anything_was_learnt_says_no_run_was_saved():
    monitor = TrainingMonitor()
    monitor.add(Finished(None, stopped=True))
    assert "no run was saved" in monitor.status_line()


def test_curve_frame_skips_missing_losses_and_thins_long_histories():
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": None if e % 2 else float("nan")} for e in range(1, 1001)]
    full = curve_frame(history)
    assert list(full["curve"].unique()) == ["train"] and len(full) == 1000  # None and NaN dropped
    thinned = curve_frame(history, max_epochs=100)
    assert len(thinned) <= 101 and thinned["epoch"].iloc[-1] == 1000  # the last epoch is always kept
    assert thin(history, None) == history
    empty = curve_frame([])
    assert list(empty.columns) == ["epoch", "loss", "curve"] and empty.empty


def _row(run_id, srcc, name=None):
    return {"run_id": run_id, "name": name or run_id, "family": "ridge", "backbone": "efficientnet_lite0",
            "weights": "package", "status": "complete", "n_images": 48, "srcc": srcc, "plcc": 0.5, "krcc": 0.4,
            "mae": 10.123456, "rmse": 12.0, "r2": 0.3, "accuracy": 0.8, "fit_seconds": 0.0123,
            "created": "2026-11-21T18:00:00+00:00", "notes": ""}


def test_runs_table_and_leaderboard_place():
    rows = [_row("b", 0.71, name="best one"), _row("a", 0.52), _row("c", None)]
    frame = runs_frame(rows)
    assert list(frame["rank"]) == [1, 2, 3] and frame["mae"].iloc[0] == 10.123
    assert leaderboard_place(rows, "b") == "**1st of 3** stored runs by held-out SRCC."
    assert leaderboard_place(rows, "a").startswith("**2nd of 3**") and "best one, 0.710" in leaderboard_place(rows, "a")
    assert "not in the run store" in leaderboard_place(rows, "zzz")


def test_comparison_frame_ranks_by_srcc_and_measures_the_gain_over_the_baseline():
    results = [{"model": "ridge", "srcc": 0.40, "mae": 10.0, "fit_seconds": 0.01},
               {"model": "svr", "srcc": 0.55, "mae": 9.0, "fit_seconds": 0.02},
               {"model": "hgb", "srcc": 0.10, "mae": 12.0, "fit_seconds": 0.5}]
    frame = comparison_frame(results, baseline="ridge")
    assert list(frame["model"]) == ["svr", "ridge", "hgb"] and list(frame["rank"]) == [1, 2, 3]
    assert list(frame["srcc_gain_over_ridge"]) == pytest.approx([0.15, 0.0, -0.3])
    assert comparison_frame([]).empty
    assert "srcc_gain_over_ridge" not in comparison_frame(results[1:], baseline="ridge")


def test_both_comparison_charts_follow_the_leaderboard_and_the_best_srcc_has_headroom():
    # a user's comparison: the fit-time chart came out alphabetical and the best SRCC bar touched the top
    results = [{"model": m, "srcc": s, "fit_seconds": t} for m, s, t in
               (("ridge", 0.286, 0.01), ("svr", 0.325, 0.01), ("hgb", 0.314, 2.03), ("head", 0.387, 0.86))]
    axes = comparison_chart_axes(comparison_frame(results, baseline="ridge"))
    assert axes["order"] == ["head", "svr", "hgb", "ridge"]  # the leaderboard's, not by name or by time
    assert axes["srcc_range"] == [0.0, 0.5]  # 0.387 + margin, up to the next tenth
    near_one = comparison_chart_axes(comparison_frame([{"model": "auto", "srcc": 0.97, "fit_seconds": 1.0}]))
    assert near_one["srcc_range"] == [0.0, 1.0]  # never past a perfect ranking
    below = comparison_chart_axes(comparison_frame([{"model": "ridge", "srcc": -0.12, "fit_seconds": 1.0}]))
    assert below["srcc_range"] == [-0.2, 0.1]  # a negative bar is drawn whole
    assert comparison_chart_axes(comparison_frame([]))["order"] == []


def test_small_formatters():
    assert format_duration(None) == "" and format_duration(math.inf) == ""
    assert format_duration(4.4) == "4 s" and format_duration(75) == "1 min 15 s"
    assert format_duration(3 * 3600 + 60) == "3 h 01 min"
    table = metrics_markdown({"srcc": 0.7123, "mae": 8.0, "seconds": 3.0}, "Held out")
    assert table.startswith("Held out") and "0.712" in table and "seconds" not in table
    assert '<abbr title="Spearman rank correlation' in table and ">SRCC</abbr> | <abbr" in table
    assert "What do these numbers mean?" in table and "in score points" in table  # one sentence per metric
    assert "What do these numbers mean?" not in metrics_markdown({"srcc": 0.5}, legend=False)
    assert metrics_markdown({}) == ""


def _epochs(train, val):
    return [EpochEnd(i + 1, t, v, {}, total_epochs=400) for i, (t, v) in enumerate(zip(train, val))]


def test_monitor_warns_of_overfitting_only_when_validation_rises_while_training_falls():
    monitor = TrainingMonitor()
    for event in _epochs([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.9, 0.95, 1.0, 1.1, 1.2]):
        monitor.add(event)
    assert "Overfitting: validation loss has risen since epoch 2" in monitor.overfitting()
    learning = TrainingMonitor()
    for event in _epochs([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.9, 0.8, 0.7, 0.69, 0.68]):
        learning.add(event)
    assert learning.overfitting() == ""


def test_early_stop_is_explained_in_the_status_line_and_marked_on_the_curve():
    from workbench.training.train import early_stop_reason

    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": v}
               for e, v in enumerate([1.0, 0.5, 0.6, 0.7, 0.8], start=1)]
    reason, best = early_stop_reason(history, {"epochs": 400, "patience": 3}, stopped=False)
    assert reason == ("stopped early at epoch 5 of 400: validation loss had not improved for 3 epochs "
                      "(patience); the best epoch, 2, was kept") and best == 2
    assert early_stop_reason(history, {"epochs": 5, "patience": 3}, stopped=False) == ("", None)  # all run
    assert early_stop_reason(history, {"epochs": 400, "patience": 3}, stopped=True) == ("", None)  # Stop pressed
    monitor = TrainingMonitor()
    for event in _epochs([h["train_loss"] for h in history], [h["val_loss"] for h in history]):
        monitor.add(event)
    monitor.add(Finished(SimpleNamespace(stop_reason=reason, best_epoch=best)))
    assert monitor.status_line().endswith(reason + ".") and "left" not in monitor.status_line()
    curve = monitor.curve()
    kept = curve[curve["curve"] == "best epoch (kept)"]
    assert list(kept["epoch"]) == [2, 2] and kept["loss"].min() < kept["loss"].max()


def test_runs_get_a_name_a_person_can_read():
    from workbench.training.train import readable_name

    assert readable_name("auto", "efficientnet_lite0", 150, {"srcc": 0.6372}) == \
        "auto · efficientnet_lite0 · 150 photos · SRCC 0.64"
    assert readable_name("finetune", None, 20, {}) == "finetune · own network · 20 photos"


def test_overlay_figure_draws_a_line_per_curve_and_names_runs_without_one():
    fig = overlay_figure({"head run": {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [1.2, 0.8, None]},
                          "ridge run": {"epoch": [], "train_loss": [], "val_loss": []}})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "ridge run" in ax.get_title(loc="left")
    assert not overlay_figure({}).axes[0].lines
    assert not any(line.get_gid() == "kept-epoch" for line in ax.lines)  # no kept epoch given: no mark


def test_overlay_marks_each_runs_kept_epoch_and_epoch_0_at_the_axis_foot():
    from workbench.training.reporting import KEPT_LEGEND

    fig = overlay_figure({"a": {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [1.2, 0.8, 0.9],
                                "kept_epoch": 2},
                          "b": {"epoch": [1, 2], "train_loss": [1.0, 0.9], "val_loss": [1.1, 1.2], "kept_epoch": 0}})
    ax = fig.axes[0]
    dots = [line for line in ax.lines if line.get_gid() == "kept-epoch" and line.get_marker() == "o"]
    assert [(list(d.get_xdata()), list(d.get_ydata())) for d in dots] == [([2], [0.8]), ([0], [0.0])]
    assert dots[1].get_transform() != ax.transData  # ridge alone has no loss: its ● sits on the x axis
    assert KEPT_LEGEND in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_run_stopped_by_patience_says_stopped_early_once():
    from workbench.training.train import early_stop_reason

    history = [{"epoch": e, "val_loss": 1.0 / e if e < 20 else 0.1} for e in range(1, 30)]
    reason, _ = early_stop_reason(history, {"epochs": 40, "patience": 10}, stopped=False)
    text = status_text("stopped early", reason)
    assert text.startswith("stopped early at epoch 29 of 40") and text.count("stopped early") == 1
    assert status_text("stopped", "Stop pressed") == "stopped: Stop pressed"
    assert status_text("complete") == "complete"


def test_an_ended_run_shows_the_validation_figures_of_the_epoch_it_kept():
    """Stopped at epoch 71 with epoch 55 kept, the panel showed epoch 71's SRCC and MAE as the run's."""
    from workbench.ui.train_tab import live_metrics

    monitor = TrainingMonitor()
    for epoch in range(1, 8):
        monitor.add(EpochEnd(epoch, 1.0 / epoch, 1.0 + abs(epoch - 5), {"srcc": 0.1 * epoch, "mae": 10.0 + epoch},
                             total_epochs=100))
    running = live_metrics(monitor)
    assert "epoch 7" in running and "0.700" in running and "kept" not in running
    monitor.add(Finished(SimpleNamespace(kept_epoch=5, best_epoch=5), stopped=True))
    ended = live_metrics(monitor)
    assert "kept epoch 5" in ended and "0.500" in ended and "15.000" in ended
    assert "0.700" not in ended and "epoch 7" not in ended
    started = TrainingMonitor(history=[], result=None)  # kept its start (epoch 0): no other epoch's figures
    for epoch in (1, 2):
        started.add(EpochEnd(epoch, 1.0, 2.0, {"srcc": 0.2}, total_epochs=2))
    started.add(Finished(SimpleNamespace(kept_epoch=0), stopped=False))
    assert "kept epoch 0" in live_metrics(started) and "0.200" not in live_metrics(started)


def test_the_scatter_draws_edge_points_whole_and_keeps_its_title_over_the_axes():
    """A point at x=100 was cut in half by the axes' edge, and the title ran under the picture's buttons."""
    from workbench.training.plots import scatter_figure

    fig = scatter_figure([0.0, 50.0, 100.0], [10.0, 50.0, 100.0], 0, 100,
                         "ridge on efficientnet_lite0: held-out SRCC -0.117")
    ax = fig.axes[0]
    assert ax.get_xlim()[0] < 0 and ax.get_xlim()[1] > 100 and ax.get_ylim()[1] > 100
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    title, box = ax.title.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 <= title.x0 and title.x1 <= box.x1  # no wider than the axes
