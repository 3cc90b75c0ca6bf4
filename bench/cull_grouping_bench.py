"""The cull's grouping rule on a shoot built by bench/cull_bench.py, with and without layout links.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cull_grouping_bench.py --shoot-dir DIR [--cache-dir C]

Reads the shoot and its truth (``DIR/shoot.json``), takes each photo's technical
measures (capture time and 16x16 layout, as the cull does) and its backbone
features (cached in ``--cache-dir``), then groups the photos three ways:

- as shot (EXIF capture times; bursts 30-120 s apart);
- every scene shot 1 s after the previous one (frames still 0.4 s apart): how
  often different scenes in one run of photos merge, i.e. the burst links' precision;
- no capture time at all (name order);

each by features alone (the rule before layouts: ``layouts=None``) and by the
shipped rule, printing pairwise precision/recall and how many blurred frames
ended in a group of their own. No scoring: grouping only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoot-dir", type=Path, required=True, help="a shoot built by bench/cull_bench.py --shoot-dir")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default: the settings' cache)")
    args = parser.parse_args()
    if args.cache_dir:
        os.environ["WORKBENCH_CACHE_DIR"] = str(args.cache_dir)
    os.environ.setdefault("WORKBENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))

    from cull_fixtures import pairwise_precision_recall

    from workbench.config import load_settings
    from workbench.cull import CullOptions, group_photos, measure
    from workbench.events import drain
    from workbench.features import extract_features

    truth = json.loads((args.shoot_dir / "shoot.json").read_text())
    groups = truth["groups"]
    paths = [p for g in groups for p in g]
    blurred = set(truth["blurred"])
    settings = load_settings()
    measures = [measure(p, settings) for p in paths]
    done = drain(extract_features(paths, settings.default_backbone, settings))
    assert [str(p) for p in done.paths] == paths, "every photo of the shoot must have features"
    features = np.asarray(done.features)
    layouts = [m.layout for m in measures]
    one_second, t = [], 0.0  # every scene 1 s after the last frame of the previous one
    for g in groups:
        for _ in g:
            one_second.append(t)
            t += 0.4
        t += 0.6
    print(f"{len(paths)} photos, {len(groups)} true groups, {len(blurred)} blurred frames; "
          f"{sum(v is None for v in layouts)} without a layout (flat)")
    print("| capture times | rule | precision | recall | blurred frames alone |")
    print("| --- | --- | --- | --- | --- |")
    for label, taken in (("as shot", [m.taken for m in measures]), ("scenes 1 s apart", one_second),
                         ("none (name order)", [None] * len(paths))):
        for rule, lay in (("features alone", None), ("features + layouts", layouts)):
            found = [[paths[i] for i in g] for g in group_photos(features, taken, CullOptions(), layouts=lay, names=paths)]
            precision, recall = pairwise_precision_recall(groups, found)
            alone = sum(len(g) == 1 and g[0] in blurred for g in found)
            print(f"| {label} | {rule} | {precision:.4f} | {recall:.4f} | {alone}/{len(blurred)} |", flush=True)


if __name__ == "__main__":
    main()
