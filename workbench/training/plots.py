"""The two pictures every run keeps: its loss curve and predicted-vs-true scatter (PNG bytes)."""
from __future__ import annotations

import io
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display, thread-safe enough for a server when figures are not shared
from matplotlib.figure import Figure  # noqa: E402


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # a margin round the tight box: the title must not touch the top edge (the UI overlays buttons there)
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.25)
    return buffer.getvalue()


def loss_curve_png(history: Sequence[dict], title: str) -> bytes:
    """Train and validation loss per epoch (stage, batch of trees); a note when there is none."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    epochs = [h["epoch"] for h in history]
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [float("nan") if v is None else v for v in values], label=label)
    if history:
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "fitted in one step: no loss curve", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(title)
    return _png(fig)


def scatter_png(y_true: Sequence[float], y_pred: Sequence[float], score_min: float, score_max: float,
                title: str) -> bytes:
    """Held-out predictions against the person's scores, with the identity line."""
    return _png(scatter_figure(y_true, y_pred, score_min, score_max, title))


def scatter_figure(y_true: Sequence[float], y_pred: Sequence[float], score_min: float, score_max: float,
                   title: str) -> Figure:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    ax.plot([score_min, score_max], [score_min, score_max], color="grey", linewidth=1, linestyle="--")
    margin = 0.03 * (score_max - score_min)  # a point on the edge of the range (a 100) is drawn whole, not halved
    ax.set_xlim(score_min - margin, score_max + margin)
    ax.set_ylim(score_min - margin, score_max + margin)
    ax.set_xlabel("your score")
    ax.set_ylabel("predicted score")
    # no wider than the axes, so it stays clear of the buttons the UI draws over the picture's top corner
    ax.set_title(textwrap.fill(title, 38), fontsize=10)
    return fig
