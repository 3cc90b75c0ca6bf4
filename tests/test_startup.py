"""Start-up stays cheap: what ``--help``, ``dataset --json`` and the backbone registry import.

No timing here (benchmarks time things: bench/startup_bench.py). Each check runs a
fresh interpreter and reads its ``sys.modules``, so it fails the day someone adds
an eager ``import torch`` (or timm, scikit-learn, gradio...) back on these paths.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
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
