"""Scores read from file names, and scores typed by a person."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from workbench.dataset import ScoreError, ScoreRule, parse_filename_score, validate_score


@pytest.mark.parametrize("name, expected", [
    ("85.jpg", 85),
    ("7.5_beach.jpg", 7.5),
    ("85 (1).jpg", 85),
    ("60 été.png", 60),
    ("0085.JPG", 85),
    ("100.png", 100),
    ("0.jpg", 0),
    ("42-sunset.webp", 42),
    ("  12 lead space.jpg", 12),
    ("/some/folder/33_x.jpg", 33),
])
def test_default_rule_reads_the_number_at_the_start(name, expected):
    parsed = parse_filename_score(name)
    assert parsed.score == expected and parsed.note is None


@pytest.mark.parametrize("name", ["IMG_1234.jpg", "beach_85.jpg", "DSC01234.JPG", "1st_place.jpg", "7.5abc.png",
                                  "photo.jpg", ".jpg"])
def test_names_without_a_leading_standalone_number_are_unlabelled(name):
    parsed = parse_filename_score(name)
    assert parsed.score is None
    assert "no number" in parsed.note


@pytest.mark.parametrize("name, number", [("1234.jpg", "1234"), ("2023-05-01 trip.jpg", "2023"), ("101.jpg", "101")])
def test_out_of_range_numbers_are_not_taken_and_the_note_says_why(name, number):
    parsed = parse_filename_score(name, score_min=0, score_max=100)
    assert parsed.score is None
    assert number in parsed.note and "outside the score range 0–100" in parsed.note


def test_the_range_is_configurable():
    assert parse_filename_score("7.jpg", score_min=1, score_max=10).score == 7
    assert parse_filename_score("85.jpg", score_min=1, score_max=10).score is None


def test_custom_pattern_with_named_group_first_group_or_whole_match():
    assert parse_filename_score("beach_score-72.jpg", r"score-(?P<score>\d+)").score == 72
    assert parse_filename_score("beach_85.jpg", r"_(\d+)$").score == 85
    assert parse_filename_score("beach_85.jpg", r"\d+").score == 85
    miss = parse_filename_score("beach.jpg", r"_(\d+)$")
    assert miss.score is None and "pattern does not match" in miss.note
    not_a_number = parse_filename_score("beach_xx.jpg", r"_(\w+)$")
    assert not_a_number.score is None and "'xx'" in not_a_number.note
    assert parse_filename_score("a_nan.jpg", r"_(\w+)$").score is None  # float("nan") parses; not a score


def test_invalid_custom_pattern_is_a_clear_error():
    with pytest.raises(ScoreError, match="not a valid regular expression"):
        ScoreRule.compile("(unclosed")


# ---------------------------------------------------------------- properties
scores = st.one_of(st.integers(0, 100).map(float),
                   st.decimals(0, 100, places=2, allow_nan=False).map(float))
tails = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00."),
                max_size=20).filter(lambda t: not t or not t[0].isalnum())
extensions = st.sampled_from([".jpg", ".JPG", ".png", ".webp", ".heic", ".tiff"])


@given(score=scores, tail=tails, ext=extensions)
def test_property_a_leading_score_round_trips(score, tail, ext):
    text = f"{score:g}" if score == int(score) else f"{score:.2f}".rstrip("0")
    assert parse_filename_score(text + tail + ext).score == pytest.approx(float(text))


@given(prefix=st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll")), min_size=1, max_size=8),
       rest=st.text(max_size=20), ext=extensions)
def test_property_a_name_starting_with_a_letter_has_no_score(prefix, rest, ext):
    assert parse_filename_score(prefix + rest.replace("/", "_") + ext).score is None


@given(name=st.text(max_size=60), lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6),
       pattern=st.sampled_from(["", r"(\d+)", r"(?P<score>[\d.]+)", r"\d+"]))
@hsettings(max_examples=300)
def test_property_parser_never_crashes_and_respects_the_range(name, lo, width, pattern):
    hi = lo + width
    parsed = parse_filename_score(name, pattern, lo, hi)
    if parsed.score is None:
        assert parsed.note
    else:
        assert lo <= parsed.score <= hi and math.isfinite(parsed.score)


# -------------------------------------------------------------- typed scores
@pytest.mark.parametrize("typed, expected", [("85", 85), (" 7.5 ", 7.5), ("7,5", 7.5), (0, 0), (100.0, 100)])
def test_typed_scores_accepted(typed, expected):
    assert validate_score(typed, 0, 100) == expected


@pytest.mark.parametrize("typed, message", [
    ("", "empty"), ("   ", "empty"), (None, "empty"), ("abc", "not a number"), ("nan", "NaN"),
    (float("nan"), "NaN"), ("inf", "infinite"), (-1, "outside the score range"), ("100.5", "outside"), (True, "not a score"),
])
def test_bad_typed_scores_refused_with_a_clear_message(typed, message):
    with pytest.raises(ScoreError, match=message):
        validate_score(typed, 0, 100)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_property_validate_accepts_exactly_the_finite_in_range_numbers(value):
    ok = math.isfinite(value) and 0 <= value <= 100
    if ok:
        assert validate_score(value, 0, 100) == value
        assert validate_score(repr(value), 0, 100) == value
    else:
        with pytest.raises(ScoreError):
            validate_score(value, 0, 100)
