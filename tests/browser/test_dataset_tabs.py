"""The Import and Training-data tabs in a real chromium against a real server.

Every check ends on the disk: ``data/scores.csv`` and the image files are what a
person keeps, so that is what these tests read back after each click.
"""
from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


# ------------------------------------------------------------------ helpers
def disk_scores(data_dir: Path) -> dict[str, float | None]:
    """``{filename: score}`` as written in data/scores.csv (None for an empty cell)."""
    path = data_dir / "scores.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["filename"]: (float(row["score"]) if row["score"] else None) for row in csv.DictReader(fh)}


def images_on_disk(data_dir: Path) -> set[str]:
    return {p.name for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() == ".jpg"}


def open_tab(page: Page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()


def select_image(page: Page, prefix: str, filename: str) -> None:
    thumb = page.locator(f"#{prefix}-gallery button.thumbnail-item", has_text=filename)
    # Clicking the image that is already selected would fire an event whose reply
    # (its stored score) could land after the test has typed a new one.
    if "selected" not in (thumb.get_attribute("class") or "").split():
        thumb.click()
    expect(page.locator(f"#{prefix}-name")).to_contain_text(filename)


def type_score(page: Page, prefix: str, value: str) -> None:
    field = page.locator(f"#{prefix}-score input")
    field.fill(value)
    field.press("Enter")


def edit_table_score(page: Page, prefix: str, filename: str, value: str) -> None:
    row = page.locator(f"#{prefix}-table [role=row]", has_text=filename)
    row.locator('[role=gridcell][data-col="1"]').dblclick()
    editor = page.locator(f"#{prefix}-table textarea[aria-label='Edit cell']")
    editor.fill(value)
    editor.press("Enter")


def import_folder(page: Page, url: str, folder: Path, *, navigate: bool = True) -> None:
    if navigate:  # a second goto right after one can be aborted by the first page's own requests (seen under load)
        page.goto(url)
    page.locator("#import-folder input").fill(str(folder))
    page.locator("#import-scan-folder").click()
    # (the progress overlay reads "6/6 images" while the scan is still running)
    expect(page.locator("#import-summary")).to_contain_text("To import — 6 images", timeout=60_000)


# -------------------------------------------------------------------- tests
def test_import_a_folder_edit_scores_and_save(app_server, page, scored_photo_folder, workbench_env, output_dir):
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    import_folder(page, app_server, scored_photo_folder)
    expect(page.locator("#import-gallery button.thumbnail-item")).to_have_count(6)
    expect(page.locator("#import-gallery")).to_contain_text("85 · 85_chelsea.jpg")

    # one score through the gallery: select, type, Enter
    select_image(page, "import", "40_coffee.jpg")
    expect(page.locator("#import-score input")).to_have_value("40")
    type_score(page, "import", "47")
    expect(page.locator("#import-status")).to_contain_text("47")
    expect(page.locator("#import-gallery")).to_contain_text("47 · 40_coffee.jpg")
    # ... and the table followed the gallery
    expect(page.locator("#import-table [role=row]", has_text="40_coffee.jpg")).to_contain_text("47")

    # one score through the table; the gallery follows
    edit_table_score(page, "import", "55_rocket.jpg", "58.5")
    expect(page.locator("#import-gallery")).to_contain_text("58.5 · 55_rocket.jpg")

    # previous/next walk through the set
    select_image(page, "import", "63_china.jpg")
    page.locator("#import-next").click()
    expect(page.locator("#import-name")).to_contain_text("72_astronaut.jpg")
    expect(page.locator("#import-gallery button.thumbnail-item.selected")).to_contain_text("72_astronaut.jpg")
    page.locator("#import-prev").click()
    expect(page.locator("#import-name")).to_contain_text("63_china.jpg")

    # nothing is on disk before Save
    assert disk_scores(data_dir) == {}
    page.screenshot(path=str(output_dir / "import_tab.png"), full_page=True)

    page.locator("#import-save").click()
    expect(page.locator("#import-report")).to_contain_text("6 images copied", timeout=60_000)
    assert disk_scores(data_dir) == {
        "85_chelsea.jpg": 85, "40_coffee.jpg": 47, "72_astronaut.jpg": 72,
        "55_rocket.jpg": 58.5, "63_china.jpg": 63, "30_flower.jpg": 30,
    }
    assert images_on_disk(data_dir) == {p.name for p in scored_photo_folder.iterdir()}
    page.screenshot(path=str(output_dir / "import_saved.png"), full_page=True)


def test_import_uploads_and_refuse_bad_input(app_server, page, scored_photo_folder, workbench_env, tmp_path,
                                             output_dir):
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    page.goto(app_server)
    page.locator("#import-folder input").fill(str(scored_photo_folder / "missing"))
    page.locator("#import-scan-folder").click()
    expect(page.locator("#import-status")).to_contain_text("does not exist")

    # upload two photos, a broken one, and a zip holding a photo and a text file
    broken = tmp_path / "99_broken.jpg"
    broken.write_bytes(b"definitely not a jpeg")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(scored_photo_folder / "72_astronaut.jpg", "trip/72_astronaut.jpg")
        zf.writestr("trip/notes.txt", "hello")
    page.get_by_role("tab", name="Upload from this browser").click()
    page.locator("#import-upload input[type=file]").set_input_files([
        str(scored_photo_folder / "85_chelsea.jpg"), str(scored_photo_folder / "40_coffee.jpg"),
        str(broken), str(archive)])
    expect(page.locator("#import-upload a[href$='more.zip']")).to_have_count(1)
    page.locator("#import-scan-upload").click()
    expect(page.locator("#import-summary")).to_contain_text("To import — 3 images", timeout=60_000)
    expect(page.locator("#import-summary")).to_contain_text("2 skipped")
    expect(page.locator("#import-summary")).to_contain_text("99_broken.jpg")
    expect(page.locator("#import-summary")).to_contain_text("notes.txt")

    # bad scores in the field and in the table: a message, the preview unchanged
    select_image(page, "import", "85_chelsea.jpg")
    for bad, says in [("abc", "not a number"), ("NaN", "NaN"), ("150", "outside"), ("", "empty")]:
        type_score(page, "import", bad)
        expect(page.locator("#import-status")).to_contain_text(says)
    expect(page.locator("#import-gallery")).to_contain_text("85 · 85_chelsea.jpg")
    edit_table_score(page, "import", "40_coffee.jpg", "-5")
    expect(page.locator("#import-status")).to_contain_text("outside")
    expect(page.locator("#import-table [role=row]", has_text="40_coffee.jpg")).to_contain_text("40")
    assert not (data_dir / "scores.csv").exists()
    page.screenshot(path=str(output_dir / "import_uploads_refused_score.png"), full_page=True)

    page.locator("#import-save").click()
    expect(page.locator("#import-report")).to_contain_text("3 images copied", timeout=60_000)
    assert disk_scores(data_dir) == {"85_chelsea.jpg": 85, "40_coffee.jpg": 40, "72_astronaut.jpg": 72}


def test_training_data_edits_are_saved_at_once(app_server, page, scored_photo_folder, workbench_env, output_dir):
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    import_folder(page, app_server, scored_photo_folder)
    page.locator("#import-save").click()
    expect(page.locator("#import-report")).to_contain_text("6 images copied", timeout=60_000)

    open_tab(page, "Training data")  # opening the tab re-reads the disk
    expect(page.locator("#data-gallery button.thumbnail-item")).to_have_count(6)
    expect(page.locator("#data-summary")).to_contain_text("6 labelled")

    # edit a score: written at once, no save button
    select_image(page, "data", "72_astronaut.jpg")
    type_score(page, "data", "75")
    expect(page.locator("#data-status")).to_contain_text("Saved score 75 for 72_astronaut.jpg")
    assert disk_scores(data_dir)["72_astronaut.jpg"] == 75

    # a score typed in the table is written too
    edit_table_score(page, "data", "63_china.jpg", "64")
    expect(page.locator("#data-status")).to_contain_text("Saved 63_china.jpg → 64.")
    assert disk_scores(data_dir)["63_china.jpg"] == 64
    # "label from": the file name's score as imported, the person's own once retyped
    expect(page.locator("#data-table [role=row]", has_text="85_chelsea.jpg")).to_contain_text("file name")
    expect(page.locator("#data-table [role=row]", has_text="63_china.jpg")).to_contain_text("your score")

    # bad scores: a clear message, the file untouched
    before = (data_dir / "scores.csv").read_bytes()
    select_image(page, "data", "85_chelsea.jpg")
    for bad, says in [("great", "not a number"), ("nan", "NaN"), ("101", "outside"), ("", "empty")]:
        type_score(page, "data", bad)
        expect(page.locator("#data-status")).to_contain_text(says)
        expect(page.locator("#data-status")).to_contain_text("Nothing was changed")
    assert (data_dir / "scores.csv").read_bytes() == before

    # delete moves the image and its row to the trash ...
    select_image(page, "data", "30_flower.jpg")
    page.locator("#data-delete").click()
    expect(page.locator("#data-status")).to_contain_text("Moved 30_flower.jpg to the trash")
    expect(page.locator("#data-gallery button.thumbnail-item")).to_have_count(5)
    assert "30_flower.jpg" not in disk_scores(data_dir)
    assert "30_flower.jpg" not in images_on_disk(data_dir)
    assert any(p.name == "30_flower.jpg" for p in (data_dir / ".trash").rglob("*"))

    # ... and undo brings both back
    page.locator("#data-undo").click()
    expect(page.locator("#data-status")).to_contain_text("Restored 30_flower.jpg")
    expect(page.locator("#data-gallery button.thumbnail-item")).to_have_count(6)
    assert disk_scores(data_dir)["30_flower.jpg"] == 30
    assert "30_flower.jpg" in images_on_disk(data_dir)
    page.screenshot(path=str(output_dir / "training_data_tab.png"), full_page=True)

    # leaving and re-opening the tab re-reads the disk but keeps the photo in view and a score
    # being typed for it (the re-read used to jump to the first photo and wipe the box)
    select_image(page, "data", "63_china.jpg")
    page.locator("#data-score input").fill("66")
    open_tab(page, "Import")
    open_tab(page, "Training data")
    expect(page.locator("#data-name")).to_contain_text("63_china.jpg")
    expect(page.locator("#data-score input")).to_have_value("66")
    page.locator("#data-score input").press("Enter")
    expect(page.locator("#data-status")).to_contain_text("Saved score 66 for 63_china.jpg")
    assert disk_scores(data_dir)["63_china.jpg"] == 66


def test_a_second_tab_saving_over_a_score_changed_in_the_first_is_told(app_server, page, browser, photos,
                                                                          workbench_env):
    """Two browser tabs show the same photo; the first saves a new score, then the second (still showing
    the old one) saves its own: it is kept, and the second tab is told what it replaced."""
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    for name, pixels in zip(("a_coffee.jpg", "b_rocket.jpg"), photos.values()):
        Image.fromarray(pixels).save(data_dir / name, quality=90)
    (data_dir / "scores.csv").write_text("filename,score\na_coffee.jpg,40\nb_rocket.jpg,55\n")
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.set_default_timeout(30_000)
    try:
        for tab in (page, other):  # both open the photo (the first by name, selected on arrival) at 40
            tab.goto(app_server)
            open_tab(tab, "Training data")
            expect(tab.locator("#data-gallery button.thumbnail-item")).to_have_count(2, timeout=60_000)
            select_image(tab, "data", "a_coffee.jpg")
            expect(tab.locator("#data-score input")).to_have_value("40")
        type_score(other, "data", "60")
        expect(other.locator("#data-status")).to_contain_text("Saved score 60 for a_coffee.jpg.")
        expect(other.locator("#data-status")).not_to_contain_text("changed elsewhere")  # it saw 40: nothing to tell
        assert disk_scores(data_dir)["a_coffee.jpg"] == 60

        type_score(page, "data", "75")  # this tab still shows 40
        expect(page.locator("#data-status")).to_contain_text(
            "✓ Saved score 75 for a_coffee.jpg. ⚠️ This photo's score had been changed elsewhere from 40 to 60 "
            "since you opened it; now 75.")
        assert disk_scores(data_dir) == {"a_coffee.jpg": 75, "b_rocket.jpg": 55}
    finally:
        other.context.close()


@pytest.fixture
def five_per_page(tmp_path, monkeypatch):
    """A config with gallery pages of 5, for the server the test starts next."""
    config = tmp_path / "five_per_page.yaml"
    config.write_text("images:\n  gallery_page_size: 5\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))


def test_training_data_pages_add_refresh_filter_sort(five_per_page, app_server, page, scored_photo_folder,
                                                     workbench_env, run_cli, tmp_path, output_dir):
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    run_cli("import", scored_photo_folder)
    page.goto(app_server)
    open_tab(page, "Training data")
    thumbnails = page.locator("#data-gallery button.thumbnail-item")
    expect(page.locator("#data-page-label")).to_contain_text("Page 1 of 2 · 6 images")
    expect(thumbnails).to_have_count(5)
    page.locator("#data-next-page").click()
    expect(page.locator("#data-page-label")).to_contain_text("Page 2 of 2")
    expect(thumbnails).to_have_count(1)
    expect(page.locator("#data-gallery")).to_contain_text("85_chelsea.jpg")
    page.locator("#data-prev-page").click()
    expect(thumbnails).to_have_count(5)

    # another writer (here: the store used directly, as the CLI would) changes the disk
    from workbench.dataset import ScoreStore

    ScoreStore(data_dir).set_score("40_coffee.jpg", 12)
    page.locator("#data-refresh").click()
    expect(page.locator("#data-gallery")).to_contain_text("12 · 40_coffee.jpg")

    # add an uploaded image with a score
    extra = tmp_path / "new shot.png"
    Image.open(scored_photo_folder / "55_rocket.jpg").rotate(90, expand=True).save(extra)
    page.get_by_text("Add an image").click()
    page.locator("#data-add-file input[type=file]").set_input_files(str(extra))
    expect(page.locator("#data-add-file a[href*='new']")).to_have_count(1)
    page.locator("#data-add-score input").fill("33")
    page.locator("#data-add-button").click()
    expect(page.locator("#data-status")).to_contain_text("Added new shot.png")
    assert disk_scores(data_dir)["new shot.png"] == 33
    expect(page.locator("#data-add-score input")).to_have_value("")  # the form is ready for the next one

    # or name a file already in the data folder; a name reaching outside it is refused
    before = (data_dir / "scores.csv").read_bytes()
    page.locator("#data-add-name input").fill("../shoot/85_chelsea.jpg")
    page.locator("#data-add-score input").fill("50")
    page.locator("#data-add-button").click()
    expect(page.locator("#data-status")).to_contain_text("Nothing was changed")
    assert (data_dir / "scores.csv").read_bytes() == before
    page.locator("#data-add-name input").fill("63_china.jpg")
    page.locator("#data-add-score input").fill("66")
    page.locator("#data-add-button").click()
    expect(page.locator("#data-status")).to_contain_text("Saved score 66 for 63_china.jpg")
    assert disk_scores(data_dir)["63_china.jpg"] == 66
    expect(page.locator("#data-page-label")).to_contain_text("Page 1 of 2 · 7 images")

    # filter by score range and sort high to low
    page.locator("#data-min-score input").fill("60")
    page.locator("#data-min-score input").press("Enter")
    expect(thumbnails).to_have_count(3)  # 85, 72 and 66
    expect(page.locator("#data-page-label")).to_contain_text("3 images (of 7; the filter hides the rest)")
    page.locator("#data-sort input").click()
    page.get_by_role("option", name="Score, high to low").click()
    expect(page.locator("#data-gallery .caption-label").first).to_have_text("85 · 85_chelsea.jpg")
    page.screenshot(path=str(output_dir / "training_data_filtered.png"), full_page=True)


def test_a_new_import_preview_keeps_the_unlabelled_first_box(app_server, page, scored_photo_folder, photos, tmp_path):
    """The box is unticked, then another folder is previewed: its unlabelled photo stays in name order."""
    folder = tmp_path / "second shoot"
    folder.mkdir()
    for source in scored_photo_folder.iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    # no score in its name; upside down, so not byte-identical to 55_rocket.jpg (that would be imported once)
    Image.fromarray(photos["rocket"][::-1]).save(folder / "unrated.jpg", quality=90)

    def captions() -> list[str]:
        return page.locator("#import-gallery button.thumbnail-item").all_inner_texts()

    page.goto(app_server)
    page.locator("#import-folder input").fill(str(folder))
    page.locator("#import-scan-folder").click()
    expect(page.locator("#import-summary")).to_contain_text("To import — 7 images", timeout=60_000)
    expect(page.locator("#import-gallery button.thumbnail-item").first).to_contain_text("unrated.jpg")
    page.locator("#import-unlabelled-first input").uncheck()
    expect(page.locator("#import-gallery button.thumbnail-item").first).to_contain_text("30_flower.jpg")
    expect(page.locator("#import-gallery button.thumbnail-item").last).to_contain_text("unrated.jpg")

    page.locator("#import-folder input").fill(str(scored_photo_folder))  # another folder, then this one again
    page.locator("#import-scan-folder").click()
    expect(page.locator("#import-summary")).to_contain_text("To import — 6 images", timeout=60_000)
    page.locator("#import-folder input").fill(str(folder))
    page.locator("#import-scan-folder").click()
    expect(page.locator("#import-summary")).to_contain_text("To import — 7 images", timeout=60_000)
    expect(page.locator("#import-unlabelled-first input")).not_to_be_checked()
    expect(page.locator("#import-gallery button.thumbnail-item").last).to_contain_text("unrated.jpg")
    assert "unrated.jpg" in captions()[-1] and "30_flower.jpg" in captions()[0]


def y_ticks(page: Page, prefix: str) -> list[str]:
    return page.locator(f"#{prefix}-histogram [aria-label^='Y-axis'] .role-axis-label text").all_text_contents()


def test_a_reimport_says_what_is_already_there_and_the_histogram_counts_from_zero(app_server, page,
                                                                                 scored_photo_folder, tmp_path,
                                                                                 output_dir):
    page.goto(app_server)
    expect(page.locator("#import-histogram [aria-label^='Y-axis']")).to_be_attached(timeout=60_000)
    assert y_ticks(page, "import") == ["0", "1", "2", "3", "4", "5"]  # empty: whole photos, not 0.000000
    # a first preview whose tallest bar outgrows the axis (6 in one bin) shows its bars at once:
    # they stayed empty until the next update when the axis came with them
    high = tmp_path / "high"
    high.mkdir()
    for i, path in enumerate(sorted(scored_photo_folder.iterdir())):
        (high / f"{91 + i}_{path.name.split('_', 1)[1]}").write_bytes(path.read_bytes())
    page.locator("#import-folder input").fill(str(high))
    page.locator("#import-scan-folder").click()
    expect(page.locator("#import-summary")).to_contain_text("To import — 6 images", timeout=60_000)
    expect(page.locator("#import-histogram g.mark-rect path[aria-label*='score: 90–100; images: 6']")).to_have_count(1)
    page.screenshot(path=str(output_dir / "first_preview_histogram.png"), full_page=True)
    import_folder(page, app_server, scored_photo_folder)  # a fresh page: the summary above says 6 images too
    expect(page.locator("#import-gallery button.thumbnail-item")).to_have_count(6)
    page.locator("#import-save").click()
    expect(page.locator("#import-report")).to_contain_text("6 images copied", timeout=60_000)
    expect(page.locator("#import-summary")).to_contain_text("Saved to the training set — 6 new images")
    expect(page.locator("#import-gallery")).to_contain_text("Saved to the training set")

    page.locator("#import-scan-folder").click()  # the same folder again
    expect(page.locator("#import-summary")).to_contain_text("6 of these pictures are already in the training set",
                                                            timeout=60_000)
    expect(page.locator("#import-gallery")).to_contain_text("Preview (not saved yet)")
    expect(page.locator("#import-report")).to_have_text("")  # the last save's notice is gone
    for name in sorted(p.name for p in scored_photo_folder.iterdir()):  # all six into one bin: the axis grows
        select_image(page, "import", name)
        expect(page.locator("#import-name")).to_contain_text(name)
        type_score(page, "import", "95")
        expect(page.locator("#import-status")).to_contain_text(f"{name}: score 95")
    bar = page.locator("#import-histogram g.mark-rect path[aria-label*='score: 90–100; images: 6']")
    expect(bar).to_have_count(1)
    expect(page.locator("#import-histogram [aria-label^='Y-axis']")).to_have_attribute(
        "aria-label", re.compile(r"values from 0 to 6"))
    assert all(t.isdigit() for t in y_ticks(page, "import"))
    page.locator("#import-save").click()
    expect(page.locator("#import-summary")).to_contain_text("0 new images (0 labelled, 0 unlabelled), 6 already there",
                                                            timeout=60_000)
