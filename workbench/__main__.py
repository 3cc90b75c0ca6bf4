from workbench import compat  # noqa: F401  (first: the torchvision guard)

# isort: split

import sys

from workbench.cli import main

sys.exit(main())
