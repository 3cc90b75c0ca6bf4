"""NIMA as a ready scorer: the Keras port must reproduce the published model exactly."""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.backbones import WeightsUnavailable, load_backbone
from workbench.backbones.nima import distribution_mean_std, load_nima


@pytest.fixture
def nima_settings(settings, nima_weights):
    (settings.weights_dir / nima_weights.name).symlink_to(nima_weights)
    return settings


def score(model, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(model.transform(Image.fromarray(pixels))[None]).numpy()


def test_chelsea_scores_like_the_keras_model(nima_settings, photos):
    model = load_nima(nima_settings)
    assert model.weights.source == "local file"
    p = score(model, photos["chelsea"])
    assert p.shape == (1, 10)
    assert p.sum() == pytest.approx(1.0, abs=1e-5) and (p >= 0).all()
    mean, std = distribution_mean_std(p)
    assert mean[0] == pytest.approx(5.12, abs=0.02)
    assert 0.5 < std[0] < 3.0


def test_scores_differ_between_photos_and_features_are_1024_d(nima_settings, photos):
    model = load_nima(nima_settings)
    means = {name: distribution_mean_std(score(model, pixels))[0][0] for name, pixels in photos.items()}
    assert all(1.0 <= m <= 10.0 for m in means.values())
    assert max(means.values()) - min(means.values()) > 0.1, means
    x = model.transform(Image.fromarray(photos["coffee"]))[None]
    backbone = load_backbone("nima_mobilenet", nima_settings)
    with torch.inference_mode():
        assert model.features(x).shape == (1, 1024)
        torch.testing.assert_close(backbone.model(x), model.features(x))


def test_distribution_mean_std_on_known_distributions():
    one_hot = np.zeros((1, 10))
    one_hot[0, 6] = 1.0  # all mass on score 7
    uniform = np.full((1, 10), 0.1)
    mean, std = distribution_mean_std(np.vstack([one_hot, uniform]))
    np.testing.assert_allclose(mean, [7.0, 5.5])
    np.testing.assert_allclose(std, [0.0, np.sqrt(8.25)])


def test_missing_nima_weights_say_where_to_get_them(settings, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    monkeypatch.setenv("WORKBENCH_WEIGHTS_URL_NIMA_MOBILENET", "http://127.0.0.1:9/unreachable.hdf5")
    with pytest.raises(WeightsUnavailable) as info:
        load_nima(settings)
    message = str(info.value)
    assert "weights_mobilenet_aesthetic_0.07.hdf5" in message and str(settings.weights_dir) in message


def test_extracted_nima_features_use_the_full_decode_the_model_was_published_with(nima_settings, photos, tmp_path):
    from workbench.features import features_for
    from workbench.images import load_image

    big = tmp_path / "big.jpg"
    Image.fromarray(photos["chelsea"]).resize((1800, 1200), Image.Resampling.BICUBIC).save(big, quality=95)
    extracted = features_for([big], "nima_mobilenet", nima_settings).features
    model = load_nima(nima_settings)
    with torch.inference_mode():
        exact = model.features(model.transform(load_image(big))[None]).numpy()
    np.testing.assert_allclose(extracted, exact, rtol=1e-4, atol=1e-5)
