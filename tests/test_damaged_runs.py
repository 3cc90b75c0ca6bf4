"""A run folder whose model file passes the sha check but cannot be read as what its
manifest says (wrong format, relabelled, shapes that disagree) is reported as
damaged, the same way in the engine, the API, the CLI and the UI, and no code runs."""
from __future__ import annotations

import json
import pickle

import pytest
from test_runs import _stored_run

from workbench import compat  # noqa: F401
from workbench.fsutil import file_sha256
from workbench.runs import RunCorrupt, load_run

DAMAGED = "this run is damaged"


def _rewrite_manifest(folder, **changes):
    data = json.loads((folder / "manifest.json").read_text())
    data.update(changes)
    data["model_sha256"] = file_sha256(folder / data["model_file"])  # the hash check passes: only the format is wrong
    (folder / "manifest.json").write_text(json.dumps(data))


class Boom:  # unpickling this would run code: it must never be unpickled
    def __reduce__(self):
        return (print, ("code ran",))


def pickle_as_skops(settings):
    store, manifest, _ = _stored_run(settings, "ridge")
    folder = store.folder(manifest.run_id)
    (folder / manifest.model_file).write_bytes(pickle.dumps(Boom()))
    _rewrite_manifest(folder)
    return manifest.run_id


def safetensors_labelled_skops(settings):
    store, manifest, _ = _stored_run(settings, "head", {"epochs": 2})
    folder = store.folder(manifest.run_id)
    (folder / manifest.model_file).rename(folder / "model.skops")
    _rewrite_manifest(folder, model_file="model.skops", model_format="skops")
    return manifest.run_id


def skops_labelled_safetensors(settings):
    store, manifest, _ = _stored_run(settings, "ridge")
    folder = store.folder(manifest.run_id)
    (folder / manifest.model_file).rename(folder / "model.safetensors")
    _rewrite_manifest(folder, model_file="model.safetensors", model_format="safetensors")
    return manifest.run_id


def shapes_disagree(settings):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    store, manifest, _ = _stored_run(settings, "head", {"epochs": 2})
    folder = store.folder(manifest.run_id)
    path = folder / manifest.model_file
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["workbench"])
    meta["n_features_in"] += 3  # the network built from the metadata no longer fits the tensors
    save_file(load_file(str(path)), str(path), metadata={"workbench": json.dumps(meta)})
    _rewrite_manifest(folder)
    return manifest.run_id


def garbage_metadata(settings):
    from safetensors.torch import load_file, save_file

    store, manifest, _ = _stored_run(settings, "head", {"epochs": 2})
    folder = store.folder(manifest.run_id)
    path = folder / manifest.model_file
    save_file(load_file(str(path)), str(path), metadata={"workbench": "{not json"})
    _rewrite_manifest(folder)
    return manifest.run_id


DAMAGES = [pickle_as_skops, safetensors_labelled_skops, skops_labelled_safetensors, shapes_disagree,
           garbage_metadata]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_a_damaged_run_is_refused_with_a_reason(settings, damage, capsys):
    run_id = damage(settings)
    with pytest.raises(RunCorrupt, match=DAMAGED) as caught:
        load_run(run_id, settings)
    assert "model." in str(caught.value)  # names the file
    assert "code ran" not in capsys.readouterr().out


def test_the_cli_says_damaged_without_a_traceback(settings, run_cli, photos, tmp_path):
    from PIL import Image

    run_id = pickle_as_skops(settings)
    Image.fromarray(photos["rocket"]).save(tmp_path / "rocket.jpg")
    proc = run_cli("predict", run_id, tmp_path / "rocket.jpg", check=False)
    assert proc.returncode != 0
    assert DAMAGED in proc.stderr and "model.skops" in proc.stderr
    assert "Traceback" not in proc.stderr and "code ran" not in proc.stdout


@pytest.fixture
def damaged_run(settings):
    return shapes_disagree(settings)


def test_the_api_and_the_ui_say_damaged(damaged_run, app_server, photos):  # the run exists before the server starts
    import io

    import httpx
    from PIL import Image
    from test_security import call_event

    run_id = damaged_run
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="JPEG")
    response = httpx.post(f"{app_server}/api/score", data={"run": run_id}, timeout=120,
                          files=[("files", ("rocket.jpg", buffer.getvalue(), "image/jpeg"))])
    assert response.status_code == 503, response.text
    assert DAMAGED in response.json()["detail"] and "model.safetensors" in response.json()["detail"]
    # The Predict tab: choosing the run in the scorer list shows the same reason.
    config = httpx.get(f"{app_server}/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    choose = next(d for d in config["dependencies"] if d["api_name"] == "load")
    components[choose["inputs"][0]] = {**components[choose["inputs"][0]], "props": {"value": run_id}}
    reply = call_event(app_server, choose, components, None)
    assert DAMAGED in reply and "model.safetensors" in reply


@pytest.mark.parametrize("field, value", [("score_max", None), ("good_threshold", ""), ("weights", True),
                                          ("split", None), ("score_min", 100.0), ("history", [1, 2])])
def test_a_manifest_with_a_wrong_type_is_damaged_not_a_crash_later(settings, field, value):
    """Found by tests/test_fuzz.py: these loaded, then failed inside scoring with TypeError/AttributeError."""
    from workbench.predict import ScorerUnavailable, load_scorer

    store, manifest, _ = _stored_run(settings, "ridge")
    folder = store.folder(manifest.run_id)
    data = json.loads((folder / "manifest.json").read_text())
    data[field] = value
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ScorerUnavailable, match=f"{DAMAGED}: manifest.json") as caught:
        load_scorer(manifest.run_id, settings)
    assert field in str(caught.value) or "score_min" in str(caught.value)
    assert manifest.run_id not in [m.run_id for m in store.list()]  # not offered as a run either
