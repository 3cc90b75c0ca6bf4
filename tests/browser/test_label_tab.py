"""The Label tab in a real chromium against a real server, driven by the keyboard alone.

Rates five photos and makes three comparisons, then reads data/scores.csv and
data/comparisons.csv: every key must already be on disk.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def disk_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def saves(page: Page) -> int:
    return page.evaluate("window.__wbLabel.saves")


def test_rate_five_and_compare_three_with_the_keyboard(app_server, page: Page, workbench_env, photos, output_dir):
    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    names = []
    for name, pixels in photos.items():
        names.append(f"photo_{name}.jpg")
        Image.fromarray(pixels).save(data / names[-1], quality=85)
    names.sort()
    page.goto(app_server)
    page.get_by_role("tab", name="Label", exact=True).click()
    page.wait_for_function("window.__wbLabel && window.__wbLabel.ready")
    caption = page.locator("#label-desk .wb-caption")
    expect(caption).to_contain_text(f"1 / {len(names)} · {names[0]}")
    page.locator("#label-desk .wb-help").click()  # the keys belong to the page, not to a text field

    for key in ("5", "3", "1", "4"):  # each key saves and moves on
        page.keyboard.press(key)
    page.keyboard.press("ArrowLeft")  # back to the fourth photo: 4 stars
    page.keyboard.press("2")  # now 2 stars, next photo (the fifth)
    page.keyboard.press("5")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("z")  # undo: the fifth photo loses its 5 stars
    assert wait_for(lambda: saves(page) >= 7)
    expect(caption).to_contain_text(names[4])

    def scores():
        return {r["filename"]: r["score"] for r in disk_rows(data / "scores.csv") if r["score"]}

    # default stars -> the middle of each fifth of 0-100
    expected = {names[0]: "90", names[1]: "50", names[2]: "10", names[3]: "30"}
    assert wait_for(lambda: scores() == expected), scores()
    page.keyboard.press("4")
    assert wait_for(lambda: scores() == {**expected, names[4]: "70"}), scores()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("0")  # clears the fifth photo's score, said as such
    expect(page.locator("#label-desk .wb-status")).to_have_text(f"cleared the score of {names[4]}")
    assert wait_for(lambda: scores() == expected), scores()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("4")  # and back
    assert wait_for(lambda: scores() == {**expected, names[4]: "70"}), scores()
    expect(page.locator("#label-desk .wb-status")).to_have_text(f"saved: {names[4]} ★★★★")
    page.screenshot(path=output_dir / "rate.png")

    # another writer (the CLI, another tab) changes the fifth photo's score; rating it again here still
    # saves the key's score, and the status line says what was replaced
    from workbench.dataset import ScoreStore

    ScoreStore(data).set_score(names[4], 20)
    page.keyboard.press("ArrowLeft")
    expect(caption).to_contain_text(names[4])
    page.keyboard.press("1")
    expect(page.locator("#label-desk .wb-status")).to_have_text(
        f"{names[4]}'s score had been changed elsewhere from 70 to 20 since you opened it; now 10.")
    assert scores()[names[4]] == "10"

    page.get_by_role("button", name="Compare pairs").click()
    left = page.locator("#label-desk .wb-left-name")
    expect(left).to_contain_text("←")
    # blind by default: score-prefixed file names would give the stored score away
    expect(left).to_have_text("← left")
    expect(page.locator("#label-desk .wb-right-name")).to_have_text("right →")
    page.locator("#label-desk .wb-names").check()
    expect(left).to_contain_text(".jpg")
    shown = []
    for key in ("ArrowLeft", "ArrowRight", "="):
        pair = (left.inner_text().lstrip("← ").strip(),
                page.locator("#label-desk .wb-right-name").inner_text().rstrip(" →").strip())
        shown.append(pair)
        before = saves(page)
        page.keyboard.press(key)
        assert wait_for(lambda: saves(page) > before)  # saved, and the next pair is on screen
    rows = wait_for(lambda: (r := disk_rows(data / "comparisons.csv")) and len(r) == 3 and r)
    assert [(r["left"], r["right"], r["outcome"]) for r in rows] == [
        (*shown[0], "left"), (*shown[1], "right"), (*shown[2], "tie")]
    assert all(a != b and {a, b} <= set(names) for a, b in shown)
    page.screenshot(path=output_dir / "pairs.png")
    page.keyboard.press("z")  # undo the tie
    assert wait_for(lambda: len(disk_rows(data / "comparisons.csv")) == 2)

    # the comparisons become labels for the compared photos that had none; the five ratings anchor them
    compared = {n for pair in shown[:2] for n in pair}
    made = 2
    if names[5] not in compared:  # pairs are drawn at random among equals: make sure the unrated photo took part
        from workbench.dataset.comparisons import ComparisonStore

        ComparisonStore(data).add(names[5], names[0], "right")
        compared, made = compared | {names[5], names[0]}, 3
    page.get_by_role("button", name="Use comparisons as labels").click()
    expect(page.locator("#label-desk .wb-status")).to_contain_text(f"labelled from {made} comparison(s)")
    labelled = {r["filename"] for r in disk_rows(data / "scores.csv") if r["score"]}
    assert labelled == set(names[:5]) | compared

    # Training data's table says which labels came from the comparisons
    page.get_by_role("tab", name="Training data", exact=True).click()
    table = page.locator("#data-table")
    expect(table).to_contain_text("label from")
    from_pairs = compared - set(names[:5])
    assert from_pairs  # else the check below would prove nothing
    for name in from_pairs:
        expect(table.get_by_role("row").filter(has_text=name)).to_contain_text("comparisons")
    for name in names[:5]:  # rated by the person: said in words, not "score"
        expect(table.get_by_role("row").filter(has_text=name)).to_contain_text("your score")
        expect(table.get_by_role("row").filter(has_text=name)).not_to_contain_text("comparisons")

    # ... and writes every label into an XMP sidecar that photo managers read
    page.locator("#data-write-xmp").click()
    expect(page.locator("#data-status")).to_contain_text(f"Wrote stars for {len(labelled)} labelled photos")
    sidecars = {p.name for p in data.glob("*.xmp")}
    assert sidecars == {Path(n).stem + ".xmp" for n in labelled}
    assert (data / (Path(names[0]).stem + ".xmp")).read_text(encoding="utf-8").count('xmp:Rating="5"') == 1
