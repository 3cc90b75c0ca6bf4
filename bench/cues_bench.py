"""Do hand-crafted cues or the spatial standard deviation of each stage add to the learnt features?

    .venv/bin/python bench/cues_bench.py [--cache-dir DIR] [--weights-dir DIR] [--store FILE.npz]
        [--std-backbones efficientnet_lite0,nima_mobilenet]

Hand-crafted cues (12 numbers per photo, on the photo decoded at about 384 px on its long side):
colourfulness (Hasler & Süsstrunk 2003), mean and standard deviation of saturation and of
brightness, RMS contrast and the 5-95% luminance range, edge density (share of pixels whose
Sobel gradient exceeds 0.1) and mean gradient, sharpness (variance of the Laplacian), JPEG
compressibility (bytes per pixel of the grey image re-encoded at quality 75) and the aspect ratio.
Spatial standard deviation: for every stage tap of the multilevel view, each channel's standard
deviation over space next to its mean (MLSP's "narrow" pooling keeps only the mean); doubles the
vector. Both are computed once and kept in ``--store`` (outside the repository).

Each feature set is scored on compare's folds (5-fold, seed 42, content-keyed, near-duplicates
grouped by efficientnet_lite0's pooled features) with RidgeCV and with auto's ridge + SVR average;
per-fold SRCC differences are paired against the same model without the addition. Then the
held-out-categories check: scored within half A (Art, Interior Design, Scenes) and within half B.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import csv
import io
import time
from pathlib import Path

import numpy as np
import torch
from category_split_bench import HALF_A  # bench/ is on the path when this script runs
from compare_bench import SHARED, bench_settings, savoias
from PIL import Image
from scipy import ndimage
from scipy.stats import pearsonr, spearmanr

from workbench.backbones import MultiLevel, load_backbone
from workbench.events import NEVER_STOP, Finished, drain
from workbench.features import _batches, feature_matrix
from workbench.models import get_family
from workbench.training.splits import kfold, near_duplicate_groups

CUES = ("colourfulness", "saturation mean", "saturation std", "brightness mean", "brightness std", "rms contrast",
        "luminance 5-95% range", "edge density", "mean gradient", "laplacian variance", "jpeg bytes/pixel",
        "aspect ratio")


def cues(path: Path) -> np.ndarray:
    image = Image.open(path)
    image.draft("RGB", (384, 384))
    image = image.convert("RGB")
    aspect = image.width / image.height
    image.thumbnail((384, 384))
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64) / 255.0
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    gradient = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1)) / 8.0
    buffer = io.BytesIO()
    image.convert("L").save(buffer, "JPEG", quality=75)
    low, high = np.percentile(grey, [5, 95])
    return np.array([colourful, hsv[..., 1].mean(), hsv[..., 1].std(), hsv[..., 2].mean(), hsv[..., 2].std(),
                     grey.std(), high - low, (gradient > 0.1).mean(), gradient.mean(),
                     ndimage.laplace(grey).var(), len(buffer.getvalue()) / grey.size, aspect])


class MeanAndStd(MultiLevel):
    """The multilevel view with each channel's spatial standard deviation beside its mean."""

    def _keep(self, module, args, output) -> None:
        out = output.float()
        self._outputs.append(torch.cat([out.mean(dim=(2, 3)), out.std(dim=(2, 3))], dim=1))


def spatial_std(paths, backbone: str, settings) -> np.ndarray:
    loaded = load_backbone(backbone, settings)
    model = MeanAndStd(loaded.model.eval(), loaded.spec.stage_taps)
    rows = {}
    for event in _batches(loaded, model, torch.device("cpu"), list(enumerate(map(str, paths))), settings,
                          NEVER_STOP):
        if isinstance(event, Finished):
            break
        vectors, errors, _ = event
        assert not errors, errors
        rows.update(vectors)
    return np.stack([rows[i] for i in range(len(paths))])


def ridge_model(seed):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench.models.auto import RIDGE_ALPHAS

    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def auto_model(seed):
    return get_family("auto").make({}, seed=seed)


MODELS = {"ridgecv": ridge_model, "auto": auto_model}


