"""Light constants and tables, in a module that imports only the standard library, so that ``--help`` can
show them without loading aiortc, PyAV, NumPy or MediaPipe: the live server's default limits
(:mod:`realtime.serving.signaling` and :mod:`realtime.serving.workers` use them) and the table of pose
estimators (:data:`POSE_ESTIMATORS`, built by :func:`realtime.pose.estimators.open_pose_estimator`)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


# -- pose estimators ----------------------------------------------------------------------------------------


class UnknownPoseEstimatorError(ValueError):
    """A pose estimator name that is not in :data:`POSE_ESTIMATORS` (in this process)."""


@dataclass(frozen=True)
class PoseEstimatorEntry:
    """One pose estimator of the table: where its implementation lives and the options it is built with
    (FasterLivePortrait's ``get_predictor``: every stage model a named entry, built by name).

    Attributes:
        implementation: ``"module:attribute"`` of a :class:`realtime.pose.estimators.PoseEstimator` subclass,
            imported on first use (so the table stays light). It is called as
            ``implementation(video_mode=..., with_mask=..., **options)``.
        options: keyword arguments for the implementation, e.g. MediaPipe's ``min_detection_confidence``
            (JSON-like values only: the entry is data, not code). Do not mutate it.
        gives_mask: whether the implementation can return a person segmentation mask
            (:attr:`realtime.pose.estimators.PoseFrame.mask`), so that ``train.prepare --mask-source`` can
            offer it.
        description: one line for ``--help`` and error messages.
    """

    implementation: str
    options: dict[str, float | int | str | bool] = field(default_factory=dict)
    gives_mask: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        module, _, attribute = self.implementation.partition(":")
        if not module or not attribute:
            raise ValueError(
                f"a pose estimator's implementation is 'module:attribute', got {self.implementation!r}"
            )


DEFAULT_POSE_ESTIMATOR = "mediapipe"
"""The pose estimator of targets and prepared data that name none (everything written before the field)."""

POSE_ESTIMATORS: dict[str, PoseEstimatorEntry] = {
    "mediapipe": PoseEstimatorEntry(
        implementation="realtime.pose.estimators:MediaPipePose",
        options={"model_complexity": 1, "min_detection_confidence": 0.5, "min_tracking_confidence": 0.5},
        gives_mask=True,
        description="MediaPipe Pose (BlazePose full, the model bundled in mediapipe 0.10.21)",
    ),
}
"""Pose estimator name -> :class:`PoseEstimatorEntry`: the one place a pose estimator is chosen. A target
records its estimator's name (``pose_estimator`` in its prepared data's ``meta.json`` and in its sidecar) and
everything that estimates its poses (``train.prepare``, the live and offline pipeline, the evaluation) builds
that entry. Add an entry with :func:`register_pose_estimator`, or one line here for a built-in one."""

MASK_SOURCE_NONE = "none"
"""``train.prepare --mask-source`` for no segmentation: all-zero masks."""


def register_pose_estimator(name: str, entry: PoseEstimatorEntry, *, replace: bool = False) -> None:
    """Add a pose estimator to :data:`POSE_ESTIMATORS` (tests and plug-ins; a built-in one is a line there).

    Register it before anything looks the name up: in a plug-in's import, or before ``Target.load``. A
    process that reads a target or prepared data naming an estimator must have registered it too.

    Args:
        name: the name targets record; letters, digits, ``-``, ``_`` and ``.``; not ``"none"``.
        entry: the implementation and its options.
        replace: allow replacing an existing entry of that name (never silently).

    Raises:
        ValueError: for an empty or malformed name, or a name already in the table without ``replace``.
        TypeError: if ``entry`` is not a :class:`PoseEstimatorEntry`.
    """
    if not isinstance(entry, PoseEstimatorEntry):
        raise TypeError(f"register_pose_estimator expects a PoseEstimatorEntry, got {type(entry).__name__}")
    if not name or name == MASK_SOURCE_NONE or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(
            f"pose estimator name {name!r}: use letters, digits, '-', '_' and '.' "
            f"(and not {MASK_SOURCE_NONE!r})"
        )
    if name in POSE_ESTIMATORS and not replace:
        raise ValueError(
            f"pose estimator {name!r} is already registered ({POSE_ESTIMATORS[name].implementation}); "
            "choose another name, or pass replace=True to replace it"
        )
    POSE_ESTIMATORS[name] = entry


def pose_estimator_entry(name: str) -> PoseEstimatorEntry:
    """The table's entry for ``name``.

    Raises:
        UnknownPoseEstimatorError: (a ``ValueError``) for a name not in :data:`POSE_ESTIMATORS`, listing the
            known ones.
    """
    try:
        return POSE_ESTIMATORS[name]
    except KeyError:
        raise UnknownPoseEstimatorError(
            f"unknown pose estimator {name!r}; known: {', '.join(sorted(POSE_ESTIMATORS))} "
            "(a plug-in's estimator must be registered with realtime.catalog.register_pose_estimator first)"
        ) from None


def pose_estimator_names() -> tuple[str, ...]:
    """The names in :data:`POSE_ESTIMATORS`, the default first (``--pose-estimator`` choices)."""
    return (DEFAULT_POSE_ESTIMATOR, *sorted(n for n in POSE_ESTIMATORS if n != DEFAULT_POSE_ESTIMATOR))


def mask_source_names() -> tuple[str, ...]:
    """``train.prepare --mask-source`` choices: the pose estimators that give a mask (the default first),
    then :data:`MASK_SOURCE_NONE`."""
    return (*(n for n in pose_estimator_names() if POSE_ESTIMATORS[n].gives_mask), MASK_SOURCE_NONE)
