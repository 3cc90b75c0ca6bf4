"""``POST /api/score`` with httpx against the real running app.

One app start (about half a minute on two cores) serves every test in this module. Its runs folder
holds a ridge run trained on package photos whose score is their brightness (efficientnet_lite0 from
its package: no ../shared needed); NIMA's file is linked in when ../shared has it.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import SHARED_DIR, start_app, stop_app
from PIL import Image
from training_fixtures import make_brightness_set, settings_for

from workbench.events import drain
from workbench.training import train

UPLOAD_LIMIT_MB = 1
NIMA_FILE = SHARED_DIR / "weights" / "nima_mobilenet_aesthetic_ava.hdf5"


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(tmp_path_factory, photos):
    """(base URL, the brightness run's id): the app with a 1 MB upload limit and one trained run."""
    root = tmp_path_factory.mktemp("api")
    data = make_brightness_set(photos, root / "data")
    settings = settings_for(data, root / "runs", root / "cache", root / "weights")
    if NIMA_FILE.is_file():
        os.symlink(NIMA_FILE, settings.weights_dir / NIMA_FILE.name)
    run = drain(train("ridge", settings))
    config = root / "small_uploads.yaml"
    config.write_text(f"server:\n  max_upload_mb: {UPLOAD_LIMIT_MB}\n")
    env = {"WORKBENCH_DATA_DIR": str(data), "WORKBENCH_MODELS_DIR": str(settings.models_dir),
           "WORKBENCH_WEIGHTS_DIR": str(settings.weights_dir), "WORKBENCH_CACHE_DIR": str(settings.cache_dir),
           "WORKBENCH_CONFIG": str(config)}
    proc, url = start_app(env, root / "server.log")
    try:
        yield url, run.run_id
    finally:
        stop_app(proc)


@pytest.fixture(scope="module")
def server(api):
    return api[0]


@pytest.fixture
def needs_nima():
    if not NIMA_FILE.is_file():
        pytest.skip(f"NIMA weights not found at {NIMA_FILE}")


def test_a_trained_run_scores_a_brighter_photo_higher(api, photos):
    server, run_id = api
    levels = (0.2, 0.5, 1.0)  # the same photo, dimmed
    files = [("files", (f"coffee_{level}.jpg", jpeg_bytes((photos["coffee"] * level).astype(np.uint8)), "image/jpeg"))
             for level in levels]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": run_id}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scorer"] == run_id and body["scale"] == [0.0, 100.0]
    assert [r["filename"] for r in body["results"]] == [f"coffee_{level}.jpg" for level in levels]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores) and scores[0] < scores[-1]  # what the run was taught: brighter is better


def test_the_best_run_is_the_default_scorer_and_a_threshold_can_be_given(api, photos):
    server, run_id = api
    files = [("files", ("a.jpg", jpeg_bytes(photos["astronaut"]), "image/jpeg"))]
    body = httpx.post(f"{server}/api/score", files=files, data={"threshold": "1.5"}, timeout=120).json()
    assert body["scorer"] == run_id  # a trained run exists: it, not the ready NIMA scorer
    assert body["threshold"] == 1.5 and body["results"][0]["verdict"] == "good"


