"""Importing photos: preview a source, then copy it into the store with its scores.

Two steps, so a person can look and correct before anything is written:

1. :func:`scan_source` (or the event generator :func:`scan_source_events`)
   reads a folder, a zip, or a list of uploaded files; every file is decoded
   once to prove it is usable, its score is read from its name, and a
   thumbnail is cached on the way. Unusable files are listed with a reason.
2. :func:`import_into_store` copies the items into ``data/`` with their
   (possibly edited) scores, yielding ``Progress`` and ``Finished(ImportReport)``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, Sequence

from workbench.dataset.names import natural_key
from workbench.dataset.ratings import StarMapping, source_order
from workbench.dataset.scores import ScoreError, ScoreRule, format_score
from workbench.dataset.store import ScoreStore, sanitize_name, unique_name
from workbench.dataset.xmp import read_rating, sidecar_paths
from workbench.events import NEVER_STOP, Finished, Progress, StopFlag, drain
from workbench.images import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    ImageError,
    content_hash,
    is_supported,
    load_image,
    read_info,
    thumbnail,
)

# Limits for zips, whose headers may lie about sizes (zip bombs).
MAX_MEMBER_BYTES = 512 * 1024**2
MAX_ZIP_TOTAL_BYTES = 8 * 1024**3
MAX_ZIP_MEMBERS = 100_000
_SILENT_ZIP_PREFIXES = ("__MACOSX/",)
# Where an imported label came from, as the Training data table says it (ScoreStore.label_sources)
SOURCE_FILE_NAME, SOURCE_RATING, SOURCE_TYPED = "file name", "star rating", "typed"
_MAIN_FORMATS = [e for e in (".jpg", ".png", ".webp", ".bmp", ".tiff", ".gif", ".heic") if e in SUPPORTED_EXTENSIONS]


@dataclass(frozen=True)
class Skipped:
    """A file that will not be imported; ``reason`` is for a person to read."""

    file: str
    reason: str
    same_as: str | None = None  # the same picture as this file of the same import, imported instead
    score: float | None = None  # a same-picture file's own score (for rewording ``reason`` after an edit)
    gave_score: bool = False  # its score went to ``same_as``, which had none


def same_picture_reason(kept: str, kept_score: float | None, score: float | None, gave_score: bool) -> str:
    """Why a file is skipped as the same picture as ``kept``, quoting ``kept_score`` as it is *now*
    (a preview's edit changes it after the scan), so the words never contradict what is saved."""
    reason = f"the same picture as {kept} in this import, which is imported instead (not copied twice)"
    if score is None:
        return reason
    if kept_score == score:
        return reason + (f"; its score {format_score(score)} goes to {kept}, which had none" if gave_score else "")
    if kept_score is None:
        return reason + f"; its score {format_score(score)} is not used: {kept} is imported unlabelled"
    return (reason + f"; scores {format_score(score)} vs {format_score(kept_score)}: "
            f"the first by name is kept, so {format_score(score)} is not used")


@dataclass(frozen=True)
class PreviewItem:
    """One importable image.

    ``name``: the file name it will get in ``data/`` (made unique on import);
    ``origin``: where it came from, as shown to the person; ``source``: a
    readable path (inside the staging folder for zips); ``score``: parsed from
    the name or None, with ``note`` saying why; ``thumbnail``: cached preview.
    """

    name: str
    origin: str
    source: Path
    score: float | None
    note: str | None
    width: int
    height: int
    format: str
    thumbnail: Path | None = None
    from_rating: bool = False  # the score came from a star rating (``note`` says which and where)
    original: str = ""  # its own file name in the source (a zip member's without its folders); "" = ``name``


@dataclass
class ImportPreview:
    items: list[PreviewItem]
    skipped: list[Skipped]
    staging_dir: Path | None = None  # holds extracted zip members; see cleanup()

    @property
    def scores(self) -> dict[str, float | None]:
        return {item.name: item.score for item in self.items}

    def cleanup(self) -> None:
        """Delete the extracted zip members (after the import, or when a new source is chosen)."""
        if self.staging_dir is not None:
            shutil.rmtree(self.staging_dir, ignore_errors=True)


@dataclass
class ImportReport:
    imported: int = 0
    labelled: int = 0
    from_ratings: int = 0  # of ``labelled``: scores taken from XMP/EXIF star ratings
    unlabelled: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (origin, saved as)
    notes: list[tuple[str, str]] = field(default_factory=list)    # (saved as, why it has no score)
    saved: list[str] = field(default_factory=list)                # names written into data/
    already: int = 0  # of ``skipped``: the same picture is in the training set already

    @property
    def same_in_source(self) -> int:
        """Of ``skipped``: the same picture as another file of this import, which was imported instead."""
        return sum(s.same_as is not None for s in self.skipped)

    def to_json(self) -> dict:
        """The CLI contract: imported, labelled, unlabelled, skipped[{file, reason}] (+ renamed, notes)."""
        return {
            "imported": self.imported,
            "labelled": self.labelled,
            "from_ratings": self.from_ratings,
            "unlabelled": self.unlabelled,
            "skipped": [{"file": s.file, "reason": s.reason, **({"same_as": s.same_as} if s.same_as else {})}
                        for s in self.skipped],
            "renamed": [{"file": a, "saved_as": b} for a, b in self.renamed],
            "notes": [{"file": a, "note": b} for a, b in self.notes],
        }


# ----------------------------------------------------------------- sources
@dataclass(frozen=True)
class _Candidate:
    origin: str
    name: str
    path: Path
    sidecars: tuple[Path, ...] = ()  # XMP sidecars that came with it (the ratings source)
    original: str = ""  # the file's own name where it came from; a saved name that differs is a rename


def _folder_candidates(folder: Path, skipped: list[Skipped]) -> list[_Candidate]:
    """Files directly inside ``folder`` (sorted); everything else is reported."""
    out = []
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    names = [e.name for e in entries if not e.is_symlink()]
    for entry in entries:
        if entry.name.startswith(".") or _is_sidecar(entry.name):
            continue  # .DS_Store, ._ resource forks, editor files; sidecars are read with their photo
        if entry.is_symlink():
            skipped.append(Skipped(entry.name, "a symbolic link (links are not followed)"))
        elif entry.is_dir():
            skipped.append(Skipped(entry.name + "/", "a folder (only the files directly inside are imported)"))
        elif not is_supported(entry.name):
            skipped.append(Skipped(entry.name, _unsupported_reason(entry.name)))
        else:
            out.append(_Candidate(entry.name, entry.name, Path(entry.path),
                                  tuple(sidecar_paths(Path(entry.path), names)), entry.name))
    return out


def _is_sidecar(name: str) -> bool:
    return name.lower().endswith(".xmp")


def _sidecar_keys(key: str) -> tuple[str, str]:
    """Where the sidecars of the photo at ``key`` (a name or a path inside a zip) would be, folded."""
    stem = key.rpartition(".")[0] if "." in key.rpartition("/")[2] else key
    return (key + ".xmp").casefold(), (stem + ".xmp").casefold()


def _unsupported_reason(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if not suffix:
        return "no file extension, so not recognised as an image"
    return f"not an image file ({suffix}); supported: {', '.join(sorted(e.lstrip('.') for e in _MAIN_FORMATS))}"


def _zip_candidates(archive: Path, staging: Path, skipped: list[Skipped], label: str) -> list[_Candidate]:
    """Extract the zip's images into ``staging`` under flat, sanitised, unique names.

    Member paths are never used as paths (no zip-slip); sizes are checked while
    reading, since a zip header may lie; nested zips are not opened.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        skipped.append(Skipped(label, f"not a readable zip archive ({exc})"))
        return []
    out, taken, total = [], set(), 0
    sidecars: dict[str, zipfile.ZipInfo] = {}
    members_of: dict[int, str] = {}
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            skipped.append(Skipped(label, f"the zip holds {len(members)} entries, more than {MAX_ZIP_MEMBERS}"))
            return []
        for info in members:
            member = _member_name(info)  # every check below runs on this name, however it was decoded
            where = f"{label}:{member}"
            parts = PurePosixPath(member.replace("\\", "/")).parts
            if info.is_dir() or member.startswith(_SILENT_ZIP_PREFIXES) or (parts and parts[-1].startswith(".")):
                continue
            if member.startswith(("/", "\\")) or ".." in parts or (len(member) > 1 and member[1] == ":"):
                skipped.append(Skipped(where, "unsafe path inside the zip (absolute or '..'); not extracted"))
                continue
            if info.flag_bits & 0x1:
                skipped.append(Skipped(where, "encrypted inside the zip; not extracted"))
                continue
            if _is_sidecar(member) and info.file_size <= MAX_MEMBER_BYTES:
                sidecars[member.replace("\\", "/").casefold()] = info
                continue
            if not is_supported(member):
                skipped.append(Skipped(where, _unsupported_reason(member)))
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                skipped.append(Skipped(where, f"{info.file_size / 1e6:.0f} MB is over the "
                                              f"{MAX_MEMBER_BYTES / 1e6:.0f} MB limit per file"))
                continue
            name = unique_name(sanitize_name(member), taken)
            taken.add(name.casefold())
            target = staging / name
            try:
                written = _extract_capped(zf, info, target, min(MAX_MEMBER_BYTES, MAX_ZIP_TOTAL_BYTES - total))
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as exc:
                target.unlink(missing_ok=True)
                skipped.append(Skipped(where, f"damaged inside the zip ({exc})"))
                continue
            if written is None:
                target.unlink(missing_ok=True)
                skipped.append(Skipped(where, "larger than its zip header says, or over the size limit; "
                                              "not extracted (possible zip bomb)"))
                continue
            total += written
            members_of[len(out)] = member.replace("\\", "/")
            out.append(_Candidate(where, name, target, (), parts[-1] if parts else member))
        for i, member in members_of.items():  # sidecars go next to their photo's staged copy
            found = []
            for n, key in enumerate(_sidecar_keys(member)):
                if key in sidecars and not found:
                    target = staging / f"{out[i].name}.{n}.xmp"
                    try:
                        if _extract_capped(zf, sidecars[key], target, MAX_MEMBER_BYTES) is not None:
                            found.append(target)
                    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError):
                        target.unlink(missing_ok=True)
            out[i] = _Candidate(out[i].origin, out[i].name, out[i].path, tuple(found), out[i].original)
    return out


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its author wrote it.

    Without the UTF-8 flag (bit 0x800) zipfile decodes names as cp437, but Linux ``zip`` and
    most tools write UTF-8 bytes without setting it: read them as UTF-8 when they are valid."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:  # really cp437 (old Windows tools)
        return info.filename


def _extract_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, cap: int) -> int | None:
    written = 0
    with zf.open(info) as src, open(target, "xb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > cap:
                return None
            dst.write(chunk)
    return written


def _gather(source, staging: Path | None, skipped: list[Skipped]) -> tuple[list[_Candidate], Path | None]:
    def staging_dir() -> Path:
        nonlocal staging
        if staging is None:
            staging = Path(tempfile.mkdtemp(prefix="workbench-import-"))
        return staging

    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return _folder_candidates(path, skipped), staging
        if path.is_file() and path.suffix.lower() == ".zip":
            return _zip_candidates(path, staging_dir(), skipped, path.name), staging
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        source = [path]
    candidates: list[_Candidate] = []
    uploaded_sidecars: dict[str, Path] = {}
    uploaded: list[int] = []
    for upload in source:  # uploaded files: paths, or (original name, path) pairs
        name, path = (upload if isinstance(upload, tuple) else (Path(upload).name, upload))
        path = Path(path)
        if _is_sidecar(name):
            uploaded_sidecars[Path(name).name.casefold()] = path
        elif name.lower().endswith(".zip"):
            sub = staging_dir() / f"zip-{len(candidates)}-{sanitize_name(name)}"
            sub.mkdir()
            candidates += _zip_candidates(path, sub, skipped, name)
        elif not is_supported(name):
            skipped.append(Skipped(name, _unsupported_reason(name)))
        else:
            uploaded.append(len(candidates))
            candidates.append(_Candidate(name, sanitize_name(name), path, (), name.replace("\\", "/").rsplit("/", 1)[-1]))
    for i in uploaded:  # a photo uploaded beside its sidecar
        c = candidates[i]
        found = tuple(uploaded_sidecars[k] for k in _sidecar_keys(Path(c.origin).name) if k in uploaded_sidecars)
        candidates[i] = _Candidate(c.origin, c.name, c.path, found[:1], c.original)
    return candidates, staging


# --------------------------------------------------------------- scanning
def scan_source_events(
    source, *, pattern: str | None = "", score_min: float = 0.0, score_max: float = 100.0,
    max_pixels: int = DEFAULT_MAX_PIXELS, staging_dir: str | Path | None = None,
    thumbnails_dir: str | Path | None = None, thumbnail_size: int = 256,
    stop: StopFlag = NEVER_STOP, workers: int | None = None,
    ratings: str = "auto", star_mapping: StarMapping | None = None,
) -> Iterator[Progress | Finished]:
    """Preview ``source`` (folder, .zip, or uploaded paths) as events ending with ``Finished(ImportPreview)``.

    ``ratings``: "auto" (star ratings from XMP/EXIF, then the file name),
    "xmp" or "filename"; ``star_mapping`` turns stars into scores (default:
    the middle of each fifth of the range; rejected photos get the minimum).
    Raises ``ScoreError`` for an invalid ``pattern`` and ``FileNotFoundError``
    for a missing source before any work is done.
    """
    rule = ScoreRule.compile(pattern, score_min, score_max)
    order = source_order(ratings)
    mapping = star_mapping or StarMapping.build(score_min, score_max)
    skipped: list[Skipped] = []
    candidates, staging = _gather(source, Path(staging_dir) if staging_dir else None, skipped)
    taken: set[str] = set()
    for i, candidate in enumerate(candidates):  # uploads and zips may repeat a name: keep each distinct
        name = unique_name(candidate.name, taken)
        taken.add(name.casefold())
        if name != candidate.name:
            candidates[i] = _Candidate(candidate.origin, name, candidate.path, candidate.sidecars, candidate.original)
    yield Progress(0, len(candidates), "checking images")

    def inspect(candidate: _Candidate) -> PreviewItem | Skipped:
        try:
            info = read_info(candidate.path, max_pixels)
            image = load_image(candidate.path, max_pixels=max_pixels, min_size=(thumbnail_size, thumbnail_size))
            thumb = (thumbnail(candidate.path, thumbnail_size, thumbnails_dir, image=image)
                     if thumbnails_dir is not None else None)
        except ImageError as exc:
            return Skipped(candidate.origin, _without_name(str(exc), candidate.path.name))
        except OSError as exc:
            return Skipped(candidate.origin, f"cannot be read ({exc.strerror or exc})")
        score, note, from_rating = None, None, False
        for source in order:  # the first source that gives a score wins; its note says where from
            if source == "ratings":
                score, note = mapping.score(read_rating(candidate.path, candidate.sidecars))
                if note == "skip":
                    return Skipped(candidate.origin, "rejected in the photo manager (ratings.rejected: skip)")
                from_rating = score is not None
            else:
                parsed = rule.parse(candidate.name)
                score, note = parsed.score, parsed.note if note is None else f"{note}; {parsed.note}"
            if score is not None:
                break
        return PreviewItem(candidate.name, candidate.origin, candidate.path, score, note,
                           info.width, info.height, info.format, thumb, from_rating, candidate.original)

    items: list[PreviewItem] = []
    started = time.monotonic()
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes without the GIL
        for done, result in enumerate(pool.map(inspect, candidates), 1):
            (items if isinstance(result, PreviewItem) else skipped).append(result)
            if stop.is_set():
                pool.shutdown(wait=False, cancel_futures=True)
                yield Finished(ImportPreview(_one_of_each(items, skipped), skipped, staging), stopped=True)
                return
            if done % 8 == 0 or done == len(candidates):
                yield _progress(done, len(candidates), started, "checking images")
    yield Finished(ImportPreview(_one_of_each(items, skipped), skipped, staging))


def _one_of_each(items: list[PreviewItem], skipped: list[Skipped]) -> list[PreviewItem]:
    """``items`` with byte-identical files (the same picture twice in one source) imported once.

    The rule: of the same picture, the file whose name comes first (in the preview's natural order)
    is imported; it keeps its own score, or takes the first score among the others when it has none.
    Each other file is moved to ``skipped`` naming the one imported, and its score when that differs,
    so no score is dropped silently. Only files whose sizes collide are hashed (as ``copies_of``).
    """
    by_size: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        try:
            by_size.setdefault(os.path.getsize(item.source), []).append(i)
        except OSError:
            continue  # the store reports an unreadable file on saving
    by_digest: dict[str, list[int]] = {}
    for group in by_size.values():
        for i in group if len(group) > 1 else ():
            try:
                by_digest.setdefault(content_hash(items[i].source), []).append(i)
            except OSError:
                continue
    dropped: set[int] = set()
    for same in by_digest.values():
        if len(same) < 2:
            continue
        same.sort(key=lambda i: natural_key(items[i].name))
        kept = items[same[0]]
        for i in same[1:]:
            other = items[i]
            gave = kept.score is None and other.score is not None
            if gave:
                kept = replace(kept, score=other.score, from_rating=other.from_rating,
                               note=f"score from {other.name}, the same picture")
            skipped.append(Skipped(other.origin, same_picture_reason(kept.name, kept.score, other.score, gave),
                                   same_as=kept.name, score=other.score, gave_score=gave))
            dropped.add(i)
        items[same[0]] = kept
    return [item for i, item in enumerate(items) if i not in dropped]


def scan_source(source, **options) -> ImportPreview:
    """:func:`scan_source_events` run to the end; same arguments."""
    return drain(scan_source_events(source, **options))


def _without_name(message: str, name: str) -> str:
    """ImageError messages start with the file name; the report already shows it."""
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _progress(done: int, total: int, started: float, message: str) -> Progress:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = done / elapsed
    return Progress(done, total, message, rate, (total - done) / rate if rate else None)


# -------------------------------------------------------------- importing
def import_into_store(
    items: Sequence[PreviewItem], store: ScoreStore, *, scores: Mapping[str, object] | None = None,
    stop: StopFlag = NEVER_STOP, chunk_size: int = 32, skipped: Sequence[Skipped] = (),
) -> Iterator[Progress | Finished]:
    """Copy ``items`` into the store; yields ``Progress`` and ends with ``Finished(ImportReport)``.

    ``scores`` overrides parsed scores by item name (None or "" = unlabelled);
    every override is validated first, so a bad one raises ``ScoreError`` and
    nothing is copied. ``skipped`` (from the preview) is carried into the report.
    Existing files are never overwritten and identical content is not copied twice.
    """
    final_scores: dict[str, float | None] = {item.name: item.score for item in items}
    for name, value in (scores or {}).items():
        if name not in final_scores:
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            final_scores[name] = None
            continue
        try:
            final_scores[name] = store.validate_score(value)
        except ScoreError as exc:
            raise ScoreError(f"{name}: {exc}") from None
    report = ImportReport(skipped=list(skipped))
    started, total = time.monotonic(), len(items)
    yield Progress(0, total, "copying into the training set")
    for start in range(0, total, chunk_size):
        if stop.is_set():
            yield Finished(report, stopped=True)
            return
        chunk = items[start:start + chunk_size]
        results = store.add_images([(item.source, item.name, final_scores[item.name]) for item in chunk])
        sources = {}
        for item, result in zip(chunk, results):
            _account(report, item, result, final_scores[item.name], store)
            score = final_scores[item.name]
            where = result.filename if result.copied else result.duplicate_of if result.score_applied else None
            if where and not result.error and score is not None:
                sources[where] = (label_source(item, score), score)
        store.record_sources(sources)  # after the rows: a kill in between loses a word, never a label
        yield _progress(min(start + chunk_size, total), total, started, "copying into the training set")
    yield Finished(report)


def label_source(item: PreviewItem, score: float) -> str:
    """Where an imported label came from, in words: the photo manager's stars, the file name, or
    typed (the person changed the score in the preview, or gave it while culling)."""
    if item.score != score:
        return SOURCE_TYPED
    return SOURCE_RATING if item.from_rating else SOURCE_FILE_NAME


def _account(report: ImportReport, item: PreviewItem, result, score: float | None, store: ScoreStore) -> None:
    if result.error:
        report.skipped.append(Skipped(item.origin, result.error))
        return
    if not result.copied and result.duplicate_of in report.saved:  # a caller that passed the same picture twice
        reason = f"the same picture as {result.duplicate_of}, copied just before in this import (not copied twice)"
        if result.score_applied:
            reason += f"; its score {format_score(score)} was saved there"
        elif score is not None and score != (kept := store.get(result.duplicate_of).score):
            reason += f"; scores {format_score(score)} vs {format_score(kept)}: the first is kept"
        report.skipped.append(Skipped(item.origin, reason, same_as=result.duplicate_of))
        return
    if not result.copied:
        report.already += 1
        reason = f"the same picture is already in the training set as {result.duplicate_of} (not copied twice)"
        if result.score_applied:
            reason += f"; its score {format_score(score)} was saved there"
        report.skipped.append(Skipped(item.origin, reason))
        return
    report.imported += 1
    report.saved.append(result.filename)
    # A rename is a saved name unlike the file's own: never the "upload.zip:" or folder part of its origin
    if result.filename != (item.original or item.name):
        report.renamed.append((item.origin, result.filename))
    if score is None:
        report.unlabelled += 1
        if item.note and item.score is None:
            report.notes.append((result.filename, item.note))
    else:
        report.labelled += 1
        if item.from_rating and item.score == score:  # not retyped by the person
            report.from_ratings += 1
