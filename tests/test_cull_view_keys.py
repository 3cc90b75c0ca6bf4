"""The Cull view's key handling and rendering, without a browser (tests/browser/test_cull_view.py drives it for real)."""
from __future__ import annotations

from workbench.cull import FLAGS, CullGroup, CullOptions, CullPhoto, CullResult, decide
from workbench.ui.cull_view import apply_key, render


def _state():
    def photo(i, flagged=False):
        return CullPhoto(f"/shoot/{i}.jpg", 8.0 - i, {n: {"value": 0.5, "flagged": flagged and n == "out_of_focus"}
                                                     for n in FLAGS})
    result = CullResult("nima", (1.0, 10.0), [CullGroup(1, [photo(0), photo(1), photo(2, flagged=True)]),
                                              CullGroup(2, [photo(3)])], CullOptions())
    decide(result.groups)
    return {"result": result, "cursor": 0, "thumbs": {}}


def test_keys_move_pick_reject_and_rate():
    state = _state()
    result = state["result"]
    assert result.picks == ["/shoot/0.jpg", "/shoot/3.jpg"] and result.rejected == ["/shoot/2.jpg"]
    for value in ("key:arrowright|1", "key:p|2", "key:4|3", "key:arrowleft|4", "key:u|5"):
        apply_key(state, value)
    assert result.picks == ["/shoot/1.jpg", "/shoot/3.jpg"] and result.photo("/shoot/1.jpg").stars == 4
    apply_key(state, "select:3|6")
    apply_key(state, "key:x|7")
    assert result.rejected == ["/shoot/2.jpg", "/shoot/3.jpg"]
    for _ in range(5):  # the cursor stops at the ends
        apply_key(state, "key:arrowright|8")
    assert state["cursor"] == 3
    apply_key(state, "select:99|9")
    assert state["cursor"] == 3


def test_render_highlights_the_pick_badges_flags_and_filters():
    state = _state()
    page = render(state)
    assert page.count('class="cull-group"') == 2 and page.count('data-status="pick"') == 2
    assert "out of focus 0.5" in page and 'data-index="0"' in page and "selected" in page
    flagged = render(state, "flagged only")
    assert flagged.count("data-path=") == 1 and 'data-path="/shoot/2.jpg"' in flagged
    assert render(None) == ""
