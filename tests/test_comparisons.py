"""data/comparisons.csv (kept like scores.csv) and Bradley–Terry scores from it."""
from __future__ import annotations

import csv
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
from scipy.stats import spearmanr

from workbench.dataset.comparisons import Comparison, ComparisonStore
from workbench.errors import BadInput, NotFound
from workbench.labelling.pairwise import choose_pairs, pairwise_scores

FORK = multiprocessing.get_context("fork")


def photos_in(folder, n, prefix="p"):
    folder.mkdir(exist_ok=True)
    names = [f"{prefix}{i:03d}.jpg" for i in range(n)]
    for name in names:
        (folder / name).write_bytes(b"x")
    return names


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_add_undo_and_refusals(tmp_path):
    data = tmp_path / "data"
    a, b, c = photos_in(data, 3)
    store = ComparisonStore(data)
    store.add(a, b, "left")
    store.add(b, c, "tie")
    assert [(x.left, x.right, x.outcome) for x in store.all()] == [(a, b, "left"), (b, c, "tie")]
    assert store.all()[0].winner == a and store.all()[1].winner is None
    assert store.counts() == {a: 1, b: 2, c: 1}
    assert store.undo().outcome == "tie" and len(store) == 1
    assert ComparisonStore(data).all()[0].left == a  # on disk, not in memory
    with pytest.raises(BadInput, match="outcome"):
        store.add(a, b, "better")
    with pytest.raises(BadInput, match="itself"):
        store.add(a, a, "left")
    with pytest.raises(NotFound):
        store.add(a, "missing.jpg", "left")
    with pytest.raises(BadInput):
        store.add(a, "../outside.jpg", "left")
    assert len(store) == 1
    store.undo()
    assert store.undo() is None


def _writer(data_dir, names, start):
    start.wait()
    store = ComparisonStore(data_dir)
    for i in range(len(names) - 1):
        store.add(names[i], names[i + 1], "left")


def test_concurrent_writers_in_several_processes_lose_nothing(tmp_path):
    data = tmp_path / "data"
    groups = [photos_in(data, 13, prefix=f"w{p}_") for p in range(4)]
    start = FORK.Event()
    procs = [FORK.Process(target=_writer, args=(str(data), names, start)) for names in groups]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    pairs = {(r["left"], r["right"]) for r in rows_of(data / "comparisons.csv")}
    assert pairs == {(names[i], names[i + 1]) for names in groups for i in range(12)}


def _endless_writer(data_dir, names):
    store = ComparisonStore(data_dir)
    i = 0
    while True:
        store.add(names[i % len(names)], names[(i + 1) % len(names)], ("left", "right", "tie")[i % 3])
        i += 1


def test_killing_a_writer_mid_write_leaves_a_valid_file(tmp_path):
    data = tmp_path / "data"
    names = photos_in(data, 50)
    store = ComparisonStore(data, lock_timeout=5)
    with open(data / "comparisons.csv", "w", encoding="utf-8") as fh:  # a long file, so a write takes a while
        fh.write("time,left,right,outcome\n" + "".join(f"1.0,{names[i % 50]},{names[(i + 7) % 50]},left\n"
                                                        for i in range(3000)))
    assert len(store) == 3000
    for _ in range(4):
        before = len(store)
        proc = FORK.Process(target=_endless_writer, args=(str(data), names))
        proc.start()
        deadline = time.monotonic() + 0.3 + np.random.default_rng(_).random() * 0.3
        while time.monotonic() < deadline:  # a reader never sees a half-written file
            assert len(rows_of(data / "comparisons.csv")) >= before
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        rows = rows_of(data / "comparisons.csv")
        assert len(rows) >= before and all(r["outcome"] in ("left", "right", "tie") for r in rows)
        assert len(store) == len(rows)  # every row parses
    store.add(names[0], names[1], "right")  # the dead writer's lock died with it
    assert store.all()[-1].outcome == "right"
    assert list(data.glob(".comparisons.csv.*.tmp")) == []


def test_bradley_terry_recovers_a_known_ranking_and_places_it_on_the_scale():
    rng = np.random.default_rng(0)
    n = 30
    names = [f"p{i:02d}.jpg" for i in range(n)]  # p00 is the worst, p29 the best
    comparisons = []
    for _ in range(8 * n):
        i, j = rng.choice(n, 2, replace=False)
        comparisons.append(Comparison(names[i], names[j], "left" if i > j else "right"))
    fit = pairwise_scores(comparisons, {}, 0, 100, names=names)
    assert spearmanr(fit.strength, np.arange(n))[0] > 0.97
    assert fit.score.min() >= 0 and fit.score.max() <= 100 and abs(np.median(fit.score) - 50) < 10
    assert "middle of the range" in fit.how
    # anchored: the photos that also have a score pull the line onto the person's scale
    anchors = {names[3]: 20.0, names[26]: 80.0}
    placed = pairwise_scores(comparisons, anchors, 0, 100, names=names)
    assert "least-squares" in placed.how
    assert placed.score[3] == pytest.approx(20, abs=0.01) and placed.score[26] == pytest.approx(80, abs=0.01)
    # uncertainty: a photo never compared is far less certain than one compared often
    extra = pairwise_scores(comparisons, {}, 0, 100, names=names + ["new.jpg"])
    assert extra.theta_std[-1] > 2 * extra.theta_std[:-1].mean()


def test_pairs_reach_every_photo_first_then_prefer_close_uncertain_ones():
    names = [f"p{i}.jpg" for i in range(10)]
    rng = np.random.default_rng(1)
    pairs = choose_pairs(names, [], 5, rng=rng)
    assert sorted(sum(map(list, pairs), [])) == sorted(names)  # a first round covers everybody
    # p0 < p1 < ... < p9 settled by a chain; the next partner of p0 is a close one, not p9
    chain = [Comparison(names[i + 1], names[i], "left") for i in range(9)] * 3
    chain += [Comparison("p0.jpg", "p1.jpg", "right")] * 3
    first, second = choose_pairs(names, chain, 1, rng=rng)[0]
    fit = pairwise_scores(chain, {}, 0, 1, names=names)
    gap = abs(fit.strength[names.index(first)] - fit.strength[names.index(second)])
    assert gap < np.ptp(fit.strength) / 2


def test_comparison_scores_become_labels_and_are_marked(tmp_path):
    from PIL import Image

    from workbench.dataset import ScoreStore
    from workbench.labelling.pairwise import comparison_labelled, label_from_comparisons

    data = tmp_path / "data"
    data.mkdir()
    names = [f"p{i}.png" for i in range(6)]
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(data / name)
    store = ScoreStore(data, 0, 100)
    store.set_scores({names[0]: 10, names[5]: 90})  # the person's own scores anchor the scale
    comparisons = ComparisonStore(data)
    for _ in range(3):
        for i in range(5):
            comparisons.add(names[i + 1], names[i], "left")
    fit, written = label_from_comparisons(store, comparisons.all())
    assert set(written) == set(names[1:5])
    scores = {e.filename: e.score for e in store.entries()}
    assert scores[names[0]] == 10 and scores[names[5]] == 90  # anchors keep their own score
    assert scores[names[1]] < scores[names[2]] < scores[names[3]] < scores[names[4]]
    assert comparison_labelled(store) == set(names[1:5])
    store.set_score(names[2], 55)  # retyped by the person: no longer from comparisons, now an anchor
    assert comparison_labelled(store) == {names[1], names[3], names[4]}
    _, written = label_from_comparisons(store, comparisons.all())
    assert names[2] not in written and {e.filename: e.score for e in store.entries()}[names[2]] == 55
