"""``python -m train prepare|fit|evaluate ...``: see :func:`train.cli.main`."""

import sys

from train.cli import main

sys.exit(main())
