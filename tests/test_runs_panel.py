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
