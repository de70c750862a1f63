"""``python -m realtime.offline --source S.mp4 --out R.mp4``: see :func:`realtime.offline.cli.main`."""

import sys

from realtime.offline.cli import main

sys.exit(main())
