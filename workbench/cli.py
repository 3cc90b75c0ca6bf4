"""``python -m workbench``: the command-line face of the engine.

Sub-commands live in ``workbench/commands/<area>.py``; each module registers
its commands with :func:`command`. This file only holds the global options and
the dispatch, so adding a command never touches it.

Start-up stays fast (``--help`` and ``dataset`` well under a second): command
modules import torch, timm, scikit-learn and gradio only inside the functions
that use them, and a command's own arguments are declared only when that
command is run or asked for its help (so ``train``'s options, generated from the
model registry, cost nothing to ``--help`` or ``dataset``).

``--json`` makes a command print exactly one JSON document on stdout; progress
bars and messages go to stderr. Exit 2 means bad input: a wrong argument or run
id, or a batch (predict, cull) in which every file failed; that batch's document
is still printed, with an ``error`` key added.
"""
from __future__ import annotations

from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import argparse
import importlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workbench.config import Settings, add_setting_flags, settings_from_args
from workbench.errors import WorkbenchError

COMMAND_MODULES = (
    "workbench.commands.dataset",
    "workbench.commands.models",
    "workbench.commands.train",
    "workbench.commands.predict",
    "workbench.commands.serve",
    "workbench.commands.labelling",
    "workbench.commands.cull",
)


class CommandError(WorkbenchError):
    """A failure of the command line's own arguments; printed without a traceback (exit 2)."""


class NothingDone(CommandError):
    """Every input failed (a batch where not one photo could be scored or culled): exit 2 like any bad
    input, but ``--json`` still prints the command's ``document``, so each file's reason is not lost."""

    def __init__(self, message: str, document: dict):
        super().__init__(message)
        self.document = document


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], Any]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register ``run(args, settings)`` as ``python -m workbench NAME``.

    ``run`` returns a JSON-serialisable document (printed with ``--json``) and
    prints its human-readable output itself when ``args.json`` is false.
    """

    def decorate(run: Callable[[argparse.Namespace, Settings], Any]):
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return decorate


def _load_command_modules() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser that declares its arguments the first time it parses or shows help.

    Declaring them may import a registry (backbones, model families), so only the command
    being run pays for it; argparse hands the command's arguments to this parser, so what
    it accepts and what ``COMMAND --help`` lists are exactly what ``add_arguments`` declares.
    """

    declare: Callable[[argparse.ArgumentParser], None] | None = None

    def _declare(self) -> None:
        declare, self.declare = self.declare, None
        if declare is not None:
            declare(self)

    def parse_known_args(self, args=None, namespace=None):
        self._declare()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._declare()
        return super().format_help()

    def format_usage(self) -> str:
        self._declare()
        return super().format_usage()


def _declare_command(cmd: Command) -> Callable[[argparse.ArgumentParser], None]:
    def declare(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else there")
        cmd.add_arguments(p)

    return declare


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(
        # `workbench` when run as the installed command, `python -m workbench` otherwise
        prog="workbench" if Path(sys.argv[0]).name == "workbench" else "python -m workbench",
        description="Aesthetic Workbench: label photos, train and compare score predictors, score new photos.",
    )
    add_setting_flags(parser)  # --data-dir, --models-dir, ... --config: declared with the settings
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.declare = _declare_command(cmd)
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)  # a bad configuration is a ConfigError (a WorkbenchError)
        document = COMMANDS[args.command].run(args, settings)
    # every error a person can act on (and the file system's: a full disk, a missing folder) is
    # printed without a traceback; anything else is a bug and keeps its traceback
    except (WorkbenchError, OSError) as exc:
        if getattr(args, "json", False):
            document = getattr(exc, "document", None)
            if document is None:
                print(json.dumps({"error": str(exc)}))
            else:
                _print_json({**document, "error": str(exc)})
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json and document is not None:  # serve prints its own document, once it is listening
        _print_json(document)
    return 0


def _print_json(document: dict) -> None:
    # NaN is not JSON: a non-finite metric is printed as null, never as a bare NaN token.
    json.dump(_finite(document), sys.stdout, indent=2, default=str, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
