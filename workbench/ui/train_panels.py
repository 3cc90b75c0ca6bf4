"""The Compare and Runs panels of the Train tab (split from train_tab.py to keep both readable)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
import pandas as pd

from workbench.backbones import backbone_choices
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.events import Finished, Notice, Progress
from workbench.models import FAMILIES
from workbench.predict import run_labels
from workbench.runs import RunNotFound, RunStore, leaderboard_rows, loss_curves
from workbench.training import compare
from workbench.training.compare import winner_margin
from workbench.training.learning_curve import all_photos_note, learning_curve
from workbench.training.reporting import (
    comparison_chart_axes,
    comparison_frame,
    curve_points_frame,
    format_duration,
    learning_curve_figure,
    metrics_markdown,
    overlay_figure,
    runs_frame,
    status_text,
)
from workbench.ui.widgets import progress_html

log = logging.getLogger(__name__)

# Fast families a first comparison should show; ridge is the baseline every comparison keeps.
BASELINE = "ridge"
DEFAULT_COMPARE = (BASELINE, "svr", "hgb", "head")


# ------------------------------------------------------------------ compare
def feature_view_control(elem_id: str, **state) -> gr.Radio:
    """Which features of the backbone a model learns from (auto always takes multilevel where it can);
    ``state``: value/interactive/info from :func:`feature_view_state` (the person's free choice by default)."""
    from workbench.backbones import FEATURE_VIEWS

    state = {"value": "pooled", "info": views_info(), **state}
    return gr.Radio([(name, name) for name in FEATURE_VIEWS], label="Features", elem_id=elem_id, **state)


def views_info() -> str:
    from workbench.backbones import FEATURE_VIEWS

    own = [name for name, fam in FAMILIES.items() if fam.feature_view]
    return " · ".join(f"{k}: {v}" for k, v in FEATURE_VIEWS.items()) + (f" ({', '.join(own)}: its own)" if own else "")


def feature_view_state(family: str, backbone: str, settings: Settings, chosen: str | None) -> dict:
    """What the Features control shows for ``family``: the person's ``chosen`` view, or, for a family
    that takes its own (the registry's ``own_view``), that view, locked and said in words."""
    from workbench.backbones import FEATURE_VIEWS

    own = FAMILIES[family].own_view(backbone, settings)
    if own is None:
        return {"value": chosen or "pooled", "interactive": True, "info": views_info()}
    return {"value": own, "interactive": False,
            "info": f"{family} chooses its own features: {own} on {backbone} ({FEATURE_VIEWS[own]})"}


def build_learning_curve_panel(settings: Settings, stop_flags) -> None:
    """Would more labels help? Held-out SRCC at growing label counts, a band over draws, a projection."""
    gr.Markdown("How well a model ranks photos it has not seen, when it learns from 10, 25, 50, … of your "
                "labelled photos (compare's folds; every point judged on the whole held-out fold, so the last "
                "point, all photos, is the photos outside one fold: 50 of 63 at 5 folds; the band "
                "is one standard deviation over draws of which photos). The sentence below fits a line of "
                "SRCC against log2(labels) through the last three points and gives its range (two standard "
                "errors); it says so when the points are too noisy to project.")
    with gr.Row(equal_height=True):
        families = gr.CheckboxGroup([f for f, fam in FAMILIES.items() if fam.capabilities.needs_features],
                                    value=[BASELINE], label="Models", scale=3, elem_id="curve-families")
        backbone = gr.Dropdown(backbone_choices(settings), value=settings.default_backbone, label="Backbone",
                               scale=2, elem_id="curve-backbone")
        # the same folds setting as Compare's, so the figures of the two can be set side by side
        folds = gr.Number(settings.folds, label="Folds (K)", precision=0, minimum=2, maximum=20, min_width=100,
                          elem_id="curve-folds")
        repeats = gr.Number(3, label="Draws per size", precision=0, minimum=1, maximum=20, min_width=100,
                            elem_id="curve-repeats")
    features = feature_view_control("curve-features")
    with gr.Row():
        start = gr.Button("Draw the learning curve", variant="primary", elem_id="curve-start")
        stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="curve-stop")
    progress = gr.HTML(progress_html(0, "Not started."), elem_id="curve-progress")
    plot = gr.Plot(learning_curve_figure([]), label="Learning curve", elem_id="curve-plot")
    sentence = gr.Markdown(elem_id="curve-projection")
    # the real headers from the start (an empty frame of the columns a curve fills), not placeholders
    table = gr.Dataframe(curve_points_frame([]), label="Points", interactive=False, elem_id="curve-table")

    def run_curve(chosen: list[str], backbone_name: str, k: float | None, draws: float | None, view: str,
                  request: gr.Request):
        if k is None:  # an emptied gr.Number sends None
            yield gr.skip(), gr.skip(), progress_html(0, "Enter the number of folds.", failed=True), *[gr.skip()] * 3
            return
        flag = stop_flags.start(request.session_hash, "curve")
        yield gr.Button(interactive=False), gr.Button(interactive=True), progress_html(0, "Starting…"), *[gr.skip()] * 3
        try:
            for event in learning_curve(chosen or [BASELINE], settings, backbone=backbone_name, folds=int(k),
                                        repeats=int(draws or 3), features=view, stop=flag):
                if isinstance(event, Progress):
                    yield gr.skip(), gr.skip(), progress_html(event.fraction, event.message), *[gr.skip()] * 3
                elif isinstance(event, Finished):
                    curves = [c.to_json() for c in event.result or []]
                    rows = curve_points_frame(curves)
                    words = "\n\n".join(f"**{c['model']}**: {c['projection']['sentence']}" for c in curves)
                    if (rows["draws"] == 1).any():  # else a std of 0 reads as certainty
                        first = curves[0]
                        note = all_photos_note(first["points"][-1]["n_labels"], first["n_images"], first["folds"])
                        words += f"\n\n*{note[0].upper()}{note[1:]}: one draw, no spread (each fold's model learns " \
                                 f"from all the photos outside its fold).*"
                    state = "Stopped." if event.stopped else "Done."
                    yield (gr.Button(interactive=True), gr.Button(interactive=False), progress_html(1, state),
                           learning_curve_figure(curves), words, rows)
        except WorkbenchError as exc:
            yield gr.skip(), gr.skip(), progress_html(1, f"Could not draw the curve: {exc}", failed=True), \
                *[gr.skip()] * 3
        except Exception as exc:  # a bug: say so, details in the server log
            log.exception("learning curve failed")
            yield gr.skip(), gr.skip(), progress_html(1, f"Learning curve failed: {exc}", failed=True), \
                *[gr.skip()] * 3
        finally:
            stop_flags.finish(request.session_hash, "curve", flag)

    def request_stop(request: gr.Request):
        stop_flags.stop(request.session_hash, "curve")
        return gr.Button("Stopping…", interactive=False)

    start.click(run_curve, [families, backbone, folds, repeats, features],
                [start, stop, progress, plot, sentence, table], show_progress="hidden", concurrency_limit=1
                ).then(lambda: (gr.Button(interactive=True), gr.Button("Stop", interactive=False)), None,
                       [start, stop], show_progress="hidden")
    stop.click(request_stop, None, stop, concurrency_limit=None, show_progress="hidden")


