"""The multilevel feature view end to end: train on it, store it in the run, predict with it again,
and choose it from the command line. Real photos (the package-photo brightness set), real weights
(efficientnet_lite0 from its package)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_fixtures import make_brightness_set, settings_for

from workbench import compat  # noqa: F401
from workbench.backbones import get_backbone
from workbench.events import drain
from workbench.models import get_family
from workbench.runs import load_run
from workbench.training import TrainingError, compare, train


@pytest.fixture(scope="module")
def brightness(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("multilevel")
    data = make_brightness_set(photos, root / "data", n=40)
    return settings_for(data, root / "runs", root / "cache", root / "weights", test_fraction=0.25)


def test_a_run_on_multilevel_features_predicts_with_them_again(brightness):
    manifest = drain(train("ridge", brightness, features="multilevel"))
    assert manifest.feature_view == "multilevel"
    run = load_run(manifest.run_id, brightness)
    assert run.model[0].n_features_in_ == get_backbone("efficientnet_lite0").feature_dim_of("multilevel")
    paths = [brightness.data_dir / p["filename"] for p in manifest.predictions]
    scores = drain(run.predict_images(paths, brightness)).scores
    np.testing.assert_allclose(scores, [p["pred"] for p in manifest.predictions], rtol=1e-6, atol=1e-6)


def test_auto_chooses_multilevel_and_falls_back_where_a_backbone_has_no_taps(brightness):
    report = drain(compare(["ridge", "auto"], brightness, folds=3, seed=1, features="pooled"))
    used = {r.model: r.features for r in report.results}
    assert used == {"ridge": "pooled", "auto": "multilevel"}
    auto = get_family("auto")
    assert auto.view_for("pooled", ("efficientnet_lite0",)) == "multilevel"
    assert auto.view_for(None, ("clip_vit_b32",)) == "pooled"  # a ViT declares no stage taps


def test_the_view_a_family_takes_by_itself_is_declared_for_the_train_form(brightness):
    """What the Train tab's Features control shows while auto is chosen comes from auto's declaration."""
    auto = get_family("auto")
    assert auto.own_view("efficientnet_lite0", brightness) == "multilevel"
    assert auto.own_view("clip_vit_b32", brightness) == "pooled"
    assert get_family("ridge").own_view("efficientnet_lite0", brightness) is None  # the person's choice


def test_a_view_the_backbone_lacks_is_a_message_not_a_traceback(brightness):
    with pytest.raises(TrainingError, match="no multilevel view"):
        drain(train("ridge", brightness, backbone="clip_vit_b32", features="multilevel", random_weights=True))


def test_the_command_line_takes_the_view(run_cli, workbench_env, photos):
    make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=24)
    extracted = json.loads(run_cli("features", "--features", "multilevel", "--json").stdout)
    assert extracted["features"] == "multilevel" and extracted["feature_dim"] == 2064
    document = json.loads(run_cli("compare", "--models", "ridge", "--folds", "3", "--features", "multilevel",
                                  "--json").stdout)
    assert document["features"] == "multilevel" and document["results"][0]["features"] == "multilevel"
    bad = run_cli("train", "ridge", "--features", "mosaic", check=False)
    assert bad.returncode == 2 and "invalid choice: 'mosaic'" in bad.stderr
