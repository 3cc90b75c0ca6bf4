"""Typed progress events yielded by every long engine job.

Import, feature extraction, training and batch prediction are generators that
yield these. The UI turns them into progress bars and live plots, the CLI into
tqdm bars, the tests into assertions. A job is stopped by setting the
``threading.Event`` it was given; it checks the flag every batch.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Generator


@dataclass
class Progress:
    """``done`` of ``total`` units finished; ``rate`` in units/s, ``eta`` in s."""

    done: int
    total: int
    message: str = ""
    rate: float | None = None
    eta: float | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class EpochEnd:
    """One epoch (or boosting stage / batch of trees) finished."""

    epoch: int
    train_loss: float | None
    val_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    total_epochs: int | None = None

    def record(self) -> dict[str, Any]:
        """The epoch as one row of a run's ``history``: epoch, train_loss, val_loss and the metrics."""
        return {"epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss, **self.metrics}


@dataclass
class Notice:
    """Something the person should read (weights source, skipped file, ...)."""

    message: str
    level: str = "info"  # "info" | "warning"


@dataclass
class FilesSkipped(Notice):
    """A Notice naming files that could not be read. A caller that reports each failed file itself
    (prediction lists them as rows with their reasons) drops these, so no file is reported twice."""


@dataclass
class Finished:
    """The job ended; ``result`` is its product (a run, a report, ...)."""

    result: Any
    stopped: bool = False


class StopFlag(threading.Event):
    """A stop request shared between a job and whoever may cancel it."""


class _NeverSet(StopFlag):
    def set(self) -> None:
        raise RuntimeError("NEVER_STOP is the shared default: give the job its own StopFlag to stop it")


# The default ``stop`` of every job: jobs check ``stop.is_set()`` without asking whether there is a flag.
NEVER_STOP: StopFlag = _NeverSet()


def relay(events) -> Generator[Any, None, Finished | None]:
    """Yield a sub-job's events except its ``Finished``, which it returns::

        finished = yield from relay(extract_features(...))
    """
    finished = None
    for event in events:  # to the end: a job may still tidy up after its Finished
        if isinstance(event, Finished):
            finished = event
        else:
            yield event
    return finished


def drain(events, on_event=None):
    """Run an event generator to the end and return the ``Finished.result``."""
    result = None
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            result = event.result
    return result
