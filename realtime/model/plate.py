"""The background plate: the target video's scene without the person, a ``per_target`` generator input.

Everybody Dance Now (Chan et al., ICCV 2019, Sec. 3) assumes a static camera, so the target's background is
one image for the whole video; Balakrishnan et al. (*Synthesizing Images of Humans in Unseen Poses*, CVPR
2018, Sec. 3.3-3.4) synthesize the person and the background separately and composite them with a predicted
mask. The plate is that background, made once per target at prepare time from the training frames (never the
held-out ones) by :func:`median_plate`: the per-pixel median over the frames where the pixel is not covered
by the person (the prepared person mask, dilated by :data:`MASK_DILATION_PX` so that the mask's soft edge
and the person's shadow-free outline stay out), and where the person covered a pixel in every frame, the
value of the nearest pixel that was seen.

Declared here as :data:`BACKGROUND_PLATE` (imported by :mod:`realtime.model`, so the declaration exists in
every process that loads a model); a generator whose ``GeneratorSpec.composite_over`` names it predicts the
person and a soft alpha over it (:func:`realtime.model.nets.composite`). The evaluation's empty-background
row scores the same plate (:func:`train.evaluate.background_plate`).
"""

from __future__ import annotations

import logging

import numpy as np

from realtime.model.inputs import InputRole, TargetFrames, TensorSpec, declare_input

log = logging.getLogger(__name__)

#: The plate as a generator input: float32 ``(1, 3, H, W)`` RGB in [0, 1] at the target canvas.
BACKGROUND_PLATE = TensorSpec(
    "background_plate", 3, InputRole.PER_TARGET, "the target video's background without the person, RGB"
)

#: Pixels by which the person mask is grown before its pixels are left out of the median.
MASK_DILATION_PX = 4
#: A mask value (0-255) at or above this is the person.
MASK_THRESHOLD = 128
#: The median is taken over at most this many training frames, evenly spaced.
PLATE_MAX_FRAMES = 300
#: Rows of the canvas are processed in bands whose float32 working copy stays under this many bytes.
BAND_BYTES = 64 * 2**20


def _grown_masks(masks: np.ndarray, dilation_px: int) -> np.ndarray:
    """bool ``(N, h, W)``: where the person is, grown by ``dilation_px`` (a disk), per frame."""
    from scipy import ndimage

    person = np.asarray(masks) >= MASK_THRESHOLD
    if dilation_px <= 0 or not person.any():
        return person
    r = int(dilation_px)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (yy * yy + xx * xx <= r * r)[None]  # (1, 2r+1, 2r+1): no growth across frames
    return ndimage.binary_dilation(person, structure=disk)


