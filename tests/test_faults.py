"""Small faults found by the hostile-input probe, each kept fixed: names that
round-trip exactly, long annotations, runs found by their folder."""
from __future__ import annotations

import shutil

import pytest
from test_store import jpeg_bytes

from workbench import compat  # noqa: F401
from workbench.dataset import ScoreStore


@pytest.mark.parametrize("name", [" lead.jpg", "trail .jpg", "  two.jpg", "=cmd.jpg", "-1.jpg", "a,b\"c.jpg"])
def test_a_file_name_round_trips_exactly_through_scores_csv(tmp_path, name):
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(jpeg_bytes(1))
    store = ScoreStore(data, 0, 100)
    assert store.set_score(name, "33") == 33
    fresh = ScoreStore(data, 0, 100)
    assert fresh.get(name).score == 33
    assert [e.filename for e in fresh.entries()] == [name]
    assert not fresh.problems(), fresh.problems()


def test_a_text_longer_than_the_csv_modules_default_limit_is_kept(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_bytes(jpeg_bytes(1))
    store = ScoreStore(data, 0, 100)
    store.set_score("a.jpg", 50)
    long_text = "word " * 60_000  # 300,000 characters; csv's default limit is 131,072
    store.set_text("a.jpg", long_text)
    assert ScoreStore(data, 0, 100).get("a.jpg").text == long_text.strip()


def test_import_and_dataset_work_with_a_long_text_in_scores_csv(tmp_path, run_cli, workbench_env):
    data = ScoreStore(workbench_env["WORKBENCH_DATA_DIR"], 0, 100)
    (data.data_dir / "a.jpg").write_bytes(jpeg_bytes(1))
    data.csv_path.write_text("filename,score,text\na.jpg,40,\"" + "x" * 200_000 + "\"\n")
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "85_b.jpg").write_bytes(jpeg_bytes(2))
    for args in (("import", folder), ("dataset",)):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 0 and "Error" not in proc.stderr, proc.stderr
    fresh = ScoreStore(workbench_env["WORKBENCH_DATA_DIR"], 0, 100)
    assert fresh.get("a.jpg").score == 40 and len(fresh.get("a.jpg").text) == 200_000
    assert fresh.get("85_b.jpg").score == 85


def test_a_run_is_found_by_its_folder_when_renamed_or_copied(settings):
    from test_runs import X, _stored_run

    from workbench.runs import RunStore, load_run

    store, manifest, pred = _stored_run(settings, "ridge")
    original = store.folder(manifest.run_id)
    shutil.copytree(original, settings.models_dir / "my-shared-run")
    original.rename(settings.models_dir / "renamed")
    ids = sorted(m.run_id for m in RunStore(settings.models_dir).list())
    assert ids == ["my-shared-run", "renamed"]
    for run_id in ids:
        run = load_run(run_id, settings)
        assert run.manifest.run_id == run_id
        assert run.model.predict(X[100:]).tolist() == pytest.approx(pred.tolist())
    assert RunStore(settings.models_dir).best().run_id in ids


def _import_killed_at_copy(data, kill_at: int, n: int) -> None:
    """In a forked child: import ``n`` scored photos and SIGKILL itself while linking copy ``kill_at``
    (its temp file written, the name not yet taken), as a kill from outside would."""
    import io
    import multiprocessing
    import os
    import signal

    def child():
        from workbench import fsutil

        real_link, calls = os.link, []

        def link(src, dst):
            calls.append(dst)
            if len(calls) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_link(src, dst)

        fsutil.os.link = link  # this forked child's module only
        store = ScoreStore(data, 0, 100)
        store.add_images([(io.BytesIO(jpeg_bytes(100 + i)), f"p{i:02d}.jpg", 10 + i) for i in range(n)])

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL


