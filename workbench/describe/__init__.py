"""Optional descriptions of a photo: a BLIP caption and a written critique
from an OpenAI-compatible chat server. Both are off until asked for; the score
never depends on them."""
from workbench.describe.captions import (
    Captioner,
    CaptionSource,
    CaptionWeightsUnavailable,
    load_captioner,
    resolve_caption_weights,
)
from workbench.describe.critique import (
    HOW_TO_CONFIGURE,
    CritiqueClient,
    CritiqueError,
    LLMConfig,
    NotConfigured,
    build_messages,
    critique_photo,
)

__all__ = [
    "CaptionSource", "CaptionWeightsUnavailable", "Captioner", "load_captioner", "resolve_caption_weights",
    "HOW_TO_CONFIGURE", "CritiqueClient", "CritiqueError", "LLMConfig", "NotConfigured", "build_messages",
    "critique_photo",
]
