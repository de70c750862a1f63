"""The synthetic dataset: the mannequin's generated motion, rendered, as a prepared training directory in
:mod:`train.prepare`'s format (:mod:`train.dataset`); ``python -m train.synthetic --out DIR`` writes one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kernels.rasterize import RenderParams
from realtime.catalog import DEFAULT_POSE_ESTIMATOR
from realtime.console import progress as progress_bar
from realtime.pose.normalize import body_stats
from realtime.pose.render import rasterize_stick_figure
from train.dataset import Crop, PreparedMeta, PreparedWriter
from train.synthetic.motion import MotionConfig, generate_motion
from train.synthetic.renderer import DEFAULT_STYLE, MannequinStyle, render_mannequin

#: ``source_video`` recorded in a synthetic dataset's ``meta.json``.
SYNTHETIC_SOURCE = "synthetic:mannequin"
#: ``mask_source`` recorded in a synthetic dataset's ``meta.json``: the renderer's exact silhouettes.
MASK_SOURCE_RENDERER = "renderer"


@dataclass(frozen=True)
class SyntheticDatasetReport:
    """What :func:`write_synthetic_dataset` wrote: its metadata, renderer speed and bytes on disk."""

    meta: PreparedMeta
    render_ms_per_frame: float
    size_bytes: int


def _stick_figures_u8(
    joints_px: np.ndarray, confidence: np.ndarray, width: int, height: int, params: RenderParams
):
    sticks = rasterize_stick_figure(
        torch.from_numpy(np.ascontiguousarray(joints_px, np.float32)),
        torch.from_numpy(np.ascontiguousarray(confidence, np.float32)),
        height=height,
        width=width,
        params=params,
    )
    return (sticks * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_synthetic_dataset(
    out: str | Path,
    *,
    num_frames: int = 3000,
    width: int = 256,
    height: int = 256,
    seed: int = 0,
    heldout_fraction: float = 0.15,
    motion_config: MotionConfig | None = None,
    style: MannequinStyle = DEFAULT_STYLE,
    progress: bool = True,
) -> SyntheticDatasetReport:
    """Write a prepared directory of the mannequin in :mod:`train.prepare`'s format (:mod:`train.dataset`).

    Frames are :func:`render_mannequin` of :func:`generate_motion`; masks are the mannequin's silhouette;
    stick figures are drawn with ``RenderParams.for_canvas``; face boxes by :func:`train.prepare.face_boxes`;
    the normalization statistics come from the training frames; the last ``heldout_fraction`` of frames (a
    continuous stretch of motion never trained on) is held out. ``preview.png`` shows a few frames over
    their stick figures.

    Args:
        out: output directory (created; an existing dataset there is replaced).
        num_frames: frames (>= 8).
        width, height: canvas size in pixels (>= 16).
        seed: motion seed: the same arguments write the same dataset.
        heldout_fraction: in (0, 1).
        motion_config, style: motion settings and colors.
        progress: show a progress bar.

    Raises:
        ValueError: for bad sizes, fractions or frame counts.
    """
    from train.prepare import face_boxes, write_preview

    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8, got {num_frames}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    motion_config = motion_config or MotionConfig()
    motion = generate_motion(num_frames, width, height, seed=seed, config=motion_config)
    params = RenderParams.for_canvas(width, height)
    writer = PreparedWriter(out, num_frames, height, width)
    render_s = 0.0
    for i in progress_bar(range(num_frames), desc="render mannequin", unit="frame", disable=not progress):
        start = time.perf_counter()
        rendered = render_mannequin(
            motion.joints_px[i], motion.confidence[i], width=width, height=height,
            threshold=params.confidence_threshold, style=style,
        )  # fmt: skip
        render_s += time.perf_counter() - start
        writer.frames[i] = rendered.image
        writer.masks[i] = rendered.mask
    for start in range(0, num_frames, 64):
        sl = slice(start, min(num_frames, start + 64))
        writer.stick_figures[sl] = _stick_figures_u8(
            motion.joints_px[sl], motion.confidence[sl], width, height, params
        )
    train_end = num_frames - max(1, int(round(heldout_fraction * num_frames)))
    boxes, face_side = face_boxes(motion.joints_px, motion.confidence, params.confidence_threshold)
    meta = PreparedMeta(
        source_video=SYNTHETIC_SOURCE,
        fps=motion_config.fps,
        num_frames=num_frames,
        canvas_width=width,
        canvas_height=height,
        crop=Crop(x0=0.0, y0=0.0, scale=1.0),
        render=params,
        stats=body_stats(
            motion.joints_px[:train_end], motion.confidence[:train_end], params.confidence_threshold
        ),
        train_end=train_end,
        face_box_size_px=face_side,
        # The poses are exact; a model of this data is driven by the default estimator's poses at run time.
        pose_estimator=DEFAULT_POSE_ESTIMATOR,
        mask_source=MASK_SOURCE_RENDERER,
    )
    writer.finish(
        meta,
        joints_px=motion.joints_px,
        confidence=motion.confidence,
        face_boxes=boxes,
        timestamps_ms=motion.timestamps_ms.astype(np.float64),
    )
    write_preview(Path(out) / "preview.png", writer.frames, writer.stick_figures)
    size = sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file())
    return SyntheticDatasetReport(meta, 1e3 * render_s / num_frames, size)