@dataclass
class ComparePanel:
    """The "Train the winner" button and what it needs: the (family, backbone, feature view) that won."""

    train_winner: gr.Button
    winner: gr.State


def build_compare_panel(settings: Settings, stop_flags) -> ComparePanel:
    gr.Markdown("Cross-validate several families on **the same folds** of your labelled photos: every model "
                "is fitted K times and judged on the fold it did not see. Features are computed once per backbone; "
                f"**{BASELINE}** is always included as the baseline.")
    with gr.Row(equal_height=True):
        families = gr.CheckboxGroup(list(FAMILIES), value=[f for f in DEFAULT_COMPARE if f in FAMILIES],
                                    label="Families", scale=3, elem_id="compare-families")
        backbone = gr.Dropdown(backbone_choices(settings), value=settings.default_backbone, label="Backbone",
                               scale=2, elem_id="compare-backbone")
        folds = gr.Number(settings.folds, label="Folds (K)", precision=0, minimum=2, maximum=20, min_width=100,
                          elem_id="compare-folds")
        seed = gr.Number(settings.seed, label="Seed", precision=0, min_width=100)
    features = feature_view_control("compare-features")
    gr.on(None, lambda: gr.Dropdown(choices=backbone_choices(settings)), None, backbone)  # fresh weight status
    with gr.Row():
        start = gr.Button("Run comparison", variant="primary", elem_id="compare-start")
        stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="compare-stop")
    progress = gr.HTML(progress_html(0, "Not started."), elem_id="compare-progress")
    # the columns a comparison fills, from the start (an empty frame of them), not placeholder headers
    table = gr.Dataframe(comparison_frame([], baseline=BASELINE), label="Leaderboard (click a column header to sort)",
                         interactive=False, elem_id="compare-table")
    with gr.Row(equal_height=True):
        train_winner = gr.Button("Train the winner", variant="primary", visible=False, scale=1,
                                 elem_id="compare-train-winner")
        winner_note = gr.Markdown(visible=False, elem_id="compare-winner-note")  # is the lead more than noise?
    winner = gr.State(None)  # (family, backbone, feature view) of the best SRCC: what its figures measured
    with gr.Row(visible=False) as charts:  # hidden until there is something to draw (no empty-extent plots)
        # Axes from zero, so a bar's length is its value (0.47 never looks like zero beside 0.6);
        # set here once: props sent with a value are drawn one update late (Gradio 6.31)
        srcc_plot = gr.BarPlot(x="model", y="srcc", title="SRCC (higher is better; axis from 0)", sort="-y",
                               height=280, y_lim=[0, None], elem_id="compare-srcc")
        time_plot = gr.BarPlot(x="model", y="fit_seconds", title="Fit time per fold (s; axis from 0)", height=280,
                               y_lim=[0, None], elem_id="compare-time")

    def run_comparison(chosen: list[str], backbone_name: str, k: float | None, seed_value: float | None,
                       view: str, request: gr.Request):
        if k is None or seed_value is None:  # an emptied gr.Number sends None
            yield {progress: progress_html(0, "Enter the number of folds and a seed.", failed=True)}
            return
        flag = stop_flags.start(request.session_hash, "compare")
        yield {start: gr.Button(interactive=False), stop: gr.Button(interactive=True),
               progress: progress_html(0, "Starting…"), table: comparison_frame([], baseline=BASELINE), winner: None,
               train_winner: gr.Button(visible=False), winner_note: gr.Markdown(visible=False)}
        try:
            chosen = [BASELINE, *(f for f in chosen if f != BASELINE)]  # every comparison shows the baseline
            started = time.monotonic()
            for event in compare(chosen, settings, backbone=backbone_name, folds=int(k), seed=int(seed_value),
                                 stop=flag, features=view):
                if isinstance(event, Progress):
                    eta = f" · about {format_duration(event.eta)} left" if event.eta else ""
                    yield {progress: progress_html(event.fraction, f"{event.message}{eta}")}
                elif isinstance(event, Notice) and event.level == "warning":
                    gr.Warning(event.message)
                elif isinstance(event, Finished):
                    report = event.result.to_json() if event.result else {"results": []}
                    frame = comparison_frame(report["results"], baseline=BASELINE)
                    note = "Stopped: the table shows the models finished so far." if event.stopped else (
                        f"Done in {format_duration(time.monotonic() - started)}: {report['n_images']} photos, "
                        f"{report['folds']} folds, features of {report['backbone']}.")
                    axes = comparison_chart_axes(frame)
                    order = axes["order"] or None
                    used = {r["model"]: r["features"] for r in report["results"]}
                    best = (order[0], report["backbone"], used[order[0]]) if order else None
                    margin = winner_margin(event.result.results) if event.result else None
                    # both charts in the leaderboard's order, SRCC with headroom; the props go first, alone, and
                    # then plain frames: a BarPlot update that also carries props is drawn one value late (Gradio 6.31)
                    if order:
                        yield {srcc_plot: gr.BarPlot(sort=order, y_lim=axes["srcc_range"]),
                               time_plot: gr.BarPlot(sort=order)}
                    yield {progress: progress_html(1, note), table: frame, srcc_plot: frame, time_plot: frame,
                           charts: gr.Row(visible=bool(order)), winner: best,
                           train_winner: gr.Button(f"Train the winner: {best[0]} on {best[1]} ({best[2]})" if best
                                                   else "",
                                                   visible=bool(best),
                                                   variant="primary" if margin is None or margin["clear"] else "secondary"),
                           winner_note: gr.Markdown(margin["sentence"] if margin else "", visible=bool(best and margin))}
        except WorkbenchError as exc:
            yield {progress: progress_html(1, f"Comparison could not run: {exc}", failed=True)}
        except Exception as exc:  # a bug: say so, details in the server log
            log.exception("comparison failed")
            yield {progress: progress_html(1, f"Comparison failed: {exc}", failed=True)}
        finally:
            stop_flags.finish(request.session_hash, "compare", flag)

    def request_stop(request: gr.Request):
        stop_flags.stop(request.session_hash, "compare")
        return gr.Button("Stopping…", interactive=False)

    start.click(run_comparison, [families, backbone, folds, seed, features],
                {start, stop, progress, table, srcc_plot, time_plot, charts, winner, train_winner, winner_note},
                show_progress="hidden", concurrency_limit=1
                ).then(lambda: (gr.Button(interactive=True), gr.Button("Stop", interactive=False)), None,
                       [start, stop], show_progress="hidden")
    stop.click(request_stop, None, stop, concurrency_limit=None, show_progress="hidden")
    return ComparePanel(train_winner=train_winner, winner=winner)


