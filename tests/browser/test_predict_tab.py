"""Tab 4 in a real chromium against a real server: score a batch with the ready
NIMA scorer (uploads plus a typed folder holding a broken file), check the
gallery is sorted best first, download the CSV and read it, open a Grad-CAM
overlay of a gallery photo and change its opacity; then one photo on its own;
then an image+text run, where the text typed for a photo changes its score.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from test_describe_critique import SECRET, ChatServer, completion

from workbench.config import load_settings
from workbench.events import drain
from workbench.predict import load_scorer, score_images, score_one

pytestmark = pytest.mark.browser

DONE_TIMEOUT = 180_000  # ms: the first NIMA load shares two cores with other work


@pytest.fixture
def shoot(workbench_env, nima_weights, photos, tmp_path) -> dict[str, Path]:
    """NIMA weights in place; three photos to upload, and a folder of three more plus a broken file."""
    os.symlink(nima_weights, Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name)
    uploads, folder = tmp_path / "uploads", tmp_path / "shoot folder"
    uploads.mkdir()
    folder.mkdir()
    for i, (name, pixels) in enumerate(photos.items()):
        Image.fromarray(pixels).save((uploads if i < 3 else folder) / f"{name}.jpg", quality=92)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return {"uploads": uploads, "folder": folder}


def gallery_captions(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#predict-gallery .caption-label").all_inner_texts()]


def test_score_a_batch_sort_download_and_explain(page: Page, shoot, app_server, output_dir):
    settings = load_settings()
    expected = drain(score_images([shoot["uploads"], shoot["folder"]], load_scorer("nima", settings), settings))
    expected_names = [Path(r.path).name for r in expected.scored]
    assert len(expected_names) == 6

    page.goto(app_server)
    page.get_by_role("tab", name="Predict", exact=True).click()
    expect(page.locator("#predict-scorer-info")).to_contain_text("NIMA", timeout=DONE_TIMEOUT)
    expect(page.locator("#predict-scorer-info")).to_contain_text("local file")
    page.get_by_role("tab", name="Many photos", exact=True).click()

    page.locator("#predict-uploads input[type=file]").set_input_files(sorted(shoot["uploads"].iterdir()))
    expect(page.locator("#predict-uploads")).to_contain_text("chelsea")
    expect(page.locator("#predict-uploads")).not_to_contain_text("Uploading", timeout=60_000)
    page.locator("#predict-folder textarea").fill(str(shoot["folder"]))
    page.locator("#predict-start").click()
    expect(page.locator("#predict-progress")).to_contain_text("Done: 6 scored, 1 could not be scored",
                                                              timeout=DONE_TIMEOUT)

    # the gallery is the shoot, best first
    captions = gallery_captions(page)
    assert [c.split(" · ", 1)[1] for c in captions] == expected_names
    shown = [float(c.split(" · ", 1)[0]) for c in captions]
    assert shown == sorted(shown, reverse=True)
    for caption, row in zip(captions, expected.scored):
        assert float(caption.split(" · ")[0]) == pytest.approx(row.score, abs=0.006)
    expect(page.locator("#predict-table")).to_contain_text("broken.jpg")

    # the CSV download holds the same order, the distribution and the broken file's reason
    with page.expect_download() as download_info:
        page.locator("#predict-csv a").first.click()
    saved = output_dir / "scores.csv"
    download_info.value.save_as(saved)
    rows = list(csv.DictReader(open(saved, encoding="utf-8")))
    assert list(rows[0]) == (["path", "score", "std", "rank", "percentile", "verdict", "error"]
                             + [f"p{i}" for i in range(1, 11)])
    assert [Path(r["path"]).name for r in rows[:6]] == expected_names
    # uploads by the name they had on this computer, not the server's temporary copy; folder photos by path
    uploaded = {p.name for p in shoot["uploads"].iterdir()}
    assert {r["path"] for r in rows[:6] if r["path"] in uploaded} == uploaded
    assert all(r["path"] in uploaded or r["path"].startswith(str(shoot["folder"])) for r in rows)
    assert [r["rank"] for r in rows[:6]] == ["1", "2", "3", "4", "5", "6"]
    assert all(r["verdict"] in ("good", "bad") for r in rows[:6])
    assert Path(rows[6]["path"]).name == "broken.jpg" and rows[6]["score"] == "" and rows[6]["error"]

    # a Grad-CAM overlay of the best photo, at two opacities
    page.locator("#predict-gallery .thumbnail-item").first.click()
    expect(page.locator("#predict-picked")).to_contain_text(expected_names[0], timeout=60_000)
    overlay = page.locator("#predict-picked-overlay img")
    expect(overlay).to_be_visible(timeout=60_000)
    first_src = overlay.get_attribute("src")
    page.screenshot(path=str(output_dir / "predict_batch_gradcam.png"), full_page=True)
    slider = page.locator("#predict-picked-opacity input[type=number]")
    slider.fill("0.9")
    slider.press("Enter")
    expect(overlay).not_to_have_attribute("src", first_src, timeout=30_000)
    page.screenshot(path=str(output_dir / "predict_batch_gradcam_opaque.png"), full_page=True)


def test_one_photo_shows_score_verdict_and_distribution(page: Page, shoot, app_server, output_dir):
    page.goto(app_server)
    page.get_by_role("tab", name="Predict", exact=True).click()
    expect(page.locator("#predict-scorer-info")).to_contain_text("NIMA", timeout=DONE_TIMEOUT)
    page.locator("#predict-photo input[type=file]").set_input_files(str(shoot["uploads"] / "chelsea.jpg"))
    expect(page.locator("#predict-result")).to_contain_text("on 1-10", timeout=DONE_TIMEOUT)
    expect(page.locator("#predict-result")).to_contain_text("at the threshold 5.1")
    expect(page.locator("#predict-distribution")).to_be_visible()
    page.get_by_text("Why this score? (where the model looked)").click()
    page.locator("#predict-explain").click()
    expect(page.locator("#predict-overlay img")).to_be_visible(timeout=60_000)
    expect(page.locator("#predict-explain-note")).to_contain_text("Grad-CAM: warm colours")
    page.get_by_text("Caption and critique (optional)").click()
    page.locator("#predict-describe").click()
    expect(page.locator("#predict-description")).to_contain_text("No language model is configured",
                                                                 timeout=120_000)

    # a chat server typed in for this session, the key in the password field
    server = ChatServer()
    server.script = [{"status": 200, "body": completion("The eyes are sharp; the crop is tight.")}]
    try:
        page.locator("#predict-llm-url textarea").fill(server.base_url)
        page.locator("#predict-llm-model textarea").fill("llava")
        page.locator("#predict-llm-key input").fill(SECRET)
        page.locator("#predict-caption input").uncheck()
        page.locator("#predict-describe").click()
        expect(page.locator("#predict-description")).to_contain_text("The eyes are sharp", timeout=60_000)
    finally:
        server.close()
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in (output_dir / "server.log").read_text()
    page.screenshot(path=str(output_dir / "predict_one_photo.png"), full_page=True)


@pytest.fixture
def texted_run(workbench_env, photos, tmp_path) -> dict:
    """An image+text run (multimodal_concat on the packaged lite0) whose text carries 40 of the points
    (a client verdict the pixels cannot show), and a new photo with no text anywhere."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from training_fixtures import make_brightness_set

    from workbench.training import train

    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    make_brightness_set(photos, data, n=24, size=48)
    rows = list(csv.reader(open(data / "scores.csv", encoding="utf-8")))[1:]
    with open(data / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "score", "text"])
        for i, (name, score) in enumerate(rows):
            loved = i % 2 == 0
            writer.writerow([name, round(0.6 * float(score) + 40 * loved, 3),
                             "the client loved it" if loved else "the client rejected it"])
    manifest = drain(train("multimodal_concat", load_settings()))
    photo = tmp_path / "new photo.jpg"
    Image.fromarray(photos["coffee"]).save(photo, quality=92)
    return {"run_id": manifest.run_id, "photo": photo}


