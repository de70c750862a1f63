"""How well a target follows a requested garment colour (issue 18's colour acceptance).

For a target trained with the appearance prior, drive it with a source video once as it is and once per
requested colour of a garment (``Retargeter.set_garment_colour``, the same path as the page's colour control
and the offline tool's ``--upper-colour``), then, per colour:

- the garment's region in each generated frame: the coverage of the garment's reference pixels warped into
  the driving pose by the appearance prior (references whose mask is cut to the garment,
  :func:`realtime.model.appearance.garment_masks`), above 0.5, eroded by 2 pixels so that edges do not count;
- CIE ΔE2000 (scikit-image) between the requested colour and the generated garment's median colour
  (median of L*, a*, b* over the region's pixels of all frames);
- the SSIM (scikit-image, per frame, median over frames) between the recoloured and the as-it-is output
  over the body region outside the garment (the body: the stick figure's box grown by 10 %; the garment's
  region dilated by 4 pixels left out), beside the mean absolute change there in 8-bit levels.

    python -m bench.garment_colour --engine runs/fashion/prior/prior.onnx \\
        --source ../shared/data/source_dance.mp4

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

DEFAULT_COLOURS = ("#c83232", "#2e8b57", "#e6be32")


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


def main(argv: list[str] | None = None) -> int:
    from scipy import ndimage
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    from realtime.cli import rgb_colour
    from realtime.model.pipeline import Target
    from realtime.offline.retarget import retarget_frames

    parser = argparse.ArgumentParser(
        prog="python -m bench.garment_colour", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engine", type=Path, required=True, help="target trained with the prior")
    parser.add_argument("--source", type=Path, required=True, help="driving video")
    parser.add_argument("--frames", type=int, default=48, help="first frames of the source (default 48)")
    parser.add_argument("--garment", default="upper", help="upper or lower (default upper)")
    parser.add_argument(
        "--colour", type=rgb_colour, action="append", default=None, help=f"repeat; default {DEFAULT_COLOURS}"
    )
    args = parser.parse_args(argv)

    def lab_of(rgb) -> np.ndarray:
        return rgb2lab(np.asarray(rgb, np.float64).reshape(1, 1, 3))[0, 0]

    colours = args.colour or [rgb_colour(c) for c in DEFAULT_COLOURS]
    target = Target.load(args.engine)

    def run(colour) -> tuple[list[np.ndarray], list]:
        frames, poses = [], []
        garments = {args.garment: colour} if colour is not None else None
        for frame in retarget_frames(target, args.source, max_frames=args.frames, garment_colours=garments):
            frames.append(frame.result.generated.copy())
            poses.append(frame.result.normalized)
        return frames, poses

    from realtime.model.pipeline import Retargeter

    retargeter = Retargeter(target, live=False)
    base, poses = run(None)
    regions, outside = [], []
    height, width = base[0].shape[:2]
    for pose in poses:
        coverage = garment_coverage(retargeter, args.garment, pose.joints_px, pose.confidence)
        region = ndimage.binary_erosion(coverage > 0.5, iterations=2)
        present = pose.confidence >= 0.5
        body = np.zeros((height, width), bool)
        if present.any():
            xs, ys = pose.joints_px[present, 0], pose.joints_px[present, 1]
            grow_x, grow_y = 0.1 * (xs.max() - xs.min() + 1), 0.1 * (ys.max() - ys.min() + 1)
            x0, x1 = int(max(0, xs.min() - grow_x)), int(min(width, xs.max() + grow_x + 1))
            y0, y1 = int(max(0, ys.min() - grow_y)), int(min(height, ys.max() + grow_y + 1))
            body[y0:y1, x0:x1] = True
        regions.append(region)
        outside.append(body & ~ndimage.binary_dilation(coverage > 0.5, iterations=4))
    retargeter.close()
    print(
        f"engine {args.engine}, source {args.source.name} ({len(base)} frames), garment {args.garment}; "
        f"garment region median {np.median([r.sum() for r in regions]):.0f} px per frame"
    )
    print("| requested | generated garment median | ΔE2000 | SSIM outside it vs as is | mean abs change |")
    print("|---|---|---|---|---|")
    base_lab = np.concatenate([rgb2lab(f)[r] for f, r in zip(base, regions, strict=True)])
    print(
        f"| (as is) | Lab {np.round(np.median(base_lab, axis=0), 1).tolist()} | "
        f"{float(deltaE_ciede2000(np.median(base_lab, axis=0), lab_of(colours[0]))):.1f} "
        "(vs the first colour) | 1 | 0 |"
    )
    worst = 0.0
    for colour in colours:
        frames, _ = run(colour)
        lab = np.concatenate([rgb2lab(f)[r] for f, r in zip(frames, regions, strict=True)])
        median = np.median(lab, axis=0)
        delta = float(deltaE_ciede2000(median, lab_of(colour)))
        ssims, changes = [], []
        for a, b, keep in zip(base, frames, outside, strict=True):
            if keep.sum() < 64:
                continue
            _, ssim_map = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
            ssims.append(float(ssim_map.mean(axis=2)[keep].mean()))
            changes.append(float(np.abs(a.astype(np.int16) - b.astype(np.int16))[keep].mean()))
        hexcode = "#" + "".join(f"{round(255 * c):02x}" for c in colour)
        print(
            f"| {hexcode} | Lab {np.round(median, 1).tolist()} | {delta:.1f} | {np.median(ssims):.4f} | "
            f"{np.mean(changes):.2f} |"
        )
        worst = max(worst, delta)
    print(f"worst ΔE2000 {worst:.1f} (goal at most 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
