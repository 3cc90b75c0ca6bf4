"""The Cull view's key handling and rendering, without a browser (tests/browser/test_cull_view.py drives it for real)."""
from __future__ import annotations

from workbench.cull import FLAGS, CullGroup, CullOptions, CullPhoto, CullResult, decide
from workbench.ui.cull_view import apply_key, errors_text, render, summary


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


def test_the_summary_says_what_the_closed_eye_check_found():
    state = _state()
    assert "Closed eyes" not in summary(state)  # not looked: nothing to say
    for i, photo in enumerate(state["result"].photos):
        photo.flags["closed_eyes"] = {"value": None if i else 1.0, "flagged": not i, "faces": 0 if i else 2}
    assert "Closed eyes: 2 face(s) found in 1 of 4 photos, 1 photo(s) flagged." in summary(state)


def test_files_that_could_not_be_culled_are_named_with_their_reason():
    assert errors_text({}) == ""
    text = errors_text({"/shoot/50_corrupt.jpg": "damaged (Truncated File Read)", "/nowhere": "no such file or folder"})
    assert "50_corrupt.jpg: damaged (Truncated File Read)" in text and "nowhere: no such file or folder" in text
    many = errors_text({f"/shoot/{i}.jpg": "damaged" for i in range(8)})
    assert many.count("damaged") == 5 and "and 3 more" in many
