"""Tab 3: train a model and watch it learn; compare families; keep track of runs.

Three panels: **Train** (family, its hyper-parameters generated from the
registry, backbone with its weight status, a live loss plot, Stop), **Compare**
(K-fold cross-validation of several families on the same folds) and **Runs**
(every stored run, overlaid loss curves, rename / annotate / delete). The
callbacks only call the engine (``workbench.training``, ``workbench.runs``)
and draw what it returns.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import gradio as gr
import pandas as pd
from PIL import Image

from workbench.backbones import backbone_choices
from workbench.config import Settings
from workbench.errors import TrainingError, WeightsMissing, WorkbenchError
from workbench.metrics import FEW_HELD_OUT, srcc_uncertainty
from workbench.models import DEFAULT_FAMILY, FAMILIES, Param
from workbench.runs import RunStore, leaderboard_rows
from workbench.training import check_weights, train
from workbench.training.reporting import (
    LEADERBOARD_COLUMNS,
    TrainingMonitor,
    leaderboard_place,
    metrics_markdown,
    runs_frame,
    status_text,
)
from workbench.ui import train_panels
from workbench.ui.widgets import StopFlags, progress_html

TITLE = "Train"
log = logging.getLogger(__name__)

INTRO = """Pick a model family (**auto** is the strongest recipe we know), adjust its settings if you like,
and press **Train**. The loss plot grows while it learns; **Stop** keeps the best model so far.
Every run is judged on photos it never saw (the held-out split) and stored in the run list."""

PRIMARY_PARAMS = ("epochs", "learning_rate")  # always in view for iterative families
UPDATE_EVERY = 0.5  # seconds between live updates of the progress and metrics text
# Redrawing the plot is the page's dearest work: on a busy two-core machine four redraws a second
# kept a browser from taking a click on Stop for over 30 s. The text moves twice a second.
PLOT_EVERY = 1.0
PLOT_EPOCHS = 250  # longer histories are thinned for the live plot (same shape, fewer SVG points)
OK, WARN, STOP, INFO = "✔", "⚠", "✖", "ℹ"  # glyphs every system font has (no colour emoji needed)


STOP_FLAGS = StopFlags()


# ------------------------------------------------------------ small pieces
def param_control(param: Param) -> gr.components.Component:
    """The control a hyper-parameter declaration asks for."""
    label, info = param.name.replace("_", " "), param.help
    if param.choices:
        return gr.Dropdown(list(param.choices), value=param.default, label=label, info=info)
    if param.type is bool:
        return gr.Checkbox(value=param.default, label=label, info=info)
    if param.type in (int, float):
        return gr.Number(value=param.default, label=label, info=info, minimum=param.low, maximum=param.high,
                         precision=0 if param.type is int else None, min_width=160)
    return gr.Textbox(value=str(param.default), label=label, info=info)


def family_label(name: str) -> str:
    return f"{name} (recommended)" if name == DEFAULT_FAMILY else name


def missing_weights_markdown(exc: WeightsMissing, settings: Settings) -> str:
    """What to do about missing weights, in the UI's terms (a file, a folder, the box), not CLI flags."""
    box = "or tick *Train on random weights* below (knowingly: the results would mean nothing)"
    if exc.target is None:
        return (f"{STOP} **{exc.backbone} has no pretrained weights.** Train is off until you choose another "
                f"backbone {box}.")
    if not exc.target.suffix:  # a model folder (the CLIP behind the clip_prompts view): its own instructions
        return f"{STOP} **Train is off: {exc.backbone} lacks the model this feature view needs.** {exc} — {box}."
    get = f"Download [{exc.target.name}]({exc.url}) and place it" if exc.url else f"Place the file `{exc.target.name}`"
    return (f"{STOP} **Pretrained weights for {exc.backbone} are missing.** Train is off until they are here. "
            f"{get} in the weights folder `{exc.target.parent}` (*weights_dir* in the settings), then reload "
            f"this page; or choose a backbone marked *local file* or *package*; {box}.")


