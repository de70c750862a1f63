"""The browser's output sink (realtime/serving/webrtc_track.py): the side-by-side frame composed straight into
the outgoing frame, with the camera's timestamps and test stamp."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from realtime.serving.sink import GeneratedFrame
from realtime.serving.stamp import band_height, draw_stamp, read_stamp
from realtime.serving.stats import StreamStats
from realtime.serving.webrtc_track import BrowserTrackSink, compose_side_by_side


def test_side_by_side_puts_the_stick_figure_left_and_the_generated_frame_right() -> None:
    rng = np.random.default_rng(0)
    stick = rng.integers(0, 256, (30, 41, 3), np.uint8)
    generated = rng.integers(0, 256, (3, 30, 41), np.uint8).transpose(1, 2, 0)  # strided, as the pipeline's
    frame = compose_side_by_side(stick, generated)
    assert (frame.width, frame.height, frame.format.name) == (82, 30, "rgb24")
    image = frame.to_ndarray(format="rgb24")
    np.testing.assert_array_equal(image[:, :41], stick)
    np.testing.assert_array_equal(image[:, 41:], generated)
    with pytest.raises(ValueError, match="must both be"):
        compose_side_by_side(stick, generated[:, :40])
    with pytest.raises(ValueError, match="uint8"):
        compose_side_by_side(stick.astype(np.float32), generated.astype(np.float32))


def test_the_sink_composes_the_camera_timestamps_and_test_stamp_into_the_frame() -> None:
    camera = np.zeros((48, 96, 3), np.uint8)
    draw_stamp(camera, 37)
    image = np.full((48, 64, 3), 200, np.uint8)
    stamp = camera[: band_height(96)].copy()
    frame = GeneratedFrame(image, image.copy(), 4321, Fraction(1, 90000), 1.5, stamp=stamp)
    sink = BrowserTrackSink(StreamStats())
    outgoing = sink.compose(frame)
    assert outgoing.arrival_s == 1.5
    assert outgoing.frame.pts == 4321 and outgoing.frame.time_base == Fraction(1, 90000)
    assert read_stamp(outgoing.frame.to_ndarray(format="rgb24")) == 37
    assert sink.track.kind == "video" and sink.track.readyState == "live"
