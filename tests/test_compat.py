"""The torchvision guard lets torchvision, timm and transformers import on a
CPU torch next to a CUDA torchvision wheel, and the process does not phone home."""
import os
import subprocess
import sys

from workbench.config import PROJECT_ROOT


def test_model_libraries_import_and_build_after_the_guard():
    code = (
        "from workbench import compat\n"
        "import torch, torchvision, timm\n"
        "from transformers import BlipConfig\n"
        "m = torchvision.models.resnet18(weights=None).eval()\n"
        "print(tuple(m(torch.zeros(1, 3, 64, 64)).shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 1000)"


def test_telemetry_is_off_unless_the_user_says_otherwise():
    from workbench import compat  # noqa: F401

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    # "1" from compat; Gradio writes "True" over it once it builds an app: both turn it off
    # (huggingface_hub reads 1/ON/YES/TRUE as true)
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"].upper() in {"1", "ON", "YES", "TRUE"}


def test_cli_help_lists_the_global_options():
    out = subprocess.run([sys.executable, "-m", "workbench", "--help"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for flag in ("--data-dir", "--models-dir", "--weights-dir"):
        assert flag in out.stdout