def weights_message(family: str, backbone: str, random_weights: bool, settings: Settings,
                    features: str | None = None) -> tuple[str, bool, bool]:
    """(Markdown about where the weights come from, whether the random-weights box must be offered,
    whether Train can start with this choice); ``features``: the view chosen (CLIP prompts has its own)."""
    try:
        notices = check_weights(family, settings, backbone=backbone, random_weights=random_weights, features=features)
    except WeightsMissing as exc:
        return missing_weights_markdown(exc, settings), True, False
    except TrainingError as exc:  # e.g. the text encoder: nothing the random-weights box can fix
        return f"{STOP} **Training cannot start:** {exc}", False, False
    except Exception as exc:  # a bug in the check must not take the whole app down: show it, log it
        log.exception("checking the weights of %s on %s failed", family, backbone)
        return f"{STOP} **Could not check where the weights come from:** {exc}", False, True
    lines = []
    for notice in notices:
        if notice.level == "warning":
            icon = f"{WARN} **RANDOM WEIGHTS**" if random_weights else WARN
        else:
            icon = OK
        lines.append(f"{icon} {notice.message}")
    return "\n\n".join(lines) or f"{OK} This family reads the pixels itself.", random_weights, True


def highlighted(rows: list[dict], run_id: str):
    """The leaderboard with ``run_id``'s row marked, so a person finds the run they just trained."""
    frame = runs_frame(rows, LEADERBOARD_COLUMNS)
    return frame.style.apply(lambda row: ["background-color: #fff3c4" if row["run_id"] == run_id else ""] * len(row),
                             axis=1).format(precision=3)


