"""``POST /api/score`` with httpx against the real running app."""
from __future__ import annotations

import io
import os

import httpx
import numpy as np
import pytest
from PIL import Image

UPLOAD_LIMIT_MB = 1


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture
def nima_and_small_uploads(workbench_env, nima_weights, tmp_path, monkeypatch):
    """The app with NIMA weights in its weights folder and a 1 MB upload limit."""
    weights = os.path.join(workbench_env["WORKBENCH_WEIGHTS_DIR"], nima_weights.name)
    os.symlink(nima_weights, weights)
    config = tmp_path / "small_uploads.yaml"
    config.write_text(f"server:\n  max_upload_mb: {UPLOAD_LIMIT_MB}\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    return None


@pytest.fixture
def server(nima_and_small_uploads, app_server):  # this first: its environment reaches the server
    return app_server


def check_scores_several_images_with_distributions(server, photos):
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


def check_default_scorer_and_own_threshold(server, photos):
    files = [("files", ("a.jpg", jpeg_bytes(photos["astronaut"]), "image/jpeg"))]
    body = httpx.post(f"{server}/api/score", files=files, data={"threshold": "1.5"}, timeout=120).json()
    assert body["scorer"] == "nima"  # no trained runs: the ready scorer
    assert body["threshold"] == 1.5 and body["results"][0]["verdict"] == "good"


def check_a_non_image_is_rejected_with_a_reason_per_file(server, photos):
    files = [("files", ("fine.jpg", jpeg_bytes(photos["rocket"]), "image/jpeg")),
             ("files", ("notes.jpg", b"shopping list: milk, eggs", "image/jpeg")),
             ("files", ("empty.png", b"", "image/png"))]
    response = httpx.post(f"{server}/api/score", files=files, timeout=120)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "2 of 3" in detail["message"]
    assert [f["filename"] for f in detail["files"]] == ["notes.jpg", "empty.png"]
    assert all(f["error"] for f in detail["files"])


def check_an_oversized_upload_is_refused_with_413(server):
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


def check_an_unknown_run_is_404_and_docs_describe_the_endpoint(server, photos):
    files = [("files", ("a.jpg", jpeg_bytes(photos["chelsea"]), "image/jpeg"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": "no-such-run"}, timeout=120)
    assert response.status_code == 404 and "no-such-run" in response.json()["detail"]
    schema = httpx.get(f"{server}/api/openapi.json", timeout=30).json()
    operation = schema["paths"]["/api/score"]["post"]
    assert "Score uploaded images" in operation["description"]
    assert {"413", "415"} <= set(operation["responses"])
    assert httpx.get(f"{server}/api/docs", timeout=30).status_code == 200


def check_an_unsafe_run_id_is_404_and_a_nan_threshold_422(server, photos):
    files = [("files", ("a.jpg", jpeg_bytes(photos["chelsea"]), "image/jpeg"))]
    response = httpx.post(f"{server}/api/score", files=files, data={"run": "../x"}, timeout=120)
    assert response.status_code == 404 and "not a run id" in response.json()["detail"]
    for bad in ("nan", "inf", "-Infinity"):
        response = httpx.post(f"{server}/api/score", files=files, data={"threshold": bad}, timeout=120)
        assert response.status_code == 422, response.text
        assert "finite number" in response.json()["detail"]


def test_score_endpoint(server, photos):
    """One app start (about half a minute on two cores) serves every check."""
    check_scores_several_images_with_distributions(server, photos)
    check_default_scorer_and_own_threshold(server, photos)
    check_a_non_image_is_rejected_with_a_reason_per_file(server, photos)
    check_an_oversized_upload_is_refused_with_413(server)
    check_an_unknown_run_is_404_and_docs_describe_the_endpoint(server, photos)
    check_an_unsafe_run_id_is_404_and_a_nan_threshold_422(server, photos)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
