"""Start-up stays cheap: what ``--help``, ``dataset --json``, the backbone registry and the app's first page import.

No timing here (benchmarks time things: bench/startup_bench.py). Each check runs a
fresh interpreter and reads its ``sys.modules``, so it fails the day someone adds
an eager ``import torch`` (or timm, scikit-learn, gradio...) back on these paths.
"""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from conftest import start_app, stop_app

from workbench.config import PROJECT_ROOT

# Each costs from a quarter of a second (pandas) to several (torch + timm + torchvision).
HEAVY = ("torch", "torchvision", "timm", "sklearn", "scipy", "transformers", "pandas", "matplotlib", "gradio",
         "tqdm", "pyexiv2", "onnx", "onnxruntime", "openvino")

# Runs the CLI as `python -m workbench ARGS` does, then reports which heavy packages it loaded on stderr.
_RUN_CLI = """
import json, runpy, sys
sys.argv = ["workbench", *sys.argv[1:]]
try:
    runpy.run_module("workbench", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("LOADED " + json.dumps([m for m in %r if m in sys.modules]), file=sys.stderr)
""" % (HEAVY,)


def _snippet(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the project root; it must succeed."""
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    return out


def _cli(workbench_env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    import os

    out = subprocess.run([sys.executable, "-c", _RUN_CLI, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, **workbench_env})
    marker = [line for line in out.stderr.splitlines() if line.startswith("LOADED ")]
    assert marker, out.stderr
    return out, json.loads(marker[-1][len("LOADED "):])


def test_help_imports_no_heavy_library(workbench_env):
    out, loaded = _cli(workbench_env, "--help")
    assert "train" in out.stdout and "predict" in out.stdout and "--data-dir" in out.stdout
    assert loaded == [], f"`python -m workbench --help` imported {loaded}; import them inside the command instead"


def test_dataset_json_imports_no_heavy_library(workbench_env):
    from pathlib import Path

    from PIL import Image

    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    for name, colour in (("a.jpg", "red"), ("b.jpg", "blue"), ("c.jpg", "green")):
        Image.new("RGB", (64, 48), colour).save(data / name)
    (data / "scores.csv").write_text("filename,score\na.jpg,7\nb.jpg,3\n")
    out, loaded = _cli(workbench_env, "dataset", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["total"], summary["labelled"], summary["unlabelled"]) == (3, 2, 1)
    assert loaded == [], f"`python -m workbench dataset --json` imported {loaded}"


def test_a_command_still_lists_its_own_options_in_its_help(workbench_env):
    # arguments are declared when a command is asked for: check ones that come from a registry
    out, loaded = _cli(workbench_env, "features", "--help")
    assert "--backbone NAME" in out.stdout and "--random-weights" in out.stdout
    assert "{pooled,multilevel,clip_prompts}" in out.stdout  # the feature views of workbench.backbones
    assert "gradio" not in loaded


def test_the_backbone_registry_imports_neither_timm_nor_torchvision():
    # the app lists the backbones on its first page: registering them must not cost timm and torchvision
    code = ("import sys, workbench.backbones as b\n"
            "assert 'efficientnet_lite0' in b.BACKBONES and 'resnet18' in b.BACKBONES\n"
            "print([m for m in ('timm', 'torchvision') if m in sys.modules])")
    out = _snippet(code)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name, enum", [
    ("resnet18", "ResNet18_Weights"), ("resnet50", "ResNet50_Weights"), ("vgg16", "VGG16_Weights"),
    ("densenet121", "DenseNet121_Weights"), ("efficientnet_b0", "EfficientNet_B0_Weights"),
    ("inception_v3", "Inception_V3_Weights"), ("mobilenet_v3_large", "MobileNet_V3_Large_Weights"),
    ("convnext_tiny", "ConvNeXt_Tiny_Weights"),
])
def test_torchvision_weight_urls_kept_as_data_match_torchvision(name, enum):
    import torchvision.models as tv

    from workbench.backbones import BACKBONES

    source = BACKBONES[name].weights[0]
    assert source.url == getattr(tv, enum).DEFAULT.url
    assert source.filename == source.url.rsplit("/", 1)[-1] and source.sha256_prefix in source.filename


# Loaded on first use (a training run, a prediction, feature extraction), never to show the first page:
# together about 1.7 s of the app's 5 s start (BENCHMARKS.md, "Start-up").
NOT_AT_APP_START = ("torch", "scipy", "sklearn")


def test_the_app_serves_its_first_page_without_torch_scipy_or_sklearn(workbench_env, tmp_path):
    # the real app (gradio_app.py, a real server on a loopback port); Python's own import log
    # (-X importtime, as an environment variable) lists every module it imported until the page came back
    log = tmp_path / "server.log"
    proc, url = start_app({**workbench_env, "PYTHONPROFILEIMPORTTIME": "1"}, log)
    try:
        page = httpx.get(url + "/", timeout=60)
        assert page.status_code == 200 and "Aesthetic Workbench" in page.text
        imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in log.read_text().splitlines()
                    if line.startswith("import time:") and line.count("|") == 2}
    finally:
        stop_app(proc)
    assert "gradio" in imported and "workbench" in imported  # the log is read right
    loaded = sorted(set(NOT_AT_APP_START) & imported)
    assert loaded == [], (f"the app imported {loaded} before serving its first page: import them inside the "
                          f"function that needs them (a family whose module subclasses torch or scikit-learn "
                          f"classes is declared in workbench.models.declarations)")


def test_listing_families_and_backbones_imports_no_torch_and_building_one_does():
    # the registries declare every family and backbone without torch; the implementation loads on first use
    code = ("import sys\n"
            "from workbench.models import FAMILIES, get_family, FitContext\n"
            "from workbench.backbones import BACKBONES, backbone_choices\n"
            "assert list(FAMILIES)[:2] == ['auto', 'ridge'] and 'multimodal_moe' in FAMILIES and 'nima_mobilenet' in BACKBONES\n"
            "before = sorted(m for m in ('torch', 'scipy', 'sklearn') if m in sys.modules)\n"
            "model = get_family('head').make({'epochs': 2}, context=FitContext())\n"
            "print(before, type(model).__module__, 'torch' in sys.modules)")
    out = _snippet(code)
    assert out.stdout.split() == ["[]", "workbench.models.heads", "True"]


def test_declared_options_are_the_ones_the_implementations_have():
    from workbench.models import declarations, heads, image_models, swin_moe, torch_loop

    assert declarations.HEAD_LOSSES == tuple(heads.LOSSES)
    assert image_models.AUGMENTATIONS is declarations.AUGMENTATIONS and swin_moe.SWIN_MICRO == "swin_micro"
    assert torch_loop.START_MARGIN == declarations.START_MARGIN


def test_every_torch_family_registers_its_estimator_classes_for_saved_runs():
    # runs/persist rebuilds a saved torch estimator from its class name: every class must be findable
    # although the families' modules are imported only on first use
    from workbench.models import FAMILIES, TORCH_ESTIMATORS, torch_estimators

    found = torch_estimators()
    assert found is TORCH_ESTIMATORS
    assert {"MLPHeadRegressor", "NimaHeadRegressor", "FinetuneRegressor", "SwinMoERegressor",
            "ModalityMoERegressor"} <= set(found)
    for family in FAMILIES.values():
        assert callable(family.builder), family.name


def test_classes_moved_for_start_up_are_still_importable_from_their_old_modules():
    from workbench.backbones import MultiLevel, modules
    from workbench.backbones.clip_prompts import ClipPromptFeatures
    from workbench.backbones.nima import NimaFeatures, NimaModel
    from workbench.backbones.registry import L2Normalized
    from workbench.explain import torch_predictor
    from workbench.explain_torch import torch_predictor as moved

    assert (MultiLevel, L2Normalized, ClipPromptFeatures) == (modules.MultiLevel, modules.L2Normalized,
                                                              modules.ClipPromptFeatures)
    assert NimaModel.__module__ == NimaFeatures.__module__ == "workbench.backbones.nima_net"
    assert torch_predictor is moved


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/tmp/th"}, {"XDG_CACHE_HOME": "/tmp/xdg"},
                                 {"TORCH_HOME": "~/th", "XDG_CACHE_HOME": "/tmp/xdg"}])
def test_the_torch_hub_folder_is_torchs_own_without_importing_torch(env):
    # weights.cache_dir names torch's checkpoint folder on the first page: same rule as torch.hub.get_dir()
    import os

    code = ("import sys\nfrom workbench.backbones.weights import torch_hub_dir\nmine = str(torch_hub_dir())\n"
            "assert 'torch' not in sys.modules\nimport torch\nprint(mine == torch.hub.get_dir(), mine)")
    clean = {k: v for k, v in os.environ.items() if k not in ("TORCH_HOME", "XDG_CACHE_HOME")}
    out = _snippet(code, env={**clean, **env})
    assert out.stdout.startswith("True"), out.stdout


def test_the_torch_hub_folder_while_another_thread_is_still_importing_torch():
    # The Predict tab imports torch (NIMA) as the page opens while the Train tab lists where weights come
    # from: sys.modules then holds a half-made torch without .hub, which once failed the Train tab's load event
    code = ("import sys, types\nfrom workbench.backbones.weights import torch_hub_dir\nrule = torch_hub_dir()\n"
            "sys.modules['torch'] = types.ModuleType('torch')  # as a half-done import leaves it\n"
            "print(torch_hub_dir() == rule)")
    out = _snippet(code)
    assert out.stdout.strip() == "True", out.stdout
