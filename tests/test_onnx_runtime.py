"""The CPU path (the ONNX export run by ONNX Runtime or OpenVINO) gives PyTorch's answers, or is refused and says why.

Parity per backbone and engine is measured on photos the export check never saw (the
package photos, not its probe): max relative difference of features under 1e-4
(max |engine - torch| of a vector over its largest |torch| value), NIMA mean scores
within 0.005, and NIMA's published chelsea score (5.12) still within 0.02.
Exports are shared by the tests of this module (one cache folder) to keep them cheap.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DIR
from PIL import Image
from torch import nn

from workbench import onnx_runtime
from workbench.backbones import BACKBONES, MultiLevel, load_backbone, make_transform, weight_status
from workbench.backbones.nima import distribution_mean_std, load_nima
from workbench.config import load_settings
from workbench.errors import BadInput
from workbench.events import Finished, Notice, drain
from workbench.features import clear_cache, extract_features

# Exported and compared here with random weights (the graph is what an export can get wrong; the
# weights are numbers in it). The big ones take 20-60 s to export on two cores: bench/cpu_path_bench.py
# exports and compares them and BENCHMARKS.md records their parity.
SMALL = ("resnet18",)
IMAGE_BACKBONES = [name for name, spec in BACKBONES.items() if not spec.online_only]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture
def cpu_settings(settings, onnx_cache, nima_weights_if_any):
    return settings.replace(cache_dir=onnx_cache, runtime="auto")


@pytest.fixture
def nima_weights_if_any(settings):
    path = SHARED_DIR / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
    if path.is_file():
        (settings.weights_dir / path.name).symlink_to(path)
    return path if path.is_file() else None


def _inputs(transform, photos) -> np.ndarray:
    return np.stack([transform(Image.fromarray(p)).numpy() for p in photos.values()]).astype(np.float32)


def _torch(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).float().numpy()


def _checked(model, settings, loaded, view, engine):
    choice = onnx_runtime.prepare(model, settings, backbone=loaded.spec.name, weights_id=loaded.weights.weights_id,
                                  output=view, transform=loaded.transform, engine=engine)
    assert choice.runner is not None, choice.label
    assert choice.label.startswith(f"{choice.runner.engine} (checked against torch")
    assert engine in ("auto", choice.runner.engine)
    return choice.runner


def _assert_parity(name, view, settings, photos, *, random_weights):
    """Every engine (one export, checked once) gives torch's features on photos its check never saw;
    "auto" picks the one the check timed fastest."""
    loaded = load_backbone(name, settings, random_weights=random_weights)
    model = MultiLevel(loaded.model, loaded.spec.stage_taps) if view == "multilevel" else loaded.model
    x = _inputs(loaded.transform, photos)
    want = _torch(model, x)
    for engine in onnx_runtime.ENGINES:
        runner = _checked(model, settings, loaded, view, engine)
        got = runner.run(x)
        assert got.shape == want.shape == (len(photos), loaded.spec.feature_dim_of(view))
        assert onnx_runtime.max_relative_difference(got, want) < 1e-4, engine
    check = runner.check
    assert check["fastest"] == min(check["engines"], key=lambda e: check["engines"][e]["seconds_batch"])
    assert _checked(model, settings, loaded, view, "auto").engine == check["fastest"]
    assert not any(m.training for m in loaded.model.modules())  # the caller's network is handed back in eval mode


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_pretrained_backbone_parity(name, cpu_settings, photos):
    status = weight_status(name, cpu_settings, check_online=False)
    if status.path is None:
        pytest.skip(f"{name}: no pretrained weights on this machine ({status.detail[:160]})")
    if name not in ("efficientnet_lite0", "nima_mobilenet"):
        pytest.skip(f"{name}: weights present, but its export takes too long for a unit test; "
                    f"bench/cpu_path_bench.py checks it")
    _assert_parity(name, "pooled", cpu_settings, photos, random_weights=False)


@pytest.mark.parametrize("name", SMALL)
def test_graph_parity_with_random_weights(name, cpu_settings, photos):
    _assert_parity(name, "pooled", cpu_settings, photos, random_weights=True)


def test_multilevel_stage_taps_parity(cpu_settings, photos):
    _assert_parity("efficientnet_lite0", "multilevel", cpu_settings, photos, random_weights=False)


def test_nima_scores_within_0005_of_torch_and_chelsea_still_512(cpu_settings, photos):
    if weight_status("nima_mobilenet", cpu_settings, check_online=False).path is None:
        pytest.skip("NIMA weights (../shared/weights/nima_mobilenet_aesthetic_ava.hdf5) are not on this machine")
    model = load_nima(cpu_settings)
    x = _inputs(model.transform, photos)
    torch_mean, _ = distribution_mean_std(_torch(model, x))
    for engine in onnx_runtime.ENGINES:
        choice = onnx_runtime.prepare(model, cpu_settings, backbone="nima_mobilenet", weights_id=model.weights.weights_id,
                                      output="distribution", transform=model.transform, engine=engine)
        assert choice.runner is not None, choice.label
        mean, _ = distribution_mean_std(choice.runner.run(x))
        assert np.abs(mean - torch_mean).max() < 0.005, engine
        assert mean[list(photos).index("chelsea")] == pytest.approx(5.12, abs=0.02), engine


def test_a_large_extraction_exports_then_small_ones_reuse_it(settings, scored_photo_folder, monkeypatch):
    paths = sorted(scored_photo_folder.iterdir())
    monkeypatch.setattr(onnx_runtime, "EXPORT_MIN_IMAGES", len(paths))  # six photos count as a large job here
    events = list(extract_features(paths, "efficientnet_lite0", settings))
    messages = [e.message for e in events if isinstance(e, Notice)]
    assert any("exporting to ONNX and checking its engines against torch" in m for m in messages)
    assert any(re.search(r"computed by (onnxruntime|openvino) \(checked against torch", m) for m in messages)
    result = events[-1].result
    assert result.runtime.startswith(tuple(f"{e} (checked against torch" for e in onnx_runtime.ENGINES))
    assert (settings.cache_dir / "onnx" / "efficientnet_lite0").is_dir()
    (sha,) = {json.loads(f.read_text())["onnx_sha256"] for f in (settings.cache_dir / "onnx").rglob("check.json")}
    kept = [engine for (path, digest, engine, _) in onnx_runtime._SESSIONS
            if digest == sha and path.startswith(str(settings.cache_dir))]
    assert kept == [result.runtime.split()[0]]  # the engine that computes; the other checked one is not held

    monkeypatch.setattr(onnx_runtime, "EXPORT_MIN_IMAGES", 48)
    clear_cache(settings)  # features computed again, by a job too small to export: the export is reused
    again = drain(extract_features(paths[:2], "efficientnet_lite0", settings))
    assert again.computed == 2 and again.runtime.split()[0] == result.runtime.split()[0]

    torch_settings = settings.replace(cache_dir=settings.cache_dir / "torch_only", runtime="torch")
    reference = drain(extract_features(paths, "efficientnet_lite0", torch_settings))
    assert reference.runtime == "torch (features.runtime is 'torch')"
    assert not (torch_settings.cache_dir / "onnx").exists()
    assert onnx_runtime.max_relative_difference(result.features, reference.features) < 1e-4


class BatchSizeBakedIn(nn.Module):
    """Shape-dependent Python code: tracing freezes the batch size of the trace as a constant,
    so the export gives other answers at any other batch size (a real way exports go wrong)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3)) * float(x.shape[0])


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _transform():
    return make_transform(BACKBONES["resnet18"])


