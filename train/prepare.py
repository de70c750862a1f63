"""Prepare a target video for training: ``python -m train prepare TARGET.mp4 --out DIR`` (:mod:`train.cli`).

Two passes over the video (Everybody Dance Now, Chan et al. 2019, Sec. 4 "Data collection"):

1. Pose per frame (the ``--pose-estimator``, MediaPipe by default) to find one crop for the whole video that
   keeps the person in frame.
2. Pose and person segmentation (the ``--mask-source``: MediaPipe's by default, from the same run when it is
   the pose estimator) per frame again; each frame, mask and pose is mapped onto the fixed canvas
   through that crop; stick figures are drawn from the canvas poses; face boxes, the target's
   normalization statistics and limb lengths (from the training frames) and the train / held-out split
   (the last ``heldout_fraction`` of frames) are written with them.

The output format is described in :mod:`train.dataset`; ``meta.json`` records the pose estimator and the
mask source, and the target's sidecar carries the pose estimator, so that serving estimates poses the same
way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kernels.rasterize import RenderParams
from realtime.catalog import DEFAULT_POSE_ESTIMATOR, MASK_SOURCE_NONE, mask_source_names, pose_estimator_entry
from realtime.console import progress
from realtime.pose.estimators import PoseFrame, open_pose_estimator
from realtime.pose.normalize import body_stats
from realtime.pose.render import rasterize_stick_figure
from realtime.pose.skeleton import FACE_JOINTS, NUM_JOINTS, Joint
from realtime.video import read_frames, video_info
from train.dataset import Crop, PreparedMeta, PreparedWriter

log = logging.getLogger(__name__)

#: Space added around the person's keypoint extent, as a fraction of their height, on every side (the
#: keypoints stop at the eyes, wrists and toes: hair, hands and shoes need room).
CROP_MARGIN_FRACTION = 0.1
#: Face box side as a multiple of the ear-to-ear distance, or, without both ears, of nose-to-neck distance.
FACE_PER_EAR_DISTANCE = 1.6
FACE_PER_NOSE_NECK = 1.2


@dataclass(frozen=True)
class CropBox:
    """An integer crop window in source pixels (may extend past the frame; the outside is black)."""

    x0: int
    y0: int
    width: int
    height: int


def find_crop(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    canvas_width: int,
    canvas_height: int,
    frame_width: int,
    frame_height: int,
    threshold: float = 0.5,
    margin_fraction: float = CROP_MARGIN_FRACTION,
) -> CropBox:
    """One crop window, of the canvas's aspect ratio, that holds the person in every frame.

    The person's extent is the 1st/99th percentile of per-frame keypoint extremes (robust to a stray
    detection), grown by ``margin_fraction`` of its height on each side. The window's size is a whole
    multiple of the canvas aspect (so the canvas scale is exactly ``canvas_width / width``). The window is
    shifted to lie inside the ``frame_width`` x ``frame_height`` frame along each axis where it fits.

    Args:
        joints_px: float ``(N, NUM_JOINTS, 2)`` source pixels; confidence: ``(N, NUM_JOINTS)``.

    Raises:
        ValueError: if no frame has any joint above ``threshold``.
    """
    present = confidence >= threshold
    seen = present.any(axis=1)
    if not seen.any():
        raise ValueError("no person was found in any frame of the video; a target video needs one person")
    xs = np.where(present, joints_px[..., 0], np.nan)[seen]
    ys = np.where(present, joints_px[..., 1], np.nan)[seen]
    x_min, x_max = np.percentile(np.nanmin(xs, axis=1), 1), np.percentile(np.nanmax(xs, axis=1), 99)
    y_min, y_max = np.percentile(np.nanmin(ys, axis=1), 1), np.percentile(np.nanmax(ys, axis=1), 99)
    margin = margin_fraction * max(y_max - y_min, x_max - x_min, 1.0)
    need_w, need_h = x_max - x_min + 2 * margin, y_max - y_min + 2 * margin
    g = math.gcd(canvas_width, canvas_height)
    unit_w, unit_h = canvas_width // g, canvas_height // g
    k = max(1, math.ceil(max(need_w / unit_w, need_h / unit_h)))
    width, height = k * unit_w, k * unit_h
    x0 = _place(int(round((x_min + x_max - width) / 2)), width, frame_width)
    y0 = _place(int(round((y_min + y_max - height) / 2)), height, frame_height)
    return CropBox(x0, y0, width, height)


def _place(start: int, size: int, frame_size: int) -> int:
    """Move a window ``[start, start + size)`` inside ``[0, frame_size)`` where it fits, else center the
    frame in it (equal black bands on both sides)."""
    if size <= frame_size:
        return min(max(start, 0), frame_size - size)
    return -((size - frame_size) // 2)


def crop_and_resize(image: np.ndarray, box: CropBox, width: int, height: int) -> np.ndarray:
    """Cut ``box`` out of ``image`` (uint8 ``(H, W)`` or ``(H, W, 3)``), black outside the image, and resize
    it to ``width`` x ``height`` with Lanczos filtering. Returns uint8 of the same channel layout."""
    pad = [(0, 0)] * image.ndim
    ih, iw = image.shape[:2]
    top, left = max(0, -box.y0), max(0, -box.x0)
    bottom, right = max(0, box.y0 + box.height - ih), max(0, box.x0 + box.width - iw)
    pad[0], pad[1] = (top, bottom), (left, right)
    y0, x0 = box.y0 + top, box.x0 + left
    window = image[max(0, box.y0) : box.y0 + box.height, max(0, box.x0) : box.x0 + box.width]
    assert y0 >= 0 and x0 >= 0
    window = np.pad(window, pad)
    resized = Image.fromarray(window).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def face_boxes(
    joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, float]:
    """Fixed-size face boxes centered on the face joints.

    Returns:
        ``(boxes, side_px)``: float32 ``(N, 4)`` as x0, y0, x1, y1 (NaN where no face joint is present) and
        the box side in pixels, from the median ear-to-ear distance (or nose-to-neck distance).
    """
    present = confidence >= threshold
    ears = present[:, Joint.LEFT_EAR] & present[:, Joint.RIGHT_EAR]
    nose_neck = present[:, Joint.NOSE] & present[:, Joint.NECK]
    if ears.any():
        ear = np.linalg.norm(joints_px[ears, Joint.LEFT_EAR] - joints_px[ears, Joint.RIGHT_EAR], axis=-1)
        side = FACE_PER_EAR_DISTANCE * float(np.median(ear))
    elif nose_neck.any():
        d = np.linalg.norm(joints_px[nose_neck, Joint.NOSE] - joints_px[nose_neck, Joint.NECK], axis=-1)
        side = FACE_PER_NOSE_NECK * float(np.median(d))
    else:
        side = 0.0
    side = max(8.0, round(side))
    face = list(FACE_JOINTS)
    mask = present[:, face]
    counts = mask.sum(axis=1)
    with np.errstate(invalid="ignore"):
        center = (joints_px[:, face] * mask[..., None]).sum(axis=1) / counts[:, None]
    center[counts == 0] = np.nan
    boxes = np.concatenate([center - side / 2, center + side / 2], axis=1).astype(np.float32)
    return boxes, float(side)


def _poses(
    video: Path,
    total: int,
    max_frames: int | None,
    desc: str,
    pose_estimator: str,
    mask_source: str = MASK_SOURCE_NONE,
) -> Iterator[tuple[np.ndarray, PoseFrame]]:
    """Each frame (uint8 ``(H, W, 3)`` RGB) with its pose by ``pose_estimator``, tracked over the video; the
    pose's mask is ``mask_source``'s segmentation (one estimator run for both when they are the same; None
    with :data:`realtime.catalog.MASK_SOURCE_NONE` or where the mask source found nobody)."""
    same = mask_source == pose_estimator
    with ExitStack() as stack:
        estimator = stack.enter_context(open_pose_estimator(pose_estimator, video_mode=True, with_mask=same))
        masker = None
        if mask_source != MASK_SOURCE_NONE and not same:
            masker = stack.enter_context(open_pose_estimator(mask_source, video_mode=True, with_mask=True))
        for rgb, timestamp_ms in progress(
            read_frames(video, max_frames), total=total, desc=desc, unit="frame"
        ):
            pose = estimator.estimate(rgb, timestamp_ms)
            if masker is not None:
                pose = replace(pose, mask=masker.estimate(rgb, timestamp_ms).mask)
            yield rgb, pose


def prepare(
    video: str | Path,
    out: str | Path,
    *,
    canvas_width: int = 256,
    canvas_height: int = 256,
    heldout_fraction: float = 0.15,
    max_frames: int | None = None,
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
    mask_source: str = DEFAULT_POSE_ESTIMATOR,
) -> PreparedMeta:
    """Prepare ``video`` into ``out`` (see the module docstring). Returns the written metadata.

    Args:
        pose_estimator: the pose estimator's name in :data:`realtime.catalog.POSE_ESTIMATORS`, recorded in
            the metadata (and from there in the target's sidecar).
        mask_source: a pose estimator that gives a mask (its segmentation), or
            :data:`realtime.catalog.MASK_SOURCE_NONE` for all-zero masks (logged as a warning).

    Raises:
        VideoError: for a missing or corrupt video.
        ValueError: for bad sizes, a video with fewer than 2 frames, or no person in it; for an unknown pose
            estimator or mask source (:class:`realtime.catalog.UnknownPoseEstimatorError` names the known
            ones), or a mask source that gives no mask.
    """
    pose_estimator_entry(pose_estimator)
    if mask_source not in mask_source_names():
        raise ValueError(
            f"mask source {mask_source!r} is not a pose estimator that gives a mask; choose one of "
            f"{', '.join(mask_source_names())}"
        )
    if canvas_width < 16 or canvas_height < 16:
        raise ValueError(f"canvas must be at least 16x16, got {canvas_width}x{canvas_height}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    video, out = Path(video), Path(out)
    info = video_info(video)
    total = min(info.num_frames, max_frames) if max_frames else info.num_frames

    # Pass 1: poses in source pixels, for the crop.
    joints, conf = [], []
    for _, pose in _poses(video, total, max_frames, "pass 1/2: pose", pose_estimator):
        joints.append(pose.joints_px)
        conf.append(pose.confidence)
    num_frames = len(joints)
    if num_frames < 2:
        raise ValueError(f"{video} has {num_frames} frame(s); training needs at least 2")
    box = find_crop(np.stack(joints), np.stack(conf), canvas_width, canvas_height, info.width, info.height)
    scale = canvas_width / box.width
    log.info("crop %s -> canvas %dx%d (scale %.4f)", box, canvas_width, canvas_height, scale)

    # Pass 2: poses with segmentation, frames and masks onto the canvas.
    writer = PreparedWriter(out, num_frames, canvas_height, canvas_width)
    joints_c = np.zeros((num_frames, NUM_JOINTS, 2), np.float32)
    conf_c = np.zeros((num_frames, NUM_JOINTS), np.float32)
    timestamps = np.zeros(num_frames, np.float64)
    for i, (rgb, pose) in enumerate(
        _poses(video, num_frames, num_frames, "pass 2/2: pose, mask, crop", pose_estimator, mask_source)
    ):
        writer.frames[i] = crop_and_resize(rgb, box, canvas_width, canvas_height)
        if pose.mask is not None:
            mask_u8 = (np.clip(pose.mask, 0.0, 1.0) * 255).round().astype(np.uint8)
            writer.masks[i] = crop_and_resize(mask_u8, box, canvas_width, canvas_height)
        joints_c[i] = (pose.joints_px - np.array([box.x0, box.y0], np.float32)) * scale
        conf_c[i] = pose.confidence
        timestamps[i] = pose.timestamp_ms
    if mask_source == MASK_SOURCE_NONE:
        log.warning(
            "mask source %r: masks.npy is all zeros, so the evaluation's body region falls back to the "
            "keypoints' box and the pose-mask L1 weighs the person like the background; body-region metrics "
            "need another mask source",
            mask_source,
        )

    params = RenderParams.for_canvas(canvas_width, canvas_height)
    for start in progress(range(0, num_frames, 32), desc="stick figures", unit="batch"):
        sl = slice(start, min(num_frames, start + 32))
        sticks = rasterize_stick_figure(
            torch.from_numpy(joints_c[sl]),
            torch.from_numpy(conf_c[sl]),
            height=canvas_height,
            width=canvas_width,
            params=params,
        )
        writer.stick_figures[sl] = (sticks * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    train_end = num_frames - max(1, int(round(heldout_fraction * num_frames)))
    if train_end < 2:
        raise ValueError(
            f"only {num_frames} frames: too few to hold out {heldout_fraction:.0%} and still train"
        )
    boxes, face_side = face_boxes(joints_c, conf_c)
    meta = PreparedMeta(
        source_video=str(video.resolve()),
        fps=info.fps,
        num_frames=num_frames,
        canvas_width=canvas_width,
        canvas_height=canvas_height,
        crop=Crop(x0=float(box.x0), y0=float(box.y0), scale=scale),
        render=params,
        stats=body_stats(joints_c[:train_end], conf_c[:train_end], params.confidence_threshold),
        train_end=train_end,
        face_box_size_px=face_side,
        pose_estimator=pose_estimator,
        mask_source=mask_source,
    )
    writer.finish(meta, joints_px=joints_c, confidence=conf_c, face_boxes=boxes, timestamps_ms=timestamps)
    write_preview(out / "preview.png", writer.frames, writer.stick_figures)
    return meta


def write_preview(path: Path, frames: np.ndarray, sticks: np.ndarray, count: int = 8) -> None:
    """A contact sheet: ``count`` evenly spaced frames (top row) over their stick figures (bottom row)."""
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    top = np.concatenate([frames[i] for i in picks], axis=1)
    bottom = np.concatenate([sticks[i] for i in picks], axis=1)
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(path)
