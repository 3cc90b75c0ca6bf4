"""Tables and curves for people to read: what the Train tab shows, without Gradio.

``TrainingMonitor`` follows the events of one training run (losses per epoch,
latest metrics, progress and ETA); the ``*_frame`` functions turn histories,
stored runs and comparison results into the long-form pandas frames plots and
tables take. The CLI and the tests can use all of it as it is.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from workbench.events import EpochEnd, Finished, Notice, Progress

CURVE_COLUMNS = ("epoch", "loss", "curve")
# Metrics shown in tables, in reading order, with the label people see.
METRIC_LABELS = {"srcc": "SRCC", "plcc": "PLCC", "krcc": "KRCC", "mae": "MAE", "rmse": "RMSE", "r2": "R²",
                 "accuracy": "good/bad accuracy"}
# One plain sentence per metric, for people who have not met them (hover on a header, or the legend).
METRIC_HELP = {
    "srcc": "Spearman rank correlation: does the model put the photos in the same order as you? "
            "1 = exactly your order, 0 = no relation.",
    "plcc": "Pearson correlation: do predicted and your scores rise together in a straight line? 1 = perfectly.",
    "krcc": "Kendall rank correlation: of every pair of photos, how often the model orders the pair as you did "
            "(1 = always, 0 = a coin toss).",
    "mae": "Mean absolute error: how far off a prediction is on average, in score points (lower is better).",
    "rmse": "Root mean squared error: like MAE, but large misses count more (lower is better).",
    "r2": "R²: the share of the spread in your scores the model explains (1 = all, 0 = no better than "
          "always guessing the average).",
    "accuracy": "Good/bad accuracy: how often the model puts a photo on the same side of the good threshold as you. "
                "Beside it, what always answering the commoner side would get on the same photos: only accuracy "
                "above that means the model tells good from bad at all.",
}
RUN_COLUMNS = ("name", "family", "backbone", "weights", "status", "n_images", "srcc", "plcc", "krcc", "mae",
               "rmse", "r2", "accuracy", "accuracy_baseline", "fit_seconds", "created", "notes", "run_id")
MISSING = "—"  # a figure a run stored before it was measured does not have
LEADERBOARD_COLUMNS = ("name", "family", "backbone", "status", "srcc", "plcc", "mae", "rmse", "fit_seconds", "run_id")


def status_text(status: str, stop_reason: str = "") -> str:
    """A run's status with why it stopped, saying "stopped early" once (the reason starts with it)."""
    if not stop_reason:
        return status
    return stop_reason if stop_reason.startswith(status) else f"{status}: {stop_reason}"


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; unknown -> ``""``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def empty_curve_frame() -> pd.DataFrame:
    """A typed empty frame (a string ``curve`` column keeps the plot's legend categorical)."""
    return pd.DataFrame({"epoch": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64"),
                         "curve": pd.Series(dtype="object")})


def thin(history: Sequence[Mapping[str, Any]], max_epochs: int | None) -> list[Mapping[str, Any]]:
    """Every k-th record (and always the last) so at most about ``max_epochs`` remain."""
    history = list(history)
    if not max_epochs or len(history) <= max_epochs:
        return history
    stride = math.ceil(len(history) / max_epochs)
    kept = history[::stride]
    return kept if kept[-1] is history[-1] else kept + [history[-1]]


def curve_frame(history: Sequence[Mapping[str, Any]], prefix: str = "", max_epochs: int | None = None) -> pd.DataFrame:
    """Long-form losses ``[epoch, loss, curve]`` from per-epoch records.

    ``history`` holds dicts with ``epoch``, ``train_loss`` and ``val_loss``
    (either may be None); ``curve`` is ``"train"`` / ``"validation"``, after
    ``prefix`` when given (to overlay several runs). ``max_epochs`` thins long
    histories (a browser draws thousands of points slowly, and the shape is the same).
    """
    rows = []
    for record in thin(history, max_epochs):
        for key, label in (("train_loss", "train"), ("val_loss", "validation")):
            value = record.get(key)
            if value is not None and math.isfinite(value):
                rows.append({"epoch": int(record["epoch"]), "loss": float(value),
                             "curve": f"{prefix} · {label}" if prefix else label})
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS)) if rows else empty_curve_frame()


