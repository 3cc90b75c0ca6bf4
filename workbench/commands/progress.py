"""The one place the command line shows an engine job's events (on stderr, so ``--json`` stays clean).

``Progress`` drives a tqdm bar, ``EpochEnd`` a bar per epoch with the losses,
``Notice`` is printed above the bars (warnings prefixed ``WARNING:``), and the
job's ``Finished`` event is returned.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable

from workbench.events import EpochEnd, Finished, Notice, Progress

if TYPE_CHECKING:
    from tqdm import tqdm


def drive(events: Iterable[Any], desc: str = "progress", *, unit: str = "it", bars: bool = True) -> Finished | None:
    """Run ``events`` to the end showing them on stderr; return the ``Finished`` event (None if there was none).

    ``bars=False`` hides the bars (a single photo) but still prints the notices.
    """
    from tqdm import tqdm  # here, not at the top: ``--help`` need not load it
    bar: tqdm | None = None
    kind = ""  # what the current bar counts: Progress units or epochs (a disabled tqdm keeps no unit)
    finished = None
    try:
        for event in events:
            if isinstance(event, Progress):
                if kind != "progress":
                    bar, kind = _new_bar(bar, desc, event.total, unit, bars), "progress"
                bar.total, bar.n = event.total, event.done
                bar.set_postfix_str(event.message[-60:], refresh=False)
                bar.refresh()
            elif isinstance(event, EpochEnd):
                if kind != "epoch":
                    bar, kind = _new_bar(bar, "training", event.total_epochs, "epoch", bars), "epoch"
                bar.n = event.epoch
                postfix = {"train": event.train_loss, "val": event.val_loss,
                           **{k: v for k, v in event.metrics.items() if k in ("srcc", "mae")}}
                bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items() if v is not None}, refresh=False)
                bar.refresh()
            elif isinstance(event, Notice):
                tqdm.write(f"{'WARNING: ' if event.level == 'warning' else ''}{event.message}", file=sys.stderr)
            elif isinstance(event, Finished):
                finished = event
    finally:
        if bar is not None:
            bar.close()
    return finished


def result_of(events: Iterable[Any], desc: str = "progress", *, unit: str = "it", bars: bool = True) -> Any:
    """:func:`drive`, returning the job's result (None when it finished without one)."""
    finished = drive(events, desc, unit=unit, bars=bars)
    return None if finished is None else finished.result


def _new_bar(old: tqdm | None, desc: str, total: int | None, unit: str, shown: bool) -> tqdm:
    from tqdm import tqdm

    if old is not None:
        old.close()
    return tqdm(desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=not shown)