def test_a_killed_import_is_reconciled_by_the_next_write(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _import_killed_at_copy(data, kill_at=6, n=10)
    copied = sorted(p.name for p in data.glob("p*.jpg"))
    assert copied == [f"p{i:02d}.jpg" for i in range(5)]
    assert list(data.glob(".*.tmp")), "the kill should have left the sixth copy's temp file"
    store = ScoreStore(data, 0, 100)
    assert all(store.get(name).score is None for name in copied)  # the state the probe found
    store.recover()  # what the app does on start; any import or edit does the same first
    assert [(e.filename, e.score) for e in store.entries()] == [(f"p{i:02d}.jpg", 10 + i) for i in range(5)]
    assert not list(data.glob(".*.tmp")) and not (data / ".import-journal.jsonl").exists()


def test_the_next_import_reconciles_too_and_keeps_its_own_rows(tmp_path):
    import io

    data = tmp_path / "data"
    data.mkdir()
    _import_killed_at_copy(data, kill_at=3, n=4)
    store = ScoreStore(data, 0, 100)
    store.add_images([(io.BytesIO(jpeg_bytes(7)), "new.jpg", 99)])
    assert {e.filename: e.score for e in store.entries()} == {"p00.jpg": 10, "p01.jpg": 11, "new.jpg": 99}
    assert not list(data.glob(".*.tmp"))


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_half_saved_runs_are_removed_unless_still_being_written(settings):
    import multiprocessing
    import os
    import subprocess
    import sys
    import time

    from workbench.runs import RunStore
    from workbench.runs.store import OWNER_FILE

    store = RunStore(settings.models_dir)

    def killed_save():  # a training process SIGKILLed while its run is being written
        run_id, partial = store.reserve("20260101-000000-ridge-x")
        (partial / "model.skops").write_bytes(b"x" * 1000)
        os.kill(os.getpid(), 9)

    proc = multiprocessing.get_context("fork").Process(target=killed_save)
    proc.start()
    proc.join(30)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name, owner in (("live", live.pid), ("dead", _dead_pid())):
            (settings.models_dir / f".partial-{name}").mkdir()
            (settings.models_dir / f".partial-{name}" / OWNER_FILE).write_text(str(owner))
        old = settings.models_dir / ".partial-deleting-old"
        old.mkdir()
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        (settings.models_dir / ".partial-deleting-now").mkdir()  # another process deleting a run right now
        removed = store.remove_debris()
        assert sorted(removed) == [".partial-20260101-000000-ridge-x", ".partial-dead", ".partial-deleting-old"]
        left = sorted(p.name for p in settings.models_dir.iterdir())
        assert left == [".partial-deleting-now", ".partial-live"]
    finally:
        live.kill()
        live.wait()


def test_the_predict_download_neutralises_formulas_and_the_cli_csv_keeps_paths():
    import csv
    import io

    from workbench.predict import BatchResult, ScoreRow, csv_text
    from workbench.ui.predict_tab import csv_file

    result = BatchResult(rows=[ScoreRow(path="=HYPERLINK(\"http://x\")", score=-1.5),
                               ScoreRow(path="@SUM(A1).jpg", score=2.0), ScoreRow(path="+1.jpg", score=3.0),
                               ScoreRow(path="-2.jpg", error="-bad"), ScoreRow(path="ok.jpg", score=4.0)],
                         scorer_id="x", scale=(1.0, 10.0), threshold=5.0)
    with open(csv_file(result, {}), encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1).jpg", "'+1.jpg", "'-2.jpg", "ok.jpg"]
    assert rows[1][1] == "-1.5000" and rows[4][rows[0].index("error")] == "'-bad"  # numbers stay numbers
    exact = list(csv.reader(io.StringIO(csv_text(result))))
    assert [r[0] for r in exact[1:]] == ["=HYPERLINK(\"http://x\")", "@SUM(A1).jpg", "+1.jpg", "-2.jpg", "ok.jpg"]


def test_messages_about_uploaded_bytes_name_the_file():
    from workbench.images import ImageError, check_image

    for data in (b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(ImageError, match=r"^holiday\.jpg: "):
            check_image(data, name="holiday.jpg")
