"""The Ray engine (``--engine ray``) on a real local Ray instance: 2 CPUs, started once for the module.

Ray's start-up costs 10-20 s, so every test shares one instance (``ray_session``)
and one small ridge run; the engine reuses an initialised Ray instead of starting
its own. Answers are compared with the local engine on the same real photos.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Ray vs local engine: the same code in other batches and thread counts, so float32 rounding only.
TOLERANCE = 1e-6  # of the score range (1e-4 on the ridge run's 0-100 scale, 1e-5 on NIMA's 1-10); features: relative


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local",
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                       "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, photos):
    """Settings on fresh folders, a ridge run trained on brightness crops, and a folder of real photos
    (JPEGs at their own sizes) with two files that are not usable images."""
    from training_fixtures import make_brightness_set, settings_for

    from workbench.events import drain
    from workbench.training import train

    root = tmp_path_factory.mktemp("ray")
    data = make_brightness_set(photos, root / "data", n=24)
    settings = settings_for(data, root / "runs", root / "cache", root / "weights")
    nima = Path(__file__).resolve().parents[2] / "shared" / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
    if nima.is_file():
        os.symlink(nima, root / "weights" / nima.name)
    run = drain(train("ridge", settings))
    shoot = root / "shoot"
    shoot.mkdir()
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(shoot / f"{name}.jpg", quality=90)
    (shoot / "not_an_image.jpg").write_bytes(b"this is a text file, not a JPEG")
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="JPEG")
    (shoot / "truncated.jpg").write_bytes(buffer.getvalue()[:2000])
    return {"settings": settings, "run_id": run.run_id, "shoot": shoot, "root": root, "nima": nima.is_file()}


def read_rows(path: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    return {row["path"]: row for row in pq.read_table(path).to_pylist()}


def local_scores(scorer_id: str, paths, settings) -> dict[str, float]:
    from workbench.events import drain
    from workbench.predict import load_scorer, score_images

    result = drain(score_images(paths, load_scorer(scorer_id, settings), settings))
    return {row.path: row for row in result.rows}


@pytest.fixture(scope="module")
def first_job(ray_session, folders):
    """The ridge run on Ray over three real photos and two bad files: (job, --out)."""
    from workbench.events import drain
    from workbench.scale.ray_engine import ray_predict

    shoot = folders["shoot"]
    out = folders["root"] / "first" / "scores.parquet"
    inputs = [*good_photos(shoot)[:3], shoot / "not_an_image.jpg", shoot / "truncated.jpg"]
    return drain(ray_predict(folders["run_id"], inputs, folders["settings"], out)), out, inputs


def good_photos(shoot: Path) -> list[Path]:
    return sorted(p for p in shoot.glob("*.jpg") if p.name not in ("not_an_image.jpg", "truncated.jpg"))


def test_ray_scores_equal_the_local_engine_and_bad_files_are_error_rows(first_job, folders):
    job, out, inputs = first_job
    rows = read_rows(out)
    assert (job.new, job.failed, job.skipped, job.rows) == (3, 2, 0, 5)
    assert not out.with_name("scores.parquet.parts").exists()  # merged into --out at the end
    local = local_scores(folders["run_id"], inputs, folders["settings"])
    assert set(rows) == set(local) == {str(p) for p in inputs}
    for path, row in rows.items():
        if local[path].error is None:
            assert row["error"] is None and abs(row["score"] - local[path].score) <= TOLERANCE * 100, path
            assert row["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        else:
            assert row["score"] is None and row["error"] == local[path].error, path
    assert "truncated" in rows[inputs[-1].as_posix()]["error"] and "not_an_image.jpg" in rows[str(inputs[-2])]["error"]


def test_a_rerun_skips_photos_already_scored_and_finishes_a_killed_job(first_job, folders, tmp_path):
    from workbench.events import drain
    from workbench.runs import RunStore
    from workbench.scale.ray_engine import ray_predict
    from workbench.scale.results import ResultFile

    settings, run_id = folders["settings"], folders["run_id"]
    good = good_photos(folders["shoot"])
    out = tmp_path / "scores.parquet"
    shutil.copyfile(first_job[1], out)  # three photos scored, two bad files
    before = read_rows(out)
    # a job killed after one batch leaves its finished parts: here, the row of a fourth photo
    manifest = RunStore(settings.models_dir).get(run_id)
    killed = ResultFile(out, "scores", {"scorer": run_id, "model": manifest.model_sha256})
    fourth = local_scores(run_id, [good[3]], settings)[str(good[3])]
    killed.write_part([{"path": str(good[3]), "sha256": hashlib.sha256(good[3].read_bytes()).hexdigest(),
                        "score": fourth.score, "error": None}])
    # the rerun runs the model only on photos not done yet; the fourth's copy under a new name takes its row
    copy = tmp_path / "copy_of_fourth.jpg"
    copy.write_bytes(good[3].read_bytes())
    job = drain(ray_predict(run_id, [*good, copy], settings, out))
    assert (job.new, job.skipped, job.resumed_parts, job.failed) == (len(good) - 4, 4, 1, 0)
    rows = read_rows(out)
    assert len(rows) == len(good) + 1 + 2  # the two bad files' error rows are kept
    assert all(rows[p]["score"] == before[p]["score"] for p in before)
    assert rows[str(copy)]["score"] == fourth.score and rows[str(good[3])]["score"] == fourth.score
    assert not out.with_name("scores.parquet.parts").exists()


def test_results_of_another_model_are_not_mixed(folders, tmp_path):
    from workbench.errors import BadInput
    from workbench.events import drain
    from workbench.scale.ray_engine import ray_features
    from workbench.scale.results import ResultFile

    out = tmp_path / "scores.parquet"
    ResultFile(out, "scores", {"scorer": "some-other-run", "model": "0" * 64}).write_part(
        [{"path": "x.jpg", "sha256": "1" * 64, "score": 1.0, "error": None}])
    with pytest.raises(BadInput, match="some-other-run"):
        drain(ray_features("efficientnet_lite0", [folders["shoot"]], folders["settings"], out))


def test_cli_predict_and_features_on_ray(ray_session, folders, tmp_path, capsys):
    from workbench.cli import main
    from workbench.features import features_for

    settings, shoot = folders["settings"], folders["shoot"]
    flags = ["--data-dir", str(settings.data_dir), "--models-dir", str(settings.models_dir),
             "--weights-dir", str(settings.weights_dir), "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "features.parquet"
    assert main([*flags, "features", "--backbone", "efficientnet_lite0", str(shoot), "--engine", "ray",
                 "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["engine"], document["new"], document["failed"], document["rows"]) == ("ray", 6, 2, 8)
    rows = read_rows(out)
    local = features_for(sorted(shoot.glob("*.jpg")), "efficientnet_lite0", settings)
    # the local engine takes PATHs too (and keeps its JSON): here all from the cache features_for filled
    assert main([*flags[:6], "--cache-dir", str(settings.cache_dir), "features", "--backbone", "efficientnet_lite0",
                 str(shoot), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["n_images"], document["n_features"], document["cache_hits"], len(document["errors"])) == (8, 6, 6, 2)
    for path, vector in zip(local.paths, local.features):
        assert np.abs(np.asarray(rows[str(path)]["features"]) - vector).max() <= 10 * TOLERANCE * max(1.0, np.abs(vector).max())
    if not folders["nima"]:
        pytest.skip("NIMA weights are absent: the distribution column is not checked")
    out = tmp_path / "nima.parquet"
    assert main([*flags, "predict", "nima", str(shoot / "*.jpg"), "--engine", "ray", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["scorer"], document["scale"], document["scored"], document["failed"]) == ("nima", [1.0, 10.0], 6, 2)
    rows = read_rows(out)
    local = local_scores("nima", [shoot], settings)
    for path, row in local.items():
        if row.error is None:
            assert abs(rows[path]["score"] - row.score) <= TOLERANCE * 9 and abs(rows[path]["std"] - row.std) <= TOLERANCE * 9
            assert np.allclose(rows[path]["distribution"], row.distribution, atol=TOLERANCE)


def test_cli_engine_options_are_checked(folders, capsys):
    from workbench.cli import main

    shoot = str(folders["shoot"])
    assert main(["predict", "nima", shoot, "--engine", "ray"]) == 2
    assert "--out FILE.parquet" in capsys.readouterr().err
    assert main(["predict", "nima", shoot, "--engine", "ray", "--out", "x.parquet", "--csv", "x.csv"]) == 2
    assert "--csv" in capsys.readouterr().err
    assert main(["predict", "nima", shoot, "--out", "x.parquet"]) == 2
    assert "go with --engine ray" in capsys.readouterr().err


def test_ray_actors_run_the_checked_export_the_local_engine_chose(ray_session, folders, tmp_path, monkeypatch):
    """A job large enough to export (lowered here to one photo): the driver exports and checks the network
    once, the actors run that file in the engine the check chose, and the scores are the local engine's,
    which runs the same export."""
    from workbench import onnx_runtime
    from workbench.events import Notice
    from workbench.scale.ray_engine import ray_predict

    settings = folders["settings"].replace(cache_dir=tmp_path / "cache", runtime="auto")
    monkeypatch.setattr(onnx_runtime, "EXPORT_MIN_IMAGES", 1)
    good = good_photos(folders["shoot"])[:4]
    events = list(ray_predict(folders["run_id"], good, settings, tmp_path / "scores.parquet"))
    job = events[-1].result
    said = [e.message for e in events if isinstance(e, Notice) and e.message.startswith("model actors compute with")]
    exports = list((tmp_path / "cache" / "onnx" / "efficientnet_lite0").glob("*/check.json"))
    assert len(exports) == 1, exports
    check = json.loads(exports[0].read_text())
    assert check["passed"] and job.runtime.startswith(f"{check['fastest']} (checked against torch")
    assert said == [f"model actors compute with {job.runtime}"]
    local = drain_local(folders["run_id"], good, settings)
    assert local.startswith(check["fastest"])  # the local engine runs the same export in the same engine
    rows = read_rows(tmp_path / "scores.parquet")
    want = local_scores(folders["run_id"], good, settings)
    for path in map(str, good):
        assert abs(rows[path]["score"] - want[path].score) <= TOLERANCE * 100, path


def drain_local(run_id: str, paths, settings) -> str:
    """What computed the local engine's features for these photos (its Notice)."""
    from workbench.events import Notice
    from workbench.features import clear_cache
    from workbench.predict import load_scorer, score_images

    clear_cache(settings)
    events = list(score_images(paths, load_scorer(run_id, settings), settings))
    said = [e.message for e in events if isinstance(e, Notice) and "computed by" in e.message]
    return said[-1].split("computed by ", 1)[1] if said else ""


