"""``data/comparisons.csv``: which of two photos the person found better, kept like scores.csv.

Every change is a read-modify-write under a file lock with an atomic replace
(the same discipline as :class:`~workbench.dataset.store.ScoreStore`), so two
browser tabs, the CLI and a killed process never lose or half-write a row.
Rows are kept in the order they were made; undo removes the newest one (and
remembers it, so a redo is possible by making it again).

Columns: ``time,left,right,outcome`` with ``outcome`` one of ``left``,
``right`` (that photo is better) or ``tie``.
"""
from __future__ import annotations

import csv
import io
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from workbench.errors import BadInput, NotFound
from workbench.fsutil import atomic_write_text, file_lock, safe_child

CSV_NAME = "comparisons.csv"
LOCK_NAME = ".comparisons.lock"
OUTCOMES = ("left", "right", "tie")
COLUMNS = ["time", "left", "right", "outcome"]


@dataclass(frozen=True)
class Comparison:
    """``left`` vs ``right`` (file names in data/), ``outcome`` "left" | "right" | "tie", ``time`` epoch seconds."""

    left: str
    right: str
    outcome: str
    time: float = 0.0

    @property
    def winner(self) -> str | None:
        return {"left": self.left, "right": self.right}.get(self.outcome)


class ComparisonStore:
    """The comparisons of the photos in ``data_dir``."""

    def __init__(self, data_dir: str | Path, *, lock_timeout: float = 30.0):
        self.data_dir = Path(data_dir)
        self.lock_timeout = lock_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def csv_path(self) -> Path:
        return self.data_dir / CSV_NAME

    def all(self) -> list[Comparison]:
        """Every comparison, oldest first; rows a person broke by hand are left out, never fatal."""
        try:
            text = self.csv_path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return []
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            left, right, outcome = ((row.get(k, "") or "").strip() for k in ("left", "right", "outcome"))
            if left and right and left != right and outcome in OUTCOMES:
                try:
                    stamp = float(row.get("time") or 0)
                except ValueError:
                    stamp = 0.0
                out.append(Comparison(left, right, outcome, stamp))
        return out

    def __len__(self) -> int:
        return len(self.all())

    @contextmanager
    def _editing(self) -> Iterator[list[Comparison]]:
        with file_lock(self.data_dir / LOCK_NAME, self.lock_timeout):
            for leftover in self.data_dir.glob(f".{CSV_NAME}.*.tmp"):  # a writer that died mid-write
                leftover.unlink(missing_ok=True)
            rows = self.all()
            yield rows
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(COLUMNS)
            for c in rows:
                writer.writerow([f"{c.time:.3f}", c.left, c.right, c.outcome])
            atomic_write_text(self.csv_path, buffer.getvalue())

    def add(self, left: str, right: str, outcome: str) -> Comparison:
        """Record one comparison; both photos must be in the data folder."""
        if outcome not in OUTCOMES:
            raise BadInput(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        if left == right:
            raise BadInput(f"{left} cannot be compared with itself")
        for name in (left, right):
            if not safe_child(self.data_dir, name).is_file() or name.startswith("."):  # UnsafePath first
                raise NotFound(f"{name} is not in {self.data_dir}")
        comparison = Comparison(left, right, outcome, time.time())
        with self._editing() as rows:
            rows.append(comparison)
        return comparison

    def undo(self) -> Comparison | None:
        """Remove and return the newest comparison; None when there is none."""
        with self._editing() as rows:
            return rows.pop() if rows else None

    def counts(self) -> dict[str, int]:
        """How many comparisons each photo took part in."""
        seen: dict[str, int] = {}
        for c in self.all():
            seen[c.left] = seen.get(c.left, 0) + 1
            seen[c.right] = seen.get(c.right, 0) + 1
        return seen
