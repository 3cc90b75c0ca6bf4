"""The command-line contract of train / compare / runs, run as a person would (child processes)."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_fixtures import copy_savoias_subset, make_brightness_set

from workbench.runs import MANIFEST, RunStore

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli_data(savoias_dir, workbench_env, tmp_path_factory):
    """40 SAVOIAS photos in the data folder; the feature cache shared across these CLI tests."""
    copy_savoias_subset(savoias_dir, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=40, seed=1)
    return workbench_env


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-cache")


def _cli(run_cli, shared_cache, *args, check=True):
    return run_cli("--cache-dir", shared_cache, *args, check=check)


def test_train_json_contract_and_runs_listing(cli_data, run_cli, shared_cache):
    proc = _cli(run_cli, shared_cache, "train", "ridge", "--alpha", "500", "--json")
    document = json.loads(proc.stdout)  # stdout holds exactly one JSON document
    assert document["family"] == "ridge" and document["status"] == "complete"
    assert document["params"] == {"alpha": 500.0}
    assert document["weights"]["efficientnet_lite0"]["source"] == "package"
    for metric in ("srcc", "plcc", "krcc", "mae", "rmse", "r2", "accuracy", "accuracy_baseline", "good_share"):
        assert isinstance(document["metrics"][metric], float)
    assert document["n_train"] + document["n_val"] + document["n_test"] == 40
    run_dir = Path(document["run_dir"])
    assert (run_dir / MANIFEST).is_file() and run_dir.name == document["run_id"]

    listed = json.loads(_cli(run_cli, shared_cache, "runs", "--json").stdout)["runs"]
    assert [r["run_id"] for r in listed] == [document["run_id"]]
    renamed = json.loads(_cli(run_cli, shared_cache, "runs", "rename", document["run_id"], "my first model",
                              "--json").stdout)
    assert renamed["display_name"] == "my first model"
    _cli(run_cli, shared_cache, "runs", "delete", document["run_id"])
    assert RunStore(cli_data["WORKBENCH_MODELS_DIR"]).list() == []


def test_train_options_come_from_the_registry(cli_data, run_cli, shared_cache):
    help_text = _cli(run_cli, shared_cache, "train", "head", "--help").stdout
    for option in ("--epochs", "--learning-rate", "--batch-size", "--weight-decay", "--dropout", "--loss"):
        assert option in help_text
    bad = _cli(run_cli, shared_cache, "train", "head", "--epochs", "0", "--json", check=False)
    assert bad.returncode == 2
    assert "epochs must be at least 1" in json.loads(bad.stdout)["error"]
    assert "Traceback" not in bad.stderr


def test_head_streams_epochs_and_random_weights_are_flagged(cli_data, run_cli, shared_cache):
    proc = _cli(run_cli, shared_cache, "train", "head", "--epochs", "5", "--random-weights", "--json")
    document = json.loads(proc.stdout)
    assert document["random_weights"] is True and document["epochs"] == 5
    assert document["weights"]["efficientnet_lite0"]["source"] == "random"
    assert "RANDOM WEIGHTS" in proc.stderr


def test_compare_json_contract(cli_data, run_cli, shared_cache):
    proc = _cli(run_cli, shared_cache, "compare", "--backbone", "efficientnet_lite0", "--models", "ridge,svr,hgb",
                "--folds", "3", "--seed", "3", "--json")
    document = json.loads(proc.stdout)
    assert document["n_images"] == 40 and document["backbone"] == "efficientnet_lite0" and document["folds"] == 3
    assert [r["model"] for r in document["results"]] == ["ridge", "svr", "hgb"]
    for row in document["results"]:
        assert set(row) >= {"model", "srcc", "plcc", "mae", "rmse", "r2", "fit_seconds"}
        assert 0.5 <= row["accuracy_baseline"] <= 1 and 0 <= row["good_share"] <= 1  # the constant guess's rate


def test_too_few_images_is_one_line_not_a_traceback(workbench_env, run_cli, photos, shared_cache):
    make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=4)
    proc = _cli(run_cli, shared_cache, "train", "ridge", check=False)
    assert proc.returncode == 2
    assert "only 4 labelled images" in proc.stderr and "Traceback" not in proc.stderr


def test_a_killed_training_leaves_no_run_that_looks_complete(cli_data, run_cli, shared_cache, workbench_env):
    models_dir = Path(workbench_env["WORKBENCH_MODELS_DIR"])
    before = {p.name for p in models_dir.iterdir()}
    env = {**os.environ, **workbench_env, "WORKBENCH_CACHE_DIR": str(shared_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", "head", "--epochs", "5000",
                             "--patience", "0"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "training" not in seen and time.monotonic() < deadline:  # the epoch bar appeared
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break  # the process ended
            seen += chunk.decode(errors="replace")
        assert "training" in seen
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = RunStore(models_dir)
    assert {m.run_id for m in store.list()} == before - {".gitkeep"}
    # a folder a crash left half-written is never listed, even with a manifest inside
    partial = models_dir / ".partial-20260101-000000-head-efficientnet_lite0"
    partial.mkdir()
    (partial / MANIFEST).write_text("{}")
    assert {m.run_id for m in store.list()} == before - {".gitkeep"}


def test_ctrl_c_stops_and_keeps_the_best_model_as_a_stopped_run(cli_data, run_cli, shared_cache, workbench_env):
    env = {**os.environ, **workbench_env, "WORKBENCH_CACHE_DIR": str(shared_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", "head", "--epochs", "5000",
                             "--patience", "0", "--json"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        # wait for the epoch bar ("training: ... 1/5000"), not the "training head on ..." notice: the first
        # epoch may take seconds after the notice (the first optimizer step imports torch._dynamo), and a
        # Ctrl-C before it ends rightly saves no run
        while "/5000" not in seen and time.monotonic() < deadline:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break  # the process ended
            seen += chunk.decode(errors="replace")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    document = json.loads(out)
    assert document["status"] == "stopped" and 1 <= document["epochs"] < 5000
    assert RunStore(workbench_env["WORKBENCH_MODELS_DIR"]).get(document["run_id"]).status == "stopped"
