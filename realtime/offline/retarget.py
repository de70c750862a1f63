"""Offline retargeting: ``python -m realtime.offline [--engine T.onnx] --source S.mp4 --out R.mp4``
(:mod:`realtime.offline.cli`).

Pass 1 estimates the source's pose in every frame, tracks it as a live stream does (person continuity,
single-joint hold, orphaned joints dropped: :meth:`realtime.model.pipeline.Retargeter.track`) and smooths it
with a centered temporal median; the source's normalization statistics are fitted on the whole video. Pass 2
normalizes (the body kept on the canvas, a lost person's pose held then eased into the target's neutral pose,
as live), draws and generates each frame. :func:`retarget_frames` is that core, yielding each generated frame
(the unseen-pose evaluation of :mod:`train.synthetic` drives a model through it too); :func:`retarget_video`
writes its frames as a video of the source, its normalized stick figure and the generated target side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from realtime.console import progress
from realtime.model.pipeline import Retargeter, RetargetResult, Target
from realtime.pose.estimators import PoseFrame
from realtime.pose.filters import median_filter_poses
from realtime.video import VideoWriter, read_frames, video_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetargetReport:
    """Frames written and throughput of an offline run (frames per second over wall time)."""

    num_frames: int
    pose_fps: float
    generate_fps: float
    overall_fps: float
    frames_with_person: int


@dataclass(frozen=True)
class SourcePoses:
    """Pass 1 of offline retargeting: the poses of every frame of a source video.

    Attributes:
        poses: the tracked :class:`realtime.pose.estimators.PoseFrame` of each frame, in order (source frame
            pixels): the pose estimator's, through :meth:`realtime.model.pipeline.Retargeter.track` (all
            confidences 0 where nobody, or somebody else, is in the frame).
        joints_px: float32 ``(N, NUM_JOINTS, 2)`` the joints after the centered temporal median (source frame
            pixels): these drive the generator. Equal to the estimates with ``median_window`` 1.
        confidence: float32 ``(N, NUM_JOINTS)`` in [0, 1], the tracked poses' (not filtered).
        estimate_s: wall seconds of pass 1's decoding and pose estimation.
    """

    poses: list[PoseFrame]
    joints_px: np.ndarray
    confidence: np.ndarray
    estimate_s: float

    @property
    def num_frames(self) -> int:
        """Frames of the source that are retargeted."""
        return len(self.poses)

    @property
    def frames_with_person(self) -> int:
        """Frames where the pose estimator found a person."""
        return sum(not p.is_empty for p in self.poses)

    def driving_pose(self, index: int) -> PoseFrame:
        """The smoothed pose of frame ``index`` that drives the generator (the median-filtered joints with
        the estimator's confidence, timestamp and image size)."""
        pose = self.poses[index]
        return PoseFrame(self.joints_px[index], pose.confidence, pose.timestamp_ms, pose.image_size)


@dataclass(frozen=True)
class RetargetedFrame:
    """One frame of pass 2 of offline retargeting.

    Attributes:
        index: the frame's index in the source video (from 0).
        source_rgb: uint8 ``(h, w, 3)`` the source frame as decoded.
        result: the generator's output: generated frame and stick figure (uint8 ``(H, W, 3)`` on the target
            canvas), the driving pose and its normalized version
            (:class:`realtime.model.pipeline.RetargetResult`).
        generate_s: wall seconds of :meth:`realtime.model.pipeline.Retargeter.generate` for this frame
            (normalize, draw, generate).
        source_poses: pass 1's result, the same object for every frame of a run.
    """

    index: int
    source_rgb: np.ndarray
    result: RetargetResult
    generate_s: float
    source_poses: SourcePoses


def fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    """Resize uint8 ``(h, w, 3)`` to ``height`` rows, keeping the aspect ratio (width rounded to even)."""
    width = max(2, int(round(rgb.shape[1] * height / rgb.shape[0] / 2)) * 2)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def smooth_and_fit(
    retargeter: Retargeter, poses: list[PoseFrame], median_window: int = 5, estimate_s: float = 0.0
) -> SourcePoses:
    """The end of pass 1 on tracked poses: the centered temporal median
    (:func:`realtime.pose.filters.median_filter_poses`, ``median_window`` frames; 1 = off), then the source's
    statistics fitted on all frames (:meth:`realtime.model.pipeline.Retargeter.fit_source`).

    Args:
        retargeter: an offline retargeter (``live=False``) whose
        :meth:`~realtime.model.pipeline.Retargeter.track`
            made ``poses``.
        poses: the tracked pose of every frame, in order.
        median_window: the median's window in frames (odd).
        estimate_s: the seconds pass 1 took, carried into the result.

    Raises:
        ValueError: if no pose shows a body, or for an even window.
    """
    if not poses:
        raise ValueError("no poses to retarget (an empty video, or max_frames 0)")
    joints = np.stack([p.joints_px for p in poses])
    confidence = np.stack([p.confidence for p in poses])
    if median_window > 1:
        joints = median_filter_poses(joints, confidence, median_window)
    retargeter.fit_source(joints, confidence)
    return SourcePoses(poses, joints, confidence, estimate_s)


def estimate_source_poses(
    retargeter: Retargeter, source: str | Path, *, max_frames: int | None = None, median_window: int = 5
) -> SourcePoses:
    """Pass 1 of offline retargeting: every frame's pose (:meth:`realtime.model.pipeline.Retargeter.estimate`:
    the pose estimator named by the target's sidecar, then tracking), then :func:`smooth_and_fit`. A progress
    bar "pose" goes to stderr.

    Args:
        retargeter: an offline retargeter (``live=False``), fresh.
        source: the source video; max_frames: only the first frames (None: all);
        median_window: the temporal median's window in frames (odd; 1 = off).

    Raises:
        VideoError: for a missing or corrupt source video.
        ValueError: as :func:`retarget_frames`.
    """
    info = video_info(source)
    total = min(info.num_frames, max_frames) if max_frames else info.num_frames
    poses: list[PoseFrame] = []
    t0 = time.perf_counter()
    for rgb, timestamp_ms in progress(
        read_frames(source, max_frames), total=total, desc="pose", unit="frame"
    ):
        poses.append(retargeter.estimate(rgb, timestamp_ms))
    return smooth_and_fit(retargeter, poses, median_window, time.perf_counter() - t0)


def retarget_frames(
    target: Target,
    source: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
    garment_colours: Mapping[str, Sequence[float]] | None = None,
) -> Iterator[RetargetedFrame]:
    """Retarget a source video file onto ``target`` offline, yielding each generated frame in order.

    Pass 1 (before the first frame is yielded) estimates every frame's pose with the target's pose estimator
    (``target.bundle.pose_estimator``, MediaPipe by default), tracks it
    (:meth:`realtime.model.pipeline.Retargeter.track`), smooths the joints with a centered temporal median
    (:func:`realtime.pose.filters.median_filter_poses`, ``median_window`` frames; 1 = off) and fits the
    source's normalization statistics on the whole video
    (:meth:`realtime.model.pipeline.Retargeter.fit_source`, Everybody Dance Now's global pose normalization).
    Pass 2 decodes the video again and generates each frame from its smoothed pose, conditioned on the
    previous generated frame; frames where the person is lost hold the last pose, then ease into the target's
    neutral pose (:meth:`realtime.model.pipeline.Retargeter.normalize`, ``docs/robustness.md``). Progress bars
    "pose" and "generate" go to stderr.

    Args:
        target: the loaded target (engine and sidecar).
        source: the source (driving) video.
        max_frames: retarget only the first frames (None: all).
        median_window: the temporal median's window in frames (odd; 1 = off).
        garment_colours: RGB in [0, 1] by garment (``realtime.catalog.GARMENTS``) for a target with a
            reference appearance (:meth:`realtime.model.pipeline.Retargeter.set_garment_colour`).

    Yields:
        :class:`RetargetedFrame`, one per source frame.

    Raises:
        VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body, the target's pose estimator is not registered
            (:class:`realtime.catalog.UnknownPoseEstimatorError`), or a garment colour is asked of a target
            without a reference appearance.
    """
    retargeter = Retargeter(target, live=False)
    try:
        for garment, rgb in (garment_colours or {}).items():
            retargeter.set_garment_colour(garment, rgb)
        source_poses = estimate_source_poses(
            retargeter, source, max_frames=max_frames, median_window=median_window
        )
        n = source_poses.num_frames
        for i, (rgb, _) in enumerate(
            progress(read_frames(source, n), total=n, desc="generate", unit="frame")
        ):
            start = time.perf_counter()
            result = retargeter.generate(source_poses.driving_pose(i))
            yield RetargetedFrame(i, rgb, result, time.perf_counter() - start, source_poses)
    finally:
        retargeter.close()


def retarget_video(
    target: Target,
    source: str | Path,
    out: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
    garment_colours: Mapping[str, Sequence[float]] | None = None,
) -> RetargetReport:
    """Retarget a source video file onto ``target`` (:func:`retarget_frames`) and write the side-by-side
    result: source (scaled to the canvas height) | normalized stick figure | generated target.

    Raises:
        VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body.
    """
    info = video_info(source)
    height = target.canvas_size[1]
    writer: VideoWriter | None = None
    source_poses: SourcePoses | None = None
    t0 = time.perf_counter()
    try:
        frames = retarget_frames(
            target,
            source,
            max_frames=max_frames,
            median_window=median_window,
            garment_colours=garment_colours,
        )
        for frame in frames:
            source_poses = frame.source_poses
            result = frame.result
            row = np.concatenate(
                [fit_height(frame.source_rgb, height), result.stick_figure, result.generated], axis=1
            )
            if writer is None:
                writer = VideoWriter(out, info.fps, row.shape[1], row.shape[0])
            writer.write(row)
    finally:
        if writer is not None:
            writer.close()
    total_s = time.perf_counter() - t0
    if source_poses is None:
        raise ValueError(f"{source}: no frame was retargeted (an empty video, or --max-frames 0)")
    n = source_poses.num_frames
    pose_s = source_poses.estimate_s
    return RetargetReport(
        num_frames=n,
        pose_fps=n / pose_s,
        generate_fps=n / (total_s - pose_s),
        overall_fps=n / total_s,
        frames_with_person=source_poses.frames_with_person,
    )
