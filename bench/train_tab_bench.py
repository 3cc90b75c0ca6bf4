"""What one live loss-plot update costs the Train tab, thinned against the naive full history.

    .venv/bin/python bench/train_tab_bench.py [--epochs 3000] [--plot-epochs 250] [--repeats 20]

Replays ``--epochs`` EpochEnd events of a made-up but realistic run through the
tab's ``TrainingMonitor`` and, at every UI update (every 25 epochs here), builds
what the browser receives for the loss plot: the frame, serialised by Gradio's
own ``LinePlot.postprocess`` to JSON. Prints, for the thinned frame the tab sends
(at most ``--plot-epochs`` epochs per curve) and the naive frame with every
epoch: server milliseconds per update, bytes per update, and the ratios. The
browser's drawing time grows with the points too (Vega redraws every point as
SVG); that is not measured here.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401

# isort: split



import argparse
import math
import resource
import time

import gradio as gr

from workbench.events import EpochEnd
from workbench.training.reporting import TrainingMonitor
from workbench.ui.train_tab import live_curve

UPDATE_EVERY_EPOCHS = 25


def replay(epochs: int, plot_epochs: int | None, plot: gr.LinePlot) -> tuple[float, float, int]:
    """(seconds spent building updates, mean bytes per update, updates) for one simulated run."""
    monitor = TrainingMonitor()
    spent, sizes = 0.0, []
    for epoch in range(1, epochs + 1):
        monitor.add(EpochEnd(epoch, 1.0 / math.sqrt(epoch), 1.2 / math.sqrt(epoch) + 0.05 * math.sin(epoch),
                             {"srcc": 0.5, "mae": 10.0}, total_epochs=epochs))
        if epoch % UPDATE_EVERY_EPOCHS == 0 or epoch == epochs:
            tick = time.perf_counter()
            payload = plot.postprocess(live_curve(monitor.curve(plot_epochs))).model_dump_json()
            spent += time.perf_counter() - tick
            sizes.append(len(payload))
    return spent, sum(sizes) / len(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--plot-epochs", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    plot = gr.LinePlot(x="epoch", y="loss", color="curve")
    results = {}
    for label, limit in (("thinned (what the tab sends)", args.plot_epochs), ("naive (every epoch)", None)):
        best = None
        for _ in range(args.repeats):
            spent, size, updates = replay(args.epochs, limit, plot)
            best = (spent, size, updates) if best is None or spent < best[0] else best
        results[label] = best
        spent, size, updates = best
        print(f"{label:30s} {updates} updates: {1000 * spent / updates:7.2f} ms/update "
              f"({updates / spent:7.1f} updates/s), {size / 1024:8.1f} KiB/update, "
              f"{spent:.3f} s for the whole run")
    (fast, fast_size, _), (slow, slow_size, _) = results.values()
    print(f"ratio naive/thinned: {slow / fast:.1f}x server time, {slow_size / fast_size:.1f}x bytes per update")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"({args.epochs} epochs, an update every {UPDATE_EVERY_EPOCHS} epochs, best of {args.repeats})")


if __name__ == "__main__":
    main()
