"""The number keys of the galleries give the scores the engine says, without a browser."""
from __future__ import annotations

import pytest

from workbench.dataset.scores import number_key_scores
from workbench.errors import BadInput
from workbench.ui.keyboard import head_script, key_scores


def test_number_keys_map_stars_or_tenths_onto_the_score_range():
    assert number_key_scores("stars", 0, 100) == {"1": 0, "2": 25, "3": 50, "4": 75, "5": 100}
    assert number_key_scores("stars", 1, 10, star_scores=(2, 4, 5, 7, 9))["4"] == 7
    tenths = number_key_scores("tenths", 0, 10)
    assert tenths["1"] == 1 and tenths["9"] == 9 and tenths["0"] == 10 and len(tenths) == 10
    with pytest.raises(BadInput, match="stars, tenths"):
        number_key_scores("letters", 0, 100)


def test_stars_score_as_imported_ratings_do_and_the_script_carries_them(settings):
    assert key_scores(settings) == {"1": 10, "2": 30, "3": 50, "4": 70, "5": 90}  # fifths' middles by default
    script = head_script(settings)
    assert '"4": "70"' in script and '"import", "data"' in script and "ArrowRight" in script
    assert key_scores(settings.replace(number_keys="tenths"))["0"] == 100
