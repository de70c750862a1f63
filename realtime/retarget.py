"""Offline retargeting: ``python -m realtime.retarget [--engine T.onnx] --source S.mp4 --out R.mp4``.

Pass 1 estimates the source's pose in every frame and smooths it with a centered temporal median; the
source's normalization statistics are fitted on the whole video. Pass 2 normalizes, draws and generates
each frame and writes a video of the source, its normalized stick figure and the generated target side by
side.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from realtime.filters import median_filter_poses
from realtime.pipeline import Retargeter, Target
from realtime.pose import PoseFrame
from realtime.targets import DEFAULT_TARGET
from realtime.video import VideoError, VideoWriter, read_frames, video_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetargetReport:
    """Frames written and throughput of an offline run (frames per second over wall time)."""

    num_frames: int
    pose_fps: float
    generate_fps: float
    overall_fps: float
    frames_with_person: int


def fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    """Resize uint8 ``(h, w, 3)`` to ``height`` rows, keeping the aspect ratio (width rounded to even)."""
    width = max(2, int(round(rgb.shape[1] * height / rgb.shape[0] / 2)) * 2)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def retarget_video(
    target: Target,
    source: str | Path,
    out: str | Path,
    *,
    max_frames: int | None = None,
    median_window: int = 5,
) -> RetargetReport:
    """Retarget a source video file onto ``target`` and write the side-by-side result.

    Raises:
        VideoError: for a missing or corrupt source video.
        ValueError: if no frame of the source shows a body.
    """
    info = video_info(source)
    total = min(info.num_frames, max_frames) if max_frames else info.num_frames
    retargeter = Retargeter(target, live=False)
    try:
        poses: list[PoseFrame] = []
        t0 = time.perf_counter()
        for rgb, timestamp_ms in tqdm(
            read_frames(source, max_frames), total=total, desc="pose", unit="frame"
        ):
            poses.append(retargeter.estimate(rgb, timestamp_ms))
        pose_s = time.perf_counter() - t0
        joints = np.stack([p.joints_px for p in poses])
        confidence = np.stack([p.confidence for p in poses])
        if median_window > 1:
            joints = median_filter_poses(joints, confidence, median_window)
        retargeter.fit_source(joints, confidence)

        width, height = target.canvas_size
        writer: VideoWriter | None = None
        t1 = time.perf_counter()
        frames = read_frames(source, len(poses))
        for i, (rgb, _) in enumerate(tqdm(frames, total=len(poses), desc="generate", unit="frame")):
            pose = poses[i]
            smoothed = PoseFrame(joints[i], pose.confidence, pose.timestamp_ms, pose.image_size)
            result = retargeter.generate(smoothed)
            row = np.concatenate([fit_height(rgb, height), result.stick_figure, result.generated], axis=1)
            if writer is None:
                writer = VideoWriter(out, info.fps, row.shape[1], row.shape[0])
            writer.write(row)
        generate_s = time.perf_counter() - t1
        if writer is not None:
            writer.close()
    finally:
        retargeter.close()
    n = len(poses)
    return RetargetReport(
        num_frames=n,
        pose_fps=n / pose_s,
        generate_fps=n / generate_s,
        overall_fps=n / (pose_s + generate_s),
        frames_with_person=sum(not p.is_empty for p in poses),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.retarget",
        description="Retarget a source video onto a trained target offline: writes a video with the source, "
        "its normalized stick figure and the generated target side by side, and prints the frames per second "
        "achieved.",
    )
    parser.add_argument(
        "--engine",
        type=Path,
        default=DEFAULT_TARGET,
        help="target engine (.onnx or .pt) with its .json sidecar (default: the bundled synthetic "
        f"mannequin, {DEFAULT_TARGET.name})",
    )
    parser.add_argument("--source", type=Path, required=True, help="source (driving) video")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    parser.add_argument("--max-frames", type=int, default=None, help="retarget only the first N frames")
    parser.add_argument(
        "--median-window",
        type=int,
        default=5,
        help="temporal median window in frames, odd; 1 = off (default 5)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        target = Target.load(args.engine)
        report = retarget_video(
            target, args.source, args.out, max_frames=args.max_frames, median_window=args.median_window
        )
    except (FileNotFoundError, VideoError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {report.num_frames} frames ({report.frames_with_person} with a person); "
        f"pose {report.pose_fps:.1f} fps, generate {report.generate_fps:.1f} fps, "
        f"overall {report.overall_fps:.1f} fps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
