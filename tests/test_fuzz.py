"""Property-based fuzzing (hypothesis) of everything that takes input from outside:
the HTTP API, the Gradio events that take files, the importer (folders and zips)
and the run loader.

Properties: nothing answers 500 or raises an unexpected exception, nothing
outside the workbench's folders is read or written, and ``scores.csv`` stays a
valid table of files that exist. ``make test`` runs a few cases per target
(WORKBENCH_FUZZ_EXAMPLES, default 15, derandomised so a failure repeats);
``bench/fuzz_bench.py`` runs many more with fresh randomness and reports counts.
"""
from __future__ import annotations

import atexit
import collections
import csv
import io
import json
import os
import shutil
import struct
import tempfile
import uuid
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest
from conftest import SHARED_DIR, package_photos, start_app, stop_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_security import FOLDERS, call_event, file_events

from workbench import compat  # noqa: F401

EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("WORKBENCH_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck))
CASES: collections.Counter = collections.Counter()  # cases run per target, for bench/fuzz_bench.py
if os.environ.get("WORKBENCH_FUZZ_REPORT"):
    atexit.register(lambda: Path(os.environ["WORKBENCH_FUZZ_REPORT"]).write_text(json.dumps(CASES)))


# ------------------------------------------------------------ inputs
def _seed_images() -> list[bytes]:
    """Small real photos in the formats the workbench reads."""
    seeds = []
    for i, pixels in enumerate(list(package_photos().values())[:3]):
        image = Image.fromarray(pixels).resize((48, 32))
        for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP")[i:i + 3]:
            buffer = io.BytesIO()
            image.save(buffer, format=fmt)
            seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_images()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@st.composite
def image_bytes(draw) -> bytes:
    """A real image, intact or damaged: truncated, bytes flipped or inserted, random, or a lying header."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    how = draw(st.sampled_from(["intact", "truncate", "flip", "insert", "random", "declared", "empty"]))
    if how == "truncate":
        del data[draw(st.integers(0, len(data) - 1)):]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif how == "random":
        data = bytearray(draw(st.binary(max_size=512)))
    elif how == "declared":
        data = bytearray(png_declaring(draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))))
    elif how == "empty":
        data = bytearray()
    return bytes(data)


ODD_NAMES = ["../../escape.jpg", "/etc/passwd.jpg", "..", ".", " lead.jpg", "=cmd|' /C calc'!A0.jpg",
             "a/b/85_c.jpg", "C:\\x\\70_y.png", "CON.jpg", "x" * 300 + ".jpg", "é\u202e gnp.jpg", ".hidden.jpg",
             "85_photo.JPG", "noext", "50.5_half.webp", "-3_neg.png"]
# httpx cannot put CR, LF, NUL or a quote into a multipart file name; everything else may come.
name_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\"\\"), max_size=40)
names = st.one_of(st.sampled_from(ODD_NAMES), name_text, name_text.map(lambda t: t + ".jpg"))


def csv_is_valid(data: Path, score_min=0.0, score_max=100.0) -> None:
    """scores.csv parses, names plain files that exist in data/, and every score is in range."""
    path = data / "scores.csv"
    if not path.exists():
        return
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["filename", "score"], rows[0]
    for row in rows[1:]:
        assert (data / row[0]).is_file() and "/" not in row[0], row
        if row[1]:
            assert score_min <= float(row[1]) <= score_max, row


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ------------------------------------------------------------ the server
@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """One real server (NIMA weights when ../shared has them, so good photos are really scored)."""
    root = tmp_path_factory.mktemp("fuzz")
    env = {}
    for name, folder in FOLDERS.items():
        (root / folder).mkdir()
        env[name] = str(root / folder)
    nima = SHARED_DIR / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"
    if nima.is_file():
        os.symlink(nima, root / "weights" / nima.name)
    outside = root / "outside"
    outside.mkdir()
    marker = f"SECRET-{uuid.uuid4().hex}"
    (outside / "secret.txt").write_text(marker)
    (outside / "secret.png").write_bytes(SEEDS[1] + marker.encode())  # a real PNG with the marker appended
    os.symlink(outside / "secret.png", root / "gradio" / "planted_link.png")  # a link inside the upload folder
    proc, url = start_app(env, root / "server.log")
    try:
        yield {"url": url, "root": root, "marker": marker.encode(), "outside": outside,
               "events": file_events(url)}
    finally:
        stop_app(proc)


API_STATUSES = {200, 400, 404, 413, 415, 422, 503}


@FUZZ
@given(files=st.lists(st.tuples(names, image_bytes()), min_size=1, max_size=3),
       threshold=st.one_of(st.none(), st.floats(), st.text(max_size=8)),
       run=st.one_of(st.none(), st.sampled_from(["nima", "../runs", "", "x" * 200]), name_text))
def test_fuzz_api_score_never_fails_with_500(fuzz_server, files, threshold, run):
    CASES["api"] += 1
    data = {k: str(v) for k, v in (("threshold", threshold), ("run", run)) if v is not None}
    response = httpx.post(f"{fuzz_server['url']}/api/score", timeout=120, data=data,
                          files=[("files", (name, content, "application/octet-stream")) for name, content in files])
    assert response.status_code in API_STATUSES, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    assert not tree(fuzz_server["root"] / "data") - {".scores.lock"}, "the API wrote into data/"


@st.composite
def multipart_bodies(draw) -> tuple[str, bytes]:
    boundary = draw(st.text(st.sampled_from("abcXYZ019-_'()+,./:=?"), min_size=1, max_size=30))
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + draw(image_bytes()) + f"\r\n--{boundary}--\r\n".encode()
    body = bytearray(part)
    for _ in range(draw(st.integers(0, 4))):  # damage the framing itself
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["cut", "insert", "flip"]))
        if kind == "cut":
            del body[at:]
        elif kind == "insert":
            body[at:at] = draw(st.sampled_from([b"\r\n", b"--", boundary.encode(), b"\r\n\r\n", b"\x00" * 9]))
        elif body:
            body[min(at, len(body) - 1)] ^= 0x20
    header_boundary = draw(st.sampled_from([boundary, "", boundary + "x", '"' + boundary + '"']))
    return header_boundary, bytes(body)


@FUZZ
@given(case=multipart_bodies())
def test_fuzz_malformed_multipart_gets_a_4xx(fuzz_server, case):
    CASES["multipart"] += 1
    boundary, body = case
    response = httpx.post(f"{fuzz_server['url']}/api/score", content=body, timeout=120,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code in API_STATUSES, (response.status_code, response.text[:500])


def hostile_paths(server) -> st.SearchStrategy:
    root, outside = server["root"], server["outside"]
    gradio, port = root / "gradio", server["url"].rsplit(":", 1)[1]
    fixed = [outside / "secret.txt", outside / "secret.png", f"{gradio}/../outside/secret.txt",
             f"{gradio}/x/../../outside/secret.png", "../outside/secret.txt", gradio / "planted_link.png",
             f"file://{outside}/secret.txt", f"http://127.0.0.1:{port}/gradio_api/file={outside}/secret.txt",
             "/etc/passwd", "/proc/self/environ", f"{root}/data/../outside/secret.txt", f"{outside}/secret.txt/",
             f"{outside}//secret.txt", f"{outside}/./secret.png", "~/secret.txt", ""]
    return st.one_of(st.sampled_from(fixed), name_text.map(lambda t: f"{outside}/{t}"), name_text)


@FUZZ
@given(data=st.data())
def test_fuzz_file_events_never_read_outside_the_workbench(fuzz_server, data):
    CASES["events"] += 1
    dependency, components = data.draw(st.sampled_from(fuzz_server["events"]))
    path = data.draw(hostile_paths(fuzz_server))
    reply = call_event(fuzz_server["url"], dependency, components, Path(str(path)))
    marker, root = fuzz_server["marker"], fuzz_server["root"]
    assert marker.decode() not in reply, (dependency["api_name"], path)
    for folder in ("gradio", "cache", "data"):
        for found in (root / folder).rglob("*"):
            if found.is_file() and not found.is_symlink():
                assert marker not in found.read_bytes(), (dependency["api_name"], path, found)
    assert not [p for p in (root / "data").iterdir() if not p.name.startswith(".")], "something landed in data/"


# ------------------------------------------------------------ the importer
zip_names = st.one_of(st.sampled_from(ODD_NAMES + ["../../../tmp/zipslip.jpg", "/abs/90_x.jpg", "d/../../up.png",
                                                   "__MACOSX/._a.jpg", "dir/", "a\\..\\..\\b.jpg"]),
                      name_text.map(lambda t: t + ".jpg"), name_text)


@FUZZ
@given(entries=st.lists(st.tuples(zip_names, image_bytes()), min_size=1, max_size=6), as_zip=st.booleans(),
       pattern=st.sampled_from(["", r"_s(?P<score>\d+)$", r"(\d+(?:\.\d+)?)", "(unclosed", "(?P<score>x)"]))
def test_fuzz_import_writes_only_into_data_and_keeps_scores_csv_valid(entries, as_zip, pattern):
    from workbench.dataset import ScoreError, ScoreStore
    from workbench.dataset.importer import import_into_store, scan_source
    from workbench.events import drain

    CASES["import"] += 1
    root = Path(tempfile.mkdtemp(prefix="fuzz-import-"))
    try:
        data, staging, source = root / "data", root / "staging", root / "source"
        for folder in (data, staging, source):
            folder.mkdir()
        if as_zip:
            with zipfile.ZipFile(source / "in.zip", "w") as zf:
                for name, content in entries:
                    zf.writestr(name or "x", content)
            target = source / "in.zip"
        else:  # a folder holds only names the file system accepts
            for name, content in entries:
                if name and "/" not in name and "\\" not in name and name not in (".", ".."):
                    try:
                        (source / name).write_bytes(content)
                    except OSError:  # e.g. a name over 255 bytes
                        pass
            target = source
        before = tree(root) - tree(data) - tree(staging)
        store = ScoreStore(data, 0, 100)
        try:
            preview = scan_source(target, pattern=pattern, staging_dir=staging, thumbnails_dir=root / "thumbs")
        except ScoreError:
            assert pattern == "(unclosed"  # an invalid regular expression is refused before any work
            return
        try:
            drain(import_into_store(preview.items, store, skipped=preview.skipped))
        finally:
            preview.cleanup()
        outside = {p for p in tree(root) - before if not p.startswith(("data", "staging", "thumbs"))}
        assert not outside, f"written outside data/: {outside}"
        assert all(p.parent == data for p in data.iterdir() if p.is_file()) and not [
            p for p in data.iterdir() if p.is_dir()], "a sub-folder in data/"
        csv_is_valid(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------ the run loader
@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    from test_runs import _stored_run

    from workbench.config import load_settings

    root = tmp_path_factory.mktemp("fuzz-runs")
    paths = {name: root / folder for name, folder in FOLDERS.items() if name.startswith("WORKBENCH")}
    for folder in paths.values():
        folder.mkdir()
    settings = load_settings(data_dir=paths["WORKBENCH_DATA_DIR"], models_dir=paths["WORKBENCH_MODELS_DIR"],
                             weights_dir=paths["WORKBENCH_WEIGHTS_DIR"], cache_dir=paths["WORKBENCH_CACHE_DIR"])
    store, manifest, _ = _stored_run(settings, "ridge")
    return settings, store.folder(manifest.run_id)


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)


@FUZZ
@given(data=st.data())
def test_fuzz_damaged_runs_are_refused_with_a_reason(stored_run, data):
    from workbench.fsutil import file_sha256
    from workbench.predict import ScorerUnavailable, load_scorer

    CASES["runs"] += 1
    settings, original = stored_run
    runs = Path(tempfile.mkdtemp(prefix="fuzz-runs-"))
    try:
        folder = runs / "shared-run"
        shutil.copytree(original, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        kind = data.draw(st.sampled_from(["field", "drop", "truncate", "garbage", "model", "model-rehashed"]))
        if kind == "field":
            manifest[data.draw(st.sampled_from(sorted(manifest)))] = data.draw(json_values)
            (folder / "manifest.json").write_text(json.dumps(manifest))
        elif kind == "drop":
            del manifest[data.draw(st.sampled_from(sorted(manifest)))]
            (folder / "manifest.json").write_text(json.dumps(manifest))
        elif kind == "truncate":
            text = (folder / "manifest.json").read_text()
            (folder / "manifest.json").write_text(text[:data.draw(st.integers(0, len(text)))])
        elif kind == "garbage":
            (folder / "manifest.json").write_bytes(data.draw(st.binary(max_size=200)))
        else:
            model = folder / manifest["model_file"]
            blob = bytearray(model.read_bytes())
            for _ in range(data.draw(st.integers(1, 6))):
                blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
            model.write_bytes(bytes(blob[:data.draw(st.integers(1, len(blob)))]))
            if kind == "model-rehashed":  # passes the sha check: only the loader's own checks remain
                manifest["model_sha256"] = file_sha256(model)
                (folder / "manifest.json").write_text(json.dumps(manifest))
        try:
            scorer = load_scorer("shared-run", settings.replace(models_dir=runs))
        except ScorerUnavailable as exc:
            assert str(exc), kind
            return
        # what scoring a photo asks of the scorer besides the model: the manifest's numbers
        low, high = scorer.scale
        assert low < high and scorer.verdict(high) in ("good", "bad")
        assert scorer.percentile(high) is None or 0 <= scorer.percentile(high) <= 100
    finally:
        shutil.rmtree(runs, ignore_errors=True)
