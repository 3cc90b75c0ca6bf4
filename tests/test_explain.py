"""Every run is explainable, without a browser: fitted linear and kernel predictors
re-expressed in torch give the same scores (so Grad-CAM's gradients flow through
them), and occlusion sensitivity finds what raised the score of any model."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from workbench import compat  # noqa: F401  (first: the torchvision guard)
from workbench.events import Finished
from workbench.explain import OCCLUSION, Explanation, occlusion, torch_predictor
from workbench.models import get_family
from workbench.runs import ImagePredictions


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 12)) * rng.uniform(0.5, 3, size=12) + rng.normal(size=12)
    y = 50 + 10 * X[:, 0] - 5 * np.tanh(X[:, 1]) + rng.normal(scale=2, size=80)
    return X, y


@pytest.mark.parametrize("family,params", [
    ("ridge", {}), ("svr", {}), ("svr", {"kernel": "linear"}), ("svr", {"kernel": "poly"}),
    ("auto", {}), ("auto", {"svr_weight": 0.0}),
])
def test_linear_and_kernel_predictors_give_the_same_scores_in_torch(features, family, params):
    X, y = features
    model = get_family(family).make(params, seed=0).fit(X[:60], y[:60])
    module = torch_predictor(model)
    assert module is not None
    x = torch.tensor(X[60:], dtype=torch.float32, requires_grad=True)
    scores = module(x)
    np.testing.assert_allclose(scores.detach().numpy(), model.predict(X[60:]), rtol=1e-4, atol=1e-3)
    scores.sum().backward()  # gradients reach the features: Grad-CAM can go on to the pixels
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["rf", "hgb"])
def test_trees_have_no_torch_form(features, family):
    X, y = features
    model = get_family(family).make({}, seed=0).fit(X, y)
    assert torch_predictor(model) is None


def brightness_scorer(region: tuple[slice, slice]) -> object:
    """A scorer that rates a photo by the mean brightness of one region of it (on 0-100)."""
    from workbench.predict import Scorer

    def predict_chunk(paths, settings, stop=None):
        scores = [np.asarray(Image.open(p).convert("L").resize((64, 64)), dtype=float)[region].mean() / 2.55
                  for p in paths]
        yield Finished(ImagePredictions(paths=list(paths), scores=np.array(scores)))

    return Scorer(id="bright", name="bright", family="test", scale=(0, 100), default_threshold=50,
                  has_distribution=False, weights_note="", reference_scores=None, predict_chunk=predict_chunk,
                  gradcam_target=lambda: None, lock=threading.Lock())


def test_occlusion_finds_the_region_that_raised_the_score(settings, photos):
    photo = Image.fromarray(photos["astronaut"]).convert("RGB")
    photo.thumbnail((256, 256))
    found = occlusion(photo, brightness_scorer((slice(0, 32), slice(0, 32))), settings)  # the top-left quarter
    assert isinstance(found, Explanation) and found.method == OCCLUSION and "Occlusion" in found.note
    assert found.heatmap.shape == (photo.height, photo.width) and found.heatmap.max() == pytest.approx(1.0)
    h, w = found.heatmap.shape
    top_left = found.heatmap[: h // 2, : w // 2].mean()
    bottom_right = found.heatmap[h // 2:, w // 2:].mean()
    assert top_left > 0.2 and bottom_right < 0.02  # covering the bottom right never changed the score
    assert found.overlay(0.6).size == photo.size
    assert not list(settings.features_cache_dir.glob("**/*")) if settings.features_cache_dir.exists() else True


class LowersEverywhere(torch.nn.Module):
    """A score that every region of its feature layer lowers (minus the mean of ReLU activations):
    Grad-CAM keeps only what raised a score, so its map of this model is empty by construction."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())

    def forward(self, x):
        return -self.features(x).mean(dim=(1, 2, 3))


def test_an_empty_gradcam_map_gives_way_to_occlusion(settings, photos, tmp_path):
    from dataclasses import replace

    from torchvision import transforms

    from workbench.explain import EMPTY_NOTE, GRADCAM, explain

    model = LowersEverywhere()
    transform = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    scorer = replace(brightness_scorer((slice(0, 32), slice(0, 32))),
                     gradcam_target=lambda: (model, model.features[1], transform))
    path = tmp_path / "astronaut.png"
    Image.fromarray(photos["astronaut"]).save(path)
    found = explain(path, scorer, settings)
    assert found.method == OCCLUSION and found.heatmap.max() == pytest.approx(1.0)  # not a blank Grad-CAM
    assert found.method != GRADCAM and "warm colours" in found.note

    constant = replace(brightness_scorer((slice(0, 64), slice(0, 64))), gradcam_target=lambda: None)
    flat = Image.new("RGB", (128, 128), (120, 120, 120))  # covering any region with the mean changes nothing
    flat.save(tmp_path / "flat.png")
    empty = explain(tmp_path / "flat.png", constant, settings)
    assert empty.heatmap.max() < 1e-6 and empty.note == EMPTY_NOTE
