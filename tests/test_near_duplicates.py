"""Near-duplicates stay in one fold: real photos (80 of SAVOIAS) plus resized, re-encoded and cropped
copies of some of them under other names. Without groups the copies leak across folds and the metrics rise;
with groups they stay close to the set without copies."""
from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image
from training_fixtures import copy_savoias_subset, settings_for

from workbench import compat  # noqa: F401
from workbench.events import NEVER_STOP, drain
from workbench.features import feature_matrix
from workbench.models.registry import get_family
from workbench.training import compare, kfold, labelled_set
from workbench.training.splits import group_summary, near_duplicate_groups
from workbench.training.train import duplicate_groups_of

N, COPIED = 80, 30


@pytest.fixture(scope="module")
def with_copies(savoias_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("dups")
    plain = copy_savoias_subset(savoias_dir, root / "plain", n=N, seed=3)
    copies = root / "copies"
    shutil.copytree(plain, copies)
    rows = list(csv.DictReader(open(plain / "scores.csv", encoding="utf-8")))
    with open(copies / "scores.csv", "a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        for i, row in enumerate(rows[:COPIED]):
            image = Image.open(plain / row["filename"]).convert("RGB")
            kind = i % 3
            w, h = image.size
            if kind == 0:
                image = image.resize((w // 2, h // 2), Image.Resampling.BICUBIC)  # resized
            elif kind == 2:
                image = image.crop((w // 20, h // 20, w - w // 20, h - h // 20))  # lightly cropped
            name = f"export_{i:03d}.jpg"
            image.save(copies / name, quality=70 if kind == 1 else 90)  # re-encoded (all as JPEG)
            writer.writerow([name, row["score"]])
    cache = root / "cache"
    return {kind: settings_for(root / kind, root / f"runs-{kind}", cache, root / "weights")
            for kind in ("plain", "copies")}


def test_every_copy_joins_its_original_and_distinct_photos_stay_apart(with_copies):
    settings = with_copies["copies"]
    data = labelled_set(settings)
    X = drain(feature_matrix(data.paths, ("efficientnet_lite0",), settings)).X
    groups = near_duplicate_groups(X)
    # a training run that holds these features already passes them in: the same groups as read from the cache
    assert (drain(duplicate_groups_of(data, settings, stop=NEVER_STOP, features=X)) == groups).all()
    assert (drain(duplicate_groups_of(data, settings, stop=NEVER_STOP)) == groups).all()
    by_name = {p.name: g for p, g in zip(data.paths, groups)}
    rows = list(csv.DictReader(open(settings.data_dir / "scores.csv", encoding="utf-8")))
    joined = [by_name[f"export_{i:03d}.jpg"] == by_name[rows[i]["filename"]] for i in range(COPIED)]
    assert all(joined[i] for i in range(COPIED) if i % 3 != 2)  # every resized and re-encoded copy
    assert sum(joined[i] for i in range(2, COPIED, 3)) >= 7  # most crops (5% off each side: cosine 0.75-0.93)
    assert group_summary(groups)["merged"] < COPIED + 6  # the copies, not the whole set, are merged
    folds = kfold(data.scores, folds=5, seed=1, keys=data.content_keys(), groups=groups)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])


def test_grouped_folds_keep_the_copies_from_inflating_the_metrics(with_copies):
    run = lambda kind, grouped: drain(compare(["ridge"], with_copies[kind], folds=5, seed=1,  # noqa: E731
                                              grouped=grouped))
    plain = run("plain", True).results[0].srcc
    leaky = run("copies", False).results[0].srcc
    report = run("copies", True)
    grouped = report.results[0].srcc
    assert report.near_duplicates["merged"] >= COPIED - 3  # all but a few crops
    assert leaky > grouped + 0.02, (plain, leaky, grouped)  # copies in other folds flatter the model
    assert abs(grouped - plain) < abs(leaky - plain), (plain, leaky, grouped)


def test_every_family_and_view_gets_the_same_groups_and_folds(with_copies):
    """The groups come from one fixed feature set: comparing ridge on multilevel features, or listing
    another family first, must not change which photos share a fold (it once did: groups were taken
    from whichever family's features came first)."""
    from workbench.training.compare import cross_validation_folds

    settings = with_copies["copies"]
    setups = [drain_setup(cross_validation_folds([get_family(name) for name in families], settings, backbone=None,
                                                 folds=5, seed=1, features=view, grouped=True, stop=NEVER_STOP,
                                                 random_weights=False, data=None))
              for families, view in ((["ridge"], "pooled"), (["ridge"], "multilevel"), (["svr", "ridge"], "multilevel"))]
    first = setups[0]
    assert first.group_info["merged"] >= COPIED - 3
    for other in setups[1:]:
        assert other.names == first.names
        assert (other.groups == first.groups).all()
        assert [list(test) for _, test in other.fold_indices] == [list(test) for _, test in first.fold_indices]


def drain_setup(generator):
    """Run a ``yield from`` set-up generator to its return value."""
    while True:
        try:
            next(generator)
        except StopIteration as done:
            return done.value