def live_curve(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus one empty (NaN) point per curve: Gradio's LinePlot fixes its colour legend from the
    first value it draws, so both curves must be named before any epoch has ended."""
    names = ["train", "validation", "best epoch (kept)"]
    legend = pd.DataFrame({"epoch": [float("nan")] * 3, "loss": [float("nan")] * 3, "curve": names})
    return pd.concat([legend, frame.astype({"epoch": "float64"})], ignore_index=True)


def live_metrics(monitor: TrainingMonitor) -> str:
    """The validation figures beside the loss plot: the latest epoch's while training runs, the kept epoch's
    once the run has ended (stopped at 71 with epoch 55 kept, the model is epoch 55's)."""
    epoch, figures, kept = monitor.validation_shown()
    if kept and not figures:  # epoch 0: the starting point, measured before any epoch
        return f"**Validation photos, kept epoch {epoch}** <small>(its starting point: no epoch did better)</small>"
    if kept:
        label = (f"**Validation photos, kept epoch {epoch}** <small>(the epoch whose weights the run kept; "
                 f"the run is judged on the held-out photos below)</small>")
    else:
        label = (f"**Validation photos, epoch {epoch}** <small>(moves every epoch; the run is judged on the "
                 f"held-out photos when it ends)</small>") if epoch else ""
    return metrics_markdown(figures, label, legend=False)


def curve_note(name: str) -> str:
    if FAMILIES[name].capabilities.iterative:
        return ""
    return f"{INFO} {name} is fitted in one step, so there is no loss curve to watch; its metrics appear below."


# --------------------------------------------------------------- the panel
def build(settings: Settings) -> None:
    gr.Markdown(INTRO)
    with gr.Tabs() as panels:
        with gr.Tab("Train a model", id="train-one"):
            panel = build_train_panel(settings)
        with gr.Tab("Compare families", id="train-compare"):
            compared = train_panels.build_compare_panel(settings, STOP_FLAGS)
        with gr.Tab("Would more labels help?", id="train-curve"):
            train_panels.build_learning_curve_panel(settings, STOP_FLAGS)
        with gr.Tab("Runs", id="train-runs"):
            runs_panel = train_panels.build_runs_panel(settings)
    # "Train the winner": the form shows the winning family, backbone and feature view (all in one update,
    # so the training that follows reads them, not what the previous family had left), then trains as Train would
    chosen = compared.train_winner.click(
        lambda won: (gr.Tabs(selected="train-one"), *panel.winner_form(won)), compared.winner,
        [panels, *panel.winner_outputs], show_progress="hidden")
    for trained in (panel.wire(panel.start.click), panel.wire(chosen.then)):
        trained.then(runs_panel.refresh, None, runs_panel.outputs)


@dataclass
class TrainPanel:
    """The form's family and backbone, its Train button, and ``wire(trigger)`` to start training from
    any event (the Train button, "Train the winner"); ``wire`` returns the training's last event.
    ``winner_form((family, backbone, view))`` gives the updates of ``winner_outputs`` that put a
    comparison's winner on the form."""

    family: gr.Dropdown
    backbone: gr.Dropdown
    start: gr.Button
    wire: Callable[[Callable], gr.events.Dependency]
    winner_form: Callable[[tuple], tuple]
    winner_outputs: list


def build_train_panel(settings: Settings) -> TrainPanel:
    """The family/backbone/hyper-parameter form, Train/Stop, live plot and result."""
    with gr.Row(equal_height=True):
        family = gr.Dropdown([(family_label(n), n) for n in FAMILIES], value=DEFAULT_FAMILY, label="Model family",
                             elem_id="train-family", scale=1)
        backbone = gr.Dropdown(backbone_choices(settings), value=settings.default_backbone, elem_id="train-backbone",
                               label="Backbone (where its weights come from)", scale=2)
    # auto takes its own view: the control shows which, locked, and gives back the person's choice after
    features = train_panels.feature_view_control(
        "train-features", **train_panels.feature_view_state(DEFAULT_FAMILY, settings.default_backbone, settings, None))
    chosen_view = gr.State("pooled")  # the person's last choice of view (never auto's)
    features.input(lambda view: view, features, chosen_view)
    family_info = gr.Markdown(FAMILIES[DEFAULT_FAMILY].description)
    first_message, first_offer, first_usable = weights_message(DEFAULT_FAMILY, settings.default_backbone, False,
                                                               settings)
    weights_info = gr.Markdown(first_message, elem_id="train-weights")
    random_weights = gr.Checkbox(False, label="Train on random weights (not pretrained: the results mean nothing)",
                                 visible=first_offer, elem_id="train-random")

    panels, controls = {}, {}
    for name, fam in FAMILIES.items():
        with gr.Column(visible=name == DEFAULT_FAMILY, elem_id=f"train-params-{name}") as panels[name]:
            primary = [p for p in fam.params if fam.capabilities.iterative and p.name in PRIMARY_PARAMS]
            rest = [p for p in fam.params if p not in primary]
            pairs = []
            if primary:
                with gr.Row():
                    pairs += [(p, param_control(p)) for p in primary]
            if rest:
                with gr.Accordion(f"Settings of {name} ({len(rest)})", open=False):
                    # switches get a row of their own: squeezed among the numbers their help ran one word a line
                    for group in ([p for p in rest if p.type is not bool], [p for p in rest if p.type is bool]):
                        if group:
                            with gr.Row():
                                pairs += [(p, param_control(p)) for p in group]
            controls[name] = pairs

    with gr.Row():
        start = gr.Button("Train", variant="primary", interactive=first_usable, elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
    progress = gr.HTML(progress_html(0, "Not started."), elem_id="train-progress")
    notes = gr.Markdown("", elem_id="train-notices")
    one_step = gr.Markdown(curve_note(DEFAULT_FAMILY), elem_id="train-curve-note")
    with gr.Row(visible=FAMILIES[DEFAULT_FAMILY].capabilities.iterative) as curve_row:
        # no value until the first epoch: a plot of nothing has no extent (Vega warns "Infinite extent")
        loss_plot = gr.LinePlot(None, x="epoch", y="loss", color="curve", height=320,
                                title="Loss per epoch (lower is better)", elem_id="train-loss-plot", scale=3)
        live = gr.Markdown("", elem_id="train-live-metrics", min_height=80)
    with gr.Column(visible=False) as result_box:
        with gr.Row():
            with gr.Column(scale=3):
                held_out = gr.Markdown(elem_id="train-result")
                place = gr.Markdown(elem_id="train-place")
            scatter = gr.Image(label="Held-out photos: predicted vs your score", show_label=False, type="pil",
                               height=360, interactive=False, scale=2, elem_id="train-scatter")
        # wrapped in set widths (rank, the LEADERBOARD_COLUMNS), so a long run name takes two lines rather than
        # pushing fit_seconds and run_id off the right edge
        leaderboard = gr.Dataframe(runs_frame([], LEADERBOARD_COLUMNS), interactive=False, max_height=320, wrap=True,
                                   column_widths=["5%", "20%", "6%", "14%", "8%", "6%", "6%", "6%", "6%", "7%", "16%"],
                                   label="Leaderboard: all stored runs, best held-out SRCC first (this run marked)",
                                   elem_id="train-leaderboard")

    # -------------------------------------------------------------- events
    def choose_family(name: str, chosen_backbone: str, allow_random: bool, chosen: str):
        fam = FAMILIES[name]
        new_backbone = fam.default_backbone or chosen_backbone
        view = train_panels.feature_view_state(name, new_backbone, settings, chosen)
        message, offer_random, usable = weights_message(name, new_backbone, allow_random, settings, view["value"])
        return ([gr.Column(visible=n == name) for n in panels]
                + [fam.description, new_backbone, gr.Radio(**view), message, gr.Checkbox(visible=offer_random),
                   gr.Button(interactive=usable), gr.Row(visible=fam.capabilities.iterative), curve_note(name),
                   gr.Column(visible=False)])  # the previous family's result does not belong under the new form

    family.change(choose_family, [family, backbone, random_weights, chosen_view],
                  [*panels.values(), family_info, backbone, features, weights_info, random_weights, start, curve_row,
                   one_step, result_box])
    # auto's view depends on the backbone (a backbone without stages has no multilevel view); a family
    # that leaves the view to the person keeps the control as the person left it
    backbone.change(lambda name, chosen_backbone, chosen: gr.Radio(**train_panels.feature_view_state(
        name, chosen_backbone, settings, chosen)) if FAMILIES[name].feature_view else gr.skip(),
        [family, backbone, chosen_view], features)

    def check_backbone(name: str, chosen_backbone: str, allow_random: bool, view: str | None = None):
        # Train is off while the choice cannot train (weights missing, random weights not ticked)
        message, offer_random, usable = weights_message(name, chosen_backbone, allow_random, settings, view)
        return message, gr.Checkbox(visible=offer_random), gr.Button(interactive=usable)

    gr.on([backbone.change, random_weights.change, features.change], check_backbone,
          [family, backbone, random_weights, features], [weights_info, random_weights, start])
    # On every page load: weights placed in the weights folder since the server started count now.
    # (no inputs, or it would also run on every change of them; the form is at its defaults on load)
    gr.on(None, lambda: (gr.Dropdown(choices=backbone_choices(settings)),
                         *check_backbone(DEFAULT_FAMILY, settings.default_backbone, False)),
          None, [backbone, weights_info, random_weights, start])

    all_controls = [c for pairs in controls.values() for _, c in pairs]
    outputs = [start, stop, progress, loss_plot, live, notes, result_box, held_out, place, scatter, leaderboard]

    def run_training(values: dict, request: gr.Request):
        name = values[family]
        params = {p.name: values[c] for p, c in controls[name]}
        # Only iterative families draw curves; a hidden LinePlot that receives data never draws again.
        plotted = FAMILIES[name].capabilities.iterative
        monitor, flag = TrainingMonitor(), STOP_FLAGS.start(request.session_hash, "train")
        yield {start: gr.Button(interactive=False), stop: gr.Button(interactive=True), live: "", notes: "",
               progress: progress_html(0, "Starting…"), **waiting_view(),
               **({loss_plot: None} if plotted else {})}
        try:
            last = last_plot = 0.0
            for event in train(name, settings, backbone=values[backbone], params=params, stop=flag,
                               random_weights=values[random_weights], features=values[features]):
                monitor.add(event)
                now = time.monotonic()
                if monitor.finished or now - last >= UPDATE_EVERY:
                    redraw = plotted and now - last_plot >= PLOT_EVERY
                    last, last_plot = now, (now if redraw else last_plot)
                    yield live_view(monitor, redraw)
            yield {**live_view(monitor, plotted), **result_view(monitor)}
        except WorkbenchError as exc:  # the person can fix it: the message says how
            yield {progress: progress_html(1, f"Training could not start: {exc}", failed=True), notes: f"{STOP} {exc}"}
        except Exception as exc:  # a bug: say so plainly, keep the details in the server log
            log.exception("training %s failed", name)
            yield {progress: progress_html(1, f"Training failed: {exc}", failed=True), notes: f"{STOP} {exc}"}
        finally:
            STOP_FLAGS.finish(request.session_hash, "train", flag)

    def live_view(monitor: TrainingMonitor, redraw: bool) -> dict:
        # where the weights come from is said once, above the form; warnings (random, download) stay
        shown = [n for n in monitor.notices if n.level == "warning" or "weights from" not in n.message]
        warned = list(dict.fromkeys(f"{WARN if n.level == 'warning' else INFO} {n.message}" for n in shown))
        if monitor.overfitting():
            warned.append(f"{WARN} **{monitor.overfitting()}**")
        view = {progress: progress_html(monitor.fraction, monitor.status_line()), notes: "\n\n".join(warned),
                live: live_metrics(monitor)}
        if redraw and monitor.history:
            view[loss_plot] = live_curve(monitor.curve(PLOT_EPOCHS))
        return view

    def waiting_view() -> dict:
        # The result box is shown as training starts, not when it ends: a Dataframe that becomes
        # visible in the same update that fills it sometimes stays empty in Gradio 6.31.
        rows = leaderboard_rows(RunStore(settings.models_dir))
        return {result_box: gr.Column(visible=True), held_out: "*Held-out metrics appear here when training ends.*",
                place: "", scatter: None, leaderboard: runs_frame(rows, LEADERBOARD_COLUMNS)}

    def result_view(monitor: TrainingMonitor) -> dict:
        run = monitor.result
        if run is None:
            return {}
        rows = leaderboard_rows(RunStore(settings.models_dir))
        picture = RunStore(settings.models_dir).folder(run.run_id) / "scatter.png"
        status = status_text(run.status, run.stop_reason)
        heading = (f"**{run.name}** · `{run.run_id}` ({status})\n\n**The run's result** — held-out "
                   f"photos it never saw "
                   f"({len(run.predictions)}):")
        return {result_box: gr.Column(visible=True), held_out: metrics_markdown(run.metrics, heading),
                place: "Place on the leaderboard: " + leaderboard_place(rows, run.run_id) + few_held_out(run),
                scatter: Image.open(picture) if picture.is_file() else None, leaderboard: highlighted(rows, run.run_id)}

    def few_held_out(run) -> str:
        n = len(run.predictions)
        if n >= FEW_HELD_OUT:
            return ""
        return (f"\n\n{WARN} Judged on {n} held-out photos only: an SRCC measured on so few moves by about "
                f"±{srcc_uncertainty(n):.2f} from one split to another, so runs this close cannot be told apart "
                f"here. **Compare** (cross-validation over every photo) ranks families more reliably; ties on the "
                f"leaderboard go to PLCC, then MAE.")

    def request_stop(request: gr.Request):
        STOP_FLAGS.stop(request.session_hash, "train")
        return gr.Button("Stopping…", interactive=False)

    # The buttons are reset by a .then, not by the training's last yield: that runs after a late
    # "Stopping…" and before a quick next click on Train, whatever order the messages arrive in.
    stop.click(request_stop, None, stop, concurrency_limit=None, show_progress="hidden")

    def wire(trigger: Callable) -> gr.events.Dependency:
        return trigger(run_training, {family, backbone, random_weights, features, *all_controls}, outputs,
                       show_progress="hidden", concurrency_limit=2).then(
            # Train comes back only if the form (perhaps changed meanwhile) can still train
            lambda f, b, r, v: (gr.Button(interactive=weights_message(f, b, r, settings, v)[2]),
                                gr.Button("Stop", interactive=False)), [family, backbone, random_weights, features],
            [start, stop],
            show_progress="hidden")

    def winner_form(won: tuple) -> tuple:
        # the view too, and as the person's choice: family.change then keeps it rather than auto's locked one
        name, chosen_backbone, view = won
        state = train_panels.feature_view_state(name, chosen_backbone, settings, view)
        return name, chosen_backbone, gr.Radio(**state), view if state["interactive"] else gr.skip()

    return TrainPanel(family=family, backbone=backbone, start=start, wire=wire, winner_form=winner_form,
                      winner_outputs=[family, backbone, features, chosen_view])
