"""The SAVOIAS learning curve (1,218 real photos, human scores) for ridge and auto.

    .venv/bin/python bench/learning_curve_bench.py [--models ridge,auto] [--folds 5] [--repeats 3]
        [--cache-dir DIR] [--weights-dir DIR]

Prints, per model, held-out SRCC (mean and standard deviation over draws) at
10, 25, 50, ... labelled photos up to a whole training fold, the projection
sentence (a least-squares line of SRCC against log2(labels) through the last
three points, with a range of two standard errors of its slope), and the wall time. Features come from the cache (extracted on
the first run); NIMA's weights from ../shared/weights unless --weights-dir.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split

import argparse
import time
from pathlib import Path

from compare_bench import SHARED, bench_settings, savoias  # bench/ is on the path when this script runs

from workbench.events import drain
from workbench.training.learning_curve import learning_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--savoias", type=Path, default=SHARED / "datasets" / "savoias")
    parser.add_argument("--models", default="ridge,auto")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--features", default=None, help="pooled or multilevel (auto always multilevel)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    args = parser.parse_args()
    settings = bench_settings(args.cache_dir, args.weights_dir)
    data = savoias(args.savoias)
    print(f"SAVOIAS: {len(data)} photos, {args.folds}-fold CV (grouped, content-keyed), seed {args.seed}, "
          f"{args.repeats} draws per size")
    tick = time.perf_counter()
    curves = drain(learning_curve([m for m in args.models.split(",") if m], settings, folds=args.folds,
                                  seed=args.seed, repeats=args.repeats, features=args.features, data=data))
    for curve in curves:
        print(f"\n{curve.model} ({curve.features} features)")
        print(f"{'labels':>8}{'SRCC':>8}{'±':>7}")
        for p in curve.points:
            print(f"{p.n_labels:>8}{p.srcc_mean:>8.3f}{p.srcc_std:>7.3f}")
        print(curve.projection["sentence"])
    print(f"\nwall time: {time.perf_counter() - tick:.1f} s")


if __name__ == "__main__":
    main()
