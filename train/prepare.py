"""Prepare a target video for training: ``python -m train prepare TARGET.mp4 --out DIR`` (:mod:`train.cli`).

Two passes over the video (Everybody Dance Now, Chan et al. 2019, Sec. 4 "Data collection"):

1. Pose per frame (the ``--pose-estimator``, MediaPipe by default) to find one crop for the whole video that
   keeps the person in frame, and, unless a canvas size is forced, the canvas: of the aspect of the
   person's window over the video (so that a portrait recording fills a portrait canvas instead of a
   letterboxed square), about the configured pixel count, sides multiples of the generators' size multiple
   (:func:`choose_canvas`, :data:`realtime.catalog.CANVAS_MULTIPLE_PX`).
2. Pose and person segmentation (the ``--mask-source``: MediaPipe's by default, from the same run when it is
   the pose estimator) per frame again; each frame, mask and pose is mapped onto the canvas through
   that crop; stick figures are drawn from the canvas poses; face boxes, the target's
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
from realtime.catalog import (
    CANVAS_MULTIPLE_PX,
    DEFAULT_CANVAS_PIXELS,
    DEFAULT_POSE_ESTIMATOR,
    MASK_SOURCE_NONE,
    mask_source_names,
    pose_estimator_entry,
)
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


@dataclass(frozen=True)
class PersonBox:
    """Where the person is over a whole video: the window, in source pixels, that holds them in every frame
    (:func:`person_box`). Float edges, ``x0 < x1`` and ``y0 < y1`` (else ``ValueError``)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"a person's box needs x0 < x1 and y0 < y1, got {self}")

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def person_box(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    frame_width: int,
    frame_height: int,
    threshold: float = 0.5,
    margin_fraction: float = CROP_MARGIN_FRACTION,
) -> PersonBox:
    """The union of the person's boxes over the video, with a margin, clamped to the frame.

    The person's extent is the 1st/99th percentile of per-frame keypoint extremes (robust to a stray
    detection), grown by ``margin_fraction`` of its larger side on each side (the keypoints stop at the eyes,
    wrists and toes), then clamped to the ``frame_width`` x ``frame_height`` frame (nothing outside it was
    recorded).

    Args:
        joints_px: float ``(N, NUM_JOINTS, 2)`` source pixels; confidence: ``(N, NUM_JOINTS)``.

    Raises:
        ValueError: if no frame has any joint at or above ``threshold``.
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
    x0, x1 = max(0.0, x_min - margin), min(float(frame_width), x_max + margin)
    y0, y1 = max(0.0, y_min - margin), min(float(frame_height), y_max + margin)
    if not (x1 - x0 >= 1.0 and y1 - y0 >= 1.0):  # the person lies outside the frame: keep their own box
        x0, x1, y0, y1 = x_min - margin, x_max + margin, y_min - margin, y_max + margin
    return PersonBox(float(x0), float(y0), float(x1), float(y1))


#: The most elongated canvas :func:`choose_canvas` makes (long side over short side).
MAX_CANVAS_ASPECT = 4.0
#: How much of the person's window (as a fraction of each side) a crop may give up so as to stay inside the
#: frame instead of reaching past it (a black band): the window's margin (:data:`CROP_MARGIN_FRACTION` of
#: the person's larger side on every side) is what is given up first.
CROP_TRIM_FRACTION = 0.1


def choose_canvas(
    box: PersonBox,
    frame_width: int,
    frame_height: int,
    pixels: int = DEFAULT_CANVAS_PIXELS,
    multiple_px: int = CANVAS_MULTIPLE_PX,
) -> tuple[int, int]:
    """The canvas ``(width, height)`` for a person's framing: of about the aspect of ``box`` (the person's
    window, :func:`person_box`) and about ``pixels`` pixels, both sides multiples of ``multiple_px``
    (:data:`realtime.catalog.CANVAS_MULTIPLE_PX`).

    The candidates are the sides rounded down and up to the multiple (at least one multiple) from the exact
    ``sqrt(pixels * aspect)`` x ``sqrt(pixels / aspect)``, with the aspect taken within
    ``1 : MAX_CANVAS_ASPECT`` and ``MAX_CANVAS_ASPECT : 1``. Each is scored by its crop
    (:func:`crop_window` in the ``frame_width`` x ``frame_height`` frame): the absolute log ratio of its pixel
    count to ``pixels``, plus that of the crop's area to the window's (background the canvas spends beyond
    the person's window), plus twice the fraction of the crop outside the frame (black bands); the lowest
    wins. A person filling the height of a 414x540 portrait recording (``target_fashion.mp4``: a window of
    252x540) gets 160x352 rather than 256x256 (192x352, 15% more pixels, spends them on more background).

    Raises:
        ValueError: for ``multiple_px`` < 1, or ``pixels`` under one ``multiple_px`` square.
    """
    if multiple_px < 1 or pixels < multiple_px * multiple_px:
        raise ValueError(
            f"a canvas of {pixels} pixels with sides multiples of {multiple_px} is impossible; give at least "
            f"{max(1, multiple_px) ** 2} pixels"
        )
    aspect = min(max(box.width / box.height, 1.0 / MAX_CANVAS_ASPECT), MAX_CANVAS_ASPECT)
    ideal_w, ideal_h = math.sqrt(pixels * aspect), math.sqrt(pixels / aspect)

    def sides(ideal: float) -> set[int]:
        low = max(1, math.floor(ideal / multiple_px))
        return {low * multiple_px, (low + 1) * multiple_px}

    def cost(size: tuple[int, int]) -> float:
        crop = crop_window(box, size[0], size[1], frame_width, frame_height)
        inside_w = min(crop.x0 + crop.width, frame_width) - max(crop.x0, 0)
        inside_h = min(crop.y0 + crop.height, frame_height) - max(crop.y0, 0)
        outside = 1.0 - max(0, inside_w) * max(0, inside_h) / (crop.width * crop.height)
        spent = crop.width * crop.height / (box.width * box.height)
        return abs(math.log(size[0] * size[1] / pixels)) + abs(math.log(spent)) + 2.0 * outside

    return min(((w, h) for w in sides(ideal_w) for h in sides(ideal_h)), key=lambda size: (cost(size), size))


def crop_window(
    box: PersonBox, canvas_width: int, canvas_height: int, frame_width: int, frame_height: int
) -> CropBox:
    """The crop, of the canvas's aspect ratio, of the person's window ``box`` (:func:`person_box`).

    Its size is a whole multiple of the canvas aspect (so the canvas scale is exactly
    ``canvas_width / width`` on both axes): the smallest that holds ``box``, or the largest inside the
    ``frame_width`` x ``frame_height`` frame where that gives up at most :data:`CROP_TRIM_FRACTION` of the
    window's width and height. It is centered on the window and shifted to lie inside the frame along each
    axis where it fits (elsewhere the frame is centered in it, black bands on both sides).

    Raises:
        ValueError: for a canvas side under 1 pixel.
    """
    if canvas_width < 1 or canvas_height < 1:
        raise ValueError(f"the canvas must have positive sides, got {canvas_width}x{canvas_height}")
    g = math.gcd(canvas_width, canvas_height)
    unit_w, unit_h = canvas_width // g, canvas_height // g
    k = max(1, math.ceil(max(box.width / unit_w, box.height / unit_h) - 1e-9))
    inside = min(frame_width // unit_w, frame_height // unit_h)  # the largest crop inside the frame
    if (k * unit_w > frame_width or k * unit_h > frame_height) and inside >= 1:
        keep = 1.0 - CROP_TRIM_FRACTION
        if inside * unit_w >= keep * box.width and inside * unit_h >= keep * box.height:
            k = inside
    width, height = k * unit_w, k * unit_h
    x0 = _place(int(round((box.x0 + box.x1 - width) / 2)), width, frame_width)
    y0 = _place(int(round((box.y0 + box.y1 - height) / 2)), height, frame_height)
    return CropBox(x0, y0, width, height)


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
    """One crop window, of the canvas's aspect ratio, that holds the person in every frame: the
    :func:`crop_window` of the person's :func:`person_box` (with ``threshold`` and ``margin_fraction``).

    Args:
        joints_px: float ``(N, NUM_JOINTS, 2)`` source pixels; confidence: ``(N, NUM_JOINTS)``.

    Raises:
        ValueError: if no frame has any joint above ``threshold``.
    """
    box = person_box(joints_px, confidence, frame_width, frame_height, threshold, margin_fraction)
    return crop_window(box, canvas_width, canvas_height, frame_width, frame_height)


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


def person_height_px(joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5) -> float:
    """The person's keypoint height (lowest minus highest joint at or above ``threshold``), median over the
    frames that show at least two such joints, in the pixels of ``joints_px`` (``(N, NUM_JOINTS, 2)`` with
    ``confidence`` ``(N, NUM_JOINTS)``); NaN without any. What the canvas gives the person: printed by
    ``python -m train prepare``."""
    present = confidence >= threshold
    usable = present.sum(axis=1) >= 2
    if not usable.any():
        return float("nan")
    ys = np.where(present, joints_px[..., 1], np.nan)[usable]
    return float(np.median(np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1)))


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
    canvas_width: int | None = None,
    canvas_height: int | None = None,
    canvas_pixels: int = DEFAULT_CANVAS_PIXELS,
    heldout_fraction: float = 0.15,
    max_frames: int | None = None,
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
    mask_source: str = DEFAULT_POSE_ESTIMATOR,
) -> PreparedMeta:
    """Prepare ``video`` into ``out`` (see the module docstring). Returns the written metadata.

    Args:
        canvas_width, canvas_height: force this canvas (pixels, both or neither); by default the canvas
            takes the aspect of the person's window (:func:`person_box`) with about ``canvas_pixels``
            pixels, sides multiples of :data:`realtime.catalog.CANVAS_MULTIPLE_PX` (:func:`choose_canvas`).
            The canvas is logged and recorded in ``meta.json`` (``canvas_width``, ``canvas_height``).
        canvas_pixels: the chosen canvas's pixel budget (ignored with a forced canvas).
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
    if (canvas_width is None) != (canvas_height is None):
        raise ValueError(
            f"give both canvas_width and canvas_height, or neither (got {canvas_width}, {canvas_height})"
        )
    if canvas_width is not None and canvas_height is not None and (canvas_width < 16 or canvas_height < 16):
        raise ValueError(f"canvas must be at least 16x16, got {canvas_width}x{canvas_height}")
    if canvas_width is None and canvas_pixels < CANVAS_MULTIPLE_PX**2:
        raise ValueError(
            f"canvas_pixels must be at least {CANVAS_MULTIPLE_PX**2} (one {CANVAS_MULTIPLE_PX}-pixel "
            f"square), got {canvas_pixels}"
        )
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
    joints_src, conf_src = np.stack(joints), np.stack(conf)
    if canvas_width is None or canvas_height is None:
        window = person_box(joints_src, conf_src, info.width, info.height)
        canvas_width, canvas_height = choose_canvas(window, info.width, info.height, canvas_pixels)
        log.info(
            "canvas %dx%d chosen for the person's window %.0fx%.0f px of the %dx%d video (about %d pixels, "
            "sides multiples of %d)",
            canvas_width, canvas_height, window.width, window.height, info.width, info.height, canvas_pixels,
            CANVAS_MULTIPLE_PX,
        )  # fmt: skip
    box = find_crop(joints_src, conf_src, canvas_width, canvas_height, info.width, info.height)
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