def runs_frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = RUN_COLUMNS) -> pd.DataFrame:
    """Stored runs (``workbench.runs.leaderboard_rows``) as a table, rank first, numbers rounded;
    an ``accuracy_baseline`` older runs lack reads "—"."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame = _rounded(frame)
    if "accuracy_baseline" in frame:
        frame["accuracy_baseline"] = [_fmt(v, MISSING) for v in frame["accuracy_baseline"]]
    return frame


def constant_guess(good_share: float | None) -> str:
    """Who the accuracy baseline is: ``"always-bad"`` when most held-out photos are below the good
    threshold, ``"always-good"`` when most are at or above it."""
    if good_share is None or not math.isfinite(good_share) or good_share == 0.5:
        return "always guessing one side"
    return "always-good" if good_share > 0.5 else "always-bad"


def accuracy_text(metrics: Mapping[str, Any]) -> str:
    """``"87.5% (always-bad would get 87.5%)"``: good/bad accuracy beside what a constant guess gets on the
    same photos ("—" for runs stored before it was measured)."""
    accuracy, baseline = metrics.get("accuracy"), metrics.get("accuracy_baseline")
    if not _finite(accuracy):
        return MISSING
    if not _finite(baseline):
        return f"{accuracy:.1%} (a constant guess would get {MISSING})"
    return f"{accuracy:.1%} ({constant_guess(metrics.get('good_share'))} would get {baseline:.1%})"


def leaderboard_place(rows: Sequence[Mapping[str, Any]], run_id: str, metric: str = "srcc") -> str:
    """``"2nd of 5 stored runs by held-out SRCC (best: head-… 0.712)"``; rows must be sorted best first."""
    ids = [r["run_id"] for r in rows]
    if run_id not in ids:
        return "This run is not in the run store."
    place = ids.index(run_id) + 1
    label = METRIC_LABELS.get(metric, metric)
    text = f"**{_ordinal(place)} of {len(rows)}** stored run{'s' if len(rows) != 1 else ''} by held-out {label}"
    best = rows[0]
    if place > 1 and best.get(metric) is not None:
        text += f" (best: {best['name']}, {best[metric]:.3f})"
    return text + "."


def metrics_markdown(metrics: Mapping[str, float], heading: str = "", legend: bool = True) -> str:
    """A two-row Markdown table of the metrics people compare models by; each header explains
    itself on hover, and a folded legend says it in one sentence per metric."""
    keys = [k for k in METRIC_LABELS if k in metrics]
    if not keys:
        return ""
    head = "| " + " | ".join(f'<abbr title="{METRIC_HELP[k]}">{METRIC_LABELS[k]}</abbr>' for k in keys) + " |"
    rule = "|" + "---|" * len(keys)
    values = "| " + " | ".join(accuracy_text(metrics) if k == "accuracy" else _fmt(metrics[k]) for k in keys) + " |"
    text = (f"{heading}\n\n" if heading else "") + "\n".join((head, rule, values))
    if legend:
        items = "".join(f"<li><b>{METRIC_LABELS[k]}</b>: {METRIC_HELP[k]}</li>" for k in keys)
        text += f"\n\n<details><summary>What do these numbers mean?</summary><ul>{items}</ul></details>"
    return text


def comparison_frame(results: Iterable[Mapping[str, Any]], baseline: str | None = None) -> pd.DataFrame:
    """Cross-validation results (one mapping per model, keys as in the ``compare`` JSON), best SRCC first.

    With ``baseline`` (a model among the results) a ``srcc_gain`` column says how
    much better than it each model ranks the photos.
    """
    frame = pd.DataFrame(list(results))
    if frame.empty:  # still the real headers: the table shows them before the first comparison
        return pd.DataFrame(columns=comparison_columns(baseline))
    frame = frame.drop(columns=["good_share"], errors="ignore")  # it only names the baseline's side
    if {"accuracy", "accuracy_baseline"} <= set(frame):  # the baseline beside the accuracy it qualifies
        frame.insert(frame.columns.get_loc("accuracy") + 1, "accuracy_baseline", frame.pop("accuracy_baseline"))
    if "srcc" in frame:
        frame = frame.sort_values("srcc", ascending=False, na_position="last", ignore_index=True)
        if baseline is not None and baseline in set(frame["model"]):
            reference = frame.loc[frame["model"] == baseline, "srcc"].iloc[0]
            frame.insert(frame.columns.get_loc("srcc") + 1, f"srcc_gain_over_{baseline}", frame["srcc"] - reference)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return _rounded(frame)


def comparison_columns(baseline: str | None = None) -> list[str]:
    """The columns :func:`comparison_frame` gives a comparison's results (the ``compare`` JSON's keys),
    found by passing it one result of the baseline, so the two never disagree."""
    from dataclasses import fields

    from workbench.training.compare import FamilyResult

    row = {f.name: 0.0 for f in fields(FamilyResult) if f.name != "folds"}  # to_json leaves the folds out
    row["model"] = baseline or ""
    return list(comparison_frame([row], baseline=baseline).columns)


def curve_points_frame(curves: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per point of learning curves (``LearningCurve.to_json()``); the same columns when empty."""
    from dataclasses import fields

    from workbench.training.learning_curve import CurvePoint

    columns = ["model", *(f.name for f in fields(CurvePoint))]
    rows = [{"model": c["model"], **p} for c in curves for p in c["points"]]
    return pd.DataFrame(rows, columns=columns).round(3)


