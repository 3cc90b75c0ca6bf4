"""``ScoreStore``: the labelled photo set on disk (``data/`` + ``data/scores.csv``).

The disk is the source of truth. Every change is a read-modify-write of
``scores.csv`` done under a file lock and written atomically, so two browser
tabs, the CLI and the UI editing at once lose nothing, and a crash mid-write
leaves the previous file whole. Nothing is ever kept as a table in memory and
written back later.

Layout::

    data/scores.csv        filename,score[,text]   (rows for labelled or annotated images)
    data/scores.txt        legacy "name score" / "name,score" lines, read when scores.csv is absent
    data/<images>          the photos themselves (no sub-folders)
    data/.trash/<id>/...   deleted images; data/.trash/undo.json is the undo stack
    data/.hashes.json      content hashes keyed by name + size + mtime (for duplicates and fingerprints)
    data/.scores.lock      the lock file
    data/.import-journal.jsonl  rows of a batch being copied in (present only while it runs, or after a kill)
    data/.label_sources.json    where imported labels came from, {name: [source, score]} (see ``label_sources``)

File names are kept exactly as they are on disk (a leading space included):
``scores.csv`` is a record of names, not a spreadsheet, so no cell is altered.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping, Sequence

from PIL import Image

from workbench.dataset.hashes import HashIndex
from workbench.dataset.names import sanitize_name, unique_name
from workbench.dataset.scores import ScoreError, format_range, format_score, validate_score
from workbench.errors import NotFound
from workbench.fsutil import (
    UnsafePath,
    atomic_write_text,
    copy_file_exclusive,
    file_lock,
    safe_child,
)
from workbench.images import (
    DEFAULT_MAX_PIXELS,
    FORMAT_SUFFIX,
    SUPPORTED_EXTENSIONS,
    ImageError,
    check_image,
    content_hash,
    is_supported,
)

# The csv module refuses fields over 128 KiB; a long ``text`` annotation is legitimate.
csv.field_size_limit(2**31 - 1)

__all__ = ["ScoreStore", "Entry", "AddResult", "ScoreWrite", "ChangedElsewhere", "ScoreError", "UnsafePath",
           "sanitize_name", "unique_name"]

CSV_NAME = "scores.csv"
LEGACY_NAME = "scores.txt"
LOCK_NAME = ".scores.lock"
HASHES_NAME = ".hashes.json"
# Written ahead of each copy in a batch: a batch killed before its rows were saved
# leaves photos without scores; the next write under the lock gives them back.
JOURNAL_NAME = ".import-journal.jsonl"
# Where imported labels came from (file name, star rating, typed at import), with the score each had:
# a side file, so scores.csv keeps its columns and a set from before it needs nothing
SOURCES_NAME = ".label_sources.json"
TRASH_DIR = ".trash"
UNDO_NAME = "undo.json"
UNDO_DEPTH = 200  # deletions remembered for undo (older ones stay in the trash folder)
# Scores are shown to two decimals at most: a stored score this close to the one a tab showed is the same one
SAME_SCORE = 0.005


@dataclass(frozen=True)
class Entry:
    """One image of the set; ``score`` None means unlabelled."""

    filename: str
    score: float | None
    text: str | None = None


@dataclass(frozen=True)
class AddResult:
    """Where an added image ended up: ``copied`` False when identical content was already there."""

    filename: str
    copied: bool
    duplicate_of: str | None = None
    renamed_from: str | None = None
    score_applied: bool = False  # a duplicate that was unlabelled took the new score
    error: str | None = None     # the source could not be read; nothing was written


@dataclass(frozen=True)
class ChangedElsewhere:
    """A score someone saved over after another tab or the CLI had changed it since their tab showed it."""

    filename: str
    seen: float | None   # what the writer's tab showed (None: unlabelled)
    found: float | None  # what was stored when the write came, and was replaced
    saved: float         # the writer's new score: the latest intent, kept

    def sentence(self, named: bool = False) -> str:
        subject = f"{self.filename}'s score" if named else "This photo's score"
        return (f"{subject} had been changed elsewhere from {_shown(self.seen)} to {_shown(self.found)} "
                f"since you opened it; now {_shown(self.saved)}.")


@dataclass(frozen=True)
class ScoreWrite:
    """What :meth:`ScoreStore.write_scores` did: the stored scores, what each replaced (None: it was
    unlabelled), and the photos whose score had been changed elsewhere since the writer saw it."""

    saved: dict[str, float]
    replaced: dict[str, float | None]
    changed_elsewhere: list[ChangedElsewhere]

    def note(self, named: bool | None = None) -> str:
        """The sentences to show the writer ("" when nobody else had changed these scores); each names its
        photo when ``named`` (by default when several were saved)."""
        named = len(self.saved) > 1 if named is None else named
        return " ".join(change.sentence(named) for change in self.changed_elsewhere)


def _shown(score: float | None) -> str:
    return "unlabelled" if score is None else format_score(score)


@dataclass
class _Row:
    score: str  # as written in the file; "" when unlabelled
    text: str = ""




def _detected_format(source) -> str:
    """Pillow's name for the format of ``source`` (path or BytesIO), from its header."""
    if isinstance(source, io.BytesIO):
        source = io.BytesIO(source.getvalue())
    with Image.open(source) as image:
        return image.format or "unknown"


