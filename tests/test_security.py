"""Hostile requests against the real app over raw HTTP on loopback.

Every Gradio event whose inputs carry files is found from the app's own
``/config`` (so an event added later is covered without touching this file) and
sent a ``FileData`` naming a file outside the workbench's folders. Nothing of
that file may come back in the reply, nor land in Gradio's upload folder, the
cache or ``data/``.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import socket
import time
import uuid
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from conftest import start_app, stop_app
from PIL import Image, PngImagePlugin

from workbench.fsutil import UnsafePath, require_inside

BODY_TIMEOUT_S = 2
FOLDERS = {"WORKBENCH_DATA_DIR": "data", "WORKBENCH_MODELS_DIR": "runs", "WORKBENCH_WEIGHTS_DIR": "weights",
           "WORKBENCH_CACHE_DIR": "cache", "GRADIO_TEMP_DIR": "gradio"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One server (its folders under ``root``) and two secrets outside them: a text file and a real PNG."""
    root = tmp_path_factory.mktemp("security")
    env = {}
    for name, folder in FOLDERS.items():
        (root / folder).mkdir()
        env[name] = str(root / folder)
    (root / "config.yaml").write_text(f"server:\n  body_timeout_s: {BODY_TIMEOUT_S}\n")
    env["WORKBENCH_CONFIG"] = str(root / "config.yaml")
    outside = root / "outside"
    outside.mkdir()
    marker = f"SECRET-{uuid.uuid4().hex}"
    (outside / "secret.txt").write_text(marker + "\n")
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", marker)
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(outside / "secret.png", pnginfo=info)
    leave_debris(root)
    proc, url = start_app(env, root / "server.log")
    try:
        yield {"url": url, "root": root, "marker": marker.encode(), "env": env,
               "secrets": [outside / "secret.txt", outside / "secret.png"]}
    finally:
        stop_app(proc)


def leave_debris(root: Path) -> None:
    """What SIGKILLed processes leave (see test_faults.py for the kills themselves): a photo copied by an
    import whose rows were never written, a temp file of the next copy, a half-saved run."""
    data = root / "data"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(data / "killed.jpg")
    (data / ".import-journal.jsonl").write_text('{"name": "killed.jpg", "score": "42", "text": ""}\n{"na')
    (data / ".next.jpg.k2j3h4.tmp").write_bytes(b"half")
    (root / "runs" / ".partial-20260101-000000-ridge-x").mkdir()
    (root / "runs" / ".partial-20260101-000000-ridge-x" / ".owner").write_text("999999999")


def test_start_puts_right_what_killed_processes_left(hostile):
    data = hostile["root"] / "data"
    assert "killed.jpg,42" in (data / "scores.csv").read_text()
    assert not (data / ".import-journal.jsonl").exists() and not list(data.glob(".*.tmp"))
    assert not list((hostile["root"] / "runs").glob(".partial-*"))


def file_components() -> set[str]:
    """Config type names of the Gradio components whose values carry files (FileData)."""
    found = set()
    for name, cls in vars(gr.components).items():
        if inspect.isclass(cls) and issubclass(cls, gr.components.Component) and not inspect.isabstract(cls):
            try:
                if "FileData" in json.dumps(cls().api_info()):
                    found.add(cls().get_block_name())
            except Exception:  # a component that needs arguments cannot be probed: not used here
                continue
    return found


def file_payload(component: dict, path: Path):
    """The value a browser would send for ``component`` holding ``path``."""
    data = {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    kind, props = component["type"], component.get("props", {})
    if kind == "gallery":
        return [{"image": data, "caption": None}]
    if props.get("file_count") in ("multiple", "directory"):
        return [data]
    return data


def file_events(url: str) -> list[tuple[dict, dict]]:
    """(dependency, components by id) for each event with a file-carrying input."""
    config = httpx.get(f"{url}/config", timeout=30).json()
    components = {c["id"]: c for c in config["components"]}
    kinds = file_components()
    events = [d for d in config["dependencies"] if any(components[i]["type"] in kinds for i in d["inputs"])]
    return [(d, components) for d in events]


def call_event(url: str, dependency: dict, components: dict, secret: Path) -> str:
    """Run one event through the queue as the browser does; return everything the server streamed back."""
    kinds = file_components()
    data = []
    for i in dependency["inputs"]:
        component = components[i]
        if component["type"] in kinds:
            data.append(file_payload(component, secret))
        elif component["type"] == "state":
            data.append(None)
        else:
            data.append(component.get("props", {}).get("value"))
    session = uuid.uuid4().hex
    target = dependency["targets"][0][0] if dependency["targets"] else None
    join = httpx.post(f"{url}/gradio_api/queue/join", timeout=30, json={
        "data": data, "fn_index": dependency["id"], "session_hash": session, "event_data": None,
        "trigger_id": target})
    if join.status_code != 200:
        return join.text
    streamed = []
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session},
                      timeout=120) as response:
        for line in response.iter_lines():
            streamed.append(line)
            if "process_completed" in line:
                break
    return "\n".join(streamed)


