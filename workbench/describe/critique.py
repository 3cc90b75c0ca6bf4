"""Written feedback on a photo from any OpenAI-compatible chat-completions server.

Works alike with hosted APIs and local servers (Ollama, LM Studio, vLLM): the
client speaks only ``POST {base_url}/chat/completions``. The API key comes from
``OPENAI_API_KEY`` or is passed in for one session; it is never written to disk
and is removed from every message this module raises or logs, because servers
(OpenAI among them) like to echo a wrong key back in their 401 body.
"""
from __future__ import annotations

import base64
import email.utils
import io
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from workbench.config import Settings
from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
IMAGE_LONG_SIDE = 768  # px; enough for a critique, small enough for any server's request limit

HOW_TO_CONFIGURE = (
    "No language model is configured, so there is no written critique (the score stands on its own).\n"
    "To get one, point the workbench at any OpenAI-compatible chat-completions server:\n"
    "- a hosted API: set OPENAI_API_KEY in the environment (or type the key in the Predict tab for this "
    "session only) and choose a model, e.g. WORKBENCH_LLM_MODEL=gpt-4o-mini;\n"
    "- a local server: Ollama (`ollama serve`, base URL http://127.0.0.1:11434/v1, model e.g. llava), "
    "LM Studio (http://127.0.0.1:1234/v1) or vLLM (http://127.0.0.1:8000/v1).\n"
    "Base URL and model go in configs/default.yaml (describe.llm_base_url, describe.llm_model) or the "
    "environment (OPENAI_BASE_URL, WORKBENCH_LLM_MODEL). The key is never stored in a file."
)


class CritiqueError(WorkbenchError):
    """A failure the person can act on; the message never contains the API key."""


class NotConfigured(CritiqueError):
    """No server or model is set; the message says how to set one."""


class ImagesRefused(CritiqueError):
    """The model answered 400 to a request carrying the photo: it reads text only."""


