"""Small faults found by the hostile-input probe, each kept fixed: names that
round-trip exactly, long annotations, runs found by their folder."""
from __future__ import annotations

from workbench import compat  # noqa: F401

import shutil

import pytest

from test_store import jpeg_bytes
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
