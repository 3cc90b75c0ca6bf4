"""How steady is the CPU-path check's choice of engine? Repeats the check's own timing on one export.

    python bench/engine_choice_bench.py --work-dir /tmp/rayexp/cpb inception_v3 resnet50

For each backbone (random weights unless its weights are here): the export the workbench
made (made now if none is in ``--work-dir``), both engines loaded, and the check's timing
procedure (``onnx_runtime._median_seconds``: a warm-up, then the median of
``TIMING_REPEATS`` interleaved runs) run ``--rounds`` times on the probe batch tiled to
8 and to 16. Prints img/s per engine and which one was faster each time: where the
faster one flips between rounds, the engines are closer than the machine's noise.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench import compat  # noqa: E402,F401  (first: the torchvision guard)

# isort: split

import numpy as np  # noqa: E402

from workbench import onnx_runtime  # noqa: E402
from workbench.backbones import load_backbone, weight_status  # noqa: E402
from workbench.config import load_settings  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backbones", nargs="+")
    parser.add_argument("--work-dir", required=True, help="folder of the exports (bench/cpu_path_bench.py's --work-dir)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    settings = load_settings(cache_dir=str(Path(args.work_dir) / "cache"))
    for name in args.backbones:
        random_weights = weight_status(name, settings, check_online=False).path is None
        loaded = load_backbone(name, settings, random_weights=random_weights, progress=False)
        choice = onnx_runtime.prepare(loaded.model, settings, backbone=name, weights_id=loaded.weights.weights_id,
                                      output="pooled", transform=loaded.transform, load=False)
        if choice.export is None:
            print(f"{name}: {choice.label}")
            continue
        engines = [e for e in onnx_runtime.ENGINES if choice.export.check["engines"].get(e, {}).get("passed")]
        calls = {e: onnx_runtime.ENGINES[e].load(choice.export.path, onnx_runtime.cpu_count()) for e in engines}
        probe = onnx_runtime.probe_batch(loaded.transform)
        for batch in (8, 16):
            x = np.ascontiguousarray(np.tile(probe, (batch // len(probe), 1, 1, 1)))
            for round_ in range(args.rounds):
                medians = onnx_runtime._median_seconds(calls, x)
                rates = "  ".join(f"{e} {batch / s:6.2f}" for e, s in medians.items())
                print(f"{name:<16} batch {batch:>2} round {round_}  img/s: {rates}  faster: {min(medians, key=medians.get)}"
                      f"  load {os.getloadavg()[0]:.1f}  (check chose {choice.export.check['fastest']})", flush=True)


if __name__ == "__main__":
    main()