def files_holding(folder: Path, marker: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and marker in p.read_bytes()]


def test_every_file_event_is_found(hostile):
    names = {d["api_name"] for d, _ in file_events(hostile["url"])}
    # The events the probe found leaking; more may be added, none may disappear from the check unnoticed.
    assert {"score_photo", "explain_photo", "describe", "score_many"} <= names, names
    assert len(names) >= 7, names


@pytest.mark.parametrize("secret_index", [0, 1], ids=["text", "png"])
def test_no_event_reads_a_file_outside_the_workbench(hostile, secret_index):
    secret = hostile["secrets"][secret_index]
    marker, root, url = hostile["marker"], hostile["root"], hostile["url"]
    data_before = sorted(p.name for p in (root / "data").rglob("*"))
    for dependency, components in file_events(url):
        reply = call_event(url, dependency, components, secret)
        name = dependency["api_name"]
        assert marker.decode() not in reply, f"{name} sent the secret back"
        for served in set(part.split('"')[0] for part in reply.split("/gradio_api/file=")[1:]):
            body = httpx.get(f"{url}/gradio_api/file={served}", timeout=30).content
            assert marker not in body, f"{name}: /gradio_api/file={served} serves the secret"
        for folder in ("gradio", "cache", "data"):
            leaked = files_holding(root / folder, marker)
            assert not leaked, f"{name} copied {secret.name} into {folder}/: {leaked}"
    assert sorted(p.name for p in (root / "data").rglob("*")) == data_before, "something landed in data/"


def test_a_real_upload_still_reaches_the_training_set(hostile, photos):
    """The lock must not shut out the browser: upload first, then the Add action copies it into data/."""
    url, root = hostile["url"], hostile["root"]
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="JPEG", quality=90)
    uploaded = httpx.post(f"{url}/gradio_api/upload", files=[("files", ("rocket_up.jpg", buffer.getvalue()))],
                          timeout=60).json()
    assert len(uploaded) == 1 and Path(uploaded[0]).is_relative_to(root / "gradio")
    add = next((d, c) for d, c in file_events(url)
               if any(c[i]["props"].get("elem_id") == "data-add-file" for i in d["inputs"]))
    reply = call_event(url, *add, Path(uploaded[0]))
    assert '"success": true' in reply.replace('"success":true', '"success": true'), reply[-2000:]
    assert (root / "data" / "rocket_up.jpg").is_file()


def test_require_inside_refuses_outside_paths_and_links_out(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir(), outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (inside / "ok.jpg").write_bytes(b"x")
    os.symlink(outside / "secret.txt", inside / "link.jpg")
    assert require_inside(inside / "ok.jpg", [inside]) == (inside / "ok.jpg").resolve()
    for hostile_path in (outside / "secret.txt", inside / "link.jpg", f"{inside}/../outside/secret.txt", "",
                         "x\x00y", 5):
        with pytest.raises(UnsafePath):
            require_inside(hostile_path, [inside])


def test_callbacks_refuse_paths_outside_the_workbench(settings, tmp_path):
    """The second lock, behind Gradio's: the guard every path-taking callback calls."""
    from workbench.ui.widgets import received_file, received_files

    (tmp_path / "secret.txt").write_text("x")
    with pytest.raises(gr.Error, match="secret.txt: refused"):
        received_file(str(tmp_path / "secret.txt"), settings)
    with pytest.raises(gr.Error):
        received_files([str(settings.data_dir / "fine.jpg"), "/etc/passwd"], settings)
    assert received_file(str(settings.cache_dir / "a.jpg"), settings) == str((settings.cache_dir / "a.jpg").resolve())


# ------------------------------------------------- what the file routes serve
def test_the_file_routes_serve_images_of_the_data_folder_but_not_its_bookkeeping(hostile):
    url, root = hostile["url"], hostile["root"]
    data, cache = root / "data", root / "cache"
    (data / "comparisons.csv").write_text("left,right,winner\n")
    (data / ".label_sources.json").write_text('{"killed.jpg": ["file name", 42]}')
    (data / ".trash").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(data / ".trash" / "gone.jpg")
    (cache / "features").mkdir(exist_ok=True)
    np.save(cache / "features" / "lite0.npy", np.zeros(3))
    (cache / "thumbnails").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(cache / "thumbnails" / "t.png")
    for route in ("/gradio_api/file=", "/gradio_api/file/"):
        for private in (data / "scores.csv", data / "comparisons.csv", data / ".label_sources.json",
                        data / ".trash" / "gone.jpg", cache / "features" / "lite0.npy", data,
                        data / "sub" / ".." / "scores.csv"):
            response = httpx.get(url + route + str(private), timeout=30)
            assert response.status_code == 404 and b"killed.jpg" not in response.content, (route, private)
    for image in (data / "killed.jpg", cache / "thumbnails" / "t.png"):  # what the pages show still comes
        response = httpx.get(url + "/gradio_api/file=" + str(image), timeout=30)
        assert response.status_code == 200 and response.content == image.read_bytes(), image


# ------------------------------------------------------------- DNS rebinding
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "192.168.1.5:{port}", "", "localhost:notaport"])
def test_a_foreign_host_header_is_refused(hostile, host):
    url = hostile["url"]
    port = url.rsplit(":", 1)[1]
    for method, path in (("GET", "/"), ("GET", "/config"), ("POST", "/api/score")):
        response = httpx.request(method, url + path, headers={"Host": host.format(port=port)}, timeout=30)
        assert response.status_code == 421, (method, path, response.status_code)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}"])