def test_an_export_that_differs_is_refused_and_torch_computes(settings):
    choice = onnx_runtime.prepare(BatchSizeBakedIn().eval(), settings, backbone="test_net", weights_id="w1",
                                  output="pooled", transform=_transform())
    assert choice.runner is None and choice.level == "warning"
    assert choice.label.startswith("torch (onnxruntime refused: features differ from torch's by a relative")
    folder, _ = onnx_runtime.export_folder(settings, "test_net", "w1", "pooled")
    check = json.loads((folder / "check.json").read_text())
    assert check["passed"] is False and check["fastest"] is None
    for engine in onnx_runtime.ENGINES:  # every engine runs the same wrong graph: every one refused, with the figure
        assert check["engines"][engine]["passed"] is False and check["engines"][engine]["max_rel_diff"] > 0.1
        assert f"{engine} refused: features differ from torch's by a relative" in choice.label
    assert not (folder / "model.onnx").exists()  # no export that gives other answers is kept
    # the refusal is remembered: no second export, same reason
    again = onnx_runtime.prepare(BatchSizeBakedIn().eval(), settings, backbone="test_net", weights_id="w1",
                                 output="pooled", transform=_transform(), export=False)
    assert again.label == choice.label


def test_a_damaged_export_is_made_again_not_trusted(settings):
    args = dict(backbone="small", weights_id="w1", output="pooled", transform=_transform())
    first = onnx_runtime.prepare(Small().eval(), settings, **args)
    assert first.runner is not None
    folder, _ = onnx_runtime.export_folder(settings, "small", "w1", "pooled")
    (folder / "model.onnx").write_bytes(b"not an onnx model")
    assert onnx_runtime.prepare(Small().eval(), settings, **args, export=False).runner is None
    again = onnx_runtime.prepare(Small().eval(), settings, **args)
    assert again.runner is not None
    assert json.loads((folder / "check.json").read_text())["onnx_sha256"] == onnx_runtime._hash_file(folder / "model.onnx")


