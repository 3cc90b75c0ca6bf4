"""File names for the data folder: portable, flat, and never clashing."""
from __future__ import annotations

import re

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def natural_key(name: str) -> tuple:
    """Sort key reading digit runs as numbers: ``9_x`` < ``10_x`` < ``89_x``, case ignored."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.split(r"(\d+)", name) if part)


def sanitize_name(name: str) -> str:
    """A plain, portable file name from an uploaded or zipped one (folders dropped)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_CHARS.sub("_", base).strip().lstrip(".").strip()
    if base in ("", ".", ".."):
        base = "image"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    while len((stem + dot + ext).encode("utf-8")) > 200:
        stem = stem[:-1]
    return stem + dot + ext


def unique_name(name: str, taken: set[str]) -> str:
    """``name`` or ``stem (1).ext``, ``stem (2).ext`` ... whose ``casefold()`` is not in ``taken``.

    ``taken`` holds case-folded names (``{n.casefold() for n in names}``), so
    "A.jpg" and "a.jpg" never meet on case-insensitive disks; the caller adds
    the returned name (folded) to it.
    """
    if name.casefold() not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 1
    while f"{stem} ({n}){dot}{ext}".casefold() in taken:
        n += 1
    return f"{stem} ({n}){dot}{ext}"
