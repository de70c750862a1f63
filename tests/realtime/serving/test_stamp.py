"""The frame-index test stamp: drawn, read back, copied across sizes, and surviving video coding."""

from __future__ import annotations

import av
import numpy as np
import pytest

from realtime.serving.stamp import (
    INDEX_MODULUS,
    MIN_WIDTH_PX,
    band_height,
    copy_stamp,
    draw_stamp,
    read_stamp,
)


@pytest.mark.parametrize("width", [MIN_WIDTH_PX, 97, 256, 640, 1920])
def test_draw_and_read_every_kind_of_index(width: int) -> None:
    image = np.full((band_height(width) + 10, width, 3), 128, np.uint8)
    for index in (0, 1, 2, 255, 4097, INDEX_MODULUS - 1, INDEX_MODULUS + 5):
        draw_stamp(image, index)
        assert read_stamp(image) == index % INDEX_MODULUS


def test_no_stamp_or_a_damaged_one_reads_as_none() -> None:
    assert read_stamp(np.zeros((40, 160, 3), np.uint8)) is None  # the guards are missing
    assert read_stamp(np.full((40, 160, 3), 255, np.uint8)) is None
    assert read_stamp(np.zeros((4, 8, 3), np.uint8)) is None  # too small to carry one
    image = np.zeros((40, 160, 3), np.uint8)
    draw_stamp(image, 1234)
    image[:, 30:40] = 255 - image[:, 30:40]  # one data block flipped: the parity bit catches it
    assert read_stamp(image) is None
    with pytest.raises(ValueError, match="too small"):
        draw_stamp(np.zeros((40, 16, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        draw_stamp(np.zeros((40, 160), np.uint8), 1)


@pytest.mark.parametrize(
    ("src", "dst"), [((472, 256), (64, 128)), ((360, 640), (256, 512)), ((48, 96), (1, 1))]
)
def test_copy_rescales_the_band_between_sizes(src: tuple[int, int], dst: tuple[int, int]) -> None:
    source = np.random.default_rng(0).integers(0, 255, (*src, 3), dtype=np.uint8)
    draw_stamp(source, 777)
    target = np.full((*dst, 3), 50, np.uint8)
    copy_stamp(source, target)
    if dst[1] < MIN_WIDTH_PX:
        assert np.all(target == 50)  # too small to carry a stamp: left alone
    else:
        assert read_stamp(target) == 777
        assert np.all(target[band_height(dst[1]) :] == 50)  # only the band changed


def test_stamp_survives_vp8_coding_at_a_small_size() -> None:
    """The tiny engine's output is 128x64: 8-pixel blocks must survive a lossy VP8 round trip."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 128, 64, "yuv420p"
    encoder.bit_rate = 300_000
    decoder = av.CodecContext.create("libvpx", "r")
    decoded = []
    rng = np.random.default_rng(1)
    for index in range(30):
        image = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
        draw_stamp(image, index * 37)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        for packet in encoder.encode(frame):
            decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    for packet in encoder.encode(None):
        decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    assert [read_stamp(image) for image in decoded] == [i * 37 for i in range(len(decoded))]
    assert len(decoded) >= 25