def test_small_jobs_do_not_export_and_the_setting_turns_it_off(settings, monkeypatch):
    args = dict(backbone="small", weights_id="w2", output="pooled", transform=_transform())
    small_job = onnx_runtime.choose(Small().eval(), settings, **args, n_images=onnx_runtime.EXPORT_MIN_IMAGES - 1)
    assert small_job.runner is None and "no checked ONNX export yet" in small_job.label
    off = onnx_runtime.choose(Small().eval(), settings.replace(runtime="torch"), **args, n_images=10_000)
    assert off.runner is None and off.label == "torch (features.runtime is 'torch')"
    assert not (settings.cache_dir / "onnx").exists()
    monkeypatch.setenv("WORKBENCH_RUNTIME", "torch")
    assert load_settings().runtime == "torch"
    with pytest.raises(BadInput, match="choose one of: auto, torch, onnxruntime, openvino"):
        onnx_runtime.choose(Small().eval(), settings.replace(runtime="fast"), **args, n_images=1)


def test_nima_scorer_says_which_runtime_scored(cpu_settings, scored_photo_folder):
    from workbench.predict import load_scorer, score_images

    if weight_status("nima_mobilenet", cpu_settings, check_online=False).path is None:
        pytest.skip("NIMA weights (../shared/weights/nima_mobilenet_aesthetic_ava.hdf5) are not on this machine")
    scorer = load_scorer("nima", cpu_settings)
    events = list(score_images([scored_photo_folder], scorer, cpu_settings))
    said = [e.message for e in events if isinstance(e, Notice) and "NIMA computed by" in e.message]
    assert len(said) == 1
    # exported by the NIMA parity test when it ran first; otherwise this small job uses torch and says so
    assert said[0].startswith(("NIMA computed by onnxruntime (checked against torch", "NIMA computed by openvino (checked against torch",
                               "NIMA computed by torch (no checked ONNX export yet"))
    ort_rows = {r.path: r.score for r in events[-1].result.rows}
    torch_scorer = load_scorer("nima", cpu_settings.replace(runtime="torch"))
    finished = [e for e in score_images([scored_photo_folder], torch_scorer, cpu_settings.replace(runtime="torch"))
                if isinstance(e, Finished)][-1]
    for row in finished.result.rows:
        assert ort_rows[row.path] == pytest.approx(row.score, abs=0.005)


def test_cli_runtime_flag_and_json_say_which_runtime_computed(run_cli, workbench_env, photos):
    data_dir = workbench_env["WORKBENCH_DATA_DIR"]
    for name in ("chelsea", "coffee"):
        Image.fromarray(photos[name]).save(f"{data_dir}/{name}.jpg", quality=90)
    document = json.loads(run_cli("--runtime", "torch", "features", "--json").stdout)
    assert document["computed"] == 2 and document["runtime"] == "torch (features.runtime is 'torch')"
    again = json.loads(run_cli("features", "--json").stdout)  # all from the cache now: nothing computed
    assert again["cache_hits"] == 2 and again["runtime"] == "none (all from cache)"
    assert not list((Path(workbench_env["WORKBENCH_CACHE_DIR"]) / "onnx").glob("*"))  # two images: no export
