"""What to label next: variance reduction with diversity, the committee, and ``python -m workbench suggest``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from workbench.labelling.suggest import committee_disagreement, rank_for_labelling


def clusters(rng, centres, per):
    return np.concatenate([c + 0.05 * rng.normal(size=(per, len(c))) for c in centres])


def test_the_committee_is_unsure_far_from_the_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([3.0, -1.0, 0.5]) + 0.3 * rng.normal(size=60)
    near, far = np.zeros((1, 3)), np.full((1, 3), 8.0)
    spread = committee_disagreement(X, y, np.concatenate([near, far]), alpha=1.0)
    assert spread[1] > 3 * spread[0]


def test_suggestions_spread_over_scenes_instead_of_repeating_one():
    rng = np.random.default_rng(0)
    centres = [np.eye(4)[i] * 6 for i in range(4)]
    labelled = clusters(rng, centres[:1], 10)
    y = rng.normal(50, 5, size=10)
    # the pool: 40 near-copies of one unfamiliar scene, 3 each of two others, and copies of the labelled one
    pool = np.concatenate([clusters(rng, centres[1:2], 40), clusters(rng, centres[2:4], 3),
                           clusters(rng, centres[:1], 10)])
    scene = np.repeat([1, 2, 3, 0], [40, 3, 3, 10])
    order, spread = rank_for_labelling(labelled, y, pool, 3)
    assert sorted(scene[order]) == [1, 2, 3]  # one of each new scene, not three shots of the biggest
    assert len(set(order)) == 3 and spread.shape == (len(pool),)
    cold, _ = rank_for_labelling(np.zeros((0, 4)), np.zeros(0), pool, 4)  # nothing labelled: k-center
    assert sorted(scene[cold]) == [0, 1, 2, 3]


def test_suggest_cli_ranks_the_unlabelled_photos(workbench_env, photos, run_cli, tmp_path, capsys):
    from training_fixtures import make_brightness_set

    data = make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=20)
    rows = list(csv.reader(open(data / "scores.csv", encoding="utf-8")))
    with open(data / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows[:13])  # 12 labelled, 8 unlabelled
    proc = run_cli("suggest", "--n", "5", "--json")
    document = json.loads(proc.stdout)
    assert (document["n_labelled"], document["n_pool"]) == (12, 8)
    assert "variance reduction" in document["method"]
    names = [s["filename"] for s in document["suggestions"]]
    assert len(names) == 5 == len(set(names)) and [s["rank"] for s in document["suggestions"]] == [1, 2, 3, 4, 5]
    assert set(names) <= {f"crop_{i:03d}.png" for i in range(12, 20)}
    text = run_cli("suggest", "--n", "2").stdout
    assert "Label these next" in text and names[0] in text
    # a folder outside data/: its photos are the pool, data/'s labels teach the committee
    import shutil

    from workbench.cli import main

    folder = tmp_path / "new shoot"
    folder.mkdir()
    for name in names[:3]:
        shutil.copy(data / name, folder / name)
    (folder / "notes.txt").write_text("not a photo")
    assert main(["suggest", "--folder", str(folder), "--n", "2", "--json"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert from_folder["n_pool"] == 3 and len(from_folder["suggestions"]) == 2
    assert all(Path(s["path"]).parent == folder for s in from_folder["suggestions"])


def test_the_first_suggestions_cover_every_scene_of_a_real_set(workbench_env, photos):
    """Real photos, real features: 15 crops of one scene and 3 of each of five others, nothing labelled.
    The first six suggestions are one of each scene (picking six at random repeats the big one most of the
    time); once two scenes are labelled, the next four are the four scenes nobody has labelled."""
    from PIL import Image

    from workbench.config import load_settings
    from workbench.dataset import ScoreStore
    from workbench.events import drain
    from workbench.labelling.suggest import suggest

    rng = np.random.default_rng(0)
    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    scene_of = {}
    for scene, (name, pixels) in enumerate(photos.items()):
        for i in range(15 if scene == 0 else 3):
            h, w = pixels.shape[:2]
            side = int(min(h, w) * rng.uniform(0.6, 0.9))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            filename = f"{name}_{i:02d}.png"
            Image.fromarray(pixels[top:top + side, left:left + side, :3]).resize((96, 96)).save(data / filename)
            scene_of[filename] = name
    settings = load_settings()
    first = drain(suggest(settings, n=6))
    assert first.n_labelled == 0 and first.n_pool == 30
    assert sorted(scene_of[s["filename"]] for s in first.items) == sorted(photos)
    store = ScoreStore.from_settings(settings)
    labelled_scenes = list(photos)[:2]
    store.set_scores({f: 50.0 + rng.normal() for f, name in scene_of.items() if name in labelled_scenes})
    second = drain(suggest(settings, n=4))
    assert second.n_labelled == 18 and "variance reduction" in second.method
    assert sorted(scene_of[s["filename"]] for s in second.items) == sorted(list(photos)[2:])
