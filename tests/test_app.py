"""The real app starts, shows its four tabs, and listens on loopback only."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from conftest import start_app, stop_app
from gradio_client.exceptions import AppError
from PIL import Image

TOP_LEVEL_TABS = ["Import", "Training data", "Train", "Predict"]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket LISTENing on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # 0A = LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    """One server for the read-only checks below (starting one costs ~10 s)."""
    root = tmp_path_factory.mktemp("app")
    env = {}
    for name, folder in (("WORKBENCH_DATA_DIR", "data"), ("WORKBENCH_MODELS_DIR", "runs"),
                         ("WORKBENCH_WEIGHTS_DIR", "weights"), ("WORKBENCH_CACHE_DIR", "cache")):
        (root / folder).mkdir()
        env[name] = str(root / folder)
    proc, url = start_app(env, root / "server.log")
    yield SimpleNamespace(url=url, log=root / "server.log")
    stop_app(proc)


def test_app_serves_every_tab(shared_app):
    config = httpx.get(shared_app.url + "/config", timeout=30).json()
    labels = [c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"]
    for tab in TOP_LEVEL_TABS:
        assert tab in labels, f"tab {tab!r} missing from the app: {labels}"
    assert config["analytics_enabled"] is False


def test_app_binds_to_loopback_only(shared_app):
    port = int(shared_app.url.rsplit(":", 1)[1])
    addresses = _listening_addresses(port)
    assert addresses, "no listening socket found for the app"
    # 0100007F is 127.0.0.1 in /proc's little-endian hex; anything else (0.0.0.0) would expose the photos.
    assert addresses == {"0100007F"}, addresses


def test_a_slip_the_person_can_fix_is_one_line_in_the_server_log(shared_app, photos, tmp_path):
    """Explaining with NIMA while its weights are not in the (empty) weights folder: the page is told
    what to do; the server log gets that in one line, not Gradio's traceback of the gr.Error."""
    from gradio_client import Client, handle_file

    image = tmp_path / "photo.jpg"
    Image.fromarray(photos["astronaut"]).save(image, quality=90)
    before = len(shared_app.log.read_text())
    client = Client(shared_app.url, verbose=False)
    with pytest.raises(AppError, match="No pretrained weights for nima_mobilenet"):  # the message reached the page's caller
        client.predict("nima", handle_file(str(image)), 0.5, api_name="/explain_photo")
    client.close()
    written = shared_app.log.read_text()[before:]
    assert [line for line in written.splitlines() if "No pretrained weights for nima_mobilenet" in line], written
    assert "Traceback" not in written and "gradio.exceptions.Error" not in written, written


def test_the_queue_limit_reaches_the_served_app(tmp_path):
    # Gradio builds its app more than once (Blocks(), the end of the with-block, the mount):
    # the concurrency limit (two browser tabs training at once) must survive all of them
    from workbench.config import load_settings
    from workbench.ui.app import QUEUE_CONCURRENCY, create_server

    folders = {name: tmp_path / name for name in ("data_dir", "models_dir", "weights_dir", "cache_dir")}
    for folder in folders.values():
        folder.mkdir()
    app = create_server(load_settings(**folders))
    blocks = next(route.app.blocks for route in app.routes if hasattr(getattr(route, "app", None), "blocks"))
    assert blocks._queue.default_concurrency_limit == QUEUE_CONCURRENCY == 4


def test_the_photo_each_session_picked_last_is_kept_for_the_newest_sessions_only():
    # Predict's "which photo did this session pick last" (an explanation for an older pick is dropped):
    # a server running for weeks must not keep one entry per page load ever made
    from workbench.ui.widgets import LatestBySession

    picks = LatestBySession(max_sessions=3)
    for i, session in enumerate(("a", "b", "c")):
        picks.set(session, i)
    picks.set("a", 7)  # a picks again: now the newest
    picks.set("d", 3)  # one session too many: b, which picked longest ago, is forgotten
    assert len(picks) == 3
    assert (picks.get("a"), picks.get("c"), picks.get("d")) == (7, 2, 3)
    assert picks.get("b", "gone") == "gone" and picks.get("b") is None
