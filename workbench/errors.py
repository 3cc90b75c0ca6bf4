"""The base of every error a person can act on.

Front ends (the CLI, the UI tabs, the API) catch ``WorkbenchError`` and show
its message; anything else is a bug and keeps its traceback. This module
imports nothing of the project, so every layer can raise these.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Something the person can fix: the message says what and how."""

    def __str__(self) -> str:
        # KeyError-derived errors would otherwise show their message in quotes
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class TrainingError(WorkbenchError):
    """Training cannot start or went wrong (no weights, diverged, ...)."""
