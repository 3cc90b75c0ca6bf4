"""Closed eyes on detected faces: a heuristic, from models that ship in installed packages.

    report = eye_report(load_luma("IMG_1.jpg", FACE_SIZE))   # faces found, how many look closed
    report.share_closed                                      # 0-1, None when no face was found

Faces are found by dlib's HOG frontal-face detector (built into ``dlib``, from the
``dlib-bin`` wheel) on the luma at :data:`FACE_SIZE` on the long side; each face gets
dlib's 68 landmarks (``shape_predictor_68_face_landmarks.dat``, shipped by the
``face_recognition_models`` package: offline, nothing is downloaded). An eye's
openness is its eye aspect ratio (Soukupova & Cech 2016): the two lid-to-lid
distances over twice the corner-to-corner width, ~0.3 for an open eye, ~0.1 closed.
A face is "eyes closed?" when the mean of its two eyes' ratios is below
:data:`EAR_CLOSED`.

It is a heuristic: the detector finds frontal faces of about 80 px and more at the
working size (profiles, small faces in a crowd and faces behind sunglasses are not
seen, so they are never flagged), and the landmarks of a squinting or laughing face
can read as closed. bench/eyes_bench.py measures it.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FACE_SIZE = 1024  # long side, pixels, at which faces are searched
EAR_CLOSED = 0.20  # a face whose eyes' mean aspect ratio is below this looks closed-eyed
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
_RIGHT_EYE, _LEFT_EYE = slice(36, 42), slice(42, 48)  # the 68-point scheme's eye contours


class FaceModelUnavailable(RuntimeError):
    """The face detector or its landmark model is not installed; the message says which package."""


@dataclass(frozen=True)
class EyeReport:
    ratios: tuple[float, ...]  # each face's mean eye aspect ratio

    @property
    def faces(self) -> int:
        return len(self.ratios)

    @property
    def closed(self) -> int:
        return sum(r < EAR_CLOSED for r in self.ratios)

    @property
    def share_closed(self) -> float | None:
        """Share of the faces found whose eyes look closed; None when no face was found."""
        return self.closed / self.faces if self.ratios else None


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Six eye-contour points [6,2] (corner, two upper lid, corner, two lower lid) -> openness."""
    p = np.asarray(points, dtype=np.float64)
    width = np.linalg.norm(p[0] - p[3])
    if width < 1e-6:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def _landmarks_path() -> Path:
    # found without importing the package: its __init__ needs pkg_resources, gone from new setuptools
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelUnavailable("closed eyes need the face_recognition_models package (pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARKS_FILE
    if not path.is_file():
        raise FaceModelUnavailable(f"{path} is missing: reinstall face_recognition_models")
    return path


@lru_cache(maxsize=1)
def _models():
    try:
        import dlib
    except ImportError:
        raise FaceModelUnavailable("closed eyes need dlib (the dlib-bin package: pip install -r requirements.txt)") from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_landmarks_path())), threading.Lock()


def unavailable_reason() -> str | None:
    """None when closed eyes can be checked here, else why not (for the UI, the CLI and JSON)."""
    try:
        _models()
    except FaceModelUnavailable as exc:
        return str(exc)
    return None


def eye_report(luma) -> EyeReport:
    """Faces and their eyes' openness in a luma image (PIL "L" or uint8 [H,W]), shrunk to
    :data:`FACE_SIZE` on the long side first. Raises FaceModelUnavailable."""
    from PIL import Image

    detector, predictor, lock = _models()
    image = luma if isinstance(luma, Image.Image) else Image.fromarray(np.asarray(luma, dtype=np.uint8))
    image = image.convert("L")
    scale = min(1.0, FACE_SIZE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    pixels = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    ratios = []
    with lock:  # dlib's objects are not documented as safe for concurrent calls
        for face in detector(pixels, 0):
            shape = predictor(pixels, face)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)
            ratios.append((eye_aspect_ratio(points[_RIGHT_EYE]) + eye_aspect_ratio(points[_LEFT_EYE])) / 2.0)
    return EyeReport(tuple(ratios))


def eye_landmarks(luma) -> list[np.ndarray]:
    """Each detected face's 68 landmarks [68,2] at the image's own scale (for the benchmark's
    closed-eye variants and tests)."""
    from PIL import Image

    detector, predictor, lock = _models()
    pixels = np.ascontiguousarray(np.asarray(luma.convert("L") if isinstance(luma, Image.Image) else luma, dtype=np.uint8))
    out = []
    with lock:
        for face in detector(pixels, 0):
            shape = predictor(pixels, face)
            out.append(np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64))
    return out
