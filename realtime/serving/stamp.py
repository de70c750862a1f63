"""Test stamp: a frame index drawn as a barcode across the top of a video frame, for end-to-end latency.

A sender draws the index of each camera frame into the frame (:func:`draw_stamp`); a server started with
``--test-stamp`` copies that band from each camera frame into the output frame made from it
(:func:`copy_stamp`); the receiver reads the index back (:func:`read_stamp`, and ``decodeStamp`` in
``realtime/serving/web/app.js``) and compares the time it showed the frame with the time the frame was
captured.

Layout: a band across the full width at the top of the frame, :data:`BLOCKS` square blocks of side
``width / BLOCKS`` pixels, white (255) for 1 and black (0) for 0, left to right: a white guard, the
:data:`INDEX_BITS` bits of ``index mod 2**INDEX_BITS`` (most significant first), an even parity bit over
them, and a black guard. Block size scales with the frame width, so the band survives the rescaling a video
path may apply; a reader samples the middle half of each block, so blurred edges do not matter.
"""

from __future__ import annotations

import numpy as np

BLOCKS = 16
"""Blocks across the band."""
INDEX_BITS = BLOCKS - 3
"""Bits of the frame index (13: indices wrap after 8192 frames, 341 s at 24 fps)."""
INDEX_MODULUS = 1 << INDEX_BITS
MIN_WIDTH_PX = 2 * BLOCKS
"""Narrower frames carry no stamp (blocks under 2 pixels do not survive video coding)."""


def band_height(width_px: int) -> int:
    """Height in pixels of the stamp band of a frame ``width_px`` wide (one block side, at least 1)."""
    return max(1, int(round(width_px / BLOCKS)))


def stamp_bits(index: int) -> list[int]:
    """The :data:`BLOCKS` block values (0 or 1) for frame ``index`` (taken modulo :data:`INDEX_MODULUS`)."""
    value = index % INDEX_MODULUS
    data = [(value >> (INDEX_BITS - 1 - i)) & 1 for i in range(INDEX_BITS)]
    return [1, *data, sum(data) % 2, 0]


def draw_stamp(rgb: np.ndarray, index: int) -> None:
    """Draw frame ``index`` into the top band of a uint8 ``(H, W, 3)`` RGB image, in place.

    Raises:
        ValueError: for an image that is not uint8 ``(H, W, 3)``, narrower than :data:`MIN_WIDTH_PX` or less
            tall than its band.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"draw_stamp expects a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    band = band_height(width)
    if width < MIN_WIDTH_PX or height < band:
        raise ValueError(f"a {width}x{height} frame is too small for a stamp (at least {MIN_WIDTH_PX} wide)")
    edges = np.linspace(0, width, BLOCKS + 1).round().astype(int)
    for bit, x0, x1 in zip(stamp_bits(index), edges[:-1], edges[1:], strict=True):
        rgb[:band, x0:x1] = 255 * bit


def draw_stamp_yuv420(yuv: np.ndarray, index: int) -> None:
    """Draw frame ``index`` into a yuv420p frame in place: ``yuv`` is uint8 ``(H * 3 // 2, W)`` as
    ``av.VideoFrame.to_ndarray()`` gives it (the Y plane, then the U and V planes); the band's blocks are
    white or black with neutral colour.

    Raises:
        ValueError: for an array of the wrong type or shape, or a frame too small for a stamp.
    """
    if yuv.dtype != np.uint8 or yuv.ndim != 2 or yuv.shape[0] % 3 != 0:
        raise ValueError(
            f"draw_stamp_yuv420 expects a uint8 (H * 3 / 2, W) array, got {yuv.dtype} {yuv.shape}"
        )
    height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]
    band = band_height(width)
    if width < MIN_WIDTH_PX or height < band or width % 2 or height % 2:
        raise ValueError(
            f"a {width}x{height} yuv420p frame cannot carry a stamp (even sizes, at least {MIN_WIDTH_PX})"
        )
    edges = np.linspace(0, width, BLOCKS + 1).round().astype(int)
    for bit, x0, x1 in zip(stamp_bits(index), edges[:-1], edges[1:], strict=True):
        yuv[:band, x0:x1] = 255 * bit
    chroma_rows = (band + 1) // 2  # the U plane's rows, then the V plane's, each (H / 4) rows of W
    quarter = height // 4
    for plane_start in (height, height + quarter):
        # a chroma plane of (H/2, W/2) is stored as (H/4, W) rows: row r holds chroma rows 2r and 2r + 1
        yuv[plane_start : plane_start + (chroma_rows + 1) // 2] = 128


def read_stamp(rgb: np.ndarray) -> int | None:
    """The frame index stamped into a uint8 ``(H, W, 3)`` RGB image (or an ``(H, W)`` luma plane), or None
    where no valid stamp is found (guards or parity wrong, or the image too small)."""
    if rgb.ndim not in (2, 3) or rgb.shape[1] < MIN_WIDTH_PX:
        return None
    width = rgb.shape[1]
    band = band_height(width)
    if rgb.shape[0] < band:
        return None
    luma = rgb[:band].astype(np.float32)
    if luma.ndim == 3:
        luma = luma.mean(axis=2)
    edges = np.linspace(0, width, BLOCKS + 1)
    y0, y1 = int(band * 0.25), max(int(band * 0.75), int(band * 0.25) + 1)
    bits = []
    for x0, x1 in zip(edges[:-1], edges[1:], strict=True):
        inner0, inner1 = int(x0 + (x1 - x0) * 0.25), int(np.ceil(x0 + (x1 - x0) * 0.75))
        bits.append(1 if luma[y0:y1, inner0:inner1].mean() >= 128 else 0)
    if bits[0] != 1 or bits[-1] != 0 or sum(bits[1:-2]) % 2 != bits[-2]:
        return None
    value = 0
    for bit in bits[1 : 1 + INDEX_BITS]:
        value = (value << 1) | bit
    return value


def copy_stamp(src_rgb: np.ndarray, dst_rgb: np.ndarray) -> None:
    """Copy the stamp band of ``src_rgb`` into the band of ``dst_rgb`` (in place), rescaled to its width.

    Both are uint8 ``(H, W, 3)``; nearest-neighbour rescaling keeps every block whole. Does nothing when
    either image is too small to carry a stamp.
    """
    src_w, dst_w = src_rgb.shape[1], dst_rgb.shape[1]
    if src_w < MIN_WIDTH_PX or dst_w < MIN_WIDTH_PX:
        return
    src_band, dst_band = band_height(src_w), band_height(dst_w)
    if src_rgb.shape[0] < src_band or dst_rgb.shape[0] < dst_band:
        return
    rows = np.minimum(((np.arange(dst_band) + 0.5) * src_band / dst_band).astype(int), src_band - 1)
    cols = np.minimum(((np.arange(dst_w) + 0.5) * src_w / dst_w).astype(int), src_w - 1)
    dst_rgb[:dst_band] = src_rgb[rows[:, None], cols[None, :]]
