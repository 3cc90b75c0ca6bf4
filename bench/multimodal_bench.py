"""Image + text, measured: image-only vs text-only vs multimodal_concat vs multimodal_moe on the same folds.

    OMP_NUM_THREADS=1 .venv/bin/python bench/multimodal_bench.py --cache-dir /tmp/mm14-cache [--folds 5]

Conditions (every family sees the same folds within a condition):

- ``savoias-category``: SAVOIAS (1,218 real photos, human scores 0-100) with each photo's category name
  ("Advertisement", "Art", "Interior design", ...) as its text. Categories differ in mean score, so
  the text carries part of the score.
- ``savoias-category-half``: the same with text on every other photo only.
- ``brightness-exposure``: crops of the package photos, darkened at random, score = mean brightness
  (0-100); the text is an exposure note from the true score in five bands ("very dark", ... "bright")
  on every photo: informative, but redundant with what the image shows.
- ``brightness-exposure-half``: that note on every other photo only.
- ``brightness-neutral``: a note drawn at random from neutral words ("holiday", "family", ...):
  uninformative text.
- ``brightness-hidden``: score = 0.6 brightness + 40 x a client verdict the pixels cannot show, with the
  verdict as text ("the client loved it" / "the client rejected it"): text that carries what the image lacks.

- ``savoias-halves``: is the recipe tuned on all of SAVOIAS general? The categories split in two halves
  (A: Art, Interior Design, Scenes; B: Advertisement, Objects, Suprematism, as ``category_split_bench``);
  cross-validation within each half, then models trained on all of one half scored on the other, whose
  category names the text never carried in training (fused families must not be clearly worse there).

Image-only is ``ridge`` (and ``head`` for the torch families' counterpart) on efficientnet_lite0 features;
text-only is ridge on the text block alone (photos without text: a zero embedding and flag 0).
Per condition it prints SRCC mean ± standard deviation over folds and each fused family's paired
per-fold SRCC difference against ridge (mean ± sd), which is the fair "clear margin / within noise" test.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.config import load_settings
from workbench.events import drain
from workbench.multimodal import text_block
from workbench.training import LabelledSet, compare, compute_metrics, kfold

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CATEGORY_TEXT = {"ad": "Advertisement", "art": "Art", "interior": "Interior design", "objects": "Objects",
                 "scenes": "Scenes", "sup": "Suprematism"}
NEUTRAL = ["holiday", "family", "weekend", "taken on a Tuesday", "from the archive", "camera roll",
           "shared with friends", "old phone"]
BANDS = [(20, "very dark exposure"), (40, "dark exposure"), (60, "medium exposure"), (80, "bright exposure"),
         (101, "very bright exposure")]


def savoias(folder: Path, half: bool) -> LabelledSet:
    rows = list(csv.DictReader(open(folder / "scores.csv", encoding="utf-8")))
    data = LabelledSet.from_pairs([(folder / "images" / r["filename"], float(r["score"])) for r in rows])
    data.texts = [r.get("category") or CATEGORY_TEXT[r["filename"].split("_")[0]] for r in rows]
    if half:
        data.texts = [t if i % 2 == 0 else None for i, t in enumerate(data.texts)]
    return data


def brightness(folder: Path, n: int, condition: str, seed: int = 0) -> LabelledSet:
    """The brightness set (made once in ``folder``) with the condition's score and texts."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import package_photos
    from training_fixtures import make_brightness_set

    if not (folder / "scores.csv").exists():
        make_brightness_set(package_photos(), folder, n=n, size=64, seed=seed)
    rows = list(csv.DictReader(open(folder / "scores.csv", encoding="utf-8")))
    rng = np.random.default_rng(seed + 1)
    light = np.array([float(r["score"]) for r in rows])
    scores, texts = light.copy(), []
    if condition == "brightness-hidden":
        verdict = rng.integers(0, 2, len(rows))
        scores = 0.6 * light + 40 * verdict
        texts = ["the client loved it" if v else "the client rejected it" for v in verdict]
    elif condition == "brightness-neutral":
        texts = [NEUTRAL[k] for k in rng.integers(0, len(NEUTRAL), len(rows))]
    else:
        texts = [next(label for top, label in BANDS if s < top) for s in light]
    if condition.endswith("-half"):
        texts = [t if i % 2 == 0 else None for i, t in enumerate(texts)]
    data = LabelledSet.from_pairs([(folder / r["filename"], float(s)) for r, s in zip(rows, scores)])
    data.texts = texts
    return data


HALF_A = ("Art", "Interior Design", "Scenes")


