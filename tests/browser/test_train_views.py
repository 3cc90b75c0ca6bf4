"""The Train tab's Features control and its "Would more labels help?" panel, in a real chromium
against a real server, on the 48 brightness-scored photo crops of test_train_tab.py.

Race-free on a loaded machine: every action waits for the server's visible reply before the next,
and nothing is typed into a box an event may still rewrite (only clicks on radios, checkboxes and
buttons whose state is checked first).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from test_train_tab import FINISH_TIMEOUT, brightness_set, choose_family, wait_until_done  # noqa: F401  (fixture)

from workbench.backbones import get_backbone
from workbench.runs import RunStore
from workbench.runs.inference import load_run

pytestmark = pytest.mark.browser


def test_features_control_trains_on_the_chosen_view(page, brightness_set, app_server, settings):  # noqa: F811
    page.goto(app_server)
    page.get_by_role("tab", name="Train", exact=True).click()
    expect(page.locator("#train-weights")).to_contain_text("efficientnet_lite0", timeout=60_000)
    views = page.locator("#train-features")
    # auto (the default family) takes its own view: the control says which, and cannot be changed
    expect(views.get_by_label("multilevel", exact=True)).to_be_checked()
    expect(views.get_by_label("multilevel", exact=True)).to_be_disabled()
    expect(views).to_contain_text("auto chooses its own features: multilevel")
    choose_family(page, "ridge")
    expect(views.get_by_label("pooled", exact=True)).to_be_checked()  # the person's choice (the default) is back
    expect(views.get_by_label("multilevel", exact=True)).to_be_enabled()
    # Choosing a view re-checks the weights (its reply rewrites the weights note and Train's state, never
    # the radio), so Train may be clicked while that reply is on its way: it sends the radio's value.
    views.get_by_label("multilevel", exact=True).check()
    expect(views.get_by_label("multilevel", exact=True)).to_be_checked()
    expect(page.locator("#train-start")).to_be_enabled()
    page.locator("#train-start").click()
    wait_until_done(page, "Finished")

    store = RunStore(settings.models_dir)
    (run,) = store.list()
    assert run.family == "ridge" and run.status == "complete" and run.feature_view == "multilevel"
    expect(page.locator("#train-result")).to_contain_text(run.run_id)
    # the saved model learnt from every stage (not just the last layer's 1280 numbers)
    model = load_run(run.run_id, settings).model
    assert model.n_features_in_ == get_backbone("efficientnet_lite0").feature_dim_of("multilevel") > 1280

    # back to pooled: the next run learns from the last layer only
    views.get_by_label("pooled", exact=True).check()
    expect(views.get_by_label("pooled", exact=True)).to_be_checked()
    page.locator("#train-start").click()
    expect(page.locator("#train-result")).not_to_contain_text(run.run_id, timeout=FINISH_TIMEOUT)
    wait_until_done(page, "Finished")
    pooled = next(m for m in store.list() if m.run_id != run.run_id)
    assert pooled.feature_view == "pooled"
    expect(page.locator("#train-result")).to_contain_text(pooled.run_id)


def test_learning_curve_panel_draws_points_and_a_projection(page, brightness_set, app_server):  # noqa: F811
    page.goto(app_server)
    page.get_by_role("tab", name="Train", exact=True).click()
    page.get_by_role("tab", name="Would more labels help?", exact=True).click()
    families = page.locator("#curve-families")
    expect(families.get_by_label("ridge", exact=True)).to_be_checked()  # the baseline is ticked
    families.get_by_label("svr", exact=True).check()
    expect(families.get_by_label("svr", exact=True)).to_be_checked()
    expect(page.locator("#curve-progress")).to_contain_text("Not started")
    page.locator("#curve-start").click()
    expect(page.locator("#curve-progress")).to_contain_text("Done.", timeout=FINISH_TIMEOUT)
    expect(page.locator("#curve-start")).to_be_enabled(timeout=30_000)
    # 48 photos, 5 folds: about 38 to learn from, so points at 10, 25 and all of a training fold
    table = page.locator("#curve-table")
    for text in ("ridge", "svr", "n_labels", "srcc_mean", "srcc_std"):
        expect(table).to_contain_text(text)
    words = page.locator("#curve-projection")
    for name in ("ridge", "svr"):
        expect(words).to_contain_text(name)
    expect(words).to_contain_text(re.compile(r"from 3\d to [67]\d"))
    expect(page.locator("#curve-plot")).to_be_visible()
