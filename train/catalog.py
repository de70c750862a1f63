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

MOTION_DANCE = "dance"
"""The synthetic mannequin's default motion: varied dance-like moves over the whole floor
(:class:`train.synthetic.motion.MotionConfig`, ``python -m train.synthetic --motion dance``)."""

MOTION_RESTRICTED = "restricted"
"""The synthetic mannequin's restricted motion, what a user records of themselves in a few seconds: standing,
walking a little, turning round, arms low, no wide stance (:data:`train.synthetic.motion.RESTRICTED_MOTION`,
``--motion restricted``)."""

SYNTHETIC_MOTION_FRAMES = {MOTION_DANCE: 3000, MOTION_RESTRICTED: 350}
"""The named motions of the synthetic dataset (``python -m train.synthetic --motion NAME``, the first the
default) and each one's default number of frames (``--frames``): 350 frames at 24 fps are about 15 s."""

DEFAULT_SOURCE_FRAMES = 96
"""Frames of each source video (the first ones) that drive each model in ``python -m train evaluate
--sources`` (``--source-frames``): 4 s at 24 fps, enough poses for the limb-direction figures and cheap on a
CPU (:func:`train.evaluate.drive_with_source`)."""