def test_typed_text_rescores_a_photo_with_an_image_text_run(page: Page, texted_run, app_server, output_dir):
    settings = load_settings()
    scorer = load_scorer(texted_run["run_id"], settings)
    plain = score_one(texted_run["photo"], scorer, settings)
    loved = score_one(texted_run["photo"], scorer, settings, text="the client loved it")
    assert plain.text_source == "none" and loved.text_source == "typed" and abs(loved.score - plain.score) > 1

    page.goto(app_server)
    page.get_by_role("tab", name="Predict", exact=True).click()
    # the run is the default scorer once the page has opened (wait for it: its load re-scores the photo)
    expect(page.locator("#predict-scorer-info")).to_contain_text(scorer.name, timeout=DONE_TIMEOUT)
    page.locator("#predict-photo input[type=file]").set_input_files(str(texted_run["photo"]))
    result = page.locator("#predict-result")
    expect(result).to_contain_text("no text", timeout=DONE_TIMEOUT)  # the server's reply, before any typing
    expect(result).to_contain_text(f"{plain.score:.2f}")
    box = page.locator("#predict-text textarea")
    box.fill("the client loved it")
    box.press("Enter")
    expect(result).to_contain_text("Text used: from typed", timeout=DONE_TIMEOUT)
    expect(result).to_contain_text(f"{loved.score:.2f}")
    expect(result).not_to_contain_text("no text")
    page.screenshot(path=str(output_dir / "predict_typed_text.png"), full_page=True)


