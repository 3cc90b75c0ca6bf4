"""The critique client against a real chat-completions server on 127.0.0.1.

The server replays a script of answers (status, body, headers, delay) and
records every request, so each test can check what the client sent and how it
reacted. The key used is unique per test and the server echoes it back in its
401 body, as OpenAI does, to prove the client never lets it through.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from workbench.describe import HOW_TO_CONFIGURE, CritiqueClient, CritiqueError, LLMConfig, NotConfigured
from workbench.describe.critique import build_messages

SECRET = "sk-test-9f8e7d6c5b4a39281706fedcba"


def completion(text: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}


class ChatServer:
    """A chat-completions server answering from a script, one answer per request."""

    def __init__(self):
        self.script: list[dict] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                        "at": time.monotonic()})
                step = server.script.pop(0) if server.script else {"status": 200, "body": completion("ok")}
                time.sleep(step.get("delay", 0))
                payload = json.dumps(step.get("body", {})).encode()
                try:
                    self.send_response(step["status"])
                    for name, value in step.get("headers", {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


def config_for(server: ChatServer, **changes) -> LLMConfig:
    values = dict(base_url=server.base_url, model="llava", api_key=SECRET, timeout_seconds=5,
                  max_retries=2, backoff_seconds=0.05, language="English")
    values.update(changes)
    return LLMConfig(**values)


def ask(config: LLMConfig, **kwargs) -> str:
    return CritiqueClient(config).critique(score=kwargs.pop("score", 7.25), scale=(1, 10),
                                           caption=kwargs.pop("caption", "a cat lying on a sofa"), **kwargs)


def test_success_sends_score_scale_caption_language_and_photo(chat_server, photos):
    chat_server.script = [{"status": 200, "body": completion("Strong diagonal; lift the shadows.")}]
    config = config_for(chat_server, send_image=True, language="Deutsch")
    text = ask(config, image=Image.fromarray(photos["chelsea"]))
    assert text == "Strong diagonal; lift the shadows."
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert request["body"]["model"] == "llava"
    user = request["body"]["messages"][-1]["content"]
    prompt = user[0]["text"]
    for expected in ("7.25", "1 (worst) to 10 (best)", "a cat lying on a sofa", "Deutsch",
                     "composition", "light", "colour", "focus", "subject"):
        assert expected in prompt
    assert user[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_a_text_only_model_refusing_the_photo_gets_the_caption_instead(chat_server, photos):
    chat_server.script = [
        {"status": 400, "body": {"error": {"message": "Invalid content type. image_url is only supported by "
                                                      "certain models.", "code": "invalid_request_error"}}},
        {"status": 200, "body": completion("Nice warm tones.")},
    ]
    text = ask(config_for(chat_server, send_image=True), image=Image.fromarray(photos["chelsea"]))
    assert text.startswith("Nice warm tones.") and "does not accept images" in text
    first, second = (r["body"]["messages"][-1]["content"] for r in chat_server.requests)
    assert isinstance(first, list) and isinstance(second, str)  # the retry is text only


def test_the_prompt_says_which_kind_of_model_gave_the_score():
    from workbench.predict import NIMA_ABOUT, RUN_ABOUT

    def prompt(about: str) -> str:
        return build_messages(score=5.07, scale=(1, 10), caption=None, language="English", scorer_about=about)[-1]["content"]

    assert prompt(RUN_ABOUT).startswith("A model trained on this person's own ratings scored this photo 5.07")
    nima = prompt(NIMA_ABOUT)
    assert "trained on AVA" in nima and "own ratings" not in nima and "not on this person's photos" in nima


def test_text_only_models_get_no_photo():
    messages = build_messages(score=5.0, scale=(0, 100), caption=None, language="English", image=None)
    assert isinstance(messages[-1]["content"], str)
    assert "cannot see the photo" in messages[-1]["content"]


def test_401_says_the_key_was_refused_and_never_shows_it(chat_server):
    chat_server.script = [{"status": 401, "body": {"error": {
        "message": f"Incorrect API key provided: {SECRET}.", "type": "invalid_request_error",
        "code": "invalid_api_key"}}}]
    with pytest.raises(CritiqueError) as caught:
        ask(config_for(chat_server))
    message = str(caught.value)
    assert "401" in message and "refused the API key" in message
    assert SECRET not in message
    assert len(chat_server.requests) == 1  # an auth error is not retried


def test_429_is_retried_after_the_servers_retry_after(chat_server):
    chat_server.script = [
        {"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": {"message": "rate limited"}}},
        {"status": 200, "body": completion("Fine light.")},
    ]
    assert ask(config_for(chat_server)) == "Fine light."
    first, second = chat_server.requests
    assert second["at"] - first["at"] >= 0.9  # honoured Retry-After, not the 0.05 s backoff


def test_500_is_retried_then_reported(chat_server):
    chat_server.script = [{"status": 500, "body": {"error": {"message": "boom"}}}] * 3
    with pytest.raises(CritiqueError) as caught:
        ask(config_for(chat_server, max_retries=2))
    assert "HTTP 500" in str(caught.value) and "3 attempt" in str(caught.value)
    assert len(chat_server.requests) == 3


def test_timeout_gives_a_clear_message(chat_server):
    chat_server.script = [{"status": 200, "delay": 1.5, "body": completion("late")}] * 2
    started = time.monotonic()
    with pytest.raises(CritiqueError) as caught:
        ask(config_for(chat_server, timeout_seconds=0.5, max_retries=1))
    assert "did not answer within 0.5 s" in str(caught.value)
    assert time.monotonic() - started < 5


def test_unknown_model_is_named(chat_server):
    chat_server.script = [{"status": 404, "body": {"error": {
        "message": "The model `llava-9000` does not exist", "code": "model_not_found"}}}]
    with pytest.raises(CritiqueError) as caught:
        ask(config_for(chat_server, model="llava-9000"))
    assert "does not know the model 'llava-9000'" in str(caught.value)


def test_no_server_says_so():
    from conftest import free_port

    config = LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="llava", api_key=SECRET)
    with pytest.raises(CritiqueError) as caught:
        ask(config)
    assert "No server answers" in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:11434v1", "htp://127.0.0.1:11434/v1", "127.0.0.1:11434/v1"])
def test_a_mistyped_base_url_says_it_is_not_a_valid_url(base_url):
    config = LLMConfig(base_url=base_url, model="llava", api_key=SECRET, max_retries=0)
    with pytest.raises(CritiqueError) as caught:
        ask(config)
    assert f"The LLM base URL '{base_url}' is not a valid URL" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_unconfigured_client_explains_how_to_configure(settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = LLMConfig.from_settings(settings.replace(llm_base_url="", llm_model=""))
    assert not config.configured
    with pytest.raises(NotConfigured) as caught:
        CritiqueClient(config)
    assert str(caught.value) == HOW_TO_CONFIGURE
    assert "OPENAI_API_KEY" in HOW_TO_CONFIGURE and "Ollama" in HOW_TO_CONFIGURE


def test_key_from_environment_is_used_but_never_shown(settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    config = LLMConfig.from_settings(settings.replace(llm_base_url="", llm_model="gpt-4o-mini"))
    assert config.base_url == "https://api.openai.com/v1" and config.api_key == SECRET
    assert SECRET not in repr(config)


def test_the_key_never_reaches_logs_or_files(chat_server, caplog, tmp_path, settings):
    caplog.set_level(logging.DEBUG)  # httpx and our own logger at their most talkative
    chat_server.script = [
        {"status": 429, "body": {"error": {"message": f"slow down {SECRET}"}}},
        {"status": 200, "body": completion("ok")},
        {"status": 401, "body": {"error": {"message": f"bad key {SECRET}"}}},
        {"status": 503, "body": {"error": {"message": f"overloaded {SECRET}"}}},
        {"status": 503, "body": {"error": {"message": f"overloaded {SECRET}"}}},
        {"status": 503, "body": {"error": {"message": f"overloaded {SECRET}"}}},
    ]
    config = config_for(chat_server)
    messages = [ask(config)]
    for _ in range(2):
        with pytest.raises(CritiqueError) as caught:
            ask(config)
        messages.append(str(caught.value))
    assert caplog.records, "expected the retries to be logged"
    assert SECRET not in caplog.text
    assert all(SECRET not in m for m in messages)
    for folder in (tmp_path, Path(settings.cache_dir), Path(settings.models_dir)):
        for path in folder.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), f"key written into {path}"
