"""``python -m train.synthetic``: see :func:`train.synthetic.cli.main`."""

import sys

from train.synthetic.cli import main

sys.exit(main())
