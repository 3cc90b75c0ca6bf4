"""The Label tab's engine: the queue, one key = one saved label or comparison, undo.

Everything is on disk the moment a key is handled: labels go through
``ScoreStore`` (scores.csv), comparisons through ``ComparisonStore``
(comparisons.csv), and the undo list of label changes is
``data/.label_undo.json`` (atomic, locked), so another tab, the CLI or a
restart sees the same state. The browser only keeps what is on screen.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.dataset import ScoreStore, ScoreWrite
from workbench.dataset.comparisons import ComparisonStore
from workbench.dataset.ratings import StarMapping
from workbench.dataset.xmp import Rating
from workbench.errors import BadInput
from workbench.fsutil import atomic_write_text, file_lock
from workbench.labelling.pairwise import (
    choose_pairs,
    comparison_labelled,
    label_from_comparisons,
    pairwise_scores,
)

UNDO_NAME = ".label_undo.json"
UNDO_LOCK = ".label_undo.lock"
UNDO_DEPTH = 500
UNSEEN = object()  # no score was shown to compare with (a script, the CLI): nothing to tell


@dataclass
class LabelDesk:
    """One data folder's labelling actions (cheap to build; holds no state that matters)."""

    store: ScoreStore
    comparisons: ComparisonStore
    stars: StarMapping

    @classmethod
    def from_settings(cls, settings) -> "LabelDesk":
        return cls(ScoreStore.from_settings(settings), ComparisonStore(settings.data_dir),
                   StarMapping.from_settings(settings))

    # ------------------------------------------------------------- the queue
    def queue(self, order: list[str] | None = None) -> list[dict]:
        """Every photo as ``{"filename", "score", "from_comparisons"}``: unlabelled first (by name), then the labelled ones.

        ``order`` (e.g. from :func:`workbench.labelling.suggest.suggest`) puts those photos first, in that order.
        """
        entries = self.store.entries()
        rank = {name: i for i, name in enumerate(order or [])}
        entries.sort(key=lambda e: (rank.get(e.filename, len(rank)), e.score is not None, e.filename))
        from_pairs = comparison_labelled(self.store, {e.filename: e.score for e in entries})
        return [{"filename": e.filename, "score": e.score, "from_comparisons": e.filename in from_pairs}
                for e in entries]

    # ---------------------------------------------------------- one label
    def _undo_path(self) -> Path:
        return self.store.data_dir / UNDO_NAME

    def _push_undo(self, filename: str, before: float | None) -> None:
        with file_lock(self.store.data_dir / UNDO_LOCK):
            stack = self._read_undo()[-(UNDO_DEPTH - 1):] + [{"filename": filename, "before": before}]
            atomic_write_text(self._undo_path(), json.dumps(stack))

    def _read_undo(self) -> list[dict]:
        try:
            stack = json.loads(self._undo_path().read_text(encoding="utf-8"))
            return stack if isinstance(stack, list) else []
        except (OSError, ValueError):
            return []

    def set_score(self, filename: str, value, seen=UNSEEN) -> ScoreWrite:
        """Save a typed or accepted score (validated); remembers the one it replaced for undo. ``seen``: the
        score the person's tab showed (None: unlabelled), so a change made elsewhere meanwhile is told
        (``.note()``); the score is saved all the same."""
        write = self.store.write_scores({filename: value}, None if seen is UNSEEN else {filename: seen})
        self._push_undo(filename, write.replaced[filename])
        return write

    def set_stars(self, filename: str, stars: int, seen=UNSEEN) -> ScoreWrite:
        """1–5 stars, mapped onto the score range like imported ratings are."""
        if not 1 <= int(stars) <= 5:
            raise BadInput(f"{stars} stars: press 1 to 5")
        score, _ = self.stars.score(Rating(int(stars), False, None, "the Label tab"))
        return self.set_score(filename, score, seen)

    def accept(self, filename: str, suggestion: float, seen=UNSEEN) -> ScoreWrite:
        """Take a run's prediction as the label (clipped into the score range)."""
        value = min(max(float(suggestion), self.store.score_min), self.store.score_max)
        return self.set_score(filename, round(value, 2), seen)

    def clear(self, filename: str) -> None:
        before = self.store.get(filename).score
        self.store.clear_score(filename)
        self._push_undo(filename, before)

    def undo(self) -> dict | None:
        """Put back the label changed last; returns ``{"filename", "score"}`` (score None: unlabelled again)."""
        with file_lock(self.store.data_dir / UNDO_LOCK):
            stack = self._read_undo()
            if not stack:
                return None
            record = stack.pop()
            name, before = record.get("filename"), record.get("before")
            if before is None:
                self.store.clear_score(name)
            else:
                self.store.set_score(name, before)
            atomic_write_text(self._undo_path(), json.dumps(stack))
        return {"filename": name, "score": before}

    # ---------------------------------------------------------- comparisons
    def next_pairs(self, k: int = 2) -> list[tuple[str, str]]:
        """The ``k`` most informative pairs now (the first is shown, the others preloaded)."""
        names = self.store.image_files()
        comparisons = self.comparisons.all()
        fit = pairwise_scores(comparisons, {}, 0.0, 1.0) if comparisons else None  # compared photos only
        return choose_pairs(names, comparisons, k, fit=fit)

    def compare(self, left: str, right: str, outcome: str) -> None:
        self.comparisons.add(left, right, outcome)

    def labels_from_comparisons(self) -> str:
        """Save Bradley–Terry scores as labels (photos with their own score anchor them); says what was done."""
        fit, written = label_from_comparisons(self.store, self.comparisons.all())
        if fit is None:
            return "No comparisons yet: compare some pairs first."
        compared = len(fit.names)
        if not written:
            return (f"No photo labelled: all {compared} compared photos already have a score of their own, and "
                    "comparisons only label photos without one (yours are kept). Compare unlabelled photos to label them.")
        return (f"{len(written)} of {compared} compared photos labelled from {len(self.comparisons)} comparison(s); "
                f"the others keep your scores. Placed on the score scale by {fit.how}.")

    def undo_comparison(self) -> dict | None:
        undone = self.comparisons.undo()
        return None if undone is None else {"left": undone.left, "right": undone.right, "outcome": undone.outcome}

    # ------------------------------------------------------ a run's suggestion
    def predictions(self, settings, run_id: str, filenames: list[str]) -> dict[str, float]:
        """A run's predicted score for each photo (the suggestion Enter accepts); unscorable ones are left out."""
        from workbench.events import drain
        from workbench.predict import cached_scorer, score_images

        if not run_id or not filenames:
            return {}
        scorer = cached_scorer(run_id, settings)
        result = drain(score_images([self.store.path_of(n) for n in filenames], scorer, settings))
        return {Path(row.path).name: round(float(row.score), 2) for row in result.scored}
