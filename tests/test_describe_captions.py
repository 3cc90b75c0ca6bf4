"""BLIP captions: the real transformers code path on a tiny randomly initialised
model saved like a downloaded one, and the message when nothing is there."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from workbench.describe import CaptionWeightsUnavailable, load_captioner, resolve_caption_weights

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "on", "the", "sofa", "photo", "of"]


def save_tiny_blip(folder: Path) -> None:
    """A BLIP captioner with a 13-word vocabulary and 32-wide layers, random weights."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    text = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=37, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                sep_token_id=3, eos_token_id=3)
    vision = dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=37)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)})
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def test_caption_from_a_model_folder_in_the_weights_dir(settings, photos, tmp_path):
    settings = settings.replace(caption_model="tiny-org/tiny-blip-test")
    save_tiny_blip(settings.weights_dir / "tiny-blip-test")
    captioner = load_captioner(settings, hf_cache_dir=tmp_path / "empty-hf-cache", allow_download=False)
    assert captioner.source.kind == "local folder"
    assert captioner.source.location == str(settings.weights_dir / "tiny-blip-test")
    caption = captioner.caption(Image.fromarray(photos["chelsea"]), max_new_tokens=6, num_beams=1)
    assert isinstance(caption, str)
    assert set(caption.split()) <= set(VOCAB)  # decoded through the saved tokenizer
    assert load_captioner(settings, hf_cache_dir=tmp_path / "empty-hf-cache", allow_download=False) is captioner


def test_missing_weights_name_the_model_and_the_folder(settings, tmp_path):
    with pytest.raises(CaptionWeightsUnavailable) as caught:
        resolve_caption_weights(settings, hf_cache_dir=tmp_path / "empty-hf-cache", allow_download=False)
    message = str(caught.value)
    assert "Salesforce/blip-image-captioning-base" in message
    assert str(settings.weights_dir / "blip-image-captioning-base") in message


def test_the_predict_tab_says_which_folder_to_make_and_where_to_download_it(settings, tmp_path):
    from workbench.ui.predict_tab import caption_hint

    with pytest.raises(CaptionWeightsUnavailable) as caught:
        resolve_caption_weights(settings, hf_cache_dir=tmp_path / "empty-hf-cache", allow_download=False)
    hint = caption_hint(str(caught.value), settings)
    assert "“blip-image-captioning-base”" in hint and str(settings.weights_dir / "blip-image-captioning-base") in hint
    assert "https://huggingface.co/Salesforce/blip-image-captioning-base" in hint
    assert "huggingface-cli" not in hint and "`" not in hint  # a page to open, not a command line


def test_online_resolution_would_download(settings, tmp_path):
    source = resolve_caption_weights(settings, hf_cache_dir=tmp_path / "empty-hf-cache", allow_download=True)
    assert (source.kind, source.location) == ("download", "Salesforce/blip-image-captioning-base")


def test_an_unreachable_hub_gives_the_missing_weights_message_at_once(settings, tmp_path, monkeypatch):
    """With a hub that refuses connections (what an offline machine sees), loading
    fails with the message naming what to place, not a network traceback after
    minutes of download retries."""
    import huggingface_hub.constants as hub_constants
    from conftest import free_port

    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(CaptionWeightsUnavailable) as caught:
        load_captioner(settings, hf_cache_dir=tmp_path / "empty-hf-cache")
    assert "not available offline" in str(caught.value)
    assert str(settings.weights_dir / "blip-image-captioning-base") in str(caught.value)
