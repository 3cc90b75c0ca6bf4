"""Aesthetic Workbench: learn a person's own sense of a good photo.

The engine. It never imports gradio; the UI (``workbench.ui``), the CLI
(``python -m workbench``) and the tests are thin faces over it.
"""
from workbench import compat as _compat  # noqa: F401  (must run before torchvision)

# isort: split

__version__ = "0.1.0"