# --------------------------------------------------------------------- runs
@dataclass
class RunsPanel:
    """What other panels need to refresh the run list after they store a run."""

    refresh: Callable[[], tuple]
    outputs: list[Any]


def run_choices(rows: list[dict]) -> list[tuple[str, str]]:
    return list(zip(run_labels(rows), (r["run_id"] for r in rows)))  # worded as in Predict's scorer list


def run_details(settings: Settings, run_id: str | None) -> str:
    if not run_id:
        return "Choose a run (or click its row in the table)."
    m = RunStore(settings.models_dir).get(run_id)
    weights = "; ".join(f"{name}: {w.get('source', '?')}" for name, w in m.weights.items()) or "—"
    params = ", ".join(f"{k}={v}" for k, v in m.params.items()) or "—"
    random = "\n\n⚠️ **Trained on RANDOM weights: its scores mean nothing.**" if m.random_weights else ""
    took = (f"took {format_duration(m.wall_seconds)} (fitting alone {format_duration(m.fit_seconds)})"
            if m.wall_seconds else f"fitted in {format_duration(m.fit_seconds)}")
    status = status_text(m.status, m.stop_reason)
    return (f"**{m.name}** · `{m.run_id}` · {m.family} on {m.backbone or 'its own network'} · {status} · "
            f"{m.n_images} photos · {took}\n\n"
            f"Weights: {weights}\n\nSettings: {params}{random}\n\n"
            + metrics_markdown(m.metrics, "Held-out metrics:"))


