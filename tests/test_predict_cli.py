"""``python -m workbench predict`` and ``describe`` as a person (or a script) runs them."""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
from conftest import free_port
from test_describe_critique import SECRET, ChatServer, completion
from test_predict import broken_files


@pytest.fixture
def nima_env(workbench_env, nima_weights):
    os.symlink(nima_weights, Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name)
    return workbench_env


def test_predict_a_folder_to_json_and_csv(nima_env, run_cli, scored_photo_folder, photos, tmp_path):
    broken_files(scored_photo_folder, photos)
    out = tmp_path / "scores.csv"
    proc = run_cli("predict", "nima", scored_photo_folder, "--csv", out, "--json")
    document = json.loads(proc.stdout)  # stdout holds the JSON document and nothing else
    assert document["scorer"] == "nima" and document["scale"] == [1.0, 10.0]
    assert (document["scored"], document["failed"]) == (6, 3)
    scores = [r["score"] for r in document["results"] if r["error"] is None]
    assert scores == sorted(scores, reverse=True)
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(rows[0])[:2] == ["path", "score"]  # the contract columns first, then the rest
    assert list(rows[0]) == ["path", "score", "std", "rank", "percentile", "verdict", "error"] + [f"p{i}" for i in range(1, 11)]
    assert [r["path"] for r in rows] == [r["path"] for r in document["results"]]
    assert {Path(r["path"]).name for r in rows if r["error"]} == {"not_an_image.jpg", "empty.png", "truncated.jpg"}


def test_predict_prints_a_readable_table(nima_env, run_cli, scored_photo_folder):
    proc = run_cli("predict", "nima", scored_photo_folder / "85_chelsea.jpg", "--threshold", "5")
    # one line per photo: score ± spread, the verdict against the threshold, the path
    score, spread, verdict, path = re.fullmatch(r"\s*(\d+\.\d{3}) ± (\d+\.\d{2})  (good|bad)\s+(\S+)",
                                                proc.stdout.strip()).groups()
    assert Path(path).name == "85_chelsea.jpg" and 1 <= float(score) <= 10 and float(spread) > 0
    assert verdict == ("good" if float(score) >= 5 else "bad")
    assert "1 scored, 0 could not be scored; good from 5" in proc.stderr


def test_unknown_run_is_a_clear_error(workbench_env, run_cli, scored_photo_folder):
    proc = run_cli("predict", "no-such-run", scored_photo_folder, check=False)
    assert proc.returncode == 2 and "no run 'no-such-run'" in proc.stderr


def test_a_batch_where_every_file_failed_exits_2_and_keeps_its_json(nima_env, run_cli, tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    proc = run_cli("predict", "nima", missing, "--json", check=False)
    assert proc.returncode == 2
    document = json.loads(proc.stdout)  # the per-file reasons still reach a script
    assert (document["scored"], document["failed"]) == (0, 1) and "nothing could be scored" in document["error"]
    assert document["results"][0]["error"] == "no such file or folder"
    proc = run_cli("predict", "nima", missing, check=False)
    assert proc.returncode == 2 and "error: nothing could be scored: all 1 file(s) failed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_damaged_run_or_a_nan_threshold_is_a_clear_error(nima_env, run_cli, scored_photo_folder):
    damaged = Path(nima_env["WORKBENCH_MODELS_DIR"]) / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json", encoding="utf-8")
    proc = run_cli("predict", "damaged", scored_photo_folder, check=False)
    assert proc.returncode == 2 and "run damaged cannot be loaded" in proc.stderr
    assert "Traceback" not in proc.stderr
    for bad in ("nan", "inf"):
        proc = run_cli("predict", "nima", scored_photo_folder, "--threshold", bad, check=False)
        assert proc.returncode == 2 and "finite number" in proc.stderr and "bad" not in proc.stdout


def test_a_run_whose_backbone_weights_are_gone_is_a_clear_error(workbench_env, run_cli, photos, tmp_path):
    """A ridge run moved to a machine without its backbone's weights (and a cold feature cache)."""
    from training_fixtures import make_brightness_set

    from workbench.config import load_settings
    from workbench.events import drain
    from workbench.training import train

    data = make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=24)
    ridge = drain(train("ridge", load_settings(data_dir=data)))
    manifest_path = Path(workbench_env["WORKBENCH_MODELS_DIR"]) / ridge.run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["backbones"], manifest["backbone"] = ["resnet50"], "resnet50"  # no resnet50 weights here
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    proc = run_cli("predict", ridge.run_id, data, check=False)
    assert proc.returncode == 2 and f"{ridge.run_id} cannot score" in proc.stderr and "resnet50" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_describe_with_a_chat_server(nima_env, run_cli, scored_photo_folder, monkeypatch):
    server = ChatServer()
    server.script = [{"status": 200, "body": completion("Lovely whiskers; crop tighter.")}]
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("WORKBENCH_LLM_MODEL", "llava")
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        proc = run_cli("describe", scored_photo_folder / "85_chelsea.jpg", "--run", "nima", "--no-caption",
                       "--language", "Français", "--json")
    finally:
        server.close()
    document = json.loads(proc.stdout)
    assert document["critique"] == "Lovely whiskers; crop tighter."
    assert document["caption"] is None and document["caption_note"] == "captions are off"
    assert 1 <= document["score"] <= 10
    prompt = server.requests[0]["body"]["messages"][-1]["content"]
    assert "Français" in prompt and f"{document['score']:.2f}" in prompt
    # NIMA learnt from AVA, not from this person: the LLM must not be told the score is their taste
    assert "trained on AVA" in prompt and "own ratings" not in prompt
    assert SECRET not in proc.stdout + proc.stderr


def test_describe_without_llm_or_caption_weights_says_how(nima_env, run_cli, scored_photo_folder, monkeypatch,
                                                           tmp_path):
    for name in ("OPENAI_BASE_URL", "WORKBENCH_LLM_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # a hub that does not answer
    proc = run_cli("describe", scored_photo_folder / "85_chelsea.jpg", "--run", "nima")
    assert "Score: " in proc.stdout
    assert "Caption: none. The caption model 'Salesforce/blip-image-captioning-base' is not available" in proc.stdout
    assert "No language model is configured" in proc.stdout and "OPENAI_API_KEY" in proc.stdout
