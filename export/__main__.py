"""``python -m export onnx|tensorrt ...``: see :func:`export.cli.main`."""

import sys

from export.cli import main

sys.exit(main())
