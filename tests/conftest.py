"""Shared fixtures: isolated workbench folders, real photos, the CLI, a real
Gradio server on a free loopback port, and a real chromium driven by Playwright.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from workbench.config import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"
OUTPUT_DIR = PROJECT_ROOT / "tests" / "output"
CHROMIUM = "/usr/bin/chromium"


# ----------------------------------------------------------------- folders
@pytest.fixture
def workbench_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Point every workbench folder into tmp_path, for this process and children."""
    env = {
        "WORKBENCH_DATA_DIR": str(tmp_path / "data"),
        "WORKBENCH_MODELS_DIR": str(tmp_path / "runs"),
        "WORKBENCH_WEIGHTS_DIR": str(tmp_path / "weights"),
        "WORKBENCH_CACHE_DIR": str(tmp_path / "cache"),
    }
    for name, value in env.items():
        Path(value).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def settings(workbench_env) -> Settings:
    return load_settings()


@pytest.fixture
def output_dir(request) -> Path:
    """tests/output/<test name>/ for screenshots and other artefacts to look at."""
    path = OUTPUT_DIR / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ images
def package_photos() -> dict[str, np.ndarray]:
    """Real photographs that ship inside scikit-image and scikit-learn."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "astronaut": data.astronaut(),
        "rocket": data.rocket(),
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return package_photos()


@pytest.fixture
def scored_photo_folder(tmp_path, photos) -> Path:
    """A folder of real photos saved under scored names (``85_chelsea.jpg``)."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    for score, (name, pixels) in zip((85, 40, 72, 55, 63, 30), photos.items()):
        Image.fromarray(pixels).save(folder / f"{score}_{name}.jpg", quality=90)
    return folder


# ------------------------------------------------------------ shared data
@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared is absent ({SHARED_DIR}); this test needs its data or weights")
    return SHARED_DIR


@pytest.fixture(scope="session")
def nima_weights(shared_dir) -> Path:
    path = shared_dir / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
    if not path.is_file():
        pytest.skip(f"NIMA weights not found at {path}")
    return path


@pytest.fixture(scope="session")
def savoias_dir(shared_dir) -> Path:
    path = shared_dir / "datasets" / "savoias"
    if not (path / "scores.csv").is_file():
        pytest.skip(f"SAVOIAS data set not found at {path}")
    return path


# --------------------------------------------------------------------- CLI
@pytest.fixture
def run_cli(workbench_env):
    """Run ``python -m workbench ARGS`` in a child process with the test folders."""

    def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, **workbench_env, "PYTHONIOENCODING": "utf-8"}
        proc = subprocess.run(
            [sys.executable, "-m", "workbench", *map(str, args)],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"workbench {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    return run


# ------------------------------------------------------------ app + browser
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# 300 s: with five jobs sharing two cores (load average 20+) the app took over 120 s to import and answer.
def start_app(env: dict[str, str], log_path: Path, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """Start ``gradio_app.py`` on a free loopback port; return (process, base URL)."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "gradio_app.py", "--port", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app did not answer on {url} within {timeout}s:\n{log_path.read_text()}")


def stop_app(proc: subprocess.Popen) -> None:
    # A page still open holds a stream, and the server then waits its full graceful-shutdown time (3 s)
    # for it: a second is enough for a clean exit; the workbench is built to survive a kill.
    proc.terminate()
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def app_server(workbench_env, output_dir):
    proc, url = start_app(workbench_env, output_dir / "server.log")
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium for the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, output_dir):
    from playwright.sync_api import expect

    # Playwright's 5 s for an assertion is short for a server reply on a busy two-core machine;
    # an assertion that holds still returns at once.
    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
