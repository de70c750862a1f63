"""Pose estimation: MediaPipe Pose per frame, as a typed :class:`PoseFrame` on the project's skeleton."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

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


class PoseEstimator:
    """MediaPipe Pose (BlazePose, ``model_complexity=1``: the model bundled in ``mediapipe==0.10.21``).

    One instance tracks one video stream: MediaPipe uses the previous frame's pose to find the next, so give
    each stream its own estimator and feed it frames in order. Not thread-safe; use from one thread at a time.

    Args:
        video_mode: track across frames (True) or treat every frame as unrelated (False).
        with_mask: also return the person segmentation mask (slower).
        min_detection_confidence: MediaPipe's person detection threshold in [0, 1].

    Raises:
        ImportError: if mediapipe is not installed.
    """

    def __init__(
        self, *, video_mode: bool = True, with_mask: bool = False, min_detection_confidence: float = 0.5
    ) -> None:
        import mediapipe as mp

        self._with_mask = with_mask
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=not video_mode,
            model_complexity=1,
            smooth_landmarks=video_mode,
            enable_segmentation=with_mask,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        """Estimate the pose of the most prominent person in one frame.

        Args:
            rgb: uint8 ``(height, width, 3)`` RGB frame.
            timestamp_ms: the frame's presentation time, carried into the result.

        Returns:
            The pose in pixels of ``rgb``; :meth:`PoseFrame.empty` when nobody is found.

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

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
