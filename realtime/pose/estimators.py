"""Pose estimation per frame, as a typed :class:`PoseFrame` on the project's skeleton.

:class:`PoseEstimator` is the interface, :class:`MediaPipePose` the MediaPipe implementation, and
:func:`open_pose_estimator` builds an estimator by its name in the table
:data:`realtime.catalog.POSE_ESTIMATORS` (FasterLivePortrait's ``get_predictor``: every stage model a named
entry built by name). A second estimator is a :class:`PoseEstimator` subclass (in its own module, or here)
plus one entry in that table (a line there, or :func:`realtime.catalog.register_pose_estimator`).
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from realtime.catalog import (
    DEFAULT_POSE_ESTIMATOR,
    POSE_ESTIMATORS,
    PoseEstimatorEntry,
    mask_source_names,
    pose_estimator_entry,
)
from realtime.pose.skeleton import NUM_JOINTS, NUM_MEDIAPIPE_LANDMARKS, from_mediapipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoseFrame:
    """One person's pose in one frame.

    Attributes:
        joints_px: float32 ``(NUM_JOINTS, 2)``, x and y in pixels of the frame it was estimated on
            (x to the right, y down). Meaningless where ``confidence`` is 0.
        confidence: float32 ``(NUM_JOINTS,)`` in [0, 1]; 0 for a joint that was not found.
        timestamp_ms: the frame's presentation time in milliseconds.
        image_size: ``(width, height)`` in pixels of the frame the pose refers to.
        mask: optional float32 ``(height, width)`` person segmentation in [0, 1].
    """

    joints_px: np.ndarray
    confidence: np.ndarray
    timestamp_ms: float
    image_size: tuple[int, int]
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.joints_px.shape != (NUM_JOINTS, 2) or self.confidence.shape != (NUM_JOINTS,):
            raise ValueError(
                f"PoseFrame expects joints_px ({NUM_JOINTS}, 2) and confidence ({NUM_JOINTS},), "
                f"got {self.joints_px.shape} and {self.confidence.shape}"
            )

    @classmethod
    def empty(cls, timestamp_ms: float, image_size: tuple[int, int]) -> PoseFrame:
        """A frame with nobody in it: all confidences 0."""
        return cls(
            joints_px=np.zeros((NUM_JOINTS, 2), np.float32),
            confidence=np.zeros(NUM_JOINTS, np.float32),
            timestamp_ms=timestamp_ms,
            image_size=image_size,
        )

    @property
    def is_empty(self) -> bool:
        """True when no joint was found."""
        return not bool(np.any(self.confidence > 0))


class PoseEstimator(ABC):
    """The pose estimator interface: one person's pose per RGB frame.

    One instance per video stream: an estimator may track across frames (``video_mode``), so give each stream
    its own and feed it frames in time order. Not thread-safe; use from one thread at a time. A context
    manager that :meth:`close` s on exit.

    Implementations are built by :func:`open_pose_estimator` as
    ``cls(video_mode=..., with_mask=..., **entry.options)`` from their
    :class:`realtime.catalog.PoseEstimatorEntry`.
    """

    @abstractmethod
    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        """Estimate the pose of the most prominent person in one frame.

        Args:
            rgb: uint8 ``(height, width, 3)`` RGB frame.
            timestamp_ms: the frame's presentation time in milliseconds, carried into the result.

        Returns:
            The pose in pixels of ``rgb`` (with its person mask when built ``with_mask`` and somebody is
            found); :meth:`PoseFrame.empty` when nobody is found.

        Raises:
            ValueError: if ``rgb`` is not a uint8 ``(H, W, 3)`` array with H, W >= 1.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the estimator's resources. Idempotent."""

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_rgb_frame(rgb: np.ndarray) -> tuple[int, int]:
    """``(height, width)`` of a uint8 ``(H, W, 3)`` RGB frame.

    Raises:
        ValueError: if ``rgb`` is not a uint8 ``(H, W, 3)`` array with H, W >= 1.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 (H, W, 3) RGB frame, got {getattr(rgb, 'dtype', type(rgb))} "
            f"{getattr(rgb, 'shape', '')}"
        )
    height, width = rgb.shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"frame has no pixels: {rgb.shape}")
    return height, width


class MediaPipePose(PoseEstimator):
    """MediaPipe Pose (BlazePose; ``model_complexity=1`` is the model bundled in ``mediapipe==0.10.21``).

    MediaPipe uses the previous frame's pose to find the next in video mode (see :class:`PoseEstimator`).

    Args:
        video_mode: track across frames (True) or treat every frame as unrelated (False).
        with_mask: also return the person segmentation mask (slower).
        model_complexity: 0 (lite), 1 (full) or 2 (heavy); only 1 ships in the 0.10.21 wheel, the others are
            downloaded by MediaPipe on first use.
        min_detection_confidence: MediaPipe's person detection threshold in [0, 1].
        min_tracking_confidence: MediaPipe's landmark tracking threshold in [0, 1] (video mode: below it, the
            person is detected again on the next frame).

    Raises:
        ImportError: if mediapipe is not installed.
        ValueError: for a model complexity or a threshold out of range.
    """

    def __init__(
        self,
        *,
        video_mode: bool = True,
        with_mask: bool = False,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"MediaPipe's model_complexity is 0, 1 or 2, got {model_complexity!r}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MediaPipe's {name} must be in [0, 1], got {value!r}")
        import mediapipe as mp

        self._with_mask = with_mask
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=not video_mode,
            model_complexity=model_complexity,
            smooth_landmarks=video_mode,
            enable_segmentation=with_mask,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        """See :meth:`PoseEstimator.estimate`; the mask is MediaPipe's segmentation, float32 in [0, 1].

        Raises:
            ValueError: if ``rgb`` is not a uint8 ``(H, W, 3)`` array with H, W >= 1.
            RuntimeError: after :meth:`close`.
        """
        height, width = check_rgb_frame(rgb)
        if self._pose is None:
            raise RuntimeError("this MediaPipePose is closed; open a new pose estimator")
        result = self._pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return PoseFrame.empty(timestamp_ms, (width, height))
        landmarks = result.pose_landmarks.landmark
        xy = np.array([[lm.x * width, lm.y * height] for lm in landmarks], dtype=np.float32)
        visibility = np.array([lm.visibility for lm in landmarks], dtype=np.float32)
        assert xy.shape == (NUM_MEDIAPIPE_LANDMARKS, 2)
        joints, confidence = from_mediapipe(xy, visibility)
        mask = None
        if self._with_mask and result.segmentation_mask is not None:
            mask = np.asarray(result.segmentation_mask, dtype=np.float32)
        return PoseFrame(joints, confidence, timestamp_ms, (width, height), mask)

    def close(self) -> None:
        """Release MediaPipe's graph. Idempotent."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None