def median_plate(
    frames: np.ndarray,
    masks: np.ndarray,
    *,
    dilation_px: int = MASK_DILATION_PX,
    max_frames: int = PLATE_MAX_FRAMES,
    band_bytes: int = BAND_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The scene without the person: the per-pixel median of the frames where the (dilated) person mask does
    not cover the pixel, filled from the nearest seen pixel where it always does.

    Memory stays bounded for long videos memory-mapped from disk: at most ``max_frames`` frames (evenly
    spaced) are used, and the canvas is processed in bands of rows whose float32 copy is under
    ``band_bytes`` (each band reads ``dilation_px`` extra rows above and below for the mask's growth).

    Args:
        frames: uint8 ``(N, H, W, 3)`` RGB frames (may be a memory map).
        masks: uint8 ``(N, H, W)`` person masks, 0-255 (>= :data:`MASK_THRESHOLD` is the person).
        dilation_px: pixels by which each mask is grown (a disk) before its pixels are left out; >= 0.
        max_frames: most frames used (>= 1).
        band_bytes: working memory bound of one band, bytes.

    Returns:
        ``(plate, seen)``: float32 ``(3, H, W)`` in [0, 1], and bool ``(H, W)``, where some frame saw the
        background (elsewhere the plate holds the nearest seen pixel's value). Where no frame saw any
        background pixel at all, the plain per-pixel median of the frames (person included) is returned,
        with a warning, and ``seen`` is all False.

    Raises:
        ValueError: for frames that are not uint8 ``(N, H, W, 3)``, masks that are not uint8 ``(N, H, W)``
            of the same N, H, W, no frames, or a negative ``dilation_px`` or ``max_frames`` < 1.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 (N >= 1, H, W, 3), got {frames.dtype} {frames.shape}")
    if masks.dtype != np.uint8 or masks.shape != frames.shape[:3]:
        raise ValueError(
            f"masks must be uint8 {frames.shape[:3]} like the frames, got {masks.dtype} {masks.shape}"
        )
    if dilation_px < 0 or max_frames < 1:
        raise ValueError(f"dilation_px must be >= 0 and max_frames >= 1, got {dilation_px}, {max_frames}")
    count, height, width = frames.shape[:3]
    picks = np.unique(np.linspace(0, count - 1, min(max_frames, count)).round().astype(np.int64))
    row_bytes = len(picks) * width * 4 * 4  # float32 RGB plus the mask, per row
    band = max(1, min(height, int(band_bytes // max(row_bytes, 1))))
    plate = np.empty((height, width, 3), np.float32)
    seen = np.zeros((height, width), bool)
    for top in range(0, height, band):
        bottom = min(height, top + band)
        lo, hi = max(0, top - dilation_px), min(height, bottom + dilation_px)
        grown = _grown_masks(masks[picks, lo:hi], dilation_px)[:, top - lo : top - lo + bottom - top]
        rows = np.asarray(frames[picks, top:bottom], np.float32)
        rows[grown] = np.nan
        seen[top:bottom] = ~grown.all(axis=0)
        plate[top:bottom] = _nan_median(rows)
    if not seen.any():
        log.warning(
            "background plate: the person covers every pixel in every frame; using the median of the frames "
            "with the person in them"
        )
        for top in range(0, height, band):
            bottom = min(height, top + band)
            plate[top:bottom] = np.median(np.asarray(frames[picks, top:bottom], np.float32), axis=0)
    elif not seen.all():
        from scipy import ndimage

        nearest = ndimage.distance_transform_edt(~seen, return_distances=False, return_indices=True)
        plate = plate[nearest[0], nearest[1]]
        log.info("background plate: %.1f%% of the pixels never seen, filled from the nearest seen pixel",
                 100.0 * (1.0 - seen.mean()))  # fmt: skip
    out = np.clip(plate / 255.0, 0.0, 1.0).astype(np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(out), seen


def _nan_median(values: np.ndarray) -> np.ndarray:
    """The median over axis 0 ignoring NaNs (``np.nanmedian``'s value, several times faster here: one sort,
    NaNs last), float32 ``(N, ...)`` -> ``(...)``; NaN where every value is NaN."""
    values.sort(axis=0)
    valid = np.count_nonzero(~np.isnan(values), axis=0)
    low = np.take_along_axis(values, np.maximum(valid - 1, 0)[None] // 2, axis=0)[0]
    high = np.take_along_axis(values, (valid // 2)[None], axis=0)[0]  # valid // 2 <= N - 1
    out = 0.5 * (low + high)
    out[valid == 0] = np.nan
    return out


def produce_background_plate(frames: TargetFrames) -> np.ndarray:
    """The target producer of :data:`BACKGROUND_PLATE`: :func:`median_plate` of the target's training frames
    and person masks.

    Returns:
        float32 ``(3, H, W)`` RGB in [0, 1] at the frames' canvas.

    Raises:
        ValueError: as :func:`median_plate`.
    """
    plate, _ = median_plate(frames.frames, frames.masks)
    return plate


declare_input(BACKGROUND_PLATE, produce_background_plate)
