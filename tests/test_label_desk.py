"""The Label tab's engine: one key = one saved label, undo from disk, suggestions clipped into the range."""
from __future__ import annotations

import pytest
from PIL import Image

from workbench.config import load_settings
from workbench.dataset.scores import ScoreError
from workbench.errors import BadInput
from workbench.labelling.desk import LabelDesk


@pytest.fixture
def desk(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(data / f"p{i}.png")
    return LabelDesk.from_settings(load_settings(data_dir=data, star_scores="2,4,6,8,10", score_max=10))


def test_keys_save_at_once_and_undo_walks_back_from_disk(desk):
    assert [i["filename"] for i in desk.queue()] == ["p0.png", "p1.png", "p2.png", "p3.png"]
    assert desk.set_stars("p1.png", 4).saved == {"p1.png": 8}  # ratings.star_scores maps the stars
    desk.set_stars("p1.png", 2)
    desk.accept("p2.png", 12.7)  # a run's suggestion beyond the range is clipped to it
    desk.clear("p2.png")
    scores = lambda: {e.filename: e.score for e in desk.store.entries()}  # noqa: E731
    assert scores()["p1.png"] == 4 and scores()["p2.png"] is None
    assert [i["filename"] for i in desk.queue()][-1] == "p1.png"  # labelled photos go last
    fresh = LabelDesk.from_settings(load_settings(data_dir=desk.store.data_dir, score_max=10))  # a restart
    assert fresh.undo() == {"filename": "p2.png", "score": 10}
    assert fresh.undo() == {"filename": "p2.png", "score": None}
    assert fresh.undo() == {"filename": "p1.png", "score": 8}
    assert fresh.undo() == {"filename": "p1.png", "score": None}
    assert fresh.undo() is None and all(s is None for s in scores().values())
    with pytest.raises(BadInput, match="1 to 5"):
        desk.set_stars("p0.png", 6)
    with pytest.raises(ScoreError):
        desk.set_score("p0.png", "eleven")


def test_pairs_and_their_undo(desk):
    pairs = desk.next_pairs(2)
    assert len(pairs) == 2 and len({*pairs[0], *pairs[1]}) == 4  # nobody twice: every photo is reached
    desk.compare(*pairs[0], "left")
    desk.compare(*pairs[1], "tie")
    assert desk.undo_comparison() == {"left": pairs[1][0], "right": pairs[1][1], "outcome": "tie"}
    assert len(desk.comparisons) == 1
    said = desk.labels_from_comparisons()
    assert said.startswith("2 of 2 compared photos labelled from 1 comparison(s)")
    assert "Placed on the score scale by centring them on the middle of the range" in said
    assert sum(i["from_comparisons"] for i in desk.queue()) == 2


def test_comparisons_of_photos_that_all_have_scores_say_why_nothing_was_labelled(desk):
    for name, score in (("p0.png", 3), ("p1.png", 6)):
        desk.set_score(name, score)
    desk.compare("p0.png", "p1.png", "left")  # against their scores, and both already labelled
    said = desk.labels_from_comparisons()
    assert said.startswith("No photo labelled: all 2 compared photos already have a score of their own"), said
    assert {e.filename: e.score for e in desk.store.entries()}["p0.png"] == 3  # the score is kept
