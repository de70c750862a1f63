"""Temporal keypoint filters.

- Offline: :func:`median_filter_poses`, a centered median over a window of frames. Frame t waits for frame
  ``t + window // 2``: a lag of ``window // 2`` frames, which is why it is offline only.
- Live: :class:`OneEuroFilter` (Casiez, Roussel, Vogel, "1 Euro Filter", CHI 2012), causal: an adaptive
  low-pass whose cutoff rises with speed. Its lag is the time constant ``1 / (2 pi f_c)`` with
  ``f_c = min_cutoff_hz + beta * speed``: at the defaults about 100 ms for a pose at rest (where it removes
  jitter) and under 10 ms for a limb moving at one body height per second (see
  tests/realtime/pose/test_filters.py,
  which measures it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from realtime.pose.skeleton import as_pose_arrays


def median_filter_poses(
    joints_px: np.ndarray, confidence: np.ndarray, window: int = 5, threshold: float = 0.5
) -> np.ndarray:
    """Centered temporal median of each joint's position over the frames where it is present.

    Offline only: frame t's result depends on frames up to ``t + window // 2`` (a lag of ``window // 2``
    frames if used live). A joint missing in frame t stays where it was (its confidence is not changed, so
    it stays missing).

    Args:
        joints_px: float ``(N, NUM_JOINTS, 2)`` pixels; confidence: float ``(N, NUM_JOINTS)`` in [0, 1].
        window: odd window length in frames (>= 1).
        threshold: joints below this confidence are ignored.

    Returns:
        float32 ``(N, NUM_JOINTS, 2)``.

    Raises:
        ValueError: on wrong shapes or an even or non-positive window.
    """
    joints_px, confidence = as_pose_arrays(joints_px, confidence, sequence=True)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames, got {window}")
    half = window // 2
    n = len(joints_px)
    present = confidence >= threshold
    values = np.where(present[..., None], joints_px, np.nan)
    padded = np.pad(values, ((half, half), (0, 0), (0, 0)), constant_values=np.nan)
    stacked = np.stack([padded[k : k + n] for k in range(window)])  # (window, N, J, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows of missing joints
        smoothed = np.nanmedian(stacked, axis=0)
    return np.where(present[..., None] & np.isfinite(smoothed), smoothed, joints_px).astype(np.float32)


@dataclass(frozen=True)
class OneEuroParams:
    """1 Euro filter settings. Speeds are in *heights per second*: coordinates are divided by
    ``scale_px`` (e.g. the frame height) before filtering, so the settings do not depend on resolution.

    Attributes:
        min_cutoff_hz: cutoff at rest (Hz, > 0); lower removes more jitter and adds more lag at rest.
        beta: how fast the cutoff rises with speed (Hz per height/s, >= 0); higher lags less when moving.
        derivative_cutoff_hz: cutoff of the speed estimate (Hz, > 0).
    """

    min_cutoff_hz: float = 1.5
    beta: float = 20.0
    derivative_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff_hz > 0 and self.derivative_cutoff_hz > 0 and self.beta >= 0):
            raise ValueError(f"invalid 1 Euro filter settings: {self}")


def _smoothing(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """Causal 1 Euro filter over a stream of poses, one filter per joint coordinate.

    A joint that goes missing (confidence below ``threshold``) is passed through and its filter restarts
    when it returns, so it never glides in from a stale position. Not thread-safe.

    Args:
        params: filter settings.
        threshold: joints below this confidence are missing.
    """

    def __init__(self, params: OneEuroParams | None = None, threshold: float = 0.5) -> None:
        self.params = params or OneEuroParams()
        self.threshold = threshold
        self._x: np.ndarray | None = None  # (J, 2) filtered position, normalized units
        self._raw: np.ndarray | None = None  # (J, 2) previous raw position, normalized units
        self._dx: np.ndarray | None = None  # (J, 2) filtered speed, normalized units per second
        self._valid: np.ndarray | None = None  # (J,) whether the joint has filter state
        self._last_ms: float | None = None

    def reset(self) -> None:
        """Forget all state (the next pose passes through unchanged)."""
        self._x = self._raw = self._dx = self._valid = None
        self._last_ms = None

    def __call__(
        self, joints_px: np.ndarray, confidence: np.ndarray, timestamp_ms: float, scale_px: float
    ) -> np.ndarray:
        """Filter one pose.

        Args:
            joints_px: float ``(NUM_JOINTS, 2)`` pixels; confidence: ``(NUM_JOINTS,)`` in [0, 1].
            timestamp_ms: the frame's time; a time not after the previous frame's restarts the filter.
            scale_px: pixels per normalized unit (> 0), e.g. the frame height.

        Returns:
            float32 ``(NUM_JOINTS, 2)`` filtered joints (missing joints unchanged).

        Raises:
            ValueError: on wrong shapes or a non-positive ``scale_px``.
        """
        joints_px, confidence = as_pose_arrays(joints_px, confidence)
        if joints_px.ndim != 2:
            raise ValueError(f"OneEuroFilter filters one pose at a time, got {joints_px.shape}")
        if not scale_px > 0:
            raise ValueError(f"scale_px must be > 0, got {scale_px}")
        x = joints_px / scale_px
        present = confidence >= self.threshold
        if self._last_ms is None or timestamp_ms <= self._last_ms or self._x is None:
            self._x, self._raw, self._dx, self._valid = x.copy(), x.copy(), np.zeros_like(x), present.copy()
            self._last_ms = timestamp_ms
            return joints_px.copy()
        assert self._raw is not None and self._dx is not None and self._valid is not None
        dt_s = (timestamp_ms - self._last_ms) / 1000.0
        self._last_ms = timestamp_ms
        p = self.params
        continuing = (present & self._valid)[:, None]
        dx = (x - self._raw) / dt_s  # speed from raw positions, as the reference C++ implementation
        a_d = _smoothing(p.derivative_cutoff_hz, dt_s)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = p.min_cutoff_hz + p.beta * np.linalg.norm(dx_hat, axis=1, keepdims=True)
        a = _smoothing(cutoff, dt_s)
        x_hat = a * x + (1.0 - a) * self._x
        self._x = np.where(continuing, x_hat, x)
        self._raw = x
        self._dx = np.where(continuing, dx_hat, 0.0)
        self._valid = present.copy()
        return np.where(present[:, None], self._x * scale_px, joints_px).astype(np.float32)
