"""Reach a built Blocks' callbacks as Gradio wires them, to call them directly in unit tests."""
from __future__ import annotations

import gradio as gr


def callback(blocks: gr.Blocks, elem_id: str, event: str):
    """The first function wired to ``event`` of the component with ``elem_id``."""
    ids = {block_id for block_id, block in blocks.blocks.items() if getattr(block, "elem_id", None) == elem_id}
    for fn in blocks.fns.values():
        if any(target_id in ids and name == event for target_id, name in fn.targets):
            return fn.fn
    raise LookupError(f"nothing wired to {event} of #{elem_id}")


def skipped(updates) -> bool:
    """Every update is gr.skip(): the outputs stay as they are."""
    return all(isinstance(u, dict) and u.get("__type__") == "update" and len(u) == 1 for u in updates)
