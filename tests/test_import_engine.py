"""The import engine (zips, uploads, edited scores, stopping) and the gallery it feeds."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from workbench.dataset import (
    GalleryQuery,
    ScoreError,
    ScoreStore,
    gallery_page,
    import_into_store,
    importer,
    query_entries,
    scan_source,
    summarize,
    summarize_scores,
)
from workbench.events import Finished, Progress, StopFlag, drain
from workbench.ui.import_tab import report_text


def jpeg(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path) -> ScoreStore:
    return ScoreStore(tmp_path / "data", 0, 100)


def test_zip_members_never_escape_and_folders_are_flattened(tmp_path, photos, store):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("holiday/85_cat.jpg", jpeg(photos["chelsea"]))
        zf.writestr("holiday/2024/40 coffee.jpg", jpeg(photos["coffee"]))
        zf.writestr("../../evil_70.jpg", jpeg(photos["rocket"]))
        zf.writestr("/abs/60.jpg", jpeg(photos["china"]))
        zf.writestr("__MACOSX/holiday/._85_cat.jpg", b"resource fork")
        zf.writestr("readme.md", "hello")
        zf.writestr("nested.zip", b"PK")
    staging = tmp_path / "staging"
    staging.mkdir()
    preview = scan_source(archive, staging_dir=staging)
    assert sorted((i.name, i.score) for i in preview.items) == [("40 coffee.jpg", 40), ("85_cat.jpg", 85)]
    reasons = {s.file: s.reason for s in preview.skipped}
    assert "unsafe path" in reasons["upload.zip:../../evil_70.jpg"]
    assert "unsafe path" in reasons["upload.zip:/abs/60.jpg"]
    assert "not an image" in reasons["upload.zip:readme.md"] and "upload.zip:nested.zip" in reasons
    assert not any("MACOSX" in f for f in reasons)
    assert not (tmp_path / "evil_70.jpg").exists() and not Path("/abs/60.jpg").exists()
    assert all(p.parent == staging for p in staging.rglob("*") if p.is_file())
    report = drain(import_into_store(preview.items, store, skipped=preview.skipped))
    assert (report.imported, report.labelled) == (2, 2)
    preview.cleanup()
    assert not staging.exists()


def _flagless_zip(path: Path, members: dict[bytes, bytes]) -> None:
    """A zip like Linux ``zip`` writes: raw name bytes, without the UTF-8 flag (bit 0x800).

    CPython sets that flag on any non-ASCII name, so each member is written under an
    ASCII placeholder of the same length, whose bytes are then swapped for the real ones."""
    with zipfile.ZipFile(path, "w") as zf:
        for n, (raw, data) in enumerate(members.items()):
            zf.writestr(f"{n:0{len(raw)}d}", data)
    blob = path.read_bytes()
    for n, raw in enumerate(members):
        placeholder = f"{n:0{len(raw)}d}".encode()
        assert blob.count(placeholder) == 2  # the local header and the central directory
        blob = blob.replace(placeholder, raw)
    path.write_bytes(blob)


def test_zip_names_without_the_utf8_flag_are_read_as_utf8_when_they_are(tmp_path, photos, store):
    archive = tmp_path / "linux.zip"
    _flagless_zip(archive, {
        "trip/45_café au lait ü.jpg".encode(): jpeg(photos["chelsea"]),
        "été_60.jpg".encode("cp437"): jpeg(photos["coffee"]),         # a real cp437 name (not UTF-8) stays cp437
        "../../70_évasion.jpg".encode(): jpeg(photos["rocket"]),      # the re-read name is still checked
    })
    with zipfile.ZipFile(archive) as zf:
        assert not any(info.flag_bits & 0x800 for info in zf.infolist())
    staging = tmp_path / "staging"
    staging.mkdir()
    preview = scan_source(archive, staging_dir=staging)
    assert sorted((i.name, i.origin, i.score) for i in preview.items) == [
        ("45_café au lait ü.jpg", "linux.zip:trip/45_café au lait ü.jpg", 45),
        ("été_60.jpg", "linux.zip:été_60.jpg", None),
    ]
    assert "unsafe path" in {s.file: s.reason for s in preview.skipped}["linux.zip:../../70_évasion.jpg"]
    assert all(p.parent == staging for p in staging.rglob("*") if p.is_file())
    report = drain(import_into_store(preview.items, store))
    assert sorted(report.saved) == ["45_café au lait ü.jpg", "été_60.jpg"]
    preview.cleanup()


def test_zip_members_larger_than_the_limit_are_not_extracted(tmp_path, photos, monkeypatch):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("50_zeros.jpg", b"\xff\xd8" + b"\x00" * 2_000_000)  # compresses to almost nothing
        zf.writestr("85_cat.jpg", jpeg(photos["chelsea"]))
    monkeypatch.setattr(importer, "MAX_MEMBER_BYTES", 1_000_000)
    preview = scan_source(archive)
    assert [i.name for i in preview.items] == ["85_cat.jpg"]
    assert "over the 1 MB limit" in {s.file: s.reason for s in preview.skipped}["big.zip:50_zeros.jpg"]
    preview.cleanup()


def test_uploaded_files_with_repeated_names_stay_distinct(tmp_path, photos, store):
    a, b = tmp_path / "u1", tmp_path / "u2"
    a.mkdir(), b.mkdir()
    (a / "85.jpg").write_bytes(jpeg(photos["chelsea"]))
    (b / "85.jpg").write_bytes(jpeg(photos["coffee"]))
    (a / "x.bin").write_bytes(b"?")
    preview = scan_source([a / "85.jpg", ("85.jpg", b / "85.jpg"), a / "x.bin"])
    assert [(i.name, i.score) for i in preview.items] == [("85.jpg", 85), ("85 (1).jpg", 85)]
    assert [s.file for s in preview.skipped] == ["x.bin"]
    report = drain(import_into_store(preview.items, store))
    assert sorted(store.image_files()) == ["85 (1).jpg", "85.jpg"] and report.labelled == 2


def test_edited_scores_are_used_and_a_bad_one_copies_nothing(scored_photo_folder, store):
    preview = scan_source(scored_photo_folder)
    names = [i.name for i in preview.items]
    with pytest.raises(ScoreError, match="150 is outside"):
        drain(import_into_store(preview.items, store, scores={names[0]: "150"}))
    assert store.image_files() == []
    report = drain(import_into_store(preview.items, store, scores={names[0]: "12.5", names[1]: ""}))
    assert (report.labelled, report.unlabelled) == (5, 1)
    assert store.get(names[0]).score == 12.5 and store.get(names[1]).score is None


def test_import_reports_progress_and_stops_when_asked(scored_photo_folder, store):
    preview = scan_source(scored_photo_folder)
    stop = StopFlag()
    events = []
    for event in import_into_store(preview.items, store, stop=stop, chunk_size=2):
        events.append(event)
        if isinstance(event, Progress) and event.done >= 2:
            stop.set()
    assert isinstance(events[-1], Finished) and events[-1].stopped
    assert events[-1].result.imported == 2 == len(store.image_files())


def test_gallery_pages_filters_and_sorts(tmp_path, photos, store):
    scores = {"a.jpg": 30, "b.jpg": None, "c.jpg": 90, "d.jpg": 60, "e.jpg": None}
    for i, (name, score) in enumerate(scores.items()):
        store.add_image(jpeg(photos["chelsea"][i:, i:]), name, score=score)
    thumbs = tmp_path / "thumbs"
    first = gallery_page(store, GalleryQuery(page=0, page_size=2), thumbs, 64)
    assert [i.filename for i in first.items] == ["b.jpg", "e.jpg"]  # unlabelled first
    assert (first.pages, first.total, first.total_all) == (3, 5, 5)
    assert all(i.thumbnail.exists() for i in first.items)
    by_score = query_entries(store.entries(), GalleryQuery(sort="score_desc", unlabelled_first=False))
    assert [e.filename for e in by_score] == ["c.jpg", "d.jpg", "a.jpg", "b.jpg", "e.jpg"]
    ranged = query_entries(store.entries(), GalleryQuery(min_score=50, max_score=95, unlabelled_first=False))
    assert [e.filename for e in ranged] == ["c.jpg", "d.jpg"]
    only = query_entries(store.entries(), GalleryQuery(only_unlabelled=True))
    assert [e.filename for e in only] == ["b.jpg", "e.jpg"]
    last = gallery_page(store, GalleryQuery(page=99, page_size=2), thumbs, 64)
    assert last.page == 2 and [i.filename for i in last.items] == ["d.jpg"]
    (store.data_dir / "d.jpg").write_bytes(b"damaged later")
    broken = gallery_page(store, GalleryQuery(page=2, page_size=2), thumbs, 64).items[0]
    assert broken.thumbnail is None and "not an image" in broken.error


def test_the_gallery_sorts_file_names_as_people_count(photos, store):
    for i, name in enumerate(["19_scenes.jpg", "1_interior.jpg", "img10.jpg", "IMG2.jpg", "2_b.jpg"]):
        store.add_image(jpeg(photos["chelsea"][i:, i:]), name, score=50)
    ordered = query_entries(store.entries(), GalleryQuery(sort="name"))
    assert [e.filename for e in ordered] == ["1_interior.jpg", "2_b.jpg", "19_scenes.jpg", "IMG2.jpg", "img10.jpg"]


def test_summaries_and_histogram(store, photos):
    summary = summarize_scores([0, 9.99, 10, 55, 100, None], 0, 100, bins=10)
    assert [b.count for b in summary.histogram] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert (summary.labelled, summary.unlabelled, summary.lowest, summary.highest) == (5, 1, 0, 100)
    assert summary.line() == "6 images: 5 labelled (0–100, mean 35.0), 1 unlabelled"
    store.add_image(jpeg(photos["coffee"]), "x.jpg")
    doc = summarize(store).to_json()
    assert doc["unlabelled_files"] == ["x.jpg"] and doc["total"] == 1 and doc["mean"] is None


def test_each_imported_label_says_where_it_came_from(scored_photo_folder, store):
    """The Training data table's "label from": a photo manager's stars, the file name, or a score typed
    over them in the preview; a score changed since is no longer said to come from there."""
    from workbench.dataset.store import SOURCES_NAME
    from workbench.dataset.xmp import write_rating
    from workbench.labelling.pairwise import label_sources

    rated = sorted(scored_photo_folder.glob("*.jpg"))[0]
    write_rating(rated, 4)  # a Lightroom-style sidecar: its stars come before the name's score
    preview = scan_source(scored_photo_folder)
    names = sorted(i.name for i in preview.items)
    typed, edited = [n for n in names if n != rated.name][:2]
    drain(import_into_store(preview.items, store, scores={typed: "12.5"}))
    expected = {n: "file name" for n in names} | {rated.name: "star rating", typed: "typed"}
    assert label_sources(store) == expected
    store.set_score(edited, 50)  # retyped in the table: the person's own now, not the file name's
    assert label_sources(store) == {n: s for n, s in expected.items() if n != edited}
    assert store.csv_path.read_text().splitlines()[0] == "filename,score"  # scores.csv keeps its columns
    (store.data_dir / SOURCES_NAME).write_text('{"x.jpg": "not ours", "' + typed + '": ["typed", "12.5"]}')
    assert label_sources(store) == {}  # a record not in its shape is ignored, never trusted
    (store.data_dir / SOURCES_NAME).unlink()
    assert label_sources(store) == {}  # a set imported before the record: nothing claimed


def test_a_rename_is_reported_only_when_the_saved_name_differs_from_the_files_own(tmp_path, photos, store):
    """The "upload.zip:" prefix of a member's origin is no rename (every zip import reported one for each photo)."""
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("13_interior.jpg", jpeg(photos["chelsea"]))        # new name, top level
        zf.writestr("holiday/40 coffee.jpg", jpeg(photos["coffee"]))    # new name, in a folder
        zf.writestr("other/40 coffee.jpg", jpeg(photos["rocket"]))      # same name, another photo
        zf.writestr("60_taken.jpg", jpeg(photos["china"]))              # a name the set already has
    store.add_image(jpeg(photos["astronaut"]), "60_taken.jpg", 60)
    (tmp_path / "staging").mkdir()
    preview = scan_source(archive, staging_dir=tmp_path / "staging")
    report = drain(import_into_store(preview.items, store, skipped=preview.skipped))
    preview.cleanup()
    assert report.imported == 4
    assert sorted(report.renamed) == [("upload.zip:60_taken.jpg", "60_taken (1).jpg"),
                                      ("upload.zip:other/40 coffee.jpg", "40 coffee (1).jpg")]
    assert "13_interior" not in report_text(report) and "60_taken (1).jpg" in report_text(report)


