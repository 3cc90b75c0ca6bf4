"""The Cull view in a real chromium against a real server: cull a small shoot typed in as a folder,
override one pick with the keyboard (click, →, P, ←, U), copy the picks to a folder and check it on disk."""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from cull_fixtures import make_shoot
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)  # each key is a server round trip: seconds, on two cores shared with other work

DONE_TIMEOUT = 240_000  # ms: NIMA and the feature backbone load on two shared cores


@pytest.fixture
def shoot(workbench_env, nima_weights, savoias_dir, tmp_path):
    os.symlink(nima_weights, Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name)
    sources = sorted((savoias_dir / "images").glob("*.jpg"))
    random.Random(5).shuffle(sources)
    return make_shoot(sources[:3], tmp_path / "shoot", seed=4, long_side=300, burst_share=1.0, burst_sizes=(3, 4))


def test_cull_override_a_pick_with_the_keyboard_and_copy_the_picks(page: Page, shoot, app_server, tmp_path,
                                                                    output_dir):
    page.goto(app_server)
    page.get_by_role("tab", name="Predict", exact=True).click()
    expect(page.locator("#predict-scorer-info")).to_contain_text("NIMA", timeout=DONE_TIMEOUT)
    page.get_by_role("tab", name="Many photos", exact=True).click()
    page.locator("#predict-folder textarea").fill(str(shoot.folder))
    expect(page.locator("#cull-stop")).to_be_disabled()  # nothing runs yet: grey and off, not a red button
    expect(page.locator("#cull-stop")).not_to_have_class(re.compile(r"\bstop\b"))
    page.locator("#cull-start").click()
    expect(page.locator("#cull-progress")).to_contain_text("Done: ", timeout=DONE_TIMEOUT)
    expect(page.locator("#cull-stop")).to_be_disabled()
    expect(page.locator("#cull-groups .cull-group")).to_have_count(len(shoot.groups))
    photos = page.locator("#cull-groups .cull-photo")
    expect(photos).to_have_count(sum(len(g) for g in shoot.groups))
    for path in shoot.blurred:  # the blurred frames carry their badge
        expect(page.locator(f'#cull-groups .cull-photo[data-path="{path}"]')).to_contain_text("out of focus")
    page.screenshot(path=str(output_dir / "cull_view.png"), full_page=True)

    # a pick whose right-hand neighbour is unmarked: move there and make it the pick instead
    pick = page.locator('#cull-groups .cull-photo[data-status="pick"]:has(+ .cull-photo[data-status="none"])').first
    old_path = pick.get_attribute("data-path")
    new_path = page.locator('#cull-groups .cull-photo[data-status="pick"] + .cull-photo[data-status="none"]') \
        .first.get_attribute("data-path")
    pick.click()
    expect(page.locator("#cull-groups .cull-photo.selected")).to_have_attribute("data-path", old_path)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#cull-groups .cull-photo.selected")).to_have_attribute("data-path", new_path)
    page.keyboard.press("p")
    expect(page.locator(f'#cull-groups .cull-photo[data-path="{new_path}"]')).to_have_attribute("data-status", "pick")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#cull-groups .cull-photo.selected")).to_have_attribute("data-path", old_path)
    page.keyboard.press("u")
    expect(page.locator(f'#cull-groups .cull-photo[data-path="{old_path}"]')).to_have_attribute("data-status", "none")
    page.keyboard.press("4")
    expect(page.locator("#cull-summary")).to_contain_text("picks")
    picks = sorted(Path(p).name for p in page.locator('#cull-groups .cull-photo[data-status="pick"]')
                   .evaluate_all("els => els.map(e => e.dataset.path)"))

    keepers = tmp_path / "keepers"
    page.locator("#cull-target textarea").fill(str(keepers))
    page.locator("#cull-copy").click()
    expect(page.locator("#cull-note")).to_contain_text(f"Copied {len(picks)} picks", timeout=60_000)
    on_disk = sorted(p.name for p in keepers.iterdir())
    assert on_disk == picks
    assert Path(new_path).name in on_disk and Path(old_path).name not in on_disk
    for name in on_disk:
        assert (keepers / name).read_bytes() == (shoot.folder / name).read_bytes()
    page.screenshot(path=str(output_dir / "cull_view_after.png"), full_page=True)