def test_an_export_shipped_to_a_worker_is_checked_by_its_sha256(ray_session, tmp_path):
    """Off the driver's machine the actor gets the export's bytes from the object store: bytes that
    match the check's SHA-256 are written and run; other bytes are refused, never run."""
    import torch

    from workbench import onnx_runtime
    from workbench.backbones import BACKBONES, make_transform
    from workbench.config import load_settings
    from workbench.scale.stages import _load_export

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    settings = load_settings(cache_dir=tmp_path / "driver")
    choice = onnx_runtime.prepare(net, settings, backbone="tiny", weights_id="w", output="pooled",
                                  transform=make_transform(BACKBONES["resnet18"]), load=False)
    assert choice.runner is None and choice.export is not None  # load=False: checked, not loaded
    data = choice.export.path.read_bytes()
    elsewhere = onnx_runtime.Checked(tmp_path / "not_on_this_worker" / "model.onnx", choice.export.check, choice.export.engine)
    runner = _load_export(elsewhere, ray_session.put(data), 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)  # the export's input size
    with torch.inference_mode():
        assert onnx_runtime.max_relative_difference(runner.run(x), net(torch.from_numpy(x)).numpy()) < 1e-4
    assert runner.path != elsewhere.path and runner.path.read_bytes() == data
    tampered = onnx_runtime.Checked(tmp_path / "nowhere" / "model.onnx",
                                    {**choice.export.check, "onnx_sha256": hashlib.sha256(b"other").hexdigest()},
                                    choice.export.engine)
    with pytest.raises(ValueError, match="does not match the SHA-256 of its check"):
        _load_export(tampered, ray_session.put(data), 1)
    with pytest.raises(ValueError, match="none was shipped"):
        _load_export(elsewhere, None, 1)


