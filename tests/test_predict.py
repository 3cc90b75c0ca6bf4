"""Scoring new photos with a stored run or the ready NIMA scorer."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from training_fixtures import make_brightness_set

from workbench.events import Finished, Notice, Progress, StopFlag, drain
from workbench.predict import (
    NIMA_ID,
    NIMA_THRESHOLD,
    ScorerUnavailable,
    csv_text,
    default_scorer_id,
    explain,
    load_scorer,
    score_images,
    write_csv,
)
from workbench.training import train


def put_nima_weights(settings, nima_weights: Path) -> None:
    target = settings.weights_dir / nima_weights.name
    if not target.exists():
        target.symlink_to(nima_weights)


def broken_files(folder: Path, photos) -> dict[str, str]:
    """Three files that look like images by name but are not usable ones."""
    (folder / "not_an_image.jpg").write_bytes(b"this is a text file, not a JPEG")
    (folder / "empty.png").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:2000])
    return {"not_an_image.jpg": "not an image", "empty.png": "empty", "truncated.jpg": "truncated"}


@pytest.fixture
def nima_settings(settings, nima_weights):
    put_nima_weights(settings, nima_weights)
    return settings


def test_nima_gives_its_known_score_on_chelsea(nima_settings, photos, tmp_path):
    Image.fromarray(photos["chelsea"]).save(tmp_path / "chelsea.png")
    scorer = load_scorer(NIMA_ID, nima_settings)
    assert scorer.scale == (1.0, 10.0) and scorer.default_threshold == NIMA_THRESHOLD
    assert "local file" in scorer.weights_note
    result = drain(score_images([tmp_path / "chelsea.png"], scorer, nima_settings))
    (row,) = result.rows
    assert row.score == pytest.approx(5.12, abs=0.01)
    assert sum(row.distribution) == pytest.approx(1.0, abs=1e-5) and len(row.distribution) == 10
    assert 1.0 < row.std < 2.0
    assert row.verdict == "good" and row.percentile is None  # NIMA has no training set of ours


def test_a_folder_with_broken_files_is_scored_except_those(nima_settings, scored_photo_folder, photos):
    reasons = broken_files(scored_photo_folder, photos)
    events = list(score_images([scored_photo_folder], load_scorer(NIMA_ID, nima_settings), nima_settings,
                               threshold=5.0))
    result = events[-1].result
    assert isinstance(events[-1], Finished) and not result.stopped
    assert [e.done for e in events if isinstance(e, Progress)][-1] == 9
    scored, failed = result.scored, result.failed
    assert len(scored) == 6 and len(failed) == 3
    assert [r.score for r in scored] == sorted((r.score for r in scored), reverse=True)  # best first
    assert {Path(r.path).name: r.verdict for r in scored} == {
        Path(r.path).name: ("good" if r.score >= 5.0 else "bad") for r in scored}
    for row in failed:
        name = Path(row.path).name
        assert row.score is None and name in row.error and reasons[name] in row.error
    rows = list(csv.DictReader(io.StringIO(csv_text(result))))
    assert list(rows[0]) == ["path", "score", "std", "rank", "percentile", "verdict", "error"] + [f"p{i}" for i in range(1, 11)]
    assert [r["path"] for r in rows] == [r.path for r in result.rows]
    assert [r["rank"] for r in rows[:6]] == [str(i) for i in range(1, 7)]
    assert rows[0]["verdict"] == scored[0].verdict
    assert rows[-1]["score"] == "" and rows[-1]["rank"] == "" and rows[-1]["error"]
    # the UI writes the person's own file names in place of its upload copies
    renamed = list(csv.DictReader(io.StringIO(csv_text(result, names={scored[0].path: "mine.jpg"}))))
    assert renamed[0]["path"] == "mine.jpg" and renamed[1]["path"] == scored[1].path


def test_missing_paths_are_listed_not_fatal(nima_settings, tmp_path, photos):
    Image.fromarray(photos["coffee"]).save(tmp_path / "coffee.jpg")
    result = drain(score_images([tmp_path / "coffee.jpg", tmp_path / "gone.jpg"],
                                load_scorer(NIMA_ID, nima_settings), nima_settings))
    assert [r.error for r in result.rows] == [None, "no such file or folder"]


def test_stop_keeps_what_was_scored(nima_settings, scored_photo_folder):
    stop = StopFlag()
    stop.set()
    result = drain(score_images([scored_photo_folder], load_scorer(NIMA_ID, nima_settings), nima_settings,
                                stop=stop))
    assert result.stopped and result.rows == []


def test_stop_mid_way_keeps_the_photos_scored_so_far(nima_settings, photos, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        Image.fromarray(photos["coffee"]).resize((96, 64)).save(folder / f"{i:02d}.jpg")
    stop = StopFlag()
    settings = nima_settings.replace(batch_size=4)
    events = []
    for event in score_images([folder], load_scorer(NIMA_ID, settings), settings, stop=stop):
        events.append(event)
        if isinstance(event, Progress) and event.done >= 8:
            stop.set()  # as the Stop button does, between batches
    result = events[-1].result
    assert result.stopped and 8 <= len(result.scored) < 24 and not result.failed


def test_nima_explanation_is_a_heatmap_over_the_photo(nima_settings, photos, tmp_path, output_dir):
    Image.fromarray(photos["chelsea"]).save(tmp_path / "chelsea.png")
    explanation = explain(tmp_path / "chelsea.png", load_scorer(NIMA_ID, nima_settings), nima_settings)
    assert explanation.reason is None and explanation.score == pytest.approx(5.12, abs=0.01)
    assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() == pytest.approx(1.0, abs=1e-3)
    faint, strong = explanation.overlay(0.2), explanation.overlay(0.8)
    assert faint.size == strong.size == explanation.image.size
    photo = np.asarray(explanation.image, dtype=float)
    # more opacity, further from the photo
    assert np.abs(np.asarray(strong, dtype=float) - photo).mean() > np.abs(np.asarray(faint, dtype=float) - photo).mean()
    assert explanation.overlay(0.0) is explanation.image
    strong.save(output_dir / "nima_gradcam.png")


def test_no_runs_means_nima_and_unknown_runs_say_so(settings):
    assert default_scorer_id(settings) == NIMA_ID
    with pytest.raises(ScorerUnavailable, match="no run 'nope'"):
        load_scorer("nope", settings)


def test_missing_nima_weights_name_the_file(settings):
    with pytest.raises(ScorerUnavailable) as caught:
        load_scorer(NIMA_ID, settings)
    assert "weights_mobilenet_aesthetic_0.07.hdf5" in str(caught.value)
    assert str(settings.weights_dir) in str(caught.value)


# ------------------------------------------------------------ trained runs
@pytest.fixture(scope="module")
def trained(tmp_path_factory, photos):
    """Ridge, random-forest and NIMA-style head runs on 48 real-photo crops scored by brightness."""
    from workbench.config import load_settings

    root = tmp_path_factory.mktemp("predict_runs")
    for name in ("runs", "cache", "weights"):
        (root / name).mkdir()
    data = make_brightness_set(photos, root / "data")
    settings = load_settings(data_dir=data, models_dir=root / "runs", cache_dir=root / "cache",
                             weights_dir=root / "weights")
    ridge = drain(train("ridge", settings))
    forest = drain(train("rf", settings, params={"n_estimators": 30}))
    drain(train("nima_head", settings, params={"epochs": 15}))
    return settings, ridge, forest


def test_prediction_equals_the_runs_stored_held_out_predictions(trained):
    settings, ridge, _ = trained
    scorer = load_scorer(ridge.run_id, settings)
    assert scorer.scale == (ridge.score_min, ridge.score_max)
    held_out = {p["filename"]: p["pred"] for p in ridge.predictions}
    result = drain(score_images([settings.data_dir / name for name in held_out], scorer, settings))
    assert not result.failed
    got = {Path(r.path).name: r.score for r in result.rows}
    assert got.keys() == held_out.keys()
    for name, pred in held_out.items():
        assert got[name] == pytest.approx(pred, abs=1e-4)
    # percentiles are against the run's training scores
    train_scores = np.array(scorer.reference_scores)
    assert len(train_scores) == len(ridge.split["train"])
    top = result.rows[0]
    assert top.percentile == pytest.approx(100 * np.mean(train_scores < top.score), abs=100 / len(train_scores))


def test_default_scorer_is_the_best_run_by_srcc(trained):
    from workbench.runs import RunStore

    settings, _, _ = trained
    runs = RunStore(settings.models_dir).list()
    assert len(runs) == 3
    assert default_scorer_id(settings) == max(runs, key=lambda m: m.metrics["srcc"]).run_id


def test_a_distribution_run_gives_distributions_on_its_own_scale(trained):
    from workbench.runs import RunStore

    settings, _, _ = trained
    (head,) = [m for m in RunStore(settings.models_dir).list() if m.family == "nima_head"]
    scorer = load_scorer(head.run_id, settings)
    assert scorer.has_distribution and len(scorer.bin_centres) == 10
    result = drain(score_images([settings.data_dir], scorer, settings))
    for row in result.scored[:5]:
        assert sum(row.distribution) == pytest.approx(1.0, abs=1e-5)
        assert np.dot(row.distribution, scorer.bin_centres) == pytest.approx(row.score, abs=1e-3)
        assert row.std > 0
    assert csv_text(result).splitlines()[0] == ("path,score,std,rank,percentile,verdict,error,"
                                                + ",".join(f"p{i}" for i in range(1, 11)))


def test_ridge_run_is_explained_through_its_backbone(trained, tmp_path):
    settings, ridge, _ = trained
    name = ridge.predictions[0]["filename"]
    explanation = explain(settings.data_dir / name, load_scorer(ridge.run_id, settings), settings)
    assert explanation.reason is None and explanation.method == "Grad-CAM"
    assert explanation.score == pytest.approx(ridge.predictions[0]["pred"], abs=0.05)
    assert explanation.heatmap.ndim == 2 and explanation.heatmap.max() > 0


def test_tree_ensembles_are_explained_by_occlusion(trained):
    settings, _, forest = trained
    name = forest.predictions[0]["filename"]
    explanation = explain(settings.data_dir / name, load_scorer(forest.run_id, settings), settings)
    assert explanation.method == "occlusion" and explanation.reason is None
    assert explanation.heatmap.shape == (explanation.image.height, explanation.image.width)
    assert explanation.score == pytest.approx(forest.predictions[0]["pred"], abs=1.0)  # a PNG copy of the photo
    assert explanation.overlay(0.7) is not explanation.image


def test_write_csv_for_a_run_without_distributions(trained, tmp_path):
    settings, ridge, _ = trained
    result = drain(score_images([settings.data_dir], load_scorer(ridge.run_id, settings), settings))
    path = write_csv(result, tmp_path / "out.csv")
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    # one score per photo: no std or distribution columns to leave empty
    assert list(rows[0]) == ["path", "score", "rank", "percentile", "verdict", "error"] and len(rows) == 48
    assert float(rows[0]["percentile"]) >= float(rows[-1]["percentile"])
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True)


def test_progress_counts_scored_and_failed_and_each_failure_is_told_once(trained, tmp_path):
    """A folder of two photos and a text file named notes.jpg, plus a path that is not there."""
    settings, ridge, _ = trained
    folder = tmp_path / "shoot"
    folder.mkdir()
    for photo in sorted(settings.data_dir.glob("crop_*.png"))[:2]:
        shutil.copy(photo, folder / photo.name)
    (folder / "notes.jpg").write_text("my notes, not a photo")
    events = list(score_images([folder, tmp_path / "gone"], load_scorer(ridge.run_id, settings), settings))
    result = events[-1].result
    assert (len(result.scored), len(result.failed)) == (2, 2)
    assert [e.message for e in events if isinstance(e, Progress)][-1] == "3 of 3 files read: 2 scored, 1 failed"
    warnings = [e.message for e in events if isinstance(e, Notice) and e.level == "warning"]
    # the rows carry each file's reason; the warnings only count them (no "notes.jpg: notes.jpg: ...")
    assert warnings == ["2 file(s) could not be scored; each is listed with its reason"]
    (notes,) = [r for r in result.failed if r.path.endswith("notes.jpg")]
    assert notes.error.count("notes.jpg") == 1


# ------------------------------------------------- broken runs, bad numbers
def test_an_unsafe_id_is_not_found_and_a_damaged_manifest_says_so(settings):
    with pytest.raises(ScorerUnavailable) as caught:
        load_scorer("../x", settings)
    assert caught.value.not_found and "not a run id" in str(caught.value)
    for name, text in {"garbled": "{not json", "empty": "{}", "listed": "[1, 2]"}.items():
        folder = settings.models_dir / name
        folder.mkdir()
        (folder / "manifest.json").write_text(text, encoding="utf-8")
        with pytest.raises(ScorerUnavailable) as caught:
            load_scorer(name, settings)
        assert not caught.value.not_found and f"run {name} cannot be loaded" in str(caught.value)


def test_a_foreign_model_class_is_refused_as_unavailable(trained, tmp_path):
    """A run folder whose safetensors file names a class the workbench never writes."""
    import json

    import torch
    from safetensors.torch import save_file

    from workbench.fsutil import file_sha256
    from workbench.runs import RunStore

    settings, _, _ = trained
    (head,) = [m for m in RunStore(settings.models_dir).list() if m.family == "nima_head"]
    runs = tmp_path / "runs"
    shutil.copytree(settings.models_dir / head.run_id, runs / "foreign")
    manifest_path = runs / "foreign" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["model_format"] == "safetensors"
    model = runs / "foreign" / manifest["model_file"]
    save_file({"w": torch.zeros(2)}, str(model), metadata={"workbench": json.dumps({"class": "os.system"})})
    manifest["model_sha256"] = file_sha256(model)  # a consistent but foreign run
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ScorerUnavailable) as caught:
        load_scorer("foreign", settings.replace(models_dir=runs))
    assert not caught.value.not_found and "unknown model class 'os.system'" in str(caught.value)


def test_a_non_finite_threshold_is_refused(trained):
    settings, ridge, _ = trained
    scorer = load_scorer(ridge.run_id, settings)
    for bad in (float("nan"), float("inf"), "-inf"):
        with pytest.raises(ValueError, match="finite"):
            drain(score_images([settings.data_dir], scorer, settings, threshold=bad))


def test_a_nan_score_is_listed_as_an_error_after_the_scored_photos(trained):
    """The real ridge run, with one prediction turned into NaN as a diverged model gives."""
    import dataclasses

    settings, ridge, _ = trained
    scorer = load_scorer(ridge.run_id, settings)

    def one_nan(paths, settings, stop=None):
        for event in scorer.predict_chunk(paths, settings, stop=stop):
            if isinstance(event, Finished):
                event.result.scores[1] = np.nan
            yield event

    poisoned = dataclasses.replace(scorer, predict_chunk=one_nan)
    # six photos of the set (the held-out split can be smaller: near-duplicate crops are held out together)
    names = sorted(p.name for p in settings.data_dir.glob("*.png"))[:6]
    result = drain(score_images([settings.data_dir / n for n in names], poisoned, settings))
    assert len(result.scored) == 5 and [r.path for r in result.failed] == [str(settings.data_dir / names[1])]
    assert result.rows[-1].error == "the model produced no finite score" and result.rows[-1].score is None
    assert [r.score for r in result.scored] == sorted((r.score for r in result.scored), reverse=True)
    assert "nan" not in csv_text(result).lower()


def test_a_run_whose_backbone_weights_are_gone_is_unavailable_when_scoring(trained, tmp_path):
    """The run's backbone has no weights here and the feature cache is cold: a reason, not a traceback."""
    import json

    settings, ridge, _ = trained
    runs = tmp_path / "runs"
    shutil.copytree(settings.models_dir / ridge.run_id, runs / "moved")
    manifest_path = runs / "moved" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["backbones"], manifest["backbone"] = ["resnet50"], "resnet50"  # as if trained where its weights were
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    (tmp_path / "cache").mkdir()
    elsewhere = settings.replace(models_dir=runs, cache_dir=tmp_path / "cache", weights_dir=tmp_path)
    scorer = load_scorer("moved", elsewhere)
    with pytest.raises(ScorerUnavailable) as caught:
        drain(score_images([settings.data_dir], scorer, elsewhere))
    assert "moved cannot score" in str(caught.value) and "resnet50" in str(caught.value)  # a run is its folder
    assert not caught.value.not_found
