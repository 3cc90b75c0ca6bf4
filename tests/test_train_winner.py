""""Train the winner" trains what the comparison measured: a user compared ridge and svr on pooled
features and the winner was trained on multilevel ones (re-extracted, a new ONNX export), because the
form still held the locked view of the family shown before (auto) when the training read it."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
from training_fixtures import make_brightness_set
from ui_wiring import callback

from workbench.models import DEFAULT_FAMILY, FAMILIES
from workbench.ui import train_tab


def test_train_the_winner_puts_the_compared_family_backbone_and_view_on_the_form(settings, photos):
    assert FAMILIES[DEFAULT_FAMILY].own_view(settings.default_backbone, settings) == "multilevel"  # the trap
    make_brightness_set(photos, settings.data_dir, n=24, size=64)
    with gr.Blocks() as blocks:
        train_tab.build(settings)
    compare = callback(blocks, "compare-start", "click")
    *_, last = compare(["ridge", "svr"], settings.default_backbone, 3, 0, "pooled", SimpleNamespace(session_hash="t"))
    (won,) = [v for k, v in last.items() if isinstance(k, gr.State)]
    assert won[1:] == (settings.default_backbone, "pooled") and won[0] in {"ridge", "svr"}

    tab, family, backbone, features, chosen_view = callback(blocks, "compare-train-winner", "click")(won)
    # the view comes in the same update as the family, so the training that follows reads it
    assert (family, backbone, features.value, chosen_view) == (won[0], won[1], "pooled", "pooled")
    assert features.interactive is True


def test_the_train_leaderboard_fits_its_columns_in_view(settings):
    """fit_seconds and run_id were cut off at the right edge: long names wrap in set widths, one per column."""
    from workbench.training.reporting import LEADERBOARD_COLUMNS, runs_frame

    with gr.Blocks() as blocks:
        train_tab.build(settings)
    (board,) = [b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "train-leaderboard"]
    widths = [float(w.rstrip("%")) for w in board.column_widths]
    assert board.wrap and len(widths) == len(runs_frame([], LEADERBOARD_COLUMNS).columns) and sum(widths) == 100
