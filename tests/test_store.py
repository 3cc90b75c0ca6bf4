"""ScoreStore and fsutil: atomic, locked, never loses a label, never leaves data/."""
from __future__ import annotations

import csv
import io
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.dataset import ChangedElsewhere, ScoreError, ScoreStore, UnsafePath
from workbench.fsutil import atomic_write_bytes, atomic_write_text, file_sha256, safe_child

FORK = multiprocessing.get_context("fork")


def jpeg_bytes(seed: int, size=(48, 32)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def read_csv(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["filename", "score"]
    return {r[0]: r[1] for r in rows[1:]}


@pytest.fixture
def store(tmp_path) -> ScoreStore:
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(["a.jpg", "b.jpg", "c d é.jpg"]):
        (data / name).write_bytes(jpeg_bytes(i))
    return ScoreStore(data, 0, 100)


# ------------------------------------------------------------------ fsutil
def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # fails inside the write, after the temp file exists
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_file_sha256(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert file_sha256(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("name", ["..", "../x.jpg", "a/../../x.jpg", "/etc/passwd", "sub/x.jpg", "..\\x.jpg",
                                  "C:\\x.jpg", "", "x\x00.jpg"])
def test_safe_child_refuses_names_leaving_the_folder(tmp_path, name):
    with pytest.raises(UnsafePath):
        safe_child(tmp_path, name)


def test_safe_child_refuses_symlinks_pointing_outside(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (folder / "real.jpg").write_bytes(b"y")
    (folder / "inner.jpg").symlink_to(folder / "real.jpg")
    with pytest.raises(UnsafePath, match="outside"):
        safe_child(folder, "link.jpg")
    assert safe_child(folder, "inner.jpg") == folder / "inner.jpg"
    assert safe_child(folder, "85 (1) été.jpg") == folder / "85 (1) été.jpg"


# ------------------------------------------------------------------ scores
def test_scores_are_saved_to_csv_and_read_back(store):
    store.set_score("a.jpg", "85")
    store.set_scores({"b.jpg": 7.5, "c d é.jpg": "60"})
    assert read_csv(store.csv_path) == {"a.jpg": "85", "b.jpg": "7.5", "c d é.jpg": "60"}
    fresh = ScoreStore(store.data_dir, 0, 100)
    assert [(e.filename, e.score) for e in fresh.entries()] == [("a.jpg", 85), ("b.jpg", 7.5), ("c d é.jpg", 60)]
    assert fresh.labelled()[0] == (store.data_dir / "a.jpg", 85.0)
    store.clear_score("a.jpg")
    assert store.get("a.jpg").score is None and "a.jpg" not in read_csv(store.csv_path)


@pytest.mark.parametrize("bad", ["", "abc", "nan", float("nan"), "150", -3, None])
def test_bad_typed_scores_change_nothing(store, bad):
    store.set_score("a.jpg", 50)
    before = store.csv_path.read_bytes()
    with pytest.raises(ScoreError):
        store.set_scores({"b.jpg": 20, "a.jpg": bad})  # one bad value: the good one is not written either
    assert store.csv_path.read_bytes() == before


def test_unknown_and_unsafe_names_are_refused(store, tmp_path):
    with pytest.raises(KeyError):
        store.set_score("missing.jpg", 50)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_bytes(9))
    for name in ["../outside.jpg", str(outside), "sub/a.jpg", ".scores.lock"]:
        with pytest.raises(UnsafePath):
            store.set_score(name, 50)
        with pytest.raises(UnsafePath):
            store.delete(name)
    assert outside.exists() and not store.csv_path.exists()


def test_two_views_never_write_a_stale_table(store):
    tab_one, tab_two = ScoreStore(store.data_dir), ScoreStore(store.data_dir)
    tab_one.entries(), tab_two.entries()  # both "loaded" the table
    tab_one.set_score("a.jpg", 10)
    tab_two.set_score("b.jpg", 20)
    tab_one.set_score("c d é.jpg", 30)
    assert read_csv(store.csv_path) == {"a.jpg": "10", "b.jpg": "20", "c d é.jpg": "30"}


def test_a_score_changed_in_another_tab_since_this_one_showed_it_is_saved_over_and_told(store):
    tab_one, tab_two = ScoreStore(store.data_dir), ScoreStore(store.data_dir)
    tab_one.set_score("a.jpg", 40)
    shown = {e.filename: e.score for e in tab_one.entries()}  # both tabs show a.jpg at 40
    first = tab_two.write_scores({"a.jpg": 60}, {"a.jpg": 40})
    assert first.changed_elsewhere == [] and first.note() == "" and first.replaced == {"a.jpg": 40}
    second = tab_one.write_scores({"a.jpg": "75", "b.jpg": 5}, shown)  # tab one still shows 40
    assert second.saved == {"a.jpg": 75, "b.jpg": 5} and second.replaced == {"a.jpg": 60, "b.jpg": None}
    assert second.changed_elsewhere == [ChangedElsewhere("a.jpg", 40, 60, 75)]
    assert second.changed_elsewhere[0].sentence() == \
        "This photo's score had been changed elsewhere from 40 to 60 since you opened it; now 75."
    assert second.note() == "a.jpg's score had been changed elsewhere from 40 to 60 since you opened it; now 75."
    assert read_csv(store.csv_path) == {"a.jpg": "75", "b.jpg": "5"}  # the latest intent is kept
    # told also when it was cleared elsewhere; not when both set the same score, nor without what was seen
    tab_two.clear_score("a.jpg")
    assert tab_one.write_scores({"a.jpg": 80}, {"a.jpg": 75}).note() == \
        "This photo's score had been changed elsewhere from 75 to unlabelled since you opened it; now 80."
    tab_two.set_score("b.jpg", 9)
    assert tab_one.write_scores({"b.jpg": 9}, {"b.jpg": 5}).changed_elsewhere == []
    tab_two.set_score("b.jpg", 10)
    assert tab_one.write_scores({"b.jpg": 11}).changed_elsewhere == []
    assert store.undo() == ("score", ["b.jpg"]) and store.get("b.jpg").score == 10  # Z takes back to the other's


def test_legacy_scores_txt_is_read_and_migrated_on_the_first_write(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ["a.jpg", "b.jpg", "my photo.jpg", "d.jpg"]:
        (data / name).write_bytes(b"x")
    (data / "scores.txt").write_text("a.jpg 85\nb.jpg,7.5\nmy photo.jpg 60\n\nd.jpg banana\n", encoding="utf-8")
    store = ScoreStore(data, 0, 100)
    assert {e.filename: e.score for e in store.entries()} == {"a.jpg": 85, "b.jpg": 7.5, "my photo.jpg": 60,
                                                              "d.jpg": None}
    assert any("banana" in p for p in store.problems())
    store.set_score("d.jpg", 40)
    assert read_csv(data / "scores.csv") == {"a.jpg": "85", "b.jpg": "7.5", "my photo.jpg": "60", "d.jpg": "40"}


def test_a_bad_value_typed_into_scores_csv_by_hand_is_kept_not_lost(store):
    store.csv_path.write_text("filename,score\na.jpg,eighty\nb.jpg,20\n")
    assert store.get("a.jpg").score is None
    store.set_score("c d é.jpg", 5)
    assert read_csv(store.csv_path)["a.jpg"] == "eighty"


# ------------------------------------------------------------ add / import
def test_adding_never_overwrites_and_recognises_identical_content(store):
    original = (store.data_dir / "a.jpg").read_bytes()
    result = store.add_image(jpeg_bytes(42), "a.jpg", score="70")
    assert result.copied and result.filename == "a (1).jpg"
    assert (store.data_dir / "a.jpg").read_bytes() == original
    again = store.add_image(jpeg_bytes(42), "other name.jpg", score=10)
    assert not again.copied and again.duplicate_of == "a (1).jpg"
    assert store.get("a (1).jpg").score == 70  # a labelled duplicate keeps its score
    twin = store.add_image(original, "x.jpg", score=33)
    assert twin.duplicate_of == "a.jpg" and twin.score_applied and store.get("a.jpg").score == 33
    assert sorted(p.name for p in store.data_dir.glob("*.jpg")) == ["a (1).jpg", "a.jpg", "b.jpg", "c d é.jpg"]


def test_adding_refuses_a_non_image_and_a_bad_score_before_writing(store):
    from workbench.images import ImageError

    with pytest.raises(ImageError):
        store.add_image(b"not an image", "n.jpg", score=50)
    with pytest.raises(ScoreError):
        store.add_image(jpeg_bytes(5), "n.jpg", score="nan")
    assert not (store.data_dir / "n.jpg").exists()


def test_an_image_with_an_unlisted_suffix_gets_its_formats_suffix_or_is_refused(store, tmp_path):
    from workbench.images import ImageError

    # A JPEG uploaded as .dat (or with no suffix) is saved as .jpg, so the data folder lists it.
    shot = store.add_image(jpeg_bytes(11, (96, 96)), "shot.dat", score=40)
    assert shot.copied and shot.filename == "shot.jpg"
    assert store.get("shot.jpg").score == 40 and store.problems() == []
    bare = tmp_path / "bare"
    bare.write_bytes(jpeg_bytes(12, (96, 96)))
    assert store.add_images([(bare, "bare", 55)])[0].filename == "bare.jpg"
    assert "bare.jpg" in store.image_files()
    # An icon Pillow can read but the data folder does not list: refused, nothing written.
    icon = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(icon, format="ICO", sizes=[(64, 64)])
    with pytest.raises(ImageError, match="ICO images are not supported"):
        store.add_image(icon.getvalue(), "logo.ico", score=50)
    result = store.add_images([(io.BytesIO(icon.getvalue()), "logo.ico", 50)])[0]
    assert not result.copied and "ICO images are not supported" in result.error
    assert not list(store.data_dir.glob("logo*")) and "logo.ico" not in read_csv(store.csv_path)


def test_fingerprint_follows_content_and_scores(store):
    store.set_score("a.jpg", 50)
    first = store.fingerprint()
    assert store.fingerprint() == first
    store.set_score("a.jpg", 51)
    second = store.fingerprint()
    assert second != first
    time.sleep(0.01)
    (store.data_dir / "a.jpg").write_bytes(jpeg_bytes(77))
    assert store.fingerprint() != second


# ---------------------------------------------------------- trash and undo
def test_delete_moves_to_trash_and_undo_restores_even_after_a_restart(store):
    store.set_score("a.jpg", 85)
    content = (store.data_dir / "a.jpg").read_bytes()
    deleted = store.delete("a.jpg")
    assert deleted.score == 85
    assert not (store.data_dir / "a.jpg").exists() and "a.jpg" not in read_csv(store.csv_path)
    trashed = list((store.data_dir / ".trash").rglob("a.jpg"))
    assert len(trashed) == 1 and trashed[0].read_bytes() == content
    assert "a.jpg" not in [e.filename for e in store.entries()]
    store.delete("b.jpg")

    restarted = ScoreStore(store.data_dir, 0, 100)  # the undo stack lives on disk
    assert restarted.can_undo()
    assert restarted.undo_delete().filename == "b.jpg"
    restored = restarted.undo_delete()
    assert restored.filename == "a.jpg" and restored.score == 85
    assert (store.data_dir / "a.jpg").read_bytes() == content and read_csv(store.csv_path)["a.jpg"] == "85"
    assert restarted.undo_delete() is None
    assert restarted.undo() == ("score", ["a.jpg"]) and not restarted.can_undo()  # the score typed first
    assert "a.jpg" not in read_csv(store.csv_path) or read_csv(store.csv_path)["a.jpg"] == ""


def test_undo_takes_back_score_edits_and_deletions_in_order(store):
    store.set_score("a.jpg", 40)
    store.set_scores({"a.jpg": 45, "b.jpg": 70})
    store.delete("a.jpg")
    assert store.undo() == ("delete", ["a.jpg"]) and store.get("a.jpg").score == 45
    assert store.undo() == ("score", ["a.jpg", "b.jpg"])
    assert store.get("a.jpg").score == 40 and store.get("b.jpg").score is None
    assert store.undo() == ("score", ["a.jpg"]) and store.get("a.jpg").score is None
    assert store.undo() is None


def test_undo_never_overwrites_a_new_file_with_the_same_name(store):
    store.set_score("a.jpg", 85)
    store.delete("a.jpg")
    (store.data_dir / "a.jpg").write_bytes(b"new")
    restored = store.undo_delete()
    assert restored.filename == "a (1).jpg" and restored.score == 85
    assert (store.data_dir / "a.jpg").read_bytes() == b"new"


def test_undo_with_its_trashed_file_removed_says_so_and_older_deletions_still_come_back(store):
    store.set_score("a.jpg", 20)
    store.delete("a.jpg")
    store.delete("b.jpg")
    for leftover in (store.data_dir / ".trash").rglob("b.jpg"):
        leftover.unlink()  # someone emptied part of the trash by hand
    with pytest.raises(FileNotFoundError, match="b.jpg cannot be restored"):
        store.undo_delete()
    restored = store.undo_delete()  # the missing one was dropped, not retried forever
    assert restored.filename == "a.jpg" and restored.score == 20
    assert (store.data_dir / "a.jpg").is_file() and not list((store.data_dir / ".trash").rglob("a.jpg"))
    assert store.undo_delete() is None


# ------------------------------------------------- several processes at once
def _writer(data_dir: str, names: list[str], start: multiprocessing.Event) -> None:
    start.wait()
    store = ScoreStore(data_dir, 0, 100)
    for i, name in enumerate(names):
        store.set_score(name, i % 101)


def test_concurrent_writers_in_several_processes_lose_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    groups = [[f"p{p}_{i:03d}.jpg" for i in range(25)] for p in range(4)]
    for name in sum(groups, []):
        (data / name).write_bytes(b"x")
    start = FORK.Event()
    procs = [FORK.Process(target=_writer, args=(str(data), names, start)) for names in groups]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = read_csv(data / "scores.csv")
    assert len(rows) == 100
    assert all(rows[name] == str(i % 101) for names in groups for i, name in enumerate(names))


def _checking_writer(data_dir: str, values: list[int], start, results) -> None:
    """Write ``values`` to one photo in turn, each time saying the score this writer saw last (its own)."""
    store = ScoreStore(data_dir, 0, 10_000)
    start.wait()
    seen = None
    for value in values:
        write = store.write_scores({"p.jpg": value}, {"p.jpg": seen})
        results.put((seen, write.replaced["p.jpg"], value, [c.found for c in write.changed_elsewhere]))
        seen = value


def test_the_compare_and_the_write_happen_under_one_lock(tmp_path):
    """Two processes overwrite one photo's score at once: every write replaced a different score (no two
    writers compared against the same stored value), and each one that replaced the other's score was told."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.jpg").write_bytes(b"x")
    start, results = FORK.Event(), FORK.Queue()
    writers = [FORK.Process(target=_checking_writer, args=(str(data), list(range(base, base + 40)), start, results))
               for base in (1000, 2000)]
    for p in writers:
        p.start()
    start.set()
    got = [results.get(timeout=120) for _ in range(80)]
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    replaced = [r for _, r, _, _ in got]
    final = ScoreStore(data, 0, 10_000).get("p.jpg").score
    # a chain: the first write replaced "unlabelled", every other value was replaced exactly once, but the last
    assert sorted(replaced, key=lambda v: -1 if v is None else v) == \
        [None] + sorted(v for _, _, v, _ in got if v != final)
    for seen, found, _, told in got:
        assert told == ([] if found == seen else [found])
    assert any(told for *_, told in got)  # at least the first write of whichever writer came second


def _endless_writer(data_dir: str, names: list[str]) -> None:
    store = ScoreStore(data_dir, 0, 100)
    value = 0
    while True:
        value = (value + 1) % 100
        store.set_scores({name: value for name in names[value % 7::7]})


def test_killing_a_writer_mid_write_leaves_a_valid_complete_csv(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    names = [f"img_{i:04d}_with_a_rather_long_name_to_make_writes_slower.jpg" for i in range(3000)]
    for name in names:
        (data / name).write_bytes(b"x")
    ScoreStore(data).set_scores({name: 50 for name in names})
    rng = np.random.default_rng(0)
    for _ in range(6):
        proc = FORK.Process(target=_endless_writer, args=(str(data), names))
        proc.start()
        deadline = time.monotonic() + 0.3 + rng.random() * 0.4
        while time.monotonic() < deadline:  # a reader meanwhile never sees a half-written table
            assert len(read_csv(data / "scores.csv")) == len(names)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        rows = read_csv(data / "scores.csv")  # parses: no half-written file
        assert set(rows) == set(names)
        assert all(0 <= float(v) <= 100 for v in rows.values())
    store = ScoreStore(data, lock_timeout=5)  # the killed writer's lock died with it
    store.set_score(names[0], 99)
    assert read_csv(data / "scores.csv")[names[0]] == "99"
    assert list(data.glob(".scores.csv.*.tmp")) == []  # the dead writers' temp files were cleared