def test_best_first_with_the_keyboard_only_adds_a_corrected_score_to_the_training_set(page: Page, shoot, app_server,
                                                                                      output_dir):
    """←/→ move through "Best first", a number key gives the person's own score (stars mapped onto the
    training set's range), Enter adds the photo to the training set, Z takes it back."""
    from workbench.dataset import ScoreStore

    settings = load_settings()
    expected = drain(score_images([shoot["folder"]], load_scorer("nima", settings), settings))
    names = [Path(r.path).name for r in expected.scored]
    store = ScoreStore.from_settings(settings)
    page.goto(app_server)
    page.get_by_role("tab", name="Predict", exact=True).click()
    expect(page.locator("#predict-scorer-info")).to_contain_text("NIMA", timeout=DONE_TIMEOUT)
    page.get_by_role("tab", name="Many photos", exact=True).click()
    page.locator("#predict-folder textarea").fill(str(shoot["folder"]))
    page.locator("#predict-start").click()  # the setting up; from here on, keys only
    expect(page.locator("#predict-progress")).to_contain_text("Done: 3 scored", timeout=DONE_TIMEOUT)
    page.locator("#predict-start").blur()
    expect(page.locator("#predict-keys")).to_contain_text("Enter adds it to the training set")

    picked = page.locator("#predict-picked")
    page.keyboard.press("ArrowRight")  # nothing selected yet: the best photo
    expect(picked).to_contain_text(f"{names[0]}", timeout=30_000)
    expect(picked).to_contain_text("photo 1 of 3")
    page.keyboard.press("ArrowRight")
    expect(picked).to_contain_text("photo 2 of 3", timeout=30_000)
    expect(picked).to_contain_text(names[1])
    page.keyboard.press("4")  # four stars: 70 on the training set's 0-100
    expect(page.locator("#predict-score input")).to_have_value("70")
    page.keyboard.press("Enter")
    note = page.locator("#predict-label-note")
    expect(note).to_contain_text(f"{names[1]} added to the training set (70)", timeout=30_000)
    assert [(e.filename, e.score) for e in store.entries()] == [(names[1], 70)]

    page.keyboard.press("ArrowLeft")  # Enter gave the keys back to the gallery
    expect(picked).to_contain_text("photo 1 of 3", timeout=30_000)
    expect(page.locator("#predict-score input")).to_have_value("")  # a new photo: no score carried over
    page.keyboard.press("z")
    expect(note).to_contain_text(f"{names[1]} removed from the training set", timeout=30_000)
    assert store.entries() == []
    page.keyboard.press("ArrowLeft")  # wraps round to the last
    expect(picked).to_contain_text("photo 3 of 3", timeout=30_000)
    page.screenshot(path=str(output_dir / "predict_best_first_keys.png"), full_page=True)
