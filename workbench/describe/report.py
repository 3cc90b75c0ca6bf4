"""One photo's caption and critique together, for the CLI and the Predict tab.

Every part that cannot be done says why in a note and the rest goes on: a
missing caption model still gives a critique from the score alone, and a
failing LLM never hides the score.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.describe.captions import CaptionWeightsUnavailable, load_captioner
from workbench.describe.critique import CritiqueClient, CritiqueError, LLMConfig, NotConfigured
from workbench.images import ImageError, load_image


@dataclass
class Description:
    caption: str | None = None
    caption_note: str = ""  # where the caption model came from, or why there is no caption
    critique: str | None = None
    critique_note: str = ""  # why there is no critique (incl. how to configure an LLM)

    def to_json(self) -> dict:
        return {"caption": self.caption, "caption_note": self.caption_note,
                "critique": self.critique, "critique_note": self.critique_note}


def describe_photo(image_path: str | Path, *, score: float, scale: tuple[float, float], threshold: float | None,
                   settings: Settings, caption: bool = True, llm: LLMConfig | None = None,
                   scorer_about: str = "An aesthetics model") -> Description:
    """Caption (when asked) and critique (when an LLM is configured) for one scored photo;
    ``scorer_about`` says which kind of model gave the score (``Scorer.about``)."""
    result = Description()
    try:
        image = load_image(image_path, max_pixels=settings.max_pixels)
    except ImageError as exc:
        result.caption_note = result.critique_note = str(exc)
        return result
    if caption:
        try:
            captioner = load_captioner(settings)
            result.caption = captioner.caption(image)
            result.caption_note = f"caption by {settings.caption_model} ({captioner.source.describe()})"
        except CaptionWeightsUnavailable as exc:
            result.caption_note = str(exc)
    else:
        result.caption_note = "captions are off"
    llm = llm if llm is not None else LLMConfig.from_settings(settings)
    try:
        result.critique = CritiqueClient(llm).critique(score=score, scale=scale, caption=result.caption,
                                                       image=image, threshold=threshold, scorer_about=scorer_about)
    except NotConfigured as exc:
        result.critique_note = str(exc)
    except CritiqueError as exc:
        result.critique_note = f"No critique: {exc}"
    return result
