"""The Runs panel's callbacks, called as the wired app calls them: an expected slip (no run chosen,
a run deleted meanwhile) warns and leaves the panel intact; it never raises gr.Error, which would
paint every output (the stored-runs table, the overlay pick, the run dropdown) with an error badge."""
from __future__ import annotations

import gradio as gr
import pytest

from workbench.ui.train_panels import build_runs_panel


def _callback(blocks: gr.Blocks, elem_id: str, event: str):
    """The function wired to ``event`` of the component with ``elem_id``."""
    ids = {block_id for block_id, block in blocks.blocks.items() if getattr(block, "elem_id", None) == elem_id}
    for fn in blocks.fns.values():
        if any(target_id in ids and name == event for target_id, name in fn.targets):
            return fn.fn
    raise LookupError(f"nothing wired to {event} of #{elem_id}")


@pytest.fixture
def panel(settings):
    with gr.Blocks() as blocks:
        build_runs_panel(settings)
    return blocks


def _skipped(updates) -> bool:
    return all(isinstance(u, dict) and u.get("__type__") == "update" and len(u) == 1 for u in updates)


def test_delete_without_a_run_does_not_ask_to_confirm(panel):
    with pytest.warns(UserWarning, match="Choose a run first"):
        updates = _callback(panel, "runs-delete", "click")(None)
    assert _skipped(updates), updates  # the confirmation buttons stay hidden


def test_confirming_without_a_run_leaves_the_panel_intact(panel):
    with pytest.warns(UserWarning, match="Choose a run first"):
        updates = _callback(panel, "runs-delete-confirm", "click")(None)
    assert _skipped(updates), updates


def test_renaming_a_run_deleted_meanwhile_warns_and_shows_what_is_stored(panel):
    with pytest.warns(UserWarning, match="deleted meanwhile"):
        table, _overlay, run, _empty = _callback(panel, "runs-rename", "click")("no-such-run", "new name")
    assert run.value is None and len(table) == 0