SRCC_HEADROOM = 0.05  # the best bar ends at least this far below the SRCC chart's top


def comparison_chart_axes(frame: pd.DataFrame) -> dict[str, Any]:
    """How compare's two bar charts are drawn from ``comparison_frame``'s leaderboard: ``order``, the
    models in leaderboard order (both charts, so a model sits in the same place in each), and
    ``srcc_range``, an SRCC axis from 0 (or below, for a negative SRCC) to a tenth above the best
    bar plus a margin, at most 1, so the best bar never touches the top."""
    if frame.empty:
        return {"order": [], "srcc_range": [0.0, 1.0]}
    srcc = [float(v) for v in frame["srcc"] if math.isfinite(v)] if "srcc" in frame else []
    best, worst = (max(srcc), min(srcc)) if srcc else (0.0, 0.0)
    top = min(1.0, max(0.1, math.ceil(round((best + SRCC_HEADROOM) * 10, 6)) / 10))
    bottom = min(0.0, math.floor(round((worst - SRCC_HEADROOM) * 10, 6)) / 10) if worst < 0 else 0.0
    return {"order": [str(m) for m in frame["model"]], "srcc_range": [bottom, top]}


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].round(2 if column.endswith("seconds") else 3)
    return frame


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fmt(value: Any, missing: str = "–") -> str:
    return f"{value:.3f}" if _finite(value) else missing


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass
class TrainingMonitor:
    """What a person watching a training run wants to know, updated from its events.

    Feed every event to :meth:`add`; read ``history`` (per-epoch records),
    ``fraction`` (0..1 of the current phase), ``status_line()``,
    ``latest_metrics``, ``notices`` and ``result`` / ``stopped`` at the end.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    latest_metrics: dict[str, float] = field(default_factory=dict)
    phase: str = "starting"
    fraction: float = 0.0
    eta: float | None = None
    total_epochs: int | None = None
    result: Any = None
    stopped: bool = False
    finished: bool = False
    _started: float = field(default_factory=time.monotonic)
    _first_epoch_at: float | None = None
    _first_epoch: int = 0
    _message: str = ""

    def add(self, event: Any) -> None:
        if isinstance(event, Progress):
            self.phase, self._message = "preparing", event.message
            self.fraction, self.eta = event.fraction, event.eta
        elif isinstance(event, EpochEnd):
            self._add_epoch(event)
        elif isinstance(event, Notice):
            self.notices.append(event)
        elif isinstance(event, Finished):
            self.finished, self.result, self.stopped = True, event.result, event.stopped
            self.phase, self.fraction, self.eta = ("stopped" if event.stopped else "done"), 1.0, 0.0

    def _add_epoch(self, event: EpochEnd) -> None:
        now = time.monotonic()
        if self._first_epoch_at is None:
            self._first_epoch_at, self._first_epoch = now, event.epoch
        self.phase = "training"
        self.history.append(event.record())
        self.latest_metrics = {k: v for k, v in event.metrics.items() if k in METRIC_LABELS}
        total = event.total_epochs
        self.fraction = min(event.epoch / total, 1.0) if total else 0.0
        done_since_first = event.epoch - self._first_epoch
        if total and done_since_first > 0:
            per_epoch = (now - self._first_epoch_at) / done_since_first
            self.eta = per_epoch * (total - event.epoch)
        else:
            self.eta = None
        self.total_epochs = total

    def curve(self, max_epochs: int | None = None) -> pd.DataFrame:
        """The losses so far, plus a vertical "best epoch (kept)" line once the run is stored."""
        frame = curve_frame(self.history, max_epochs=max_epochs)
        best = self.best_epoch
        if best is None or frame.empty:
            return frame
        line = pd.DataFrame({"epoch": [best, best], "loss": [frame["loss"].min(), frame["loss"].max()],
                             "curve": ["best epoch (kept)"] * 2})
        return pd.concat([frame, line], ignore_index=True)

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose weights the stored run kept (known once it is stored with several epochs)."""
        if self.result is None or len(self.history) < 2:
            return None
        if getattr(self.result, "kept_epoch", None) is not None:  # the loop's own record (0: its start)
            return int(self.result.kept_epoch)
        kept = getattr(self.result, "best_epoch", 0)
        if kept:
            return int(kept)
        losses = [(h["val_loss"], h["epoch"]) for h in self.history if h.get("val_loss") is not None]
        return min(losses)[1] if losses else None

    def validation_shown(self) -> tuple[int | None, dict[str, float], bool]:
        """(epoch, its validation metrics, whether it is the kept epoch) for the live panel: the latest
        epoch while training runs; once the run is stored, the epoch whose weights it kept (a run stopped
        at epoch 71 that kept epoch 55 is the model of epoch 55, so those are its figures)."""
        kept = self.best_epoch if self.finished else None
        if kept is not None:  # epoch 0 (its start) has no validation record: no figures rather than others'
            record = next((r for r in self.history if r["epoch"] == kept), {})
            return kept, {k: v for k, v in record.items() if k in METRIC_LABELS}, True
        epoch = self.history[-1]["epoch"] if self.history else None
        return epoch, self.latest_metrics, False

    @property
    def stop_reason(self) -> str:
        return getattr(self.result, "stop_reason", "") or ""

    def overfitting(self, min_rise: float = 0.05, min_epochs: int = 3) -> str:
        """A plain notice when validation loss has risen for a while since its best epoch while training
        loss kept falling (the model learns these photos by heart); "" otherwise."""
        points = [h for h in self.history if h.get("val_loss") is not None and h.get("train_loss") is not None]
        if len(points) < min_epochs + 1:
            return ""
        best = min(points, key=lambda h: h["val_loss"])
        last = points[-1]
        if (last["epoch"] - best["epoch"] >= min_epochs and last["val_loss"] > best["val_loss"] * (1 + min_rise)
                and last["train_loss"] < best["train_loss"]):
            return (f"Overfitting: validation loss has risen since epoch {best['epoch']} while training loss "
                    f"keeps falling, so the model is learning these photos by heart rather than your taste. "
                    f"The best epoch is kept; more labelled photos, fewer epochs or a lower learning rate help.")
        return ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def status_line(self) -> str:
        """One line: phase, epoch n / N, losses, ETA."""
        if self.phase == "training" and self.history:
            last = self.history[-1]
            total = self.total_epochs
            parts = [f"epoch {last['epoch']}" + (f" / {total}" if total else "")]
            for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
                if last.get(key) is not None:
                    parts.append(f"{label} {last[key]:.4g}")
            if self.eta is not None:
                parts.append(f"about {format_duration(self.eta)} left")
            return "Training: " + " · ".join(parts)
        if self.phase == "preparing":
            eta = f" · about {format_duration(self.eta)} left" if self.eta else ""
            return f"Preparing: {self._message}{eta}"
        if self.phase == "done":
            reason = f": {self.stop_reason}" if self.stop_reason else ""
            return f"Finished in {format_duration(self.elapsed)}{reason}."
        if self.phase == "stopped":
            return (f"Stopped after {format_duration(self.elapsed)}: "
                    + ("the best model so far was kept as a run marked stopped." if self.result is not None
                       else "nothing was learnt yet, so no run was saved."))
        return "Starting…"


