"""The training side's light facts, stated once: numbers that a command line's ``--help`` shows and that the
heavy modules use, in a module that imports nothing, so that ``python -m train ... --help`` and
``python -m train.synthetic ... --help`` answer without loading NumPy, PyTorch or MediaPipe
(:mod:`realtime.catalog` holds the runtime and engine facts)."""

STILL_THRESHOLD_PX = 2.0
"""Consecutive frames are *still* when every present driving joint moved less than this many pixels (and the
same joints are present in both). 2 px on a 256x256 canvas is about MediaPipe's jitter on a person standing
still (:mod:`train.metrics`, ``python -m train evaluate --still-threshold-px``)."""

DEFAULT_SOURCE_SECONDS = 12.0
"""Length in seconds of the rendered source dancer by default (:class:`train.synthetic.source.SourceParams`,
``python -m train.synthetic source --seconds``)."""

DEFAULT_SOURCE_FPS = 24.0
"""Frame rate of the rendered source dancer by default (``--fps``)."""

DEFAULT_SOURCE_SIZE = (480, 640)
"""``(width, height)`` in pixels of the rendered source dancer by default (``--size``, portrait)."""

DEFAULT_SOURCE_SEED = 0
"""Seed of the rendered source dancer by default (``--seed``)."""
