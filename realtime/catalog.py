"""The live server's default limits, in a module that imports nothing, so that ``server.py --help`` can show
them without loading aiortc, PyAV or NumPy (:mod:`realtime.serving.signaling` and
:mod:`realtime.serving.stream` use them)."""

DEFAULT_MAX_SESSIONS = 4
"""Sessions served at once by default; the next client is told the server is full."""

DEFAULT_POSE_THREADS = 2
"""Pose estimation threads by default: MediaPipe runs one frame on one core, so two streams' poses can be
estimated at once on two cores (measured: 31 frames/s on one thread, 46 on two, on the 2-core machine)."""

PLAYOUT_DELAYS = ("zero", "browser")
"""``server.py --playout-delay`` choices, the default first: ``zero`` sends the generated video with the RTP
playout-delay extension at 0 (:func:`realtime.serving.aiortc_patch.use_zero_playout_delay`), ``browser``
leaves the
delay to the browser's jitter buffer."""
