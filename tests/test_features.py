"""Feature extraction and its content-keyed cache, on real photos with the real
EfficientNet-Lite0 package weights (offline, small enough to stay fast)."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.events import Finished, Notice, Progress, StopFlag
from workbench.features import FeatureCache, cache_size, extract_features, feature_matrix, features_for

BACKBONE = "efficientnet_lite0"


@pytest.fixture
def photo_dir(tmp_path, photos) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, pixels in photos.items():
        image = Image.fromarray(pixels)
        image.thumbnail((320, 320))
        image.save(folder / f"{name}.jpg", quality=90)
    return folder


def jpgs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def run(paths, settings, **kwargs) -> tuple[list, object]:
    events = list(extract_features(paths, BACKBONE, settings, **kwargs))
    assert isinstance(events[-1], Finished)
    return events, events[-1].result


def test_second_run_only_hashes_and_gives_identical_features(photo_dir, settings):
    paths = jpgs(photo_dir)
    _, first = run(paths, settings)
    assert first.features.shape == (len(paths), 1280) and first.features.dtype == np.float32
    assert first.computed == len(paths) and first.cache_hits == 0
    assert first.paths == paths and first.weights.source == "package"
    _, second = run(paths, settings)
    assert second.cache_hits == len(paths) and second.computed == 0
    np.testing.assert_array_equal(second.features, first.features)


def test_rename_hits_and_edit_misses(photo_dir, settings):
    paths = jpgs(photo_dir)
    _, first = run(paths, settings)
    renamed = photo_dir / "90 my favourite café.jpg"
    paths[0].rename(renamed)
    edited = paths[1]
    Image.open(edited).rotate(90, expand=True).save(edited, quality=90)
    new_paths = [renamed, *paths[1:]]
    _, second = run(new_paths, settings)
    assert second.computed == 1 and second.cache_hits == len(paths) - 1
    np.testing.assert_array_equal(second.features[0], first.features[0])  # renamed: same content
    assert not np.allclose(second.features[1], first.features[1])  # edited: recomputed


def test_cache_survives_a_restart(photo_dir, settings, run_cli, workbench_env):
    """A second process (the CLI) reads what the first one cached."""
    data_dir = Path(workbench_env["WORKBENCH_DATA_DIR"])
    for i, path in enumerate(jpgs(photo_dir)):
        (data_dir / f"{50 + i}_{path.name}").write_bytes(path.read_bytes())
    _, first = run(sorted(data_dir.glob("*.jpg")), settings)
    document = json.loads(run_cli("features", "--backbone", BACKBONE, "--json").stdout)
    assert document["cache_hits"] == len(first.paths) and document["computed"] == 0
    assert document["weights"] == "package" and document["feature_dim"] == 1280
    size = cache_size(settings)
    assert size["files"] == len(first.paths) and size["bytes"] > 0 and BACKBONE in size["backbones"]
    cleared = json.loads(run_cli("cache", "--clear", "--json").stdout)
    assert cleared["files"] == 0 and cleared["freed_files"] == len(first.paths)


def test_a_corrupt_cache_file_is_detected_and_rebuilt(photo_dir, settings):
    paths = jpgs(photo_dir)
    _, first = run(paths, settings)
    cache = FeatureCache(settings.features_cache_dir, BACKBONE, first.weights.weights_id, 1280)
    from workbench.fsutil import file_sha256

    flipped = cache.path_of(file_sha256(paths[0]))
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0x40  # one bit of one feature value: still a well-formed file
    flipped.write_bytes(bytes(data))
    truncated = cache.path_of(file_sha256(paths[1]))
    truncated.write_bytes(truncated.read_bytes()[:40])
    events, second = run(paths, settings)
    assert second.computed == 2 and second.cache_hits == len(paths) - 2
    np.testing.assert_allclose(second.features, first.features, rtol=1e-5, atol=1e-6)
    assert any(isinstance(e, Notice) and "damaged cache" in e.message for e in events)
    _, third = run(paths, settings)  # and the rebuilt files are good again
    assert third.cache_hits == len(paths)


def test_broken_images_are_skipped_with_a_reason_and_the_batch_goes_on(photo_dir, settings):
    good = jpgs(photo_dir)
    whole = good[0].read_bytes()
    (photo_dir / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (photo_dir / "notes.jpg").write_text("these are my notes, not a photo")
    (photo_dir / "empty.jpg").write_bytes(b"")
    missing = photo_dir / "gone.jpg"
    paths = sorted(photo_dir.glob("*.jpg")) + [missing]
    events, result = run(paths, settings.replace(batch_size=16))
    assert result.paths == good and result.features.shape == (len(good), 1280)
    assert {Path(p).name for p in result.errors} == {"truncated.jpg", "notes.jpg", "empty.jpg", "gone.jpg"}
    for path, reason in result.errors.items():
        assert Path(path).name in reason  # the message says which file
    skipped = [e for e in events if isinstance(e, Notice) and e.message.startswith("skipped")]
    assert len(skipped) == 4
    matrix_events = list(feature_matrix(paths, (BACKBONE,), settings.replace(batch_size=16)))
    (summary,) = [e.message for e in matrix_events if isinstance(e, Notice) and "could not be read" in e.message]
    assert summary.count("notes.jpg") == 1  # not "notes.jpg: notes.jpg: not an image"


def test_progress_events_report_rate_and_eta(photo_dir, settings):
    events, result = run(jpgs(photo_dir), settings.replace(batch_size=2, num_workers=0))
    assert isinstance(events[0], Notice) and "package" in events[0].message
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == len(result.paths)
    timed = [e for e in progress if e.rate is not None]
    assert len(timed) == 3 and all(e.rate > 0 and e.eta is not None for e in timed)
    assert [e.done for e in timed] == sorted(e.done for e in timed)


def test_a_paused_extraction_leaves_its_thread_able_to_train(photo_dir, settings):
    """Gradio resumes a generator on whichever worker thread is free; grad mode is per thread, so
    extraction paused between batches must not leave its thread in inference mode (another tab's
    training on that thread then failed with "element 0 of tensors does not require grad")."""
    import torch

    events = extract_features(jpgs(photo_dir), BACKBONE, settings.replace(batch_size=2, num_workers=0))
    for event in events:
        if isinstance(event, Progress) and event.rate is not None:  # paused after a computed batch
            break
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    weight = torch.ones(1, requires_grad=True)
    (weight * 2).sum().backward()
    assert weight.grad is not None
    events.close()


def test_worker_processes_give_the_same_features(photo_dir, settings):
    paths = jpgs(photo_dir)
    inline = features_for(paths, BACKBONE, settings.replace(num_workers=0, batch_size=2))
    pooled = features_for(paths, BACKBONE, settings.replace(num_workers=2, batch_size=2,
                                                             cache_dir=settings.cache_dir / "second"))
    assert pooled.computed == len(paths)
    np.testing.assert_allclose(pooled.features, inline.features, rtol=1e-5, atol=1e-5)


def test_stop_flag_ends_after_the_current_batch_and_keeps_its_work(photo_dir, settings):
    paths = jpgs(photo_dir)
    small = settings.replace(batch_size=2, num_workers=0)
    stop = StopFlag()
    events = []
    for event in extract_features(paths, BACKBONE, small, stop=stop):
        events.append(event)
        if isinstance(event, Progress) and event.rate is not None:
            stop.set()
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.stopped
    assert len(finished.result.paths) == 2
    _, rest = run(paths, small)
    assert rest.cache_hits == 2 and rest.computed == len(paths) - 2


def test_random_weights_are_announced_as_a_warning(photo_dir, settings):
    events = list(extract_features(jpgs(photo_dir)[:2], "resnet18", settings, random_weights=True))
    notice = events[0]
    assert isinstance(notice, Notice) and notice.level == "warning" and "RANDOM" in notice.message
    assert events[-1].result.weights.is_random


def test_exif_orientation_is_applied(tmp_path, photos, settings):
    upright = Image.fromarray(photos["astronaut"]).resize((256, 256))
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone writes ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... plus "rotate 90 CW to display"
    stored_sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright.save(tmp_path / "upright.jpg", quality=95)
    wrong = stored_sideways  # no EXIF: shown as stored
    wrong.save(tmp_path / "sideways.jpg", quality=95)
    result = features_for([tmp_path / "phone.jpg", tmp_path / "upright.jpg", tmp_path / "sideways.jpg"],
                          BACKBONE, settings)
    phone, up, side = result.features
    assert np.linalg.norm(phone - up) < np.linalg.norm(phone - side)


def test_an_unwritable_cache_still_returns_features(photo_dir, settings):
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    settings.features_cache_dir.write_text("a file where the cache folder should be")
    events, result = run(jpgs(photo_dir)[:2], settings)
    assert result.features.shape == (2, 1280) and result.computed == 2
    assert any(isinstance(e, Notice) and "could not be cached" in e.message for e in events)


def test_stop_before_the_first_batch_ends_while_hashing(photo_dir, settings):
    stop = StopFlag()
    stop.set()
    events = list(extract_features(jpgs(photo_dir), BACKBONE, settings, stop=stop))
    assert events[-1].stopped and events[-1].result.features.shape == (0, 1280)


def test_clearing_one_backbone_cannot_reach_outside_the_cache(settings, tmp_path):
    from workbench.features import clear_cache

    precious = settings.features_cache_dir.parent / "keep-me"
    precious.mkdir(parents=True, exist_ok=True)
    (precious / "weights.bin").write_bytes(b"hand-placed")
    for name in ("..", "../keep-me", str(precious)):
        with pytest.raises(KeyError, match="unknown backbone"):
            clear_cache(settings, name)
    assert (precious / "weights.bin").read_bytes() == b"hand-placed"


def test_cache_clear_also_clears_the_onnx_exports_beside_the_features(settings, run_cli):
    # where onnx_runtime puts an export (its own export_folder), one per backbone; an export is
    # minutes of work to make, so here two hand-written files stand in for the exported model
    from workbench import onnx_runtime

    folders = {name: onnx_runtime.export_folder(settings, name, "sha256:0123456789abcdef", "pooled")[0]
               for name in ("efficientnet_lite0", "resnet18")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"x" * 1000)
    shown = json.loads(run_cli("cache", "--json").stdout)
    assert (shown["onnx"]["files"], shown["onnx"]["bytes"]) == (2, 2000)
    one = json.loads(run_cli("cache", "--clear", "--backbone", "resnet18", "--json").stdout)
    assert (one["onnx_freed_files"], one["onnx"]["files"]) == (1, 1)
    assert not folders["resnet18"].exists() and (folders["efficientnet_lite0"] / "model.onnx").exists()
    cleared = run_cli("cache", "--clear")
    assert "of ONNX exports from" in cleared.stdout and not folders["efficientnet_lite0"].exists()
    assert "ONNX export" in run_cli("cache", "--help").stdout


def test_the_multilevel_view_is_cached_apart_and_leaves_the_backbone_as_it_was(photo_dir, settings):
    from workbench.backbones import get_backbone, load_backbone

    paths = jpgs(photo_dir)
    _, pooled = run(paths, settings)
    _, levels = run(paths, settings, view="multilevel")
    dim = get_backbone(BACKBONE).feature_dim_of("multilevel")
    assert levels.features.shape == (len(paths), dim) and levels.computed == len(paths)  # its own cache entries
    np.testing.assert_allclose(levels.features[:, -1280:], pooled.features, rtol=1e-4, atol=1e-5)
    _, again = run(paths, settings, view="multilevel")
    assert again.cache_hits == len(paths)
    np.testing.assert_array_equal(again.features, levels.features)
    loaded = load_backbone(BACKBONE, settings)  # a caller's loaded backbone: hooks must not stay behind
    features_for(paths[:2], loaded, settings.replace(cache_dir=settings.cache_dir / "other"), view="multilevel")
    assert all(not m._forward_hooks for m in loaded.model.modules())
    with pytest.raises(ValueError, match="no multilevel view"):
        next(extract_features(paths, "clip_vit_b32", settings, view="multilevel"))
