"""Assemble the tabs into one Blocks app and serve it, with the JSON API, on
one loopback port."""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import importlib
import logging

import gradio as gr
from fastapi import FastAPI

from workbench.config import Settings
from workbench.ui import keyboard

# Each tab module exposes TITLE and build(settings) -> None (called inside a gr.Tab).
TAB_MODULES = (
    "workbench.ui.import_tab",
    "workbench.ui.data_tab",
    "workbench.ui.train_tab",
    "workbench.ui.predict_tab",
)
# Each API module exposes router(settings) -> fastapi.APIRouter.
API_MODULES = ("workbench.api",)

log = logging.getLogger(__name__)


def _optional_import(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:  # an area not built yet
        if exc.name != module:
            raise
        return None


def build_blocks(settings: Settings) -> gr.Blocks:
    with gr.Blocks(title="Aesthetic Workbench") as blocks:
        gr.Markdown(
            "# Aesthetic Workbench\n"
            f"Teach a model your sense of a good photo. Training set: `{settings.data_dir}` · "
            f"runs: `{settings.models_dir}`"
        )
        with gr.Tabs():
            for name in TAB_MODULES:
                module = _optional_import(name)
                if module is None:
                    continue
                with gr.Tab(module.TITLE, id=name.rsplit(".", 1)[-1]):
                    module.build(settings)
    return blocks


def create_server(settings: Settings) -> FastAPI:
    app = FastAPI(title="Aesthetic Workbench", docs_url="/api/docs", openapi_url="/api/openapi.json")
    for name in API_MODULES:
        module = _optional_import(name)
        if module is not None:
            app.include_router(module.router(settings))
    blocks = build_blocks(settings).queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(
        app, blocks, path="/",
        allowed_paths=[str(settings.data_dir), str(settings.cache_dir)],
        server_name=settings.host, server_port=settings.port,
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        footer_links=["api"],
        head=keyboard.head_script(settings),  # ←/→, number keys, Enter, Z, Delete in the galleries
    )


def launch(settings: Settings) -> None:
    import uvicorn

    app = create_server(settings)
    print(f"Aesthetic Workbench on http://{settings.host}:{settings.port}  (Ctrl+C stops)", flush=True)
    # Open browser tabs keep streaming connections; do not let Ctrl+C wait on them for long.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=3)