def test_the_same_picture_twice_in_a_source_keeps_the_first_by_name_and_never_loses_a_score(tmp_path, photos, store):
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(jpeg(photos["chelsea"]))          # unlabelled, first by name
    (folder / "cat_copy_s80.jpg").write_bytes(jpeg(photos["chelsea"]))  # same bytes, scored 80
    (folder / "cat_s10.jpg").write_bytes(jpeg(photos["chelsea"]))       # same bytes, scored 10
    for name, pixels in (("a_s20.bmp", photos["coffee"]), ("b_s30.bmp", photos["coffee"][::-1])):
        Image.fromarray(pixels).save(folder / name)  # the same size, another picture: both come in
    preview = scan_source(folder, pattern=r"_s(?P<score>\d+)$")
    assert sorted((i.name, i.score) for i in preview.items) == [("a_s20.bmp", 20), ("b_s30.bmp", 30), ("cat.jpg", 80)]
    twice = {s.file: s for s in preview.skipped}
    assert twice["cat_copy_s80.jpg"].same_as == twice["cat_s10.jpg"].same_as == "cat.jpg"
    assert "its score 80 goes to cat.jpg, which had none" in twice["cat_copy_s80.jpg"].reason
    assert "scores 10 vs 80: the first by name is kept, so 10 is not used" in twice["cat_s10.jpg"].reason
    report = drain(import_into_store(preview.items, store, skipped=preview.skipped))
    assert (report.imported, report.labelled, report.already, report.same_in_source) == (3, 3, 0, 2)
    assert {e.filename: e.score for e in store.entries()} == {"a_s20.bmp": 20, "b_s30.bmp": 30, "cat.jpg": 80}
    assert [s["same_as"] for s in report.to_json()["skipped"]] == ["cat.jpg", "cat.jpg"]
    # a caller passing the same picture twice itself: named as such, not as "already in the training set"
    fresh = ScoreStore(tmp_path / "fresh", 0, 100)
    twice_passed = [importer.PreviewItem(name, name, folder / "cat.jpg", score, None, 1, 1, "JPEG")
                    for name, score in (("x.jpg", 5), ("y.jpg", 7))]
    again = drain(import_into_store(twice_passed, fresh))
    assert (again.imported, again.already, again.same_in_source) == (1, 0, 1)
    assert "scores 7 vs 5: the first is kept" in again.skipped[0].reason and fresh.get("x.jpg").score == 5
