"""Scores: reading them from file names and checking the ones people type.

Default file-name rule: a number at the very start of the file stem is the
score (``85.jpg`` -> 85, ``7.5_beach.jpg`` -> 7.5, ``85 (1).jpg`` -> 85,
``60 été.png`` -> 60). A camera name such as ``IMG_1234.jpg`` has none. A
number outside the configured range is not taken, and the note says why.
A custom regular expression can replace the rule: it is searched in the stem
and its group named ``score`` (else its first group, else the whole match) is
the score.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Sequence

from workbench.errors import BadInput

# A number at the start of the stem, not glued to a following letter or digit
# ("1st_place" has no score; "7.5_beach" and "85 (1)" do).
# The group is atomic so "7.5abc" cannot backtrack to "7".
DEFAULT_RULE = re.compile(r"^\s*(?P<score>(?>\d+(?:\.\d+)?))(?![^\W_])")


class ScoreError(BadInput):
    """A score (typed, or a pattern for reading them) that cannot be accepted; the message says why."""


def format_score(value: float | None) -> str:
    """85.0 -> "85", 7.5 -> "7.5", None -> ""."""
    if value is None:
        return ""
    return f"{value:g}" if abs(value) < 1e15 else repr(value)


def format_range(score_min: float, score_max: float) -> str:
    return f"{format_score(score_min)}–{format_score(score_max)}"


NUMBER_KEY_MODES = ("stars", "tenths")


def number_key_scores(mode: str, score_min: float, score_max: float,
                      star_scores: Sequence[float] | None = None) -> dict[str, float]:
    """The score each number key gives a selected photo in a gallery.

    ``stars`` (Lightroom, Photo Mechanic): 1-5 stars, scored as ``star_scores`` says
    (the mapping imported ratings use), else spread evenly from the lowest score to
    the highest. ``tenths``: 1-9 = 10 %-90 % of the range, 0 = the top.
    """
    span = score_max - score_min
    if mode == "stars":
        if star_scores is not None:
            return {str(n): float(score) for n, score in enumerate(star_scores, start=1)}
        return {str(n): round(score_min + (n - 1) / 4 * span, 6) for n in range(1, 6)}
    if mode == "tenths":
        return {str(d): round(score_min + (d or 10) / 10 * span, 6) for d in range(10)}
    raise BadInput(f"keyboard.number_keys must be one of {', '.join(NUMBER_KEY_MODES)}, not {mode!r}")


def validate_score(value: Any, score_min: float, score_max: float) -> float:
    """A typed score as a float within [score_min, score_max], or :class:`ScoreError`.

    Accepts numbers and strings such as ``" 7.5 "`` or ``"7,5"``; refuses empty
    input, text, NaN, infinities and values outside the range.
    """
    span = format_range(score_min, score_max)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ScoreError(f"The score is empty: type a number from {span}.")
    if isinstance(value, bool):
        raise ScoreError(f"{value!r} is not a score: type a number from {span}.")
    if isinstance(value, str):
        text = value.strip()
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")  # a decimal comma typed by habit
        try:
            number = float(text)
        except ValueError:
            raise ScoreError(f"{value.strip()!r} is not a number: type a score from {span}.") from None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ScoreError(f"{value!r} is not a number: type a score from {span}.") from None
    if math.isnan(number):
        raise ScoreError(f"NaN is not a score: type a number from {span}.")
    if math.isinf(number):
        raise ScoreError(f"An infinite score is not allowed: type a number from {span}.")
    if not score_min <= number <= score_max:
        raise ScoreError(f"{format_score(number)} is outside the score range {span}.")
    return number


@dataclass(frozen=True)
class ParsedScore:
    """``score`` read from a file name, or None with ``note`` saying why."""

    score: float | None
    note: str | None = None


@dataclass(frozen=True)
class ScoreRule:
    """How scores are read from file names; build with :meth:`compile`."""

    regex: re.Pattern
    score_min: float
    score_max: float
    custom: bool

    @classmethod
    def compile(cls, pattern: str | None = "", score_min: float = 0.0, score_max: float = 100.0) -> "ScoreRule":
        """The default rule for an empty ``pattern``; else a custom regex (ScoreError if invalid)."""
        if not pattern or not pattern.strip():
            return cls(DEFAULT_RULE, float(score_min), float(score_max), custom=False)
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ScoreError(f"The file-name pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return cls(regex, float(score_min), float(score_max), custom=True)

    def _captured(self, match: re.Match) -> str | None:
        if "score" in self.regex.groupindex:
            return match.group("score")
        return match.group(1) if self.regex.groups else match.group(0)

    def parse(self, filename: str) -> ParsedScore:
        """Read the score from ``filename`` (a name or a path; only the stem is used)."""
        stem = PurePath(filename).stem
        match = self.regex.search(stem)
        if match is None:
            note = ("the pattern does not match the name" if self.custom
                    else "no number at the start of the name")
            return ParsedScore(None, note)
        text = self._captured(match)
        if text is None or not text.strip():
            return ParsedScore(None, "the pattern matched but captured nothing")
        try:
            number = float(text.strip().replace(",", ".") if text.count(",") == 1 else text.strip())
        except ValueError:
            return ParsedScore(None, f"{text!r} found by the pattern is not a number")
        if not math.isfinite(number):
            return ParsedScore(None, f"{text!r} is not a finite number")
        if not self.score_min <= number <= self.score_max:
            return ParsedScore(
                None, f"{format_score(number)} is outside the score range "
                      f"{format_range(self.score_min, self.score_max)}, so it is not taken as a score")
        return ParsedScore(number)


def parse_filename_score(
    filename: str, pattern: str | None = "", score_min: float = 0.0, score_max: float = 100.0
) -> ParsedScore:
    """One-shot :meth:`ScoreRule.parse`; compile a :class:`ScoreRule` once for many names."""
    return ScoreRule.compile(pattern, score_min, score_max).parse(filename)
