"""Star ratings in photo metadata: read what photo managers wrote, write sidecars they read.

Reading and writing go through ``pyexiv2``, which ships its own exiv2 in the
wheel (no system install). Files are read as bytes and written back with an
atomic replace, so a crash never leaves half a sidecar, and an image file is
only ever written when embedding is asked for explicitly.

Where a rating can be (first found wins, :data:`RATING_SOURCES` says the order):

1. an XMP sidecar named like the photo plus ``.xmp`` (``IMG_1.jpg.xmp``:
   darktable, digiKam), then one named like its stem (``IMG_1.xmp``: Lightroom,
   Capture One, Bridge, Photo Mechanic); the first is specific to one file,
   the second may be shared by a raw and its JPEG;
2. XMP embedded in the image (JPEG, TIFF, HEIC, DNG, ...), read by exiv2, or
   else found as a plain XMP packet in the file (HEIC written by exiftool,
   whose XMP item exiv2 does not find);
3. the EXIF ``Rating`` tag (0x4746), else ``RatingPercent`` (0x4749), as
   Windows and some cameras write them. IPTC-IIM defines no rating field, so
   none is read from it.

``xmp:Rating`` is 0–5 stars, 0 meaning "not rated" and −1 "rejected"; a pick
flag of "rejected" (``xmpDM:pick`` = −1 from Lightroom, ``digiKam:PickLabel``
= 1) also marks the photo rejected. The colour label (``xmp:Label``) is read
and reported but does not change the score.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from workbench.errors import BadInput
from workbench.fsutil import atomic_write_bytes

NAMESPACE = "http://ns.aesthetic-workbench.org/1.0/"
PREFIX = "aesthetic"
SCORE_KEY = f"Xmp.{PREFIX}.score"
RATING_SOURCES = ("XMP sidecar (photo.jpg.xmp, then photo.xmp)", "XMP embedded in the photo",
                  "EXIF Rating / RatingPercent")
MAX_METADATA_FILE = 64 * 1024**2  # a sidecar larger than this is not a sidecar

_EMPTY_PACKET = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>\n')
_lock = threading.Lock()  # exiv2's namespace registry and XMP parser are process-global
_registered = False


class MetadataError(BadInput):
    """A sidecar or image whose metadata cannot be read or written; the message says which and why."""


@dataclass(frozen=True)
class Rating:
    """What a photo manager recorded: ``stars`` 1–5 (None: not rated), ``rejected``, ``label``, and where."""

    stars: int | None
    rejected: bool
    label: str | None
    source: str

    @property
    def usable(self) -> bool:
        return self.rejected or self.stars is not None


def _pyexiv2():
    global _registered
    import pyexiv2  # imported late: the wheel loads a shared library

    if not _registered:
        pyexiv2.set_log_level(4)  # exiv2 warnings about odd tags are not the person's concern
        pyexiv2.registerNs(NAMESPACE, PREFIX)
        _registered = True
    return pyexiv2


def _read(data: bytes, what: str) -> tuple[dict, dict]:
    with _lock:
        exiv = _pyexiv2()
        try:
            image = exiv.ImageData(data)
        except Exception as exc:  # exiv2 raises RuntimeError with its own text
            raise MetadataError(f"{what}: metadata cannot be read ({exc})") from None
        try:
            xmp = image.read_xmp()
            try:
                exif = image.read_exif()
            except Exception:  # a sidecar has no EXIF block of its own
                exif = {}
            return xmp, exif
        finally:
            image.close()


def _read_file(path: Path) -> tuple[dict, dict]:
    if path.stat().st_size > MAX_METADATA_FILE and path.suffix.lower() == ".xmp":
        raise MetadataError(f"{path.name}: over {MAX_METADATA_FILE >> 20} MB, not read as a sidecar")
    return _read(path.read_bytes(), path.name)


def sidecar_paths(image: Path, existing: Iterable[str] | None = None) -> list[Path]:
    """The sidecars of ``image`` that exist, darktable's ``name.ext.xmp`` before ``stem.xmp``.

    ``existing``: the file names in the folder (any case), when already listed.
    """
    folder = image.parent
    names = {n.casefold(): n for n in (existing if existing is not None else _listdir(folder))}
    found = []
    for wanted in (image.name + ".xmp", image.stem + ".xmp"):
        actual = names.get(wanted.casefold())
        if actual is not None and (folder / actual).is_file():
            found.append(folder / actual)
    return found


def _listdir(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir()]
    except OSError:
        return []


def _number(value) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _rating_from(xmp: Mapping, exif: Mapping, source: str) -> Rating:
    stars: int | None = None
    rejected = False
    value = _number(xmp.get("Xmp.xmp.Rating"))
    if value is None:
        value = _number(exif.get("Exif.Image.Rating"))
        if value is None and (percent := _number(exif.get("Exif.Image.RatingPercent"))) is not None:
            value = round(percent / 20) if percent > 0 else 0  # Windows: 1,25,50,75,99 -> 1..5 stars
    if value is not None:
        if value < 0:
            rejected = True
        elif value >= 0.5:
            stars = min(5, max(1, round(value)))
    if _number(xmp.get("Xmp.xmpDM.pick")) == -1 or _number(xmp.get("Xmp.digiKam.PickLabel")) == 1:
        rejected = True
    label = xmp.get("Xmp.xmp.Label")
    return Rating(stars, rejected, str(label) if label else None, source)


def read_rating(image: str | Path, sidecars: Iterable[Path] | None = None) -> Rating | None:
    """The first usable rating of ``image`` in :data:`RATING_SOURCES` order, or None.

    ``sidecars``: the sidecar files to look at (default: found next to the
    image). Unreadable metadata is skipped, never fatal: the photo still imports.
    """
    image = Path(image)
    for sidecar in (sidecars if sidecars is not None else sidecar_paths(image)):
        try:
            rating = _rating_from(*_read_file(sidecar), f"XMP sidecar {sidecar.name}")
        except (MetadataError, OSError):
            continue
        if rating.usable:
            return rating
    try:
        data = image.read_bytes()
    except OSError:
        return None
    try:
        xmp, exif = _read(data, image.name)
    except MetadataError:
        xmp, exif = {}, {}
    if not xmp and (packet := _xmp_packet(data)):  # e.g. HEIC written by exiftool, which exiv2 does not find
        try:
            xmp = _read(packet, image.name)[0]
        except MetadataError:
            pass
    embedded = _rating_from(xmp, {}, "XMP embedded in the photo")
    if embedded.usable:
        return embedded
    from_exif = _rating_from({}, exif, "EXIF rating")
    return from_exif if from_exif.usable else None


def _xmp_packet(data: bytes) -> bytes | None:
    """The raw XMP packet stored uncompressed anywhere in a file, as a sidecar would hold it."""
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    return data[start:end + len(b"</x:xmpmeta>")] if start >= 0 and end > start else None


def read_sidecar(path: str | Path) -> dict:
    """Every XMP tag of a sidecar (``{"Xmp.xmp.Rating": "4", ...}``); for tests and the curious."""
    return _read_file(Path(path))[0]


def _merged(data: bytes, tags: Mapping[str, str], what: str) -> bytes:
    with _lock:
        exiv = _pyexiv2()
        try:
            image = exiv.ImageData(data)
        except Exception as exc:
            raise MetadataError(f"{what}: cannot be read to add the rating ({exc}); left as it was") from None
        try:
            image.modify_xmp(dict(tags))
            return image.get_bytes()
        except Exception as exc:
            raise MetadataError(f"{what}: the rating cannot be written ({exc}); left as it was") from None
        finally:
            image.close()


def rating_tags(stars: int, score: float | None) -> dict[str, str]:
    """The tags written: ``xmp:Rating`` (0–5, −1 rejected) and the exact score in our namespace."""
    if not -1 <= int(stars) <= 5:
        raise BadInput(f"{stars} stars: a rating is -1 (rejected) to 5")
    tags = {"Xmp.xmp.Rating": str(int(stars))}
    if score is not None:
        tags[SCORE_KEY] = f"{float(score):.6g}"
    return tags


def write_rating(image: str | Path, stars: int, score: float | None = None, *, new_sidecar: str = "stem",
                 embed: bool = False, extra: Mapping[str, str] | None = None) -> list[Path]:
    """Record ``stars`` (and ``score``) for ``image``; returns the files written.

    Every existing sidecar of the photo is updated in place, keeping all its
    other tags; when there is none, one is created: ``stem`` -> ``IMG_1.xmp``
    (Lightroom, Capture One, Bridge), ``name`` -> ``IMG_1.jpg.xmp`` (darktable,
    digiKam). The image itself is written only with ``embed=True``. ``extra``: more XMP tags
    to set alongside (the cull writes its pick flag, ``Xmp.xmpDM.pick``, this way).
    """
    image = Path(image)
    if new_sidecar not in ("stem", "name"):
        raise BadInput(f"new_sidecar must be 'stem' or 'name', not {new_sidecar!r}")
    tags = {**rating_tags(stars, score), **(extra or {})}
    if not image.is_file():
        raise MetadataError(f"{image}: no such photo, so no sidecar is written for it")
    targets = sidecar_paths(image) or [image.with_name((image.stem if new_sidecar == "stem" else image.name) + ".xmp")]
    written = []
    for sidecar in targets:
        current = sidecar.read_bytes() if sidecar.exists() else _EMPTY_PACKET
        atomic_write_bytes(sidecar, _merged(current, tags, sidecar.name))
        written.append(sidecar)
    if embed:
        atomic_write_bytes(image, _merged(image.read_bytes(), tags, image.name))
        written.append(image)
    return written
