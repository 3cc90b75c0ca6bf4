"""ImportSession: the import preview a person edits before anything reaches data/."""
from __future__ import annotations

import math

import pytest
from PIL import Image

from workbench.dataset import ScoreError, ScoreStore
from workbench.dataset.session import ImportSession, table_changes
from workbench.events import Finished, Progress, drain
from workbench.ui.import_tab import summary_line


@pytest.fixture
def mixed_folder(scored_photo_folder):
    """The six scored photos plus an unlabelled camera name and a broken file."""
    Image.open(scored_photo_folder / "85_chelsea.jpg").save(scored_photo_folder / "IMG_1234.jpg")
    (scored_photo_folder / "99_broken.jpg").write_bytes(b"not a jpeg at all")
    return scored_photo_folder


def test_scan_reads_scores_and_reports_skipped(mixed_folder, settings):
    events = list(ImportSession.scan_events(mixed_folder, settings))
    assert any(isinstance(e, Progress) for e in events)
    session = events[-1].result
    assert isinstance(events[-1], Finished) and isinstance(session, ImportSession)
    assert session.scores["85_chelsea.jpg"] == 85
    assert session.scores["IMG_1234.jpg"] is None
    assert session.counts() == {"images": 7, "labelled": 6, "unlabelled": 1, "skipped": 1}
    assert [s.file for s in session.skipped] == ["99_broken.jpg"]
    summary = session.summary()
    assert (summary.labelled, summary.unlabelled, summary.lowest, summary.highest) == (6, 1, 30, 85)
    assert sum(b.count for b in summary.histogram) == 6


def test_bad_pattern_and_missing_folder_are_refused_before_work(scored_photo_folder, settings):
    with pytest.raises(ScoreError, match="not a valid regular expression"):
        ImportSession.scan(scored_photo_folder, settings, pattern="(unclosed")
    with pytest.raises(FileNotFoundError):
        ImportSession.scan(scored_photo_folder / "nope", settings)


def test_custom_pattern(tmp_path, photos, settings):
    folder = tmp_path / "custom"
    folder.mkdir()
    Image.fromarray(photos["coffee"]).save(folder / "coffee_s42.jpg")
    session = ImportSession.scan(folder, settings, pattern=r"_s(?P<score>\d+)$")
    assert session.scores == {"coffee_s42.jpg": 42}


def test_typed_scores_are_validated_and_bad_ones_change_nothing(scored_photo_folder, settings):
    session = ImportSession.scan(scored_photo_folder, settings)
    assert session.set_score("40_coffee.jpg", " 47.5 ") == 47.5
    for bad in ["", "abc", "nan", "NaN", "inf", "150", "-1", None]:
        with pytest.raises(ScoreError):
            session.set_score("40_coffee.jpg", bad)
    assert session.scores["40_coffee.jpg"] == 47.5
    with pytest.raises(KeyError):
        session.set_score("../etc/passwd", 5)
    # many at once: one bad value refuses the whole batch and names it
    with pytest.raises(ScoreError, match="30_flower.jpg"):
        session.set_scores({"85_chelsea.jpg": 90, "30_flower.jpg": "lots"})
    assert session.scores["85_chelsea.jpg"] == 85


def test_table_changes_returns_only_edited_rows():
    current = {"a.jpg": 85.0, "b.jpg": 7.5, "c.jpg": None}
    rows = [("a.jpg", "85"), ("b.jpg", "7.50"), ("c.jpg", ""), ("d.jpg", "3")]
    assert table_changes(rows, current) == {}
    rows = [("a.jpg", "86"), ("b.jpg", "7.5"), ("c.jpg", "12"), ("x.jpg", "1")]
    assert table_changes(rows, current) == {"a.jpg": "86", "c.jpg": "12"}
    # clearing a labelled cell or typing junk is a change the store will refuse with a message
    assert table_changes([("a.jpg", ""), ("b.jpg", "abc"), ("c.jpg", math.nan)], current) == {
        "a.jpg": "", "b.jpg": "abc"}


def test_apply_table_then_save_writes_the_edited_scores(mixed_folder, settings):
    session = ImportSession.scan(mixed_folder, settings)
    rows = [(name, "" if score is None else f"{score:g}") for name, score in session.scores.items()]
    rows = [(n, "58" if n == "55_rocket.jpg" else ("12" if n == "IMG_1234.jpg" else s)) for n, s in rows]
    assert session.apply_table(rows) == {"55_rocket.jpg": 58, "IMG_1234.jpg": 12}

    store = ScoreStore.from_settings(settings)
    report = drain(session.save(store))
    assert (report.imported, report.labelled, report.unlabelled) == (7, 7, 0)
    assert [s.file for s in report.skipped] == ["99_broken.jpg"]
    on_disk = {e.filename: e.score for e in store.entries()}
    assert on_disk["55_rocket.jpg"] == 58 and on_disk["IMG_1234.jpg"] == 12 and on_disk["85_chelsea.jpg"] == 85


def test_pages_have_thumbnails_and_follow_edits(scored_photo_folder, settings):
    session = ImportSession.scan(scored_photo_folder, settings)
    first = session.page(0, 4, settings.thumbnails_dir, 64)
    last = session.page(99, 4, settings.thumbnails_dir, 64)  # clamped to the last page
    assert (first.pages, first.total, len(first.items), last.page, len(last.items)) == (2, 6, 4, 1, 2)
    assert all(item.thumbnail is not None and item.thumbnail.is_file() for item in first.items + last.items)
    session.set_score(first.items[0].filename, 1)
    assert session.page(0, 4, settings.thumbnails_dir, 64).items[0].score == 1