def pose_estimator_class(entry: PoseEstimatorEntry) -> type[PoseEstimator]:
    """Import an entry's implementation (``"module:attribute"``).

    Raises:
        ImportError: if the module or the attribute cannot be imported (the entry names it).
        TypeError: if it is not a :class:`PoseEstimator` subclass.
    """
    module_name, _, attribute = entry.implementation.partition(":")
    module = importlib.import_module(module_name)
    try:
        implementation = getattr(module, attribute)
    except AttributeError:
        raise ImportError(
            f"pose estimator implementation {entry.implementation!r}: {module_name} has no {attribute!r}"
        ) from None
    if not (isinstance(implementation, type) and issubclass(implementation, PoseEstimator)):
        raise TypeError(
            f"pose estimator implementation {entry.implementation!r} is not a PoseEstimator subclass"
        )
    return implementation


def open_pose_estimator(
    name: str = DEFAULT_POSE_ESTIMATOR, *, video_mode: bool, with_mask: bool = False
) -> PoseEstimator:
    """Build the pose estimator named ``name`` in :data:`realtime.catalog.POSE_ESTIMATORS` with its options.

    Args:
        name: the table's name (a target's ``bundle.pose_estimator``, prepared data's
            ``meta.pose_estimator``).
        video_mode: track across the frames of one stream (True) or judge every frame on its own (False).
        with_mask: also return the person segmentation mask in :attr:`PoseFrame.mask`.

    Raises:
        realtime.catalog.UnknownPoseEstimatorError: (a ``ValueError``) for a name not in the table, listing
            the known ones.
        ValueError: if ``with_mask`` is asked of an estimator that gives no mask (naming those that do), or
            for options its implementation refuses.
        ImportError: if the implementation (or its library, e.g. mediapipe) cannot be imported.
    """
    entry = pose_estimator_entry(name)
    if with_mask and not entry.gives_mask:
        with_masks = [n for n in mask_source_names() if n in POSE_ESTIMATORS]
        raise ValueError(
            f"pose estimator {name!r} gives no person mask; estimators that do: "
            f"{', '.join(with_masks) or 'none'}"
        )
    implementation: Callable[..., PoseEstimator] = pose_estimator_class(entry)  # the entry's options vary
    log.debug("pose estimator %r: %s %s", name, entry.implementation, entry.options)
    return implementation(video_mode=video_mode, with_mask=with_mask, **entry.options)
