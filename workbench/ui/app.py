"""Assemble the tabs into one Blocks app and serve it, with the JSON API, on
one loopback port."""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import importlib
import json
import logging

import gradio as gr
from fastapi import FastAPI

from workbench.config import Settings
from workbench.images import SUPPORTED_EXTENSIONS
from workbench.ui import keyboard, widgets
from workbench.ui.http_guard import HostGuard, ImagesOnly

# Each tab module exposes TITLE and build(settings) -> None (called inside a gr.Tab).
TAB_MODULES = (
    "workbench.ui.import_tab",
    "workbench.ui.data_tab",
    "workbench.ui.label_tab",
    "workbench.ui.train_tab",
    "workbench.ui.predict_tab",
)
# Each API module exposes router(settings) -> fastapi.APIRouter.
API_MODULES = ("workbench.api",)

log = logging.getLogger(__name__)
QUEUE_CONCURRENCY = 4  # events of one kind running at once (Gradio's default is 1)


# Gradio's default theme with system fonts: with the theme's web fonts (Source Sans Pro, IBM Plex Mono)
# Chromium drew the heading's first letter in another face than the rest of it (issue 11 item 18).
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


def build_blocks(settings: Settings) -> gr.Blocks:
    with gr.Blocks(title="Aesthetic Workbench") as blocks:
        gr.Markdown(
            "# Aesthetic Workbench\n"
            f"Teach a model your sense of a good photo. Training set: `{settings.data_dir}` · "
            f"runs: `{settings.models_dir}`"
        )
        with gr.Tabs():
            for name in TAB_MODULES:
                module = importlib.import_module(name)
                with gr.Tab(module.TITLE, id=name.rsplit(".", 1)[-1]):
                    module.build(settings)
    return blocks


def recover(settings: Settings) -> None:
    """Put right what a killed process left: rows of a killed import, temp files, half-saved runs."""
    from workbench.dataset import ScoreStore
    from workbench.fsutil import LockTimeout
    from workbench.runs import RunStore

    try:
        # a short wait: a long CLI import holding the lock reconciles by itself
        ScoreStore(settings.data_dir, settings.score_min, settings.score_max, lock_timeout=3.0).recover()
    except (LockTimeout, OSError) as exc:
        log.warning("data folder not checked at start: %s", exc)
    for name in RunStore(settings.models_dir).remove_debris():
        log.info("removed %s, left by a run save or deletion that was killed", name)


def create_server(settings: Settings) -> FastAPI:
    recover(settings)
    app = FastAPI(title="Aesthetic Workbench", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.add_middleware(ImagesOnly, folders=[settings.data_dir, settings.cache_dir], suffixes=SUPPORTED_EXTENSIONS)
    app.add_middleware(HostGuard, hosts=[settings.host], body_timeout_s=settings.body_timeout_s)
    for name in API_MODULES:
        app.include_router(importlib.import_module(name).router(settings))
    blocks = build_blocks(settings).queue(default_concurrency_limit=QUEUE_CONCURRENCY)
    app = gr.mount_gradio_app(
        app, blocks, path="/",
        allowed_paths=[str(settings.data_dir), str(settings.cache_dir)],
        server_name=settings.host, server_port=settings.port,
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        footer_links=["api"],
        head=keyboard.head_script(settings),  # ←/→, number keys, Enter, Z, Delete in the galleries
        css=widgets.CSS,
        theme=THEME,
    )
    # Gradio checks that a file named in an event came from an upload only for a
    # Blocks that has "launched" (processing_utils._check_allowed returns early
    # otherwise), and mount_gradio_app never sets the flag: without this line any
    # event taking a file copies whatever absolute path a request names.
    blocks.has_launched = True
    return app


def launch(settings: Settings, *, as_json: bool = False) -> None:
    """Serve until Ctrl+C. Once the server answers, say where: a line for a person, or (``as_json``)
    one JSON document on stdout for a program that started it (``serve --json``)."""
    import uvicorn

    app = create_server(settings)
    url = f"http://{settings.host}:{settings.port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:  # listening: a client may connect now
                if as_json:
                    print(json.dumps({"url": url, "api": f"{url}/api/docs", "data": str(settings.data_dir),
                                      "runs": str(settings.models_dir)}), flush=True)
                else:
                    print(f"Aesthetic Workbench on {url}  (Ctrl+C stops)", flush=True)

    # Open browser tabs keep streaming connections; do not let Ctrl+C wait on them for long.
    Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                          timeout_graceful_shutdown=3)).run()