def supported_name(name: str, image_format: str) -> str:
    """``name`` with a suffix the data folder lists: its own when supported, else its format's.

    A photo uploaded as ``shot.dat`` (or with no suffix) that is really a JPEG
    becomes ``shot.jpg``; raises :class:`ImageError` when the format itself
    (ICO, AVIF, ...) is one the data folder does not list, since the copy would
    otherwise be invisible.
    """
    if is_supported(name):
        return name
    suffix = FORMAT_SUFFIX.get(image_format)
    if suffix not in SUPPORTED_EXTENSIONS:
        listed = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ImageError(f"{name}: {image_format} images are not supported in the training set "
                         f"(convert it to one of {listed})")
    stem = name.rpartition(".")[0] if "." in name else name
    return (stem or "image") + suffix


def _same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and abs(a - b) < SAME_SCORE


def _csv_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


class ScoreStore:
    """The labelled set in ``data_dir``; scores must lie in [score_min, score_max]."""

    def __init__(self, data_dir: str | Path, score_min: float = 0.0, score_max: float = 100.0,
                 *, max_pixels: int = DEFAULT_MAX_PIXELS, lock_timeout: float = 30.0):
        self.data_dir = Path(data_dir)
        self.score_min = float(score_min)
        self.score_max = float(score_max)
        self.max_pixels = max_pixels
        self.lock_timeout = lock_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings) -> "ScoreStore":
        return cls(settings.data_dir, settings.score_min, settings.score_max, max_pixels=settings.max_pixels)

    @property
    def csv_path(self) -> Path:
        return self.data_dir / CSV_NAME

    @property
    def trash_dir(self) -> Path:
        return self.data_dir / TRASH_DIR

    # ------------------------------------------------------------- reading
    def _read_rows(self) -> dict[str, _Row]:
        if self.csv_path.exists():
            return self._parse_csv(self.csv_path.read_text(encoding="utf-8-sig"))
        legacy = self.data_dir / LEGACY_NAME
        if legacy.exists():
            return self._parse_legacy(legacy.read_text(encoding="utf-8-sig"))
        return {}

    @staticmethod
    def _parse_csv(text: str) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            return rows
        names = [h.strip().lower() for h in header]
        if "filename" in names:
            i_name, i_score = names.index("filename"), names.index("score") if "score" in names else None
            i_text = names.index("text") if "text" in names else None
        else:  # no header: filename,score[,text]
            i_name, i_score, i_text = 0, 1, 2
            reader = csv.reader(io.StringIO(text))
        for record in reader:
            if not record or i_name >= len(record) or not record[i_name].strip():
                continue
            get = lambda i: record[i].strip() if i is not None and i < len(record) else ""  # noqa: E731
            rows[record[i_name]] = _Row(get(i_score), get(i_text))  # the exact name: " a.jpg" is a file too
        return rows

    @staticmethod
    def _parse_legacy(text: str) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
            if len(parts) == 2 and parts[0].strip():
                rows[parts[0].strip()] = _Row(parts[1].strip())
        return rows

    def _parse_score(self, raw: str) -> float | None:
        if not raw:
            return None
        try:
            return validate_score(raw, self.score_min, self.score_max)
        except ScoreError:
            return None

    def image_files(self) -> list[str]:
        """Names of the image files in ``data_dir`` (no hidden files, no links), sorted."""
        names = []
        with os.scandir(self.data_dir) as it:
            for item in it:
                if item.name.startswith(".") or not is_supported(item.name):
                    continue
                if item.is_file(follow_symlinks=False):
                    names.append(item.name)
        return sorted(names)

    def entries(self) -> list[Entry]:
        """Every image on disk with its score (None: unlabelled), sorted by file name."""
        rows = self._read_rows()
        out = []
        for name in self.image_files():
            row = rows.get(name)
            out.append(Entry(name, self._parse_score(row.score) if row else None, (row.text or None) if row else None))
        return out

    def record_sources(self, sources: Mapping[str, tuple[str, float]]) -> None:
        """Remember where these labels came from (``{name: (source, score)}``), under the lock."""
        if not sources:
            return
        with self._locked():
            record = self._read_sources()
            record.update({name: [str(source), float(score)] for name, (source, score) in sources.items()})
            atomic_write_text(self.data_dir / SOURCES_NAME, json.dumps(record, indent=1, sort_keys=True))

    def label_sources(self, scores: Mapping[str, float | None] | None = None) -> dict[str, str]:
        """Where each label came from, for the labels recorded by :meth:`record_sources` whose score is
        still the one recorded: a score changed since is the person's own, and a label never recorded
        (an older set, an edit in the table) is simply not listed. ``scores`` (``{filename: score}``,
        just read by the caller) spares reading scores.csv again; only those photos are then answered for."""
        record = self._read_sources()
        if not record:
            return {}
        tolerance = 1e-9 * max(1.0, abs(self.score_max - self.score_min))
        current = {e.filename: e.score for e in self.entries()} if scores is None else scores
        return {name: source for name, (source, score) in record.items()
                if current.get(name) is not None and abs(current[name] - score) <= tolerance}

    def _read_sources(self) -> dict[str, tuple[str, float]]:
        try:
            record = json.loads((self.data_dir / SOURCES_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(record, dict):
            return {}
        return {name: (value[0], float(value[1])) for name, value in record.items()  # skip what is not ours
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], (int, float)) and not isinstance(value[1], bool)}

    def labelled(self) -> list[tuple[Path, float]]:
        """(path, score) of the images that exist and carry a valid score: what training uses."""
        return [(self.data_dir / e.filename, e.score) for e in self.entries() if e.score is not None]

    def problems(self) -> list[str]:
        """Readable notes about rows that are not used: bad scores, missing files."""
        files = set(self.image_files())
        notes = []
        for name, row in self._read_rows().items():
            if name not in files:
                notes.append(f"{name}: listed in {CSV_NAME} but the file is missing")
            elif row.score and self._parse_score(row.score) is None:
                notes.append(f"{name}: score {row.score!r} is not a number in "
                             f"{format_range(self.score_min, self.score_max)}; treated as unlabelled")
        return notes

    def get(self, filename: str) -> Entry:
        path = self.path_of(filename)
        if not path.is_file():
            raise NotFound(f"{filename} is not in {self.data_dir}")
        row = self._read_rows().get(filename)
        return Entry(filename, self._parse_score(row.score) if row else None, (row.text or None) if row else None)

    def path_of(self, filename: str) -> Path:
        """``data_dir / filename``, refusing names that would reach outside (:class:`UnsafePath`)."""
        if filename.startswith(".") and filename not in (".", ".."):
            raise UnsafePath(f"{filename!r}: hidden files are not part of the data set")
        return safe_child(self.data_dir, filename)

    def validate_score(self, value) -> float:
        """The typed ``value`` as a float in range, or :class:`ScoreError` with a message to show."""
        return validate_score(value, self.score_min, self.score_max)

    # ------------------------------------------------------------- writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.data_dir / LOCK_NAME, self.lock_timeout):
            yield

    @contextmanager
    def _editing(self) -> Iterator[dict[str, _Row]]:
        """Lock, re-read the table from disk, let the caller change it, write it atomically.

        First, under the lock, whatever a killed writer left is put right: its
        temp files go, and the rows of photos a killed batch had copied come back.
        """
        with self._locked():
            self._remove_stale_temp_files()
            rows = self._read_rows()
            before = {k: (v.score, v.text) for k, v in rows.items()}
            self._replay_journal(rows)
            yield rows
            if {k: (v.score, v.text) for k, v in rows.items()} != before or not self.csv_path.exists() and rows:
                self._write_rows(rows)
            (self.data_dir / JOURNAL_NAME).unlink(missing_ok=True)  # its rows are in scores.csv now

    def recover(self) -> None:
        """Put right what a killed import or edit left behind (called when the app starts)."""
        with self._editing():
            pass

    def _remove_stale_temp_files(self) -> None:
        """Temp files of writers that died mid-write: of scores.csv and of copied photos, both written only
        under the lock we hold now (the hash index, saved by readers too, is left alone)."""
        for leftover in self.data_dir.glob(".*.tmp"):
            if not leftover.name.startswith(f".{HASHES_NAME}."):
                leftover.unlink(missing_ok=True)

    def _replay_journal(self, rows: dict[str, _Row]) -> None:
        try:
            lines = (self.data_dir / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        planned: dict[str, dict] = {}
        for line in lines:
            try:
                entry = json.loads(line)
                name = entry["name"]
            except (ValueError, KeyError, TypeError):  # the line being written when the process died
                continue
            if entry.get("cancel"):
                planned.pop(name, None)
            else:
                planned[name] = entry
        for name, entry in planned.items():
            if name not in rows and (self.data_dir / name).is_file():
                rows[name] = _Row(entry.get("score") or "", entry.get("text") or "")

    @contextmanager
    def _journal(self) -> Iterator:
        """``write(entry)``: one durable line of the journal, written before the copy it describes."""
        handle = None

        def write(entry: dict) -> None:
            nonlocal handle
            if handle is None:
                handle = open(self.data_dir / JOURNAL_NAME, "a", encoding="utf-8")
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

        try:
            yield write
        finally:
            if handle is not None:
                handle.close()

    def _write_rows(self, rows: Mapping[str, _Row]) -> None:
        with_text = any(r.text for r in rows.values())
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["filename", "score", "text"] if with_text else ["filename", "score"])
        for name in sorted(rows):
            row = rows[name]
            if not row.score and not row.text:
                continue
            writer.writerow([name, row.score, row.text] if with_text else [name, row.score])
        atomic_write_text(self.csv_path, buffer.getvalue())

    def _existing_image(self, filename: str) -> Path:
        path = self.path_of(filename)
        if not path.is_file():
            raise NotFound(f"{filename} is not in {self.data_dir}")
        return path

    def set_score(self, filename: str, value) -> float:
        """Validate and save one score (typed text or a number); returns the stored float."""
        return self.set_scores({filename: value})[filename]

    def set_scores(self, scores: Mapping[str, object]) -> dict[str, float]:
        """Save many scores at once; all are validated first, so one bad value changes nothing."""
        return self.write_scores(scores).saved

    def write_scores(self, scores: Mapping[str, object],
                     expected: Mapping[str, float | None] | None = None) -> ScoreWrite:
        """:meth:`set_scores`, also saying what each score replaced. ``expected`` holds, by name, the score
        the writer's tab showed (None: unlabelled); a photo whose stored score differs from it when the
        write comes (another tab or the CLI changed it) is still saved, as the writer's latest intent, and
        listed in ``changed_elsewhere``. The compare and the write happen under one lock."""
        checked: dict[str, float] = {}
        for name, value in scores.items():
            try:
                checked[name] = self.validate_score(value)
            except ScoreError as exc:
                raise ScoreError(f"{name}: {exc}") from None
            self._existing_image(name)
        expected = expected or {}
        with self._editing() as rows:
            before = {name: rows[name].score if name in rows else "" for name in checked}
            replaced = {name: self._parse_score(text) for name, text in before.items()}
            changed = [ChangedElsewhere(name, expected[name], replaced[name], number)
                       for name, number in checked.items()
                       if name in expected and not _same(expected[name], replaced[name])
                       and not _same(replaced[name], number)]  # the same score both ways: nothing was lost
            for name, number in checked.items():
                row = rows.setdefault(name, _Row(""))
                row.score = _csv_number(number)
            self._push_undo({"kind": "score", "scores": before})  # Z in the gallery takes it back
        return ScoreWrite(checked, replaced, changed)

    def clear_score(self, filename: str) -> None:
        """Make an image unlabelled (its text, if any, is kept)."""
        self.path_of(filename)
        with self._editing() as rows:
            if filename in rows:
                rows[filename].score = ""

    def set_text(self, filename: str, text: str | None) -> None:
        self._existing_image(filename)
        with self._editing() as rows:
            rows.setdefault(filename, _Row("")).text = (text or "").strip()

    # -------------------------------------------------------------- hashes
    def _hash_index(self) -> HashIndex:
        return HashIndex(self.data_dir / HASHES_NAME)

    def fingerprint(self) -> str:
        """Changes when any labelled image's content or score changes (for run manifests)."""
        with self._locked():
            pairs = self.labelled()
            index = self._hash_index()
            hashes = {p.name: index.get(p.name) for p, _ in pairs}
            index.save()
        digest = hashlib.sha256()
        for path, score in pairs:
            digest.update(f"{path.name}\t{hashes[path.name]}\t{score!r}\n".encode())
        return digest.hexdigest()

    def copies_of(self, sources: Sequence[str | Path]) -> dict[int, str]:
        """Which of ``sources`` are already in the set by content: ``{index: name here}`` (what
        :meth:`add_images` would not copy twice); only files of a size found here are hashed."""
        found: dict[int, str] = {}
        with self._locked():
            index = self._hash_index()
            sizes: dict[int, list[str]] = {}
            for existing in self.image_files():
                sizes.setdefault((self.data_dir / existing).stat().st_size, []).append(existing)
            for i, source in enumerate(sources):
                try:
                    same_size = sizes.get(os.path.getsize(source), [])
                    digest = content_hash(source) if same_size else None
                except OSError:
                    continue
                match = next((n for n in same_size if index.get(n) == digest), None)
                if match is not None:
                    found[i] = match
            index.save()
        return found

    # ------------------------------------------------------------- adding
    def add_image(self, source: str | Path | bytes | BinaryIO, name: str, score=None,
                  text: str | None = None) -> AddResult:
        """Copy one image in (upload or a path), optionally with a score; never overwrites a file.

        Raises :class:`ScoreError` for a bad score and ``ImageError`` for a file
        that is not a readable image, before anything is written.
        """
        if score is not None and not (isinstance(score, str) and not score.strip()):
            score = self.validate_score(score)
        else:
            score = None
        if isinstance(source, (bytes, bytearray)):
            info = check_image(bytes(source), self.max_pixels, name=name)
            data = bytes(source)
        elif isinstance(source, (str, Path)):
            info = check_image(source, self.max_pixels, name=name)
            data = None
        else:
            data = source.read()
            info = check_image(data, self.max_pixels, name=name)
        name = supported_name(sanitize_name(name), info.format)  # refuse before anything is written
        return self.add_images([(io.BytesIO(data) if data is not None else Path(source), name, score, text)])[0]

    def add_images(self, items: list[tuple]) -> list[AddResult]:
        """Batch of already checked images ``(source_path_or_file, name, score | None[, text])``.

        One lock for the batch: names are made unique, identical content (by
        hash) is not copied twice (an unlabelled duplicate takes the new score),
        and the scores are written in one atomic table update.
        """
        results: list[AddResult] = []
        with self._editing() as rows, self._journal() as journal:
            files = self.image_files()
            index = self._hash_index()
            taken = {n.casefold() for n in (*files, *rows)}
            sizes: dict[int, list[str]] = {}
            for existing in files:
                sizes.setdefault((self.data_dir / existing).stat().st_size, []).append(existing)
            for item in items:
                source, name, score = item[0], item[1], item[2]
                text = item[3] if len(item) > 3 else None
                data = source.getvalue() if isinstance(source, io.BytesIO) else None
                try:
                    size = len(data) if data is not None else os.path.getsize(source)
                    # content_hash reuses the hash taken when the preview made its thumbnail
                    digest = hashlib.sha256(data).hexdigest() if data is not None else content_hash(source)
                except OSError as exc:
                    results.append(AddResult(name, copied=False, error=f"cannot be read ({exc.strerror or exc})"))
                    continue
                duplicate = next((n for n in sizes.get(size, []) if index.get(n) == digest), None)
                if duplicate is not None:
                    row = rows.get(duplicate)
                    applied = score is not None and (row is None or self._parse_score(row.score) is None)
                    if applied:
                        rows.setdefault(duplicate, _Row("")).score = _csv_number(score)
                    results.append(AddResult(duplicate, copied=False, duplicate_of=duplicate, score_applied=applied))
                    continue
                try:
                    clean = sanitize_name(name)
                    if not is_supported(clean):
                        clean = supported_name(clean, _detected_format(io.BytesIO(data) if data is not None
                                                                       else source))
                except (ImageError, OSError) as exc:
                    results.append(AddResult(name, copied=False, error=str(exc) if isinstance(exc, ImageError)
                                             else f"not an image this workbench can read ({exc})"))
                    continue
                final = unique_name(clean, taken)
                row = _Row(_csv_number(score) if score is not None else "", (text or "").strip())
                try:
                    while True:
                        if row.score or row.text:
                            journal({"name": final, "score": row.score, "text": row.text})
                        try:
                            copy_file_exclusive(io.BytesIO(data) if data is not None else source,
                                                self.path_of(final))
                            break
                        except FileExistsError:  # someone not using the lock took the name meanwhile
                            if row.score or row.text:
                                journal({"name": final, "cancel": True})
                            taken.add(final.casefold())
                            final = unique_name(clean, taken)
                except OSError as exc:
                    results.append(AddResult(name, copied=False, error=f"could not be copied ({exc.strerror or exc})"))
                    continue
                taken.add(final.casefold())
                index.remember(final, digest)
                sizes.setdefault(size, []).append(final)
                if row.score or row.text:
                    rows[final] = row
                results.append(AddResult(final, copied=True, renamed_from=name if final != name else None))
            index.save()
        return results

    def add_labelled(self, source: str | Path, score) -> tuple[str, bool, float | None]:
        """The person's score for a photo from outside the set (one Predict scored, say): copied in with
        it, or, when the same picture is already in, its score set to this one (the person's latest word).
        Returns ``(file name in the set, copied, its score before or None)`` for an undo."""
        source = Path(source)
        added = self.add_image(source, source.name, score)
        if added.error:
            raise ImageError(f"{source.name}: {added.error}")
        if added.copied or added.score_applied:
            return added.filename, added.copied, None
        before = self.get(added.filename).score
        self.set_score(added.filename, score)
        return added.filename, False, before

    def take_back_labelled(self, filename: str, copied: bool, before: float | None) -> None:
        """Undo :meth:`add_labelled`: a copied photo goes to the trash, a changed score goes back."""
        if copied:
            self.delete(filename)
        elif before is not None:
            self.set_score(filename, before)
        else:
            self.clear_score(filename)

    # ---------------------------------------------------- delete and undo
    def _undo_path(self) -> Path:
        return self.trash_dir / UNDO_NAME

    def _read_undo(self) -> list[dict]:
        try:
            stack = json.loads(self._undo_path().read_text(encoding="utf-8"))
            return stack if isinstance(stack, list) else []
        except (OSError, ValueError):
            return []

    def _push_undo(self, record: dict) -> None:
        """Add ``record`` to the undo stack (call under the lock, inside :meth:`_editing`)."""
        self.trash_dir.mkdir(parents=True, exist_ok=True)
        stack = self._read_undo()[-(UNDO_DEPTH - 1):] + [record]
        atomic_write_text(self._undo_path(), json.dumps(stack, ensure_ascii=False, indent=1))

    def undo(self) -> tuple[str, list[str]] | None:
        """Take back the most recent change, a score edit or a deletion: ("score" | "delete", file names);
        None when there is nothing to undo. Raises as :meth:`undo_delete` does for a deletion."""
        stack = self._read_undo()
        if not stack:
            return None
        if stack[-1].get("kind") != "score":
            entry = self.undo_delete()
            return ("delete", [entry.filename]) if entry is not None else None
        with self._editing() as rows:
            stack = self._read_undo()
            record = stack.pop()
            for name, score in record["scores"].items():
                if name in rows or score:
                    rows.setdefault(name, _Row("")).score = score
            atomic_write_text(self._undo_path(), json.dumps(stack, ensure_ascii=False, indent=1))
        return "score", list(record["scores"])

    def delete(self, filename: str) -> Entry:
        """Move the image and its row to ``data/.trash/``; :meth:`undo_delete` brings them back."""
        path = self.path_of(filename)
        with self._editing() as rows:
            if not path.is_file() and filename not in rows:
                raise NotFound(f"{filename} is not in {self.data_dir}")
            row = rows.pop(filename, _Row(""))
            record = {"filename": filename, "score": row.score, "text": row.text,
                      "trashed": None, "deleted_at": time.time()}
            if path.is_file():
                folder = self.trash_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
                folder.mkdir(parents=True)
                os.replace(path, folder / filename)
                record["trashed"] = str((folder / filename).relative_to(self.data_dir))
            self._push_undo(record)
        return Entry(filename, self._parse_score(row.score), row.text or None)

    def can_undo(self) -> bool:
        return bool(self._read_undo())

    def undo_delete(self) -> Entry | None:
        """Restore the most recent deletion (under a new name if the old one was taken); None if none.

        Raises ``FileNotFoundError`` when the trashed copy was removed meanwhile;
        that deletion is then dropped from the undo stack, so the next undo
        restores the one before it.
        """
        with self._editing() as rows:
            stack = self._read_undo()
            deletions = [i for i, r in enumerate(stack) if r.get("kind") != "score"]
            if not deletions:
                return None
            record = stack.pop(deletions[-1])  # score edits made since stay where they are
            name = record["filename"]
            if record.get("trashed"):
                trashed = self.data_dir / record["trashed"]
                if not trashed.resolve().is_relative_to(self.trash_dir.resolve()):
                    raise UnsafePath(f"undo record points outside {self.trash_dir}")
                if not trashed.is_file():
                    atomic_write_text(self._undo_path(), json.dumps(stack, ensure_ascii=False, indent=1))
                    raise FileNotFoundError(
                        f"{name} cannot be restored: its copy in the trash ({record['trashed']}) was removed. "
                        f"That deletion was dropped from the undo list"
                        + ("; undo again to restore the one before it." if stack else "."))
                name = unique_name(name, {n.casefold() for n in (*self.image_files(), *rows)})
                # A copy, not os.link: works on disks without hard links (FAT/exFAT); never overwrites.
                copy_file_exclusive(trashed, self.path_of(name))
                trashed.unlink()
                try:
                    trashed.parent.rmdir()
                except OSError:
                    pass
            if record.get("score") or record.get("text"):
                rows[name] = _Row(record.get("score", ""), record.get("text", ""))
            atomic_write_text(self._undo_path(), json.dumps(stack, ensure_ascii=False, indent=1))
        return Entry(name, self._parse_score(record.get("score", "")), record.get("text") or None)