KEPT_MARK = "●"  # the kept epoch's marker on the overlay, and in its legend
KEPT_LEGEND = f"{KEPT_MARK} kept epoch (chosen on validation; 0 = the start: ridge alone for a head)"


def overlay_figure(curves: Mapping[str, Mapping[str, Any]]):
    """A matplotlib Figure of several runs' losses: one colour per run, solid train, dashed validation,
    and a ● on a dotted vertical line at the epoch whose weights each run kept (``kept_epoch``, see
    ``workbench.runs.loss_curves``; 0 is the start, before the first epoch)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(7, 3.6), layout="constrained")
    # the title is in the figure (the UI hides its block label, which covered the y axis's top)
    fig.suptitle("Loss curves of the chosen runs", fontsize=10, x=0.02, ha="left")
    ax = fig.add_subplot()
    drawn, flat, kept_marked = 0, [], False
    for index, (name, curve) in enumerate(curves.items()):
        if not any(v is not None for v in curve.get("train_loss", []) + curve.get("val_loss", [])):
            flat.append(name)
            continue
        colour = f"C{index % 10}"
        kept = curve.get("kept_epoch")
        for key, style, label in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
            points = [(e, v) for e, v in zip(curve.get("epoch", []), curve.get(key, []))
                      if v is not None and math.isfinite(v)]
            if points:
                ax.plot(*zip(*points), style, color=colour, label=f"{name} · {label}", linewidth=1.5)
                drawn += 1
        if kept is not None:
            _mark_kept_epoch(ax, curve, int(kept), colour)
            kept_marked = True
    if drawn and flat:
        ax.set_title(f"no curve (fitted in one step): {', '.join(flat)}", fontsize=8, loc="left")
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        if kept_marked:
            handles.append(Line2D([], [], color="0.3", marker="o", linestyle=":", linewidth=1))
            labels.append(KEPT_LEGEND)
        ax.legend(handles, labels, fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    else:
        message = "Choose runs to compare their loss curves." if not curves else \
            "These runs were fitted in one step: they have no loss curve."
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    return fig


def _mark_kept_epoch(ax, curve: Mapping[str, Any], kept: int, colour: str) -> None:
    """A dotted vertical line at ``kept`` and a ● on the validation curve there (at the axis foot for
    epoch 0, which has no loss of its own in the history); gid ``kept-epoch`` so a test can find it."""
    ax.axvline(kept, color=colour, linestyle=":", linewidth=1, gid="kept-epoch")
    at = dict(zip(curve.get("epoch", []), curve.get("val_loss", [])))
    loss = at.get(kept)
    if loss is not None and math.isfinite(loss):
        ax.plot([kept], [loss], "o", color=colour, markersize=7, gid="kept-epoch")
    else:
        ax.plot([kept], [0.0], "o", color=colour, markersize=7, gid="kept-epoch", clip_on=False,
                transform=ax.get_xaxis_transform())


def learning_curve_figure(curves: Sequence[Mapping[str, Any]]):
    """A matplotlib Figure of learning curves (LearningCurve.to_json()): mean SRCC against labels
    on a log scale, with a band of one standard deviation over the repeats."""
    from matplotlib.figure import Figure

    from workbench.training.learning_curve import all_photos_note

    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for index, curve in enumerate(curves):
        points = curve["points"]
        if not points:
            continue
        n = [p["n_labels"] for p in points]
        mean = [p["srcc_mean"] for p in points]
        std = [p["srcc_std"] for p in points]
        colour = f"C{index % 10}"
        ax.plot(n, mean, "o-", color=colour, label=curve["model"], linewidth=1.5)
        ax.fill_between(n, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=colour, alpha=0.2)
        # a single draw (all photos) has no spread: a hollow marker and a note, so the pinched band is not read as certainty
        single = [p for p in points if p.get("draws") == 1]
        if single:
            ax.plot([p["n_labels"] for p in single], [p["srcc_mean"] for p in single], "o", color=colour,
                    markerfacecolor="white", markersize=8, zorder=3)
            if index == 0:
                what = (all_photos_note(single[-1]["n_labels"], curve["n_images"], curve["folds"])
                        if curve.get("n_images") and curve.get("folds") else "all photos")
                ax.annotate(f"{what}:\none draw, no spread", (single[-1]["n_labels"], single[-1]["srcc_mean"]),
                            xytext=(-6, -14), textcoords="offset points", ha="right", fontsize=8, color="0.35")
    if curves:
        ax.set_xscale("log", base=2)
        # ticks at the sizes measured (10, 25, 52), not at powers of two nobody measured
        sizes = sorted({p["n_labels"] for curve in curves for p in curve["points"]})
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("labelled photos the model learnt from (per fold)")
        ax.set_ylabel("held-out SRCC")
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    else:
        ax.text(0.5, 0.5, "Run the learning curve to see it here.", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    return fig
