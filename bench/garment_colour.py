"""How well a target follows a requested garment colour (issue 18's colour acceptance).

For a target trained with the appearance prior, drive it once as it is and once per requested colour of a
garment (``Retargeter.set_garment_colour``, the same path as the page's colour control and the offline tool's
``--upper-colour``), then, per colour:

- the garment's region in each generated frame: the coverage of the garment's reference pixels warped into
  the driving pose by the appearance prior (references whose mask is cut to the garment,
  :func:`realtime.model.appearance.garment_masks`), above 0.5, eroded by 2 pixels so that edges do not count;
- CIE ΔE2000 (scikit-image) between the requested colour and the generated garment's median colour
  (median of L*, a*, b* over the region's pixels of all frames);
- the SSIM (scikit-image, per frame, median over frames) between the recoloured and the as-it-is output
  over the body region outside the garment (the garment's region dilated by 4 pixels left out), beside the
  mean absolute change there in 8-bit levels: a stricter measure than the issue's, which compares each with
  the real frames.

Two ways to drive it:

- ``--source VIDEO``: a source video's poses through the offline retargeting
  (:func:`realtime.offline.retarget.retarget_frames`); no ground truth, so the body region is the stick
  figure's box grown by 10 %.
- ``--data PREPARED_DIR``: the held-out frames of the target's prepared directory, each generated from its
  own keypoints and stick figure as ``python -m train evaluate`` does (:func:`train.evaluate.evaluate_model`:
  no normalization, each frame conditioned on the previous output, no face residual), and, as issue 18 words
  it, the body SSIM against the real frames outside the garment, for the output as it is and recoloured, and
  their difference (goal: within 0.01). The body region is evaluate's (the person's mask box grown by
  :data:`train.metrics.BODY_MARGIN_FRAC`, :func:`train.metrics.find_person_box`,
  :func:`train.metrics.body_crop_slices`), the SSIM that of :func:`train.metrics.ssim` on the body crop,
  averaged over the crop's pixels outside the garment (:func:`ssim_outside`), mean over frames.

    python -m bench.garment_colour --engine runs/fashion/prior/prior.onnx \\
        --source ../shared/data/source_dance.mp4
    python -m bench.garment_colour --engine runs/fashion/prior/prior.onnx --data runs/fashion/prepared

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from realtime.model.pipeline import Target
    from train.dataset import PreparedData

DEFAULT_COLOURS = ("#c83232", "#2e8b57", "#e6be32")
#: The source mode's default number of driving frames (the data mode drives every held-out frame).
DEFAULT_SOURCE_FRAMES = 48
#: The garment's region is its coverage above 0.5 eroded by this many pixels (edges do not count) ...
GARMENT_EROSION_PX = 2
#: ... and "outside the garment" leaves out the coverage above 0.5 dilated by this many pixels.
GARMENT_DILATION_PX = 4
#: A frame counts in the outside-garment measures when its outside region has at least this many pixels.
MIN_OUTSIDE_PX = 64

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Drive:
    """One drive of the target, as it is or with a garment colour.

    Attributes:
        generated: uint8 ``(H, W, 3)`` generated frames in order.
        garment: bool ``(H, W)`` per frame: the garment's region (coverage above 0.5, eroded).
        outside: bool ``(H, W)`` per frame: the body region minus the dilated garment.
        real: uint8 ``(H, W, 3)`` real frames (``--data``), else empty.
        body_crops: the body region's ``(rows, columns)`` slices per frame (``--data``; None where the frame
            has none), else empty.
    """

    generated: list[np.ndarray]
    garment: list[np.ndarray]
    outside: list[np.ndarray]
    real: list[np.ndarray]
    body_crops: list[tuple[slice, slice] | None]


@dataclass(frozen=True)
class ColourRow:
    """The measures of one requested colour (or of the output as it is: ``requested_rgb`` None).

    Attributes:
        requested_rgb: RGB in [0, 1], or None for the as-is row.
        garment_lab: the generated garment's median CIE L*a*b* (L* in [0, 100]).
        delta_e2000: CIE ΔE2000 between ``garment_lab`` and the request (the as-is row: the first colour).
        ssim_vs_as_is: median over frames of the SSIM against the as-is output outside the garment (1 as is).
        mean_abs_change_levels: mean absolute change against the as-is output outside the garment, in 8-bit
            levels.
        body_ssim_outside: ``--data``: mean over frames of the body SSIM against the real frames outside the
            garment (:func:`ssim_outside`); NaN in ``--source`` mode.
        body_ssim_outside_as_is: the same for the as-is output over the same frames (NaN in ``--source``).
    """

    requested_rgb: RGB | None
    garment_lab: tuple[float, float, float]
    delta_e2000: float
    ssim_vs_as_is: float
    mean_abs_change_levels: float
    body_ssim_outside: float = math.nan
    body_ssim_outside_as_is: float = math.nan

    @property
    def body_ssim_change(self) -> float:
        """Recoloured minus as-is body SSIM outside the garment (issue 18: within 0.01 of 0)."""
        return self.body_ssim_outside - self.body_ssim_outside_as_is


def garment_coverage(retargeter, garment: str, joints_px: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """float32 ``(H, W)`` in [0, 1]: where the target's garment lands in the driving pose (canvas pixels)."""
    from realtime.model.appearance import (
        REFERENCE_IMAGES,
        REFERENCE_KEYPOINTS,
        AppearancePrior,
        garment_masks,
    )

    per_target = retargeter.target.per_target
    images = per_target[REFERENCE_IMAGES.name].float()
    keypoints = per_target[REFERENCE_KEYPOINTS.name].float()
    images, keypoints = images.reshape(-1, *images.shape[-3:]), keypoints.reshape(-1, *keypoints.shape[-2:])
    prior = AppearancePrior()
    cut = images.clone()
    cut[:, 3] = garment_masks(images, keypoints, garment, prior)
    out = prior(cut, keypoints, torch.from_numpy(joints_px)[None].float(), torch.from_numpy(confidence)[None])
    return out[0, 3].numpy()


