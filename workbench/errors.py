"""The base of every error a person can act on.

Front ends (the CLI, the UI tabs, the API) catch ``WorkbenchError`` and show
its message; anything else is a bug and keeps its traceback. Each error says
what went wrong and what to do. This module imports nothing of the project,
so every layer can raise these.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Something the person can fix: the message says what and how."""

    def __str__(self) -> str:
        # KeyError would show its message in quotes; people read these
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class BadInput(WorkbenchError, ValueError):
    """A value the person gave is out of its type, range or choices."""


class NotFound(WorkbenchError, KeyError):
    """A name (a run, a family, a backbone, a photo) that names nothing here."""


class TrainingError(WorkbenchError):
    """Training cannot start or went wrong (no weights, diverged, ...)."""


class WeightsMissing(TrainingError):
    """A backbone has no pretrained weights here. The message is worded for the CLI; the fields let
    the UI say the same in its own terms: ``target`` is the file to place (None: no pretrained
    weights exist, only random ones can be used), ``url`` where to get it."""

    def __init__(self, message: str, *, backbone: str, target=None, url: str | None = None) -> None:
        super().__init__(message)
        self.backbone, self.target, self.url = backbone, target, url