@dataclass(frozen=True)
class LLMConfig:
    """Where to send the chat request. ``api_key`` is excluded from repr."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    send_image: bool = False  # only for models that accept images (vision models)
    language: str = "English"
    timeout_seconds: float = 60.0
    max_retries: int = 3
    backoff_seconds: float = 1.0  # first retry wait; doubles each retry unless Retry-After says otherwise

    @classmethod
    def from_settings(cls, settings: Settings, *, base_url: str | None = None, model: str | None = None,
                      api_key: str | None = None, **overrides: Any) -> "LLMConfig":
        """Session values first, then settings (which already hold OPENAI_BASE_URL and
        WORKBENCH_LLM_MODEL), then ``OPENAI_API_KEY`` for the key. A key without a
        base URL means the OpenAI API itself."""
        key = api_key if api_key else os.environ.get("OPENAI_API_KEY", "")
        url = (base_url or settings.llm_base_url or (OPENAI_BASE_URL if key else "")).strip()
        values = dict(language=settings.language, timeout_seconds=settings.timeout_seconds,
                      max_retries=settings.max_retries)
        values.update(overrides)
        return cls(base_url=url, model=(model or settings.llm_model).strip(), api_key=key.strip(), **values)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def redact(self, text: str) -> str:
        """``text`` with the API key (and its bearer header form) blanked out."""
        if self.api_key:
            text = text.replace(self.api_key, "[redacted key]")
        return text


def image_data_url(image: Image.Image, long_side: int = IMAGE_LONG_SIDE) -> str:
    """The photo as a JPEG ``data:`` URL, shrunk to ``long_side`` px."""
    small = image.convert("RGB")
    small.thumbnail((long_side, long_side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def build_messages(*, score: float, scale: tuple[float, float], caption: str | None,
                   language: str, image: Image.Image | None = None,
                   threshold: float | None = None, scorer_about: str = "An aesthetics model") -> list[dict[str, Any]]:
    """The chat messages: which kind of model scored the photo (``scorer_about``, e.g. one trained on
    the person's ratings, or NIMA trained on AVA), the score on its scale, the caption and, when given,
    the photo itself; asking for concrete feedback in ``language``."""
    low, high = scale
    facts = [f"{scorer_about} scored this photo {score:.2f} on a scale from "
             f"{low:g} (worst) to {high:g} (best)."]
    if threshold is not None:
        facts.append(f"Photos above {threshold:g} count as good.")
    if caption:
        facts.append(f"An automatic caption describes it as: \"{caption}\".")
    if image is None:
        facts.append("You cannot see the photo; work from the caption and the score.")
    request = (
        "Give specific, practical feedback a photographer can act on, one short paragraph each for: "
        "composition, light, colour, focus and sharpness, and subject. Say what works, what does not, "
        "and what to change next time. Be concrete, not generic. "
        f"Write the whole answer in {language}."
    )
    text = " ".join(facts) + "\n\n" + request
    system = {"role": "system", "content": "You are an experienced photography teacher giving honest, kind critiques."}
    if image is None:
        return [system, {"role": "user", "content": text}]
    content = [{"type": "text", "text": text},
               {"type": "image_url", "image_url": {"url": image_data_url(image)}}]
    return [system, {"role": "user", "content": content}]


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(response: httpx.Response) -> str:
    """The server's own error message, from the OpenAI error shape when present."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)[:300]
    if isinstance(error, str):
        return error[:300]
    return str(body)[:300]


def _is_unknown_model(response: httpx.Response) -> bool:
    text = response.text.lower()
    return response.status_code in (400, 404) and ("model_not_found" in text or "model" in text and (
        "not found" in text or "does not exist" in text or "unknown" in text or "no such" in text))


def _refuses_images(response: httpx.Response, payload: dict[str, Any]) -> bool:
    sent_image = any(isinstance(m.get("content"), list) for m in payload.get("messages", []))
    text = response.text.lower()
    return sent_image and ("image" in text or "vision" in text or "multimodal" in text) and not _is_unknown_model(response)


class CritiqueClient:
    """One configured chat-completions endpoint. ``critique`` returns the text."""

    def __init__(self, config: LLMConfig, *, transport: httpx.BaseTransport | None = None):
        if not config.configured:
            raise NotConfigured(HOW_TO_CONFIGURE)
        self.config = config
        self._transport = transport

    def critique(self, *, score: float, scale: tuple[float, float], caption: str | None = None,
                 image: Image.Image | None = None, threshold: float | None = None,
                 language: str | None = None, scorer_about: str = "An aesthetics model") -> str:
        """Ask for feedback; raises :class:`CritiqueError` with a person-readable reason."""
        def ask(photo: Image.Image | None) -> dict[str, Any]:
            messages = build_messages(score=score, scale=scale, caption=caption, threshold=threshold,
                                      language=language or self.config.language, image=photo,
                                      scorer_about=scorer_about)
            try:
                return self._post({"model": self.config.model, "messages": messages, "temperature": 0.4})
            except CritiqueError as exc:  # one place that guarantees no message carries the key
                raise type(exc)(self.config.redact(str(exc))) from None

        photo = image if self.config.send_image else None
        note = ""
        try:
            body = ask(photo)
        except ImagesRefused:  # a text-only model: the caption and score still make a critique
            body = ask(None)
            note = f"\n\n(The photo itself was not sent: {self.config.model} does not accept images.)"
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise CritiqueError(f"{self.config.endpoint} answered without a message "
                                f"(is it an OpenAI-compatible chat-completions server?)") from None
        if isinstance(text, list):  # some servers return content parts
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
        return str(text).strip() + note

    # ------------------------------------------------------------------ http
    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        headers = {"Content-Type": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        attempts = max(0, cfg.max_retries) + 1
        with httpx.Client(timeout=cfg.timeout_seconds, transport=self._transport) as client:
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                try:
                    response = client.post(cfg.endpoint, json=payload, headers=headers)
                except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # InvalidURL is no HTTPError
                    raise CritiqueError(cfg.redact(
                        f"The LLM base URL {cfg.base_url!r} is not a valid URL ({exc}). It should look like "
                        "http://127.0.0.1:11434/v1 (Ollama) or https://api.openai.com/v1."
                    )) from None
                except httpx.ConnectError:
                    raise CritiqueError(
                        f"No server answers at {cfg.base_url} (connection refused). Is it running? "
                        "For Ollama: `ollama serve`; for LM Studio: start its local server."
                    ) from None
                except httpx.TimeoutException:
                    if last:
                        raise CritiqueError(
                            f"{cfg.base_url} did not answer within {cfg.timeout_seconds:g} s "
                            f"({attempts} attempt(s)). A large local model may need a longer "
                            "describe.timeout_seconds."
                        ) from None
                    self._wait(attempt, None, "timed out")
                    continue
                except httpx.HTTPError as exc:
                    raise CritiqueError(cfg.redact(f"Request to {cfg.base_url} failed: {exc}")) from None
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise CritiqueError(f"{cfg.endpoint} answered 200 but not with JSON") from None
                if response.status_code in RETRY_STATUSES and not last:
                    self._wait(attempt, _retry_after_seconds(response), f"HTTP {response.status_code}")
                    continue
                if response.status_code == 400 and _refuses_images(response, payload):
                    raise ImagesRefused(f"{cfg.model} does not accept images")
                raise CritiqueError(cfg.redact(self._explain(response, attempt)))
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: float | None, why: str) -> None:
        delay = retry_after if retry_after is not None else self.config.backoff_seconds * 2 ** (attempt - 1)
        delay = min(delay, MAX_RETRY_AFTER_SECONDS)
        log.info("critique request %s; retry %d in %.1f s", why, attempt, delay)
        time.sleep(delay)

    def _explain(self, response: httpx.Response, attempts: int) -> str:
        cfg, status, detail = self.config, response.status_code, _error_text(response)
        if status == 401:
            source = "the key typed in or OPENAI_API_KEY" if cfg.api_key else "no key was given; set OPENAI_API_KEY"
            return f"{cfg.base_url} refused the API key (401 Unauthorized): check {source}. Server said: {detail}"
        if status == 403:
            return f"{cfg.base_url} forbids this request (403): the key may lack access to '{cfg.model}'. Server said: {detail}"
        if _is_unknown_model(response):
            return (f"{cfg.base_url} does not know the model '{cfg.model}' ({status}). Check the model name "
                    f"(for Ollama: `ollama list`). Server said: {detail}")
        if status == 404:
            return (f"Nothing at {cfg.endpoint} (404). The base URL usually ends in /v1, "
                    f"e.g. http://127.0.0.1:11434/v1. Server said: {detail}")
        if status == 413:
            return f"{cfg.base_url} refused the request as too large (413); try without sending the photo."
        if status in RETRY_STATUSES:
            return f"{cfg.base_url} kept failing (HTTP {status}) after {attempts} attempt(s). Server said: {detail}"
        return f"{cfg.base_url} answered HTTP {status}. Server said: {detail}"


def critique_photo(config: LLMConfig, *, score: float, scale: tuple[float, float],
                   caption: str | None = None, image: Image.Image | None = None,
                   threshold: float | None = None, scorer_about: str = "An aesthetics model") -> str:
    """Convenience: one critique, or raise :class:`NotConfigured`/:class:`CritiqueError`."""
    return CritiqueClient(config).critique(score=score, scale=scale, caption=caption,
                                           image=image, threshold=threshold, scorer_about=scorer_about)