IMAGE_FAMILIES = {  # families whose model reads the photo itself (mode "pixels"), trained tiny here: seconds each
    "finetune": dict(params={"epochs": 1, "image_size": 64, "batch_size": 8, "patience": 0}),
    "swin_moe": dict(backbone="swin_micro", random_weights=True,
                     params={"epochs": 1, "batch_size": 8, "patience": 0, "n_experts": 2, "top_k": 1}),
}


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_cli_predict_on_ray_with_a_run_that_reads_pixels(family, ray_session, folders, tmp_path, capsys):
    """A fine-tuned CNN and a Swin-MoE run score on Ray as in the local engine: their model files travel
    to the actors (hash-checked there), the actors decode the photos themselves; bad files are error rows."""
    from workbench.cli import main
    from workbench.events import drain
    from workbench.training import train

    settings = folders["settings"].replace(models_dir=tmp_path / "runs")
    run = drain(train(family, settings, **IMAGE_FAMILIES[family]))
    shoot = folders["shoot"]
    out = tmp_path / "scores.parquet"
    flags = ["--data-dir", str(settings.data_dir), "--models-dir", str(settings.models_dir),
             "--weights-dir", str(settings.weights_dir), "--cache-dir", str(settings.cache_dir)]
    assert main([*flags, "predict", run.run_id, str(shoot), "--engine", "ray", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["scored"], document["failed"], document["runtime"]) == (6, 2, "torch (the run's own model)")
    rows = read_rows(out)
    local = local_scores(run.run_id, [shoot], settings)
    assert set(rows) == set(local)
    span = float(run.score_max - run.score_min)
    for path, row in local.items():
        if row.error is None:
            assert abs(rows[path]["score"] - row.score) <= TOLERANCE * span, path
        else:
            assert rows[path]["score"] is None and rows[path]["error"] == row.error, path


def test_a_run_that_reads_text_is_refused_on_ray_with_a_clear_message(photos, tmp_path, capsys):
    """Multimodal runs read each photo's text from the data folder, which Ray's workers do not have:
    refused before Ray does anything, with what to do instead; nothing is written."""
    import csv

    from training_fixtures import make_brightness_set, settings_for

    from workbench.cli import main
    from workbench.events import drain
    from workbench.training import train

    data = make_brightness_set(photos, tmp_path / "data", n=24, size=48)
    with open(data / "scores.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    with open(data / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["filename", "score", "text"]] + [[n, s, "a note" if i % 2 else ""]
                                                                     for i, (n, s) in enumerate(rows)])
    settings = settings_for(data, tmp_path / "runs", tmp_path / "cache", tmp_path / "weights", test_fraction=0.25)
    run = drain(train("multimodal_concat", settings))
    out = tmp_path / "scores.parquet"
    assert main(["--data-dir", str(data), "--models-dir", str(settings.models_dir), "--cache-dir", str(settings.cache_dir),
                 "predict", run.run_id, str(data), "--engine", "ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"run {run.run_id} reads each photo's text from the data folder" in err and "leave out --engine ray" in err
    assert not out.exists() and not out.with_name(out.name + ".parts").exists()


def test_a_misspelt_runtime_is_refused_before_ray_starts(folders, tmp_path):
    from workbench.errors import BadInput
    from workbench.events import drain
    from workbench.scale.ray_engine import ray_predict

    out = tmp_path / "scores.parquet"
    with pytest.raises(BadInput, match="features.runtime is 'openvno'; choose one of: auto, torch, onnxruntime, openvino"):
        drain(ray_predict(folders["run_id"], [folders["shoot"]], folders["settings"].replace(runtime="openvno"), out))
    assert not out.exists() and not out.with_name(out.name + ".parts").exists()
