"""Offline actions without a source video (issue 22): ``python -m realtime.offline --action wave --seconds 4
--out wave.mp4`` renders the target performing an action, stick figure | generated side by side.

The action comes from the bundled action model (:mod:`realtime.model.actions`) and goes through the live
path's own code: :meth:`realtime.model.pipeline.Retargeter.play_action`, then
:meth:`realtime.model.pipeline.Retargeter.generate` once per output frame with no person in the source (the
action's poses replace the source's), conditioned on the previous generated frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.console import progress
from realtime.model.pipeline import Retargeter, Target
from realtime.pose.estimators import PoseFrame
from realtime.video import VideoWriter

log = logging.getLogger(__name__)

#: Frames generated at the action's first pose before the first one written: the temporal generator starts
#: from a black previous frame, and takes a few frames to show the target.
WARMUP_FRAMES = 4


@dataclass(frozen=True)
class ActionReport:
    """What :func:`render_action` wrote: frames, their rate, the seconds played and the generation speed."""

    num_frames: int
    fps: float
    seconds: float
    generate_fps: float


def render_action(
    target: Target, label: str, seconds: float, out: str | Path, *, fps: float = 30.0, seed: int = 0
) -> ActionReport:
    """Write a video of ``target`` performing ``label`` for ``seconds``: each frame is the normalized stick
    figure beside the generated target (both the target canvas's size), at ``fps`` frames per second (the
    action's poses interpolated between its own frames).

    Args:
        target: the loaded target.
        label: an action of the bundled artifact (:attr:`realtime.model.pipeline.Retargeter.action_labels`).
        seconds: duration (> 0; whole frames of the action model).
        out: the video to write (``.mp4``, H.264).
        fps: output frame rate (> 0).
        seed: the action's noise seed (another seed, another performance of the same action).

    Returns:
        an :class:`ActionReport`.

    Raises:
        ValueError: (:class:`realtime.model.actions.ActionError`) for an unknown label, a bad duration or
            frame rate.
        FileNotFoundError: if the action artifact is missing.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    retargeter = Retargeter(target, live=False)
    width, height = target.canvas_size
    writer: VideoWriter | None = None
    t0 = time.perf_counter()
    try:
        played_s = retargeter.play_action(label, seconds, seed=seed)
        num_frames = max(1, int(round(played_s * fps)))
        for _ in range(WARMUP_FRAMES):  # no source: nobody is found, the action's poses are shown
            retargeter.generate(PoseFrame.empty(0.0, (width, height)))
        writer = VideoWriter(out, fps, 2 * width, height)
        for i in progress(range(num_frames), total=num_frames, desc="generate", unit="frame"):
            result = retargeter.generate(PoseFrame.empty(1e3 * i / fps, (width, height)))
            writer.write(np.concatenate([result.stick_figure, result.generated], axis=1))
    finally:
        if writer is not None:
            writer.close()
        retargeter.close()
    total_s = time.perf_counter() - t0
    log.info("%s: %s for %.2f s, %d frames", out, label, played_s, num_frames)
    return ActionReport(num_frames, fps, played_s, (num_frames + WARMUP_FRAMES) / total_s)
