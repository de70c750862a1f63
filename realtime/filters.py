"""Temporal keypoint filters. Offline: a centered median over a window of frames."""

from __future__ import annotations

import warnings

import numpy as np

from realtime.skeleton import as_pose_arrays


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
