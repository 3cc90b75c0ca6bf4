"""Launch the Aesthetic Workbench UI: ``python gradio_app.py [--port N] [--host H] [--data-dir D] ...``.

The same as ``python -m workbench serve``: one option parser, one launch path.
"""
from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