def test_nima_scores_several_images_with_distributions(server, photos, needs_nima):
    files = [("files", ("chelsea.jpg", jpeg_bytes(photos["chelsea"], 95), "image/jpeg")),
             ("files", ("koffie €.png", _png(photos["coffee"]), "image/png"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": "nima"}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scorer"] == "nima" and body["scale"] == [1.0, 10.0] and body["threshold"] == 5.1
    assert "local file" in body["weights"]
    assert [r["filename"] for r in body["results"]] == ["chelsea.jpg", "koffie €.png"]  # upload order
    chelsea = body["results"][0]
    assert chelsea["score"] == pytest.approx(5.12, abs=0.03)
    assert len(chelsea["distribution"]) == 10 and sum(chelsea["distribution"]) == pytest.approx(1, abs=1e-4)
    assert chelsea["verdict"] == ("good" if chelsea["score"] >= 5.1 else "bad")
    coffee = body["results"][1]
    assert {chelsea["rank"], coffee["rank"]} == {1, 2}
    assert (chelsea["rank"] == 1) == (chelsea["score"] >= coffee["score"])


def test_bad_files_do_not_stop_the_good_ones_and_each_says_why(api, photos):
    """A huge PNG and a truncated JPEG posted with one good photo made the whole batch a 415: the good
    photo went unscored. Now it is scored and each bad file has its reason in its place."""
    server, run_id = api
    huge = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(huge, format="PNG")  # 400 megapixels in a few kB: over max_pixels
    good = jpeg_bytes(photos["rocket"])
    files = [("files", ("huge.png", huge.getvalue(), "image/png")),
             ("files", ("cut.jpg", good[: len(good) // 2], "image/jpeg")),
             ("files", ("fine.jpg", good, "image/jpeg")),
             ("files", ("notes.jpg", b"shopping list: milk, eggs", "image/jpeg"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": run_id}, timeout=120)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["huge.png", "cut.jpg", "fine.jpg", "notes.jpg"]  # upload order
    fine = results[2]
    assert isinstance(fine["score"], float) and fine["error"] is None and fine["rank"] == 1
    for bad in (results[0], results[1], results[3]):
        assert bad["score"] is None and bad["error"] and bad["rank"] is None
    assert "megapixels" in results[0]["error"] and "truncated" in results[1]["error"]

    # none readable: 415, every file listed with its reason
    response = httpx.post(f"{server}/api/score", files=[files[1], files[3],
                                                        ("files", ("empty.png", b"", "image/png"))], timeout=120)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "3 of 3" in detail["message"]
    assert [f["filename"] for f in detail["files"]] == ["cut.jpg", "notes.jpg", "empty.png"]
    assert all(f["error"] for f in detail["files"])


def test_an_oversized_upload_is_refused_with_413(server):
    big = os.urandom(int(UPLOAD_LIMIT_MB * 1024 * 1024) + 200_000)
    response = httpx.post(f"{server}/api/score", files=[("files", ("huge.jpg", big, "image/jpeg"))], timeout=120)
    assert response.status_code == 413
    assert "the limit is 1 MB" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit must hold while the body streams in
        yield b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"huge.jpg\"\r\n\r\n"
        for _ in range(20):
            yield os.urandom(100_000)
        yield b"\r\n--x--\r\n"

    response = httpx.post(f"{server}/api/score", content=chunked(), timeout=120,
                          headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "limit is" in response.json()["detail"]


def test_an_unknown_run_is_404_and_docs_describe_the_endpoint(server, photos):
    files = [("files", ("a.jpg", jpeg_bytes(photos["chelsea"]), "image/jpeg"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": "no-such-run"}, timeout=120)
    assert response.status_code == 404 and "no-such-run" in response.json()["detail"]
    schema = httpx.get(f"{server}/api/openapi.json", timeout=30).json()
    operation = schema["paths"]["/api/score"]["post"]
    assert "Score uploaded images" in operation["description"]
    assert {"413", "415"} <= set(operation["responses"])
    assert httpx.get(f"{server}/api/docs", timeout=30).status_code == 200


def test_an_unsafe_run_id_is_404_and_a_nan_threshold_422(server, photos):
    files = [("files", ("a.jpg", jpeg_bytes(photos["chelsea"]), "image/jpeg"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": "../x"}, timeout=120)
    assert response.status_code == 404 and "not a run id" in response.json()["detail"]
    for bad in ("nan", "inf", "-Infinity"):
        response = httpx.post(f"{server}/api/score", files=files, data={"threshold": bad}, timeout=120)
        assert response.status_code == 422, response.text
        assert "finite number" in response.json()["detail"]


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _shot(pixels: np.ndarray, when: str, *, blur: float = 0, crop: float = 0) -> bytes:
    """A JPEG as a camera writes it: EXIF capture time (DateTimeOriginal + hundredths)."""
    from PIL import ImageFilter

    image = Image.fromarray(pixels)
    if crop:
        w, h = image.size
        image = image.crop((int(w * crop), int(h * crop), w, h)).resize((w, h))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[36867], sub[37521] = when.split(".")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def test_cull_groups_a_burst_flags_the_blurred_frame_and_echoes_names_without_using_them(server, photos):
    import tempfile
    import uuid

    escape = f"wb-api-cull-{uuid.uuid4().hex}.jpg"  # were an uploaded name a path, it would land next to our folder
    shoot = [(f"../{escape}", _shot(photos["chelsea"], "2025:06:14 14:00:00.00")),
             ("IMG_2.jpg", _shot(photos["chelsea"], "2025:06:14 14:00:00.40", crop=0.04)),
             ("sub/dir/IMG_3.jpg", _shot(photos["chelsea"], "2025:06:14 14:00:00.80", blur=5)),
             ("coffee.jpg", _shot(photos["coffee"], "2025:06:14 14:03:00.00"))]
    response = httpx.post(f"{server}/api/cull", files=[("files", (n, b, "image/jpeg")) for n, b in shoot], timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["n_photos"] == 4 and not body["failed"] and "closed_eyes" in body["unavailable_flags"]
    groups = sorted((sorted(p["filename"] for p in g["photos"]) for g in body["groups"]), key=len)
    assert groups == [["coffee.jpg"], sorted(["IMG_2.jpg", f"../{escape}", "sub/dir/IMG_3.jpg"])]
    photo = {p["filename"]: p for g in body["groups"] for p in g["photos"]}
    assert {photo[n]["index"] for n in photo} == {0, 1, 2, 3}
    blurred = photo["sub/dir/IMG_3.jpg"]
    assert blurred["flags"]["out_of_focus"]["flagged"] and blurred["rejected"] and not blurred["pick"]
    assert "sub/dir/IMG_3.jpg" in body["rejected"]
    for group in body["groups"]:
        assert sum(p["pick"] for p in group["photos"]) <= 1
        scores = [p["score"] for p in group["photos"]]
        assert scores == sorted(scores, reverse=True)  # best first
    burst = next(g for g in body["groups"] if len(g["photos"]) == 3)
    assert [p["filename"] for p in burst["photos"] if p["pick"]] == [p["filename"] for p in burst["photos"]
                                                                     if not p["rejected"]][:1]
    assert not (Path(tempfile.gettempdir()) / escape).exists()


def test_cull_refuses_bad_thresholds_unreadable_files_and_unknown_runs(server, photos):
    good = [("files", ("a.jpg", jpeg_bytes(photos["chelsea"]), "image/jpeg"))]
    for field, bad in (("similarity", "2"), ("blur_threshold", "-1"), ("burst_seconds", "nan")):
        response = httpx.post(f"{server}/api/cull", files=good, data={field: bad}, timeout=120)
        assert response.status_code == 422 and field in response.text, response.text
    response = httpx.post(f"{server}/api/cull", files=good + [("files", ("notes.jpg", b"milk", "image/jpeg"))],
                          timeout=120)
    assert response.status_code == 415 and response.json()["detail"]["files"][0]["filename"] == "notes.jpg"
    response = httpx.post(f"{server}/api/cull", files=good, data={"run": "../x"}, timeout=120)
    assert response.status_code == 404
    schema = httpx.get(f"{server}/api/openapi.json", timeout=30).json()
    assert "Group bursts" in schema["paths"]["/api/cull"]["post"]["description"]