def cv(make, X, y, folds):
    s, p = [], []
    for tr, te in folds:
        pred = make(42).fit(X[tr], y[tr]).predict(X[te])
        s.append(spearmanr(y[te], pred)[0])
        p.append(pearsonr(y[te], pred)[0])
    return np.array(s), np.array(p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--store", type=Path, default=Path("/tmp/cues_bench.npz"))
    parser.add_argument("--std-backbones", default="efficientnet_lite0,nima_mobilenet")
    parser.add_argument("--parts", default="A,B,all", help="where to score: half A, half B, all photos")
    parser.add_argument("--models", default=",".join(MODELS), help="models to score with (comma-separated)")
    parser.add_argument("--prepare-only", action="store_true", help="fill --store and stop")
    args = parser.parse_args()
    settings = bench_settings(args.cache_dir, args.weights_dir)
    data = savoias(args.savoias)
    y, keys = data.scores, np.array(data.content_keys())
    stored = dict(np.load(args.store)) if args.store.is_file() else {}
    if "cues" not in stored:
        tick = time.perf_counter()
        stored["cues"] = np.stack([cues(p) for p in data.paths])
        print(f"cues: {stored['cues'].shape} in {time.perf_counter() - tick:.0f} s", flush=True)
        np.savez(args.store, **stored)
    for b in [b for b in args.std_backbones.split(",") if b]:
        if f"std {b}" not in stored:
            tick = time.perf_counter()
            stored[f"std {b}"] = spatial_std(data.paths, b, settings)
            print(f"mean+std {b}: {stored[f'std {b}'].shape} in {time.perf_counter() - tick:.0f} s", flush=True)
            np.savez(args.store, **stored)
    if args.prepare_only:
        return
    ml = {b: drain(feature_matrix(data.paths, (b,), settings, view="multilevel")).X
          for b in ("efficientnet_lite0", "nima_mobilenet")}
    lite, nima, cue = ml["efficientnet_lite0"], ml["nima_mobilenet"], stored["cues"]
    sets = {"cues alone": (cue, None),
            "lite0 pooled": (lite[:, -1280:], None),
            "lite0 pooled + cues": (np.hstack([lite[:, -1280:], cue]), "lite0 pooled"),
            "lite0 multilevel": (lite, None),
            "nima+lite0 multilevel": (np.hstack([nima, lite]), None),
            "nima+lite0 multilevel + cues": (np.hstack([nima, lite, cue]), "nima+lite0 multilevel")}
    if "std efficientnet_lite0" in stored:
        sets["lite0 mean+std"] = (stored["std efficientnet_lite0"], "lite0 multilevel")
        if "std nima_mobilenet" in stored:
            sets["nima+lite0 mean+std"] = (np.hstack([stored["std nima_mobilenet"], stored["std efficientnet_lite0"]]),
                                           "nima+lite0 multilevel")
    groups = near_duplicate_groups(lite[:, -1280:])
    cats = np.array([r["category"] for r in csv.DictReader(open(args.savoias / "scores.csv", encoding="utf-8"))])
    a = np.isin(cats, HALF_A)
    parts = {"all": np.arange(len(y)), "A": np.flatnonzero(a), "B": np.flatnonzero(~a)}
    for part in args.parts.split(","):
        idx = parts[part]
        folds = kfold(y[idx], folds=5, seed=42, keys=keys[idx], groups=groups[idx])
        scores = {}
        needed = {base for _, base in sets.values() if base} | {"cues alone"}
        for mname, make in [(m, MODELS[m]) for m in args.models.split(",")]:
            for fname, (X, base) in sets.items():
                if (fname == "cues alone" and mname == "auto") or (base is None and fname not in needed):
                    continue
                s, p = cv(make, X[idx], y[idx], folds)
                scores[fname, mname] = s
                line = f"{part:<4}{fname:<30}{mname:<8}SRCC {s.mean():.3f} ± {s.std():.3f}  PLCC {p.mean():.3f}"
                if base is not None:
                    d = s - scores[base, mname]
                    line += f"  vs {base}: {d.mean():+.4f} [{d.min():+.3f}, {d.max():+.3f}] wins {(d > 0).sum()}/5"
                print(line, flush=True)


if __name__ == "__main__":
    main()
