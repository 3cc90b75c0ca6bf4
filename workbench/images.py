"""Safe, fast image loading: every photo a person may bring, as an RGB PIL image.

- Formats: JPEG, PNG, WebP, BMP, TIFF, GIF (first frame), HEIC/HEIF (pillow-heif).
- The EXIF orientation is applied, so a portrait shot from a phone stands up.
- Palette, RGBA/LA (composited onto white), CMYK, 16-bit, float and greyscale
  images all come out as 8-bit RGB.
- A corrupt, truncated, empty or non-image file, or one over the pixel limit
  (decompression bomb), raises :class:`ImageError` whose message a person can
  read; callers skip the file and carry on.
- ``min_size`` lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale by the codec
  itself (``Image.draft``), several times faster than decoding 12 megapixels
  and throwing most of them away.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.errors import WorkbenchError
from workbench.fsutil import atomic_write_bytes, cached_file_sha256

try:  # HEIC/HEIF phone photos; registered once for the whole process
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-heif is in requirements.txt
    HEIF_AVAILABLE = False

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    | ({".heic", ".heif", ".hif"} if HEIF_AVAILABLE else set())
)
# Pillow format -> the suffix a file of that format is saved under when its own name has none we list
FORMAT_SUFFIX: dict[str, str] = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
                                 "TIFF": ".tif", "GIF": ".gif", "HEIF": ".heic"}
DEFAULT_MAX_PIXELS = 200_000_000
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # width and height swap after EXIF rotation

# Our own limit (Settings.max_pixels) is checked explicitly with a readable
# message. Pillow's global guard stays on as a backstop for code that opens
# images directly; raised to our default so it does not warn first.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, DEFAULT_MAX_PIXELS)

ImageSource = Union[str, Path, bytes, BinaryIO]


class ImageError(WorkbenchError):
    """An image that cannot be used; ``str(exc)`` says why, in plain words."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str


def is_supported(name: str | Path) -> bool:
    return Path(name).suffix.lower() in SUPPORTED_EXTENSIONS


def _label(source: ImageSource, name: str | None = None) -> str:
    """What a message calls the file: the name given (an upload's), else the path's name."""
    if name:
        return name
    return Path(source).name if isinstance(source, (str, Path)) else "the uploaded image"