def test_the_names_of_this_server_are_answered(hostile, host):
    url = hostile["url"]
    response = httpx.get(url + "/config", headers={"Host": host.format(port=url.rsplit(":", 1)[1])}, timeout=30)
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example:{port}", "null",
                                    "http://127.0.0.1:1", "file://", "http://localhost"])
def test_a_cross_site_post_is_refused(hostile, origin, photos):
    url = hostile["url"]
    origin = origin.format(port=url.rsplit(":", 1)[1])
    buffer = io.BytesIO()
    Image.fromarray(photos["rocket"]).save(buffer, format="JPEG")
    before = sorted(p.name for p in (hostile["root"] / "gradio").rglob("*"))
    score = httpx.post(f"{url}/api/score", headers={"Origin": origin}, timeout=30,
                       files=[("files", ("a.jpg", buffer.getvalue(), "image/jpeg"))])
    upload = httpx.post(f"{url}/gradio_api/upload", headers={"Origin": origin}, timeout=30,
                        files=[("files", ("a.jpg", buffer.getvalue(), "image/jpeg"))])
    join = httpx.post(f"{url}/gradio_api/queue/join", headers={"Origin": origin}, timeout=30,
                      json={"data": [], "fn_index": 0, "session_hash": "x"})
    assert [score.status_code, upload.status_code, join.status_code] == [403, 403, 403]
    assert "not accepted" in score.json()["detail"]
    assert sorted(p.name for p in (hostile["root"] / "gradio").rglob("*")) == before


def test_a_post_from_the_workbench_page_itself_is_served(hostile):
    url = hostile["url"]
    port = url.rsplit(":", 1)[1]
    for origin in (url, f"http://localhost:{port}"):
        response = httpx.post(f"{url}/gradio_api/upload", headers={"Origin": origin}, timeout=30,
                              files=[("files", ("note.txt", b"hello", "text/plain"))])
        assert response.status_code == 200, response.text


# ------------------------------------------------------------ stalled bodies
def test_a_body_that_stops_arriving_times_out(hostile):
    """Content-Length promises 1000 bytes, 10 come: 408 and a closed connection, not a socket held for ever."""
    port = int(hostile["url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 20) as conn:
        conn.sendall(b"POST /api/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                     b"boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\nabcd")
        started = time.monotonic()
        received = b""
        while chunk := conn.recv(65536):  # returns b"" once the server closes the connection
            received += chunk
        waited = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert BODY_TIMEOUT_S - 0.5 <= waited < BODY_TIMEOUT_S + 10


def test_a_slow_body_that_keeps_arriving_is_not_cut_off(hostile):
    """The limit is on silence, not on the whole upload: a chunk every second for 4 s (> the 2 s limit) is fine."""
    def slow():
        yield b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(4):
            time.sleep(1)
            yield b"not an image "
        yield b"\r\n--x--\r\n"

    response = httpx.post(f"{hostile['url']}/api/score", content=slow(), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 415, response.text  # read in full, then judged: not an image