def report(condition: str, data: LabelledSet, by: dict, families: list[str], text: list[dict], seconds: float) -> None:
    covered = sum(1 for t in data.texts if t)
    print(f"\n== {condition}: {len(data)} photos, {covered} with text, {seconds:.0f} s")
    print(f"{'model':<20}{'SRCC':>8}{'± sd':>8}{'MAE':>8}{'ΔSRCC vs ridge (paired)':>28}")
    base = np.array([f["srcc"] for f in by["ridge"].folds])
    rows = [(name, [f["srcc"] for f in by[name].folds], by[name].mae) for name in families]
    rows.append(("text-only (ridge)", [f["srcc"] for f in text], float(np.mean([f["mae"] for f in text]))))
    for name, srcc, mae in rows:
        delta = np.array(srcc) - base
        shown = "" if name == "ridge" else f"{delta.mean():+.3f} ± {delta.std():.3f}"
        print(f"{name:<20}{np.mean(srcc):>8.3f}{np.std(srcc):>8.3f}{mae:>8.2f}{shown:>28}", flush=True)


def savoias_halves(args, settings, families: list[str]) -> None:
    """Cross-validation within each half of the categories, then each half's models scored on the other."""
    from scipy.stats import spearmanr

    from workbench.features import feature_matrix
    from workbench.models import get_family
    from workbench.training.splits import stratified_split

    data = savoias(args.savoias, half=False)
    in_a = np.isin(np.array(data.texts), HALF_A)
    for half, mask in (("A", in_a), ("B", ~in_a)):
        tick = time.perf_counter()
        part = data.subset(list(np.flatnonzero(mask)))
        by = {r.model: r for r in drain(compare(families, settings, backbone=args.backbone, folds=args.folds,
                                                 seed=args.seed, data=part)).results}
        report(f"savoias-halves, within half {half}", part, by, families,
               text_only(part, settings, args.folds, args.seed), time.perf_counter() - tick)
    image = drain(feature_matrix(data.paths, (args.backbone,), settings)).X
    X = np.concatenate([image, text_block(data.texts, settings)], axis=1)
    keys, y = np.array(data.content_keys()), data.scores
    print("\n== savoias-halves, trained on one half, scored on the other (its category names unseen)")
    for train_mask, name in ((in_a, "A -> B"), (~in_a, "B -> A")):
        tr, te = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
        line = []
        for fam_name in families:
            fam = get_family(fam_name)
            inputs = X if fam.capabilities.needs_text else image
            model = fam.make(fam.resolve_params({}), seed=args.seed)
            if fam.capabilities.torch:  # early stopping on a validation slice, as compare() does
                inner = stratified_split(y[tr], val_fraction=0.15, test_fraction=0.0, seed=args.seed, keys=keys[tr])
                fit, val = tr[inner.train], tr[inner.val]
                model.fit(inputs[fit], y[fit], inputs[val], y[val])
            else:
                model.fit(inputs[tr], y[tr])
            line.append(f"{fam_name} {spearmanr(y[te], model.predict(inputs[te]))[0]:.3f}")
        print(f"{name}: SRCC " + ", ".join(line), flush=True)


def text_only(data: LabelledSet, settings, folds: int, seed: int) -> list[dict]:
    """Ridge on the text block alone, through the same folds and metrics as compare()."""
    from workbench.models import get_family

    X = text_block(data.texts, settings)
    y = data.scores
    ridge = get_family("ridge")
    out = []
    for train_idx, test_idx in kfold(y, folds=folds, seed=seed):
        model = ridge.make({"alpha": 10.0}, seed=seed).fit(X[train_idx], y[train_idx])
        out.append(compute_metrics(y[test_idx], model.predict(X[test_idx]), score_min=settings.score_min,
                                   score_max=settings.score_max))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--brightness-n", type=int, default=240)
    parser.add_argument("--conditions", default="savoias-category,savoias-category-half,brightness-exposure,"
                        "brightness-exposure-half,brightness-neutral,brightness-hidden,savoias-halves")
    args = parser.parse_args()

    settings = load_settings(cache_dir=args.cache_dir, weights_dir=Path(tempfile.mkdtemp(prefix="mm-weights-")),
                             models_dir=Path(tempfile.mkdtemp(prefix="mm-runs-")))
    bright_dir = Path(tempfile.mkdtemp(prefix="mm-brightness-"))
    families = ["ridge", "head", "multimodal_concat", "multimodal_moe"]
    print(f"{args.folds}-fold CV, seed {args.seed}, backbone {args.backbone}, families {families} + text-only")
    for condition in [c for c in args.conditions.split(",") if c]:
        tick = time.perf_counter()
        if condition == "savoias-halves":
            savoias_halves(args, settings.replace(data_dir=args.savoias), families)
            continue
        if condition.startswith("savoias"):
            data = savoias(args.savoias, half=condition.endswith("-half"))
            settings_now = settings.replace(data_dir=args.savoias)
        else:
            data = brightness(bright_dir, args.brightness_n, condition)
            settings_now = settings.replace(data_dir=bright_dir)
        report_ = drain(compare(families, settings_now, backbone=args.backbone, folds=args.folds, seed=args.seed,
                                data=data))
        by = {r.model: r for r in report_.results}
        report(condition, data, by, families, text_only(data, settings_now, args.folds, args.seed),
               time.perf_counter() - tick)

if __name__ == "__main__":
    main()