def _open(source: ImageSource, max_pixels: int, name: str | None = None) -> Image.Image:
    """Open (header only) and check size; raises ImageError."""
    label = _label(source, name)
    if isinstance(source, (str, Path)):
        try:
            size = os.path.getsize(source)
        except OSError as exc:
            raise ImageError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
        if size == 0:
            raise ImageError(f"{label}: the file is empty (0 bytes)")
    elif isinstance(source, bytes):
        if not source:
            raise ImageError(f"{label}: the file is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        image = Image.open(source)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not an image, or a format this workbench cannot read") from exc
    except Image.DecompressionBombError as exc:  # Pillow's backstop fired before our own check
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise ImageError(f"{label}: {size}, over the limit of {max_pixels / 1e6:.0f} megapixels "
                         f"(refused as a possible decompression bomb)") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{label}: the file is damaged and cannot be opened ({exc})") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise ImageError(f"{label}: the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise ImageError(
            f"{label}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} megapixels (refused as a possible decompression bomb)"
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own conversion clips 16-bit values at 255: scale instead.
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or pixels.max(initial=0) > 255) else 255.0
        if mode == "F" and pixels.max(initial=0) <= 1.0:
            top = 1.0
        grey = np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a malformed EXIF block must not lose the photo itself
        return 1


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; the same object when there is nothing to do (no copy)."""
    if _orientation(image) in range(2, 9):
        try:
            return ImageOps.exif_transpose(image)
        except Exception:
            return image
    return image


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Image.Image:
    """Decode ``source`` (path, bytes or binary file) into an RGB image, EXIF orientation applied.

    ``min_size=(w, h)``: the caller will shrink the image to about this size, so a
    JPEG much larger may be decoded at a reduced scale; the result is still at
    least ``w`` x ``h`` pixels (after rotation) unless the original is smaller.
    Raises :class:`ImageError` with a readable reason that names the file (``name``
    for bytes, e.g. an upload's file name).
    """
    label = _label(source, name)
    image = _open(source, max_pixels, name)
    try:
        if min_size is not None and image.format == "JPEG":
            want_w, want_h = min_size
            if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
                want_w, want_h = want_h, want_w
            image.draft("RGB", (int(want_w), int(want_h)))
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
            reason = "the file is truncated" if "truncated" in str(exc) else f"the file is damaged ({exc})"
            raise ImageError(f"{label}: {reason}") from exc
        result = _to_rgb(_upright(image))
    except BaseException:
        image.close()
        raise
    if result is image and getattr(image, "fp", None) is not None:
        result = image.copy()  # multi-frame files keep their file open; detach the pixels first
    if result is not image:
        image.close()
    return result


def load_luma(source: ImageSource, long_side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS,
              name: str | None = None) -> Image.Image:
    """Rec. 601 luma (mode "L"); a JPEG is decoded at a reduced scale whose sides both stay at
    least ``long_side`` (as ``load_image``'s ``min_size``; unless the original is smaller). A JPEG decodes only its Y channel: no chroma,
    no colour conversion, about a third less work than ``load_image(...).convert("L")``, whose
    values it matches but for rounding (Y is what JPEG stores). The EXIF orientation is not
    applied (what the caller measures, luma statistics, does not depend on it).
    Raises :class:`ImageError` like :func:`load_image`."""
    image = _open(source, max_pixels, name)
    if image.format != "JPEG":
        image.close()
        return load_image(source, max_pixels=max_pixels, name=name).convert("L")
    try:
        image.draft("L", (long_side, long_side))
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
            reason = "the file is truncated" if "truncated" in str(exc) else f"the file is damaged ({exc})"
            raise ImageError(f"{_label(source, name)}: {reason}") from exc
        result = image if image.mode == "L" else _to_rgb(image).convert("L")  # CMYK and grey JPEGs
    except BaseException:
        image.close()
        raise
    if result is image:
        result = image.copy()  # detach the pixels from the open file
    image.close()
    return result


def read_info(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> ImageInfo:
    """Size (after EXIF rotation) and format from the header only; cheap, proves little.

    Raises :class:`ImageError` for empty, non-image and over-limit files.
    """
    image = _open(source, max_pixels, name)
    try:
        fmt = image.format or "unknown"
        width, height = image.size
        orientation = _orientation(image)
    finally:
        image.close()
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(width, height, fmt)


def check_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> ImageInfo:
    """Fully decode (at reduced scale for JPEG) to prove the file is usable; returns its size.

    The size is the one after EXIF rotation. Raises :class:`ImageError`.
    """
    if isinstance(source, (bytes, bytearray)):
        source = bytes(source)
    elif not isinstance(source, (str, Path)):
        source = source.read()
    info = read_info(source, max_pixels, name)
    load_image(source, max_pixels=max_pixels, min_size=(64, 64), name=name)  # catches truncation and corruption
    return info


# --------------------------------------------------------------- thumbnails
def content_hash(path: str | Path) -> str:
    """SHA-256 of the file (the shared per-process cache in fsutil)."""
    return cached_file_sha256(path)


def thumbnail_path(digest: str, size: int, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / digest[:2] / f"{digest}_{int(size)}.jpg"


def make_thumbnail(image: Image.Image, size: int) -> bytes:
    """JPEG bytes of ``image`` shrunk so its longest side is at most ``size`` px."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def thumbnail(
    path: str | Path,
    size: int,
    cache_dir: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image: Image.Image | None = None,
) -> Path:
    """Path of a cached JPEG thumbnail (longest side ``size`` px) of the image at ``path``.

    Keyed by the file's content hash and ``size``: made once, reused by every
    copy of the same photo (the import preview and ``data/`` share them).
    ``image`` may pass an already decoded RGB image to avoid decoding twice.
    Raises :class:`ImageError` when the image cannot be read.
    """
    target = thumbnail_path(content_hash(path), size, cache_dir)
    if target.exists():
        return target
    if image is None:
        image = load_image(path, max_pixels=max_pixels, min_size=(size, size))
    atomic_write_bytes(target, make_thumbnail(image, size))
    return target
