"""``python -m workbench serve``: start the UI and its JSON API, exactly as ``gradio_app.py`` does.

``gradio_app.py`` runs this command, so the two take the same options: ``--host``,
``--port``, ``--data-dir``, ``--models-dir``, ``--weights-dir``, ``--cache-dir``
and ``--config``, before or after the word ``serve``. With ``--json`` it prints one JSON
document, ``{"url", "api", "data", "runs"}``, once the server answers (for a program that starts it).
"""
from __future__ import annotations

import argparse

from workbench.cli import command
from workbench.config import Settings, add_setting_flags


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, only_if_given=True)


@command("serve", "Start the workbench in your browser (the UI and its JSON API) on 127.0.0.1.", _serve_arguments)
def serve_command(args: argparse.Namespace, settings: Settings) -> None:
    from workbench.ui.app import launch  # gradio loads only for this command

    launch(settings, as_json=args.json)  # --json: one document {url, api, data, runs} once it answers