def garment_regions(coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool ``(H, W)`` pair from a garment coverage ``(H, W)`` in [0, 1]: the garment's region (above 0.5,
    eroded by :data:`GARMENT_EROSION_PX`) and the pixels near it (dilated by :data:`GARMENT_DILATION_PX`)."""
    from scipy import ndimage

    covered = coverage > 0.5
    return (
        ndimage.binary_erosion(covered, iterations=GARMENT_EROSION_PX),
        ndimage.binary_dilation(covered, iterations=GARMENT_DILATION_PX),
    )


def ssim_outside(generated: np.ndarray, real: np.ndarray, keep: np.ndarray) -> float:
    """SSIM of two uint8 ``(H, W, 3)`` images averaged over the pixels of ``keep`` (bool ``(H, W)``).

    The SSIM map is :func:`train.metrics.ssim`'s (scikit-image, 7x7 window, per channel, data range 255),
    and as there the border of half a window is left out, so with ``keep`` all True this is
    :func:`train.metrics.ssim` itself (a test checks it). NaN when fewer than :data:`MIN_OUTSIDE_PX` pixels
    of ``keep`` lie inside that border.

    Raises:
        ValueError: for images of another shape or dtype, or a ``keep`` of another size.
    """
    from skimage.metrics import structural_similarity

    from train.metrics import SSIM_WINDOW_PX

    if generated.dtype != np.uint8 or generated.shape != real.shape or generated.ndim != 3:
        raise ValueError(f"expected two uint8 (H, W, 3) images, got {generated.shape} and {real.shape}")
    if keep.shape != generated.shape[:2]:
        raise ValueError(f"keep is {keep.shape}, the images {generated.shape[:2]}")
    pad = (SSIM_WINDOW_PX - 1) // 2
    inside = np.zeros_like(keep, dtype=bool)
    inside[pad:-pad, pad:-pad] = keep[pad:-pad, pad:-pad]
    if inside.sum() < MIN_OUTSIDE_PX:
        return math.nan
    _, ssim_map = structural_similarity(real, generated, channel_axis=2, data_range=255, full=True)
    return float(ssim_map.mean(axis=2)[inside].mean(dtype=np.float64))


def recoloured_per_target(target: Target, garment: str, colour: RGB | None) -> Mapping[str, torch.Tensor]:
    """The target's per-target values as a stream has them after ``Retargeter.set_garment_colour(garment,
    colour)`` (the target's own for None), read back from the context that ``Retargeter.render`` gives.

    Raises:
        ValueError: as :meth:`realtime.model.pipeline.Retargeter.set_garment_colour`.
    """
    from realtime.model.pipeline import Retargeter
    from realtime.pose.estimators import PoseFrame

    if colour is None:
        return target.per_target
    retargeter = Retargeter(target, live=False)
    try:
        retargeter.set_garment_colour(garment, colour)
        return retargeter.render(PoseFrame.empty(0.0, target.canvas_size)).per_target
    finally:
        retargeter.close()


def generate_heldout(
    target: Target, data: PreparedData, frames: Sequence[int], per_target: Mapping[str, torch.Tensor]
) -> list[np.ndarray]:
    """uint8 ``(H, W, 3)`` per held-out frame ``t`` of ``frames``, generated as
    :func:`train.evaluate.evaluate_model` does (:func:`train.evaluate.generate_prepared_frames`: the frame's
    own prepared keypoints and stick figure, each conditioned on the previous output), no face residual,
    with ``per_target`` in place of the target's own values."""
    from train.evaluate import generate_prepared_frames

    return [generated for _, generated, _ in generate_prepared_frames(target, data, frames, per_target)]


def drive_heldout(target: Target, data: PreparedData, garment: str, max_frames: int | None) -> Drive:
    """The target as it is on the held-out frames of ``data`` (the first ``max_frames``; None: all), with each
    frame's garment region (from its prepared pose) and body region (evaluate's: the person's mask box
    grown by :data:`train.metrics.BODY_MARGIN_FRAC`) minus the dilated garment.

    Raises:
        ValueError: if the target's canvas differs from the data's, or nothing is held out.
    """
    from realtime.model.pipeline import Retargeter
    from train.metrics import body_crop_slices, find_person_box

    meta = data.meta
    if target.canvas_size != (meta.canvas_width, meta.canvas_height):
        raise ValueError(
            f"{target.path}: canvas {target.canvas_size[0]}x{target.canvas_size[1]} differs from the data's "
            f"{meta.canvas_width}x{meta.canvas_height}; give the prepared directory the target was trained on"
        )
    frames = list(meta.heldout)[:max_frames]
    if not frames:
        raise ValueError(f"{data.root} holds out no frames (train_end = num_frames = {meta.num_frames})")
    retargeter = Retargeter(target, live=False)
    garments, outsides, crops, reals = [], [], [], []
    for t in frames:
        joints, confidence = (
            np.asarray(data.joints_px[t], np.float32),
            np.asarray(data.confidence[t], np.float32),
        )
        region, near = garment_regions(garment_coverage(retargeter, garment, joints, confidence))
        box = find_person_box(
            joints, confidence, threshold=meta.render.confidence_threshold, mask=np.asarray(data.masks[t])
        )  # as train.evaluate's ground-truth person box
        crop = body_crop_slices(box, meta.canvas_width, meta.canvas_height)
        body = np.zeros((meta.canvas_height, meta.canvas_width), bool)
        if crop is not None:
            body[crop] = True
        garments.append(region)
        outsides.append(body & ~near)
        crops.append(crop)
        reals.append(np.asarray(data.frames[t]))
    retargeter.close()
    return Drive(generate_heldout(target, data, frames, target.per_target), garments, outsides, reals, crops)


def source_frames(
    target: Target, source: Path, garment: str, max_frames: int, colour: RGB | None
) -> tuple[list[np.ndarray], list]:
    """The target driven by a source video's first ``max_frames`` poses through the offline retargeting,
    with ``colour`` on the garment (None: as it is): uint8 ``(H, W, 3)`` generated frames and the normalized
    poses (:class:`realtime.pose.estimators.PoseFrame`) that drove them."""
    from realtime.offline.retarget import retarget_frames

    frames, poses = [], []
    garments = {garment: colour} if colour is not None else None
    for frame in retarget_frames(target, source, max_frames=max_frames, garment_colours=garments):
        frames.append(frame.result.generated.copy())
        poses.append(frame.result.normalized)
    return frames, poses


def drive_source(target: Target, source: Path, garment: str, max_frames: int) -> Drive:
    """The target as it is driven by a source video (:func:`source_frames`), with each frame's garment
    region and the stick figure's box grown by 10 % minus the dilated garment."""
    from realtime.model.pipeline import Retargeter

    frames, poses = source_frames(target, source, garment, max_frames, None)
    retargeter = Retargeter(target, live=False)
    regions, outside = [], []
    height, width = frames[0].shape[:2]
    for pose in poses:
        region, near = garment_regions(garment_coverage(retargeter, garment, pose.joints_px, pose.confidence))
        present = pose.confidence >= 0.5
        body = np.zeros((height, width), bool)
        if present.any():
            xs, ys = pose.joints_px[present, 0], pose.joints_px[present, 1]
            grow_x, grow_y = 0.1 * (xs.max() - xs.min() + 1), 0.1 * (ys.max() - ys.min() + 1)
            x0, x1 = int(max(0, xs.min() - grow_x)), int(min(width, xs.max() + grow_x + 1))
            y0, y1 = int(max(0, ys.min() - grow_y)), int(min(height, ys.max() + grow_y + 1))
            body[y0:y1, x0:x1] = True
        regions.append(region)
        outside.append(body & ~near)
    retargeter.close()
    return Drive(frames, regions, outside, [], [])


def lab_of(rgb: Sequence[float]) -> np.ndarray:
    """float64 ``(3,)`` CIE L*a*b* of an RGB colour in [0, 1] (scikit-image, D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, np.float64).reshape(1, 1, 3))[0, 0]


def garment_median_lab(frames: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> np.ndarray:
    """float64 ``(3,)``: the median L*, a*, b* over the garment region's pixels of all frames."""
    from skimage.color import rgb2lab

    return np.median(np.concatenate([rgb2lab(f)[r] for f, r in zip(frames, regions, strict=True)]), axis=0)


def body_ssims_outside(drive: Drive, generated: Sequence[np.ndarray]) -> list[float]:
    """Per frame of a ``--data`` drive: :func:`ssim_outside` of ``generated`` against the real frame on the
    body crop, over the crop's pixels outside the garment (NaN where the frame has no body region or too
    few such pixels)."""
    values = []
    for image, real, keep, crop in zip(generated, drive.real, drive.outside, drive.body_crops, strict=True):
        values.append(math.nan if crop is None else ssim_outside(image[crop], real[crop], keep[crop]))
    return values


def measure(drive: Drive, frames: Sequence[np.ndarray], colour: RGB | None, reference: RGB) -> ColourRow:
    """The measures of one drive's generated ``frames`` (as it is: ``drive.generated`` and None) against
    the as-is drive; ΔE2000 against ``colour`` (as it is: against ``reference``)."""
    from skimage.color import deltaE_ciede2000
    from skimage.metrics import structural_similarity

    median = garment_median_lab(frames, drive.garment)
    delta = float(deltaE_ciede2000(median, lab_of(colour if colour is not None else reference)))
    ssims, changes = [], []
    for a, b, keep in zip(drive.generated, frames, drive.outside, strict=True):
        if keep.sum() < MIN_OUTSIDE_PX:
            continue
        _, ssim_map = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
        ssims.append(float(ssim_map.mean(axis=2)[keep].mean()))
        changes.append(float(np.abs(a.astype(np.int16) - b.astype(np.int16))[keep].mean()))
    body, body_as_is = math.nan, math.nan
    if drive.real:
        recoloured, as_is = (
            np.array(body_ssims_outside(drive, frames)),
            np.array(body_ssims_outside(drive, drive.generated)),
        )
        counted = np.isfinite(recoloured) & np.isfinite(as_is)
        if counted.any():
            body, body_as_is = float(recoloured[counted].mean()), float(as_is[counted].mean())
    return ColourRow(
        requested_rgb=colour,
        garment_lab=tuple(float(v) for v in median),  # type: ignore[arg-type]
        delta_e2000=delta,
        ssim_vs_as_is=float(np.median(ssims)) if ssims else math.nan,
        mean_abs_change_levels=float(np.mean(changes)) if changes else math.nan,
        body_ssim_outside=body,
        body_ssim_outside_as_is=body_as_is,
    )


def hex_of(rgb: Sequence[float]) -> str:
    """``#rrggbb`` of an RGB colour in [0, 1]."""
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def table(rows: Sequence[ColourRow], *, with_real: bool) -> list[str]:
    """The markdown table's lines: the as-is row first (``rows[0]``), then one per colour; with the real
    frames' columns when ``with_real``."""
    head = "| requested | generated garment median | ΔE2000 | SSIM outside it vs as is | mean abs change |"
    if with_real:
        head += (
            " body SSIM outside it vs real, as is | body SSIM outside it vs real, recoloured |"
            " difference (goal within 0.01) |"
        )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        lab = f"Lab {np.round(row.garment_lab, 1).tolist()}"
        if row.requested_rgb is None:
            line = f"| (as is) | {lab} | {row.delta_e2000:.1f} (vs the first colour) | 1 | 0 |"
            if with_real:
                line += f" {row.body_ssim_outside_as_is:.4f} | | |"
        else:
            line = (
                f"| {hex_of(row.requested_rgb)} | {lab} | {row.delta_e2000:.1f} | {row.ssim_vs_as_is:.4f} | "
                f"{row.mean_abs_change_levels:.2f} |"
            )
            if with_real:
                line += (
                    f" {row.body_ssim_outside_as_is:.4f} | {row.body_ssim_outside:.4f} | "
                    f"{row.body_ssim_change:+.4f} |"
                )
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    from realtime.catalog import MODEL_CHOICES, MODEL_HELP
    from realtime.cli import rgb_colour
    from realtime.model.pipeline import Target
    from train.dataset import load_prepared

    parser = argparse.ArgumentParser(
        prog="python -m bench.garment_colour", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engine", type=Path, required=True, help="target trained with the prior")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="auto", help=MODEL_HELP)
    drive_by = parser.add_mutually_exclusive_group(required=True)
    drive_by.add_argument("--source", type=Path, help="driving video")
    drive_by.add_argument(
        "--data",
        type=Path,
        help="the target's prepared directory: drive by its held-out frames, score vs real",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"first frames of the source (default {DEFAULT_SOURCE_FRAMES}) or held-out frames (default all)",
    )
    parser.add_argument("--garment", default="upper", help="upper or lower (default upper)")
    parser.add_argument(
        "--colour", type=rgb_colour, action="append", default=None, help=f"repeat; default {DEFAULT_COLOURS}"
    )
    args = parser.parse_args(argv)

    colours = args.colour or [rgb_colour(c) for c in DEFAULT_COLOURS]
    target = Target.load(args.engine, model=args.model)
    if args.data is not None:
        data = load_prepared(args.data)
        drive = drive_heldout(target, data, args.garment, args.frames)
        driving = f"held-out frames of {args.data} ({len(drive.generated)} frames)"

        def recoloured(colour: RGB) -> list[np.ndarray]:
            per_target = recoloured_per_target(target, args.garment, colour)
            return generate_heldout(target, data, list(data.meta.heldout)[: args.frames], per_target)

    else:
        frames = args.frames or DEFAULT_SOURCE_FRAMES
        drive = drive_source(target, args.source, args.garment, frames)
        driving = f"source {args.source.name} ({len(drive.generated)} frames)"

        def recoloured(colour: RGB) -> list[np.ndarray]:
            return source_frames(target, args.source, args.garment, frames, colour)[0]

    print(
        f"engine {args.engine} ({target.role}), {driving}, garment {args.garment}; "
        f"garment region median {np.median([r.sum() for r in drive.garment]):.0f} px per frame"
    )
    rows = [measure(drive, drive.generated, None, colours[0])]
    rows += [measure(drive, recoloured(colour), colour, colours[0]) for colour in colours]
    print("\n".join(table(rows, with_real=args.data is not None)))
    print(f"worst ΔE2000 {max(r.delta_e2000 for r in rows[1:]):.1f} (goal at most 10)")
    if args.data is not None:
        worst = max(abs(r.body_ssim_change) for r in rows[1:])
        print(f"worst body SSIM change outside the garment {worst:.4f} (goal within 0.01)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