def test_pages_sort_names_naturally_with_the_unlabelled_first(tmp_path, photos, settings):
    folder = tmp_path / "naming"
    folder.mkdir()
    pixels = next(iter(photos.values()))
    for n, name in enumerate(("89_a.jpg", "9_b.jpg", "8_c.jpg", "100_d.jpg", "sunset.jpg")):
        Image.fromarray(pixels).resize((40 + n, 30)).save(folder / name)  # five pictures, not one five times
    session = ImportSession.scan(folder, settings)

    def names(**order):
        return [i.filename for i in session.page(0, 10, settings.thumbnails_dir, 32, **order).items]

    assert names() == ["8_c.jpg", "9_b.jpg", "89_a.jpg", "100_d.jpg", "sunset.jpg"]
    assert names(unlabelled_first=True) == ["sunset.jpg", "8_c.jpg", "9_b.jpg", "89_a.jpg", "100_d.jpg"]


def test_a_reimport_says_what_is_already_in_the_set_and_what_was_really_copied(scored_photo_folder, settings):
    store = ScoreStore.from_settings(settings)
    first = ImportSession.scan(scored_photo_folder, settings)
    assert first.already == {} and first.report is None and not first.saved
    drain(first.save(store))
    assert first.saved and (first.report.imported, first.report.already) == (6, 0)
    Image.open(scored_photo_folder / "85_chelsea.jpg").rotate(90).save(scored_photo_folder / "70_new.jpg")
    again = ImportSession.scan(scored_photo_folder, settings)
    assert again.already == {name: name for name in first.names}  # by content, and named as in the set
    assert store.copies_of([scored_photo_folder / "70_new.jpg", scored_photo_folder / "missing.jpg"]) == {}
    assert "6 of these pictures are already in the training set" in summary_line(again)
    drain(again.save(store))
    assert (again.report.imported, again.report.already, again.report.saved) == (1, 6, ["70_new.jpg"])
    assert "Saved to the training set — 1 new images (1 labelled, 0 unlabelled), 6 already there" in summary_line(again)
    assert len(store.entries()) == 7


def test_the_histogram_axis_starts_at_zero_and_reaches_at_least_five(settings):
    from workbench.dataset.summary import summarize_scores
    from workbench.ui.widgets import histogram

    assert histogram([], settings).y_lim == [0, 5]  # an empty set: ticks 0..5, not "0.000000"
    assert histogram(summarize_scores([95.0] * 7, 0, 100).histogram, settings).y_lim == [0, 7]


def test_the_same_picture_twice_in_a_folder_is_named_in_the_preview_and_imported_once(scored_photo_folder, settings):
    """A folder holding 55_duplicate.jpg, byte-identical to 30_flower.jpg: the preview counted both and said
    nothing, Save dropped the 55 silently and still showed both."""
    (scored_photo_folder / "55_duplicate.jpg").write_bytes((scored_photo_folder / "30_flower.jpg").read_bytes())
    session = ImportSession.scan(scored_photo_folder, settings)
    assert "55_duplicate.jpg" not in session.names and session.counts()["images"] == 6
    line = summary_line(session)
    assert "6 images: 6 labelled" in line and "0 skipped, 1 the same picture as another file here" in line
    assert ("`55_duplicate.jpg`: the same picture as 30_flower.jpg in this import, which is imported instead "
            "(not copied twice); scores 55 vs 30: the first by name is kept, so 55 is not used") in line
    # the kept photo's score edited in the preview: the message quotes the score that will be saved
    session.set_score("30_flower.jpg", "42")
    line = summary_line(session)
    assert "scores 55 vs 42: the first by name is kept, so 55 is not used" in line and "vs 30" not in line
    session.set_score("30_flower.jpg", "55")  # now the same score: nothing is lost, nothing to say about it
    assert summary_line(session).count("55") == 1  # the file name only
    session.set_score("30_flower.jpg", "30")
    store = ScoreStore.from_settings(settings)
    drain(session.save(store))
    assert any("scores 55 vs 30" in s.reason for s in session.report.skipped)  # the report words it as saved
    assert (session.report.imported, session.report.already, session.report.same_in_source) == (6, 0, 1)
    assert "6 new images (6 labelled, 0 unlabelled), 0 already there, 1 the same picture as another" in summary_line(session)
    assert session.page(0, 50, settings.thumbnails_dir, 32).total == 6 == len(store.entries())
    assert store.get("30_flower.jpg").score == 30


def test_a_new_preview_sends_the_histogram_axis_before_its_bars(scored_photo_folder, settings):
    """Gradio 6.31 draws a bar plot update that carries props with the value before it: a first preview
    whose tallest bar outgrew the axis (6 photos in one bin, axis 0-5) showed an empty histogram."""
    import gradio as gr
    import pandas as pd
    from ui_wiring import callback

    from workbench.ui import import_tab

    for i, path in enumerate(sorted(scored_photo_folder.iterdir())):
        path.rename(path.with_name(f"{91 + i}_{path.name.split('_', 1)[1]}"))
    with gr.Blocks() as blocks:
        import_tab.build(settings)
    histogram = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "import-histogram")
    updates = list(callback(blocks, "import-scan-folder", "click")(None, str(scored_photo_folder), "", True))
    assert [set(u) for u in updates[:1]] == [{histogram}]  # the axis, alone, first
    assert updates[0][histogram]._constructor_args[0] == {"y_lim": [0, 6]}  # what Gradio sends: no value
    bars = updates[-1][histogram]
    assert isinstance(bars, pd.DataFrame)  # then the bars as a bare frame: no props to delay them
    assert dict(zip(bars["score"], bars["images"]))["90–100"] == 6