def ask_to_delete(run_id: str | None):
    """Swap "Delete this run…" for the confirmation buttons, only once a run is chosen."""
    if not run_id:
        gr.Warning("Choose a run first.")
        return gr.skip(), gr.skip(), gr.skip()
    return gr.Button(visible=False), gr.Button(visible=True), gr.Button(visible=True)


def build_runs_panel(settings: Settings) -> RunsPanel:
    store = RunStore(settings.models_dir)
    gr.Markdown("Every stored run with its held-out metrics, best SRCC first. Click a row to edit it; pick "
                "several runs to overlay their loss curves.")
    empty = gr.Markdown(visible=False, elem_id="runs-empty")
    table = gr.Dataframe(runs_frame([]), interactive=False, max_height=360,  # its headers before the first load
                         label="Stored runs", elem_id="runs-table")
    refresh_button = gr.Button("Refresh", size="sm")
    with gr.Row():
        with gr.Column(scale=1):
            overlay_pick = gr.Dropdown([], multiselect=True, label="Runs to overlay", elem_id="runs-overlay-pick")
        overlay = gr.Plot(overlay_figure({}), label="Loss curves of the chosen runs", show_label=False, scale=3,
                          elem_id="runs-overlay")
    gr.Markdown("### One run")
    run = gr.Dropdown([], label="Run", elem_id="runs-selected")
    details = gr.Markdown(run_details(settings, None), elem_id="runs-details")
    with gr.Row():
        name = gr.Textbox(label="Display name", scale=1, elem_id="runs-name")
        notes = gr.Textbox(label="Notes", lines=2, scale=2, elem_id="runs-notes")
    with gr.Row():
        rename = gr.Button("Rename", size="sm", elem_id="runs-rename")
        annotate = gr.Button("Save notes", size="sm", elem_id="runs-annotate")
        delete = gr.Button("Delete this run…", variant="stop", size="sm", elem_id="runs-delete")
        confirm = gr.Button("Yes, delete it for good", variant="stop", size="sm", visible=False,
                            elem_id="runs-delete-confirm")
        cancel = gr.Button("Keep it", size="sm", visible=False)

    def refresh(selected: str | None = None):
        rows = leaderboard_rows(store)
        choices = run_choices(rows)
        ids = {r["run_id"] for r in rows}
        keep = selected if selected in ids else None
        note = gr.Markdown(f"No stored runs in `{settings.models_dir}` yet: train one in *Train a model*.",
                           visible=not rows)
        return runs_frame(rows), gr.Dropdown(choices=choices), gr.Dropdown(choices=choices, value=keep), note

    outputs = [table, overlay_pick, run, empty]
    refresh_button.click(refresh, run, outputs)
    gr.on(None, refresh, None, outputs)  # on every page load: runs may have been stored by the CLI meanwhile
    def overlay_runs(run_ids: list[str] | None):
        try:
            curves = loss_curves(store, run_ids or [])
            return overlay_figure({store.get(run_id).name: curve for run_id, curve in curves.items()})
        except RunNotFound as exc:
            # A warning, not gr.Error: an error would also mark the plot as failed until the next refresh
            gr.Warning(f"{exc} (deleted meanwhile? press Refresh)")
            return gr.skip()

    overlay_pick.change(overlay_runs, overlay_pick, overlay)

    def show_run(run_id: str | None):
        if not run_id:
            return run_details(settings, None), "", ""
        try:
            m = store.get(run_id)
        except RunNotFound as exc:
            return f"⛔ {exc}", "", ""
        return run_details(settings, run_id), m.display_name, m.notes

    run.change(show_run, run, [details, name, notes])

    def pick_row(frame: pd.DataFrame, evt: gr.SelectData):
        # evt.row_value, not frame.iloc[evt.index[0]]: once the person sorts the table, the clicked
        # row's index is its place on screen while ``frame`` keeps the original order (gradio#10702).
        row = evt.row_value or []
        column = list(frame.columns).index("run_id") if "run_id" in frame.columns else None
        if column is None or column >= len(row) or not row[column]:
            return gr.skip()  # a click on an empty table
        return str(row[column])

    table.select(pick_row, table, run)

    def edit(action: Callable[[str], Any], success: str):
        def handler(run_id: str | None, *values):
            # Expected slips warn and leave the panel as it is: gr.Error would paint every output
            # (table, overlay pick, run) with an error badge until Refresh.
            if not run_id:
                gr.Warning("Choose a run first.")
                return tuple(gr.skip() for _ in outputs)
            try:
                action(run_id, *values)
            except RunNotFound as exc:
                gr.Warning(f"{exc} (deleted meanwhile?)")
                return refresh(None)  # show what is really stored now
            gr.Info(success)
            return refresh(run_id)
        return handler

    # The run id stays the same, so run.change does not fire: redraw the details and the overlay's captions here
    # (the details only: rewriting the text boxes could overwrite what the person is typing meanwhile)
    for button, action, success, field in ((rename, store.rename, "Renamed.", name),
                                           (annotate, store.annotate, "Notes saved.", notes)):
        button.click(edit(action, success), [run, field], outputs).then(
            lambda run_id: show_run(run_id)[0], run, details).then(overlay_runs, overlay_pick, overlay)
    asking = [delete, confirm, cancel]
    delete.click(ask_to_delete, run, asking)
    cancel.click(lambda: (gr.Button(visible=True), gr.Button(visible=False), gr.Button(visible=False)), None, asking)
    confirm.click(edit(store.delete, "Run deleted."), run, outputs).then(
        lambda: (gr.Button(visible=True), gr.Button(visible=False), gr.Button(visible=False)), None, asking)
    return RunsPanel(refresh=lambda: refresh(None), outputs=outputs)
