"""``python -m train.actions data|fit|sample|evaluate ...``: see :func:`train.actions.cli.main`."""

import sys

from train.actions.cli import main

sys.exit(main())
