"""WebRTC video tracks of a stream as sinks: the page's (stick figure | generated, side by side) and each WHEP
viewer's (either view).

:class:`BrowserTrackSink` composes each frame on the generation worker thread (:func:`compose_side_by_side`:
stick figure and generated frame written straight into the outgoing ``av.VideoFrame``'s buffer, or
:func:`compose_target`: the generated frame alone; the test stamp copied in, the camera frame's ``pts`` and
``time_base``); its :attr:`BrowserTrackSink.track`, a :class:`SideBySideTrack`, is what a peer connection
sends: aiortc awaits its ``recv()``, which takes the newest composed frame from the sink's feed and records
the frame's server latency in a :class:`realtime.serving.stats.StreamStats` (the stream's for the page's
track, the viewer's own for a WHEP viewer's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.serving.sink import GeneratedFrame, OutputSink, rgb_view
from realtime.serving.stamp import copy_stamp
from realtime.serving.stats import StreamStats
from realtime.serving.workers import LatestSlot, SlotClosed


def compose_side_by_side(
    stick_figure: np.ndarray, generated: np.ndarray, stamp: np.ndarray | None = None
) -> av.VideoFrame:
    """The browser's view: a new ``rgb24`` frame ``(2W, H)``, stick figure on the left, generated on the
    right, each written once straight into the frame's buffer (no joined array in between).

    Args:
        stick_figure, generated: uint8 ``(H, W, 3)`` RGB, the same size (any strides).
        stamp: a camera frame's test-stamp band, uint8 ``(band, W_camera, 3)``, copied over the top of the
            frame (:func:`realtime.serving.stamp.copy_stamp`), or None.

    Raises:
        ValueError: if the two images are not uint8 ``(H, W, 3)`` of one size.
    """
    if stick_figure.shape != generated.shape or generated.ndim != 3 or generated.shape[2] != 3:
        raise ValueError(
            f"stick figure {stick_figure.shape} and generated {generated.shape} must both be (H, W, 3)"
        )
    if stick_figure.dtype != np.uint8 or generated.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {stick_figure.dtype} and {generated.dtype}")
    height, width = generated.shape[:2]
    frame = av.VideoFrame(2 * width, height, "rgb24")
    pixels = rgb_view(frame)
    pixels[:, :width] = stick_figure
    pixels[:, width:] = generated
    if stamp is not None:
        copy_stamp(stamp, pixels)
    return frame


def compose_target(generated: np.ndarray, stamp: np.ndarray | None = None) -> av.VideoFrame:
    """The target alone: a new ``rgb24`` frame ``(W, H)`` holding ``generated`` (uint8 ``(H, W, 3)`` RGB),
    with the test stamp copied over its top when given (see :func:`compose_side_by_side`).

    Raises:
        ValueError: if ``generated`` is not uint8 ``(H, W, 3)``.
    """
    if generated.ndim != 3 or generated.shape[2] != 3 or generated.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {generated.dtype} {generated.shape}")
    height, width = generated.shape[:2]
    frame = av.VideoFrame(width, height, "rgb24")
    pixels = rgb_view(frame)
    pixels[:] = generated
    if stamp is not None:
        copy_stamp(stamp, pixels)
    return frame


VIEWS = ("side_by_side", "target")
"""What a track shows: ``side_by_side`` (stick figure | generated, the page's view) or ``target`` (the
generated frame alone)."""


@dataclass(frozen=True)
class OutgoingFrame:
    """A composed output frame and when its camera frame reached the server (``time.perf_counter()`` s)."""

    frame: av.VideoFrame
    arrival_s: float


class SideBySideTrack(MediaStreamTrack):
    """The outgoing video track: ``recv()`` returns the newest composed frame as an ``av.VideoFrame``.

    The frame is its sink's view (stick figure | generated, ``(2W, H)`` of the target canvas, or the
    generated frame alone, RGB24) with the ``pts`` and ``time_base`` of the camera frame it was made from,
    so output timestamps follow input timestamps. Each ``recv()`` records the server latency of that frame.
    Made by :class:`BrowserTrackSink`, which gives it its feed.
    """

    kind = "video"

    def __init__(self, stats: StreamStats) -> None:
        super().__init__()
        self._stats = stats
        self._feed: LatestSlot[OutgoingFrame] | None = None
        self.on_latency: Callable[[float], None] | None = None
        """Optional callback with each frame's latency in ms (called on the event loop)."""

    def use_feed(self, feed: LatestSlot[OutgoingFrame]) -> None:
        """Take the frames to send from ``feed`` (:meth:`BrowserTrackSink.start` calls it)."""
        self._feed = feed

    async def recv(self) -> av.VideoFrame:
        """Wait for the next composed frame.

        Raises:
            MediaStreamError: once the stream has stopped (aiortc then stops sending).
            RuntimeError: before the track's sink was attached to a stream.
        """
        if self.readyState != "live":
            raise MediaStreamError
        if self._feed is None:
            raise RuntimeError("the track's sink is not attached to a stream yet")
        try:
            outgoing = await self._feed.get()
        except SlotClosed:
            self.stop()
            raise MediaStreamError from None
        now_s = time.perf_counter()
        latency_ms = (now_s - outgoing.arrival_s) * 1000.0
        self._stats.record_output(now_s, latency_ms)
        if self.on_latency is not None:
            self.on_latency(latency_ms)
        return outgoing.frame


class BrowserTrackSink(OutputSink[OutgoingFrame]):
    """A WebRTC video output as a sink: add :attr:`track` to the peer connection.

    Args:
        stats: where frames out and their latencies are recorded (the stream's for the page's track).
        view: one of :data:`VIEWS`.

    Raises:
        ValueError: for an unknown view.
    """

    name = "webrtc"

    def __init__(self, stats: StreamStats, view: str = "side_by_side") -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view[:40]!r}; one of {', '.join(VIEWS)}")
        self.view = view
        self.track = SideBySideTrack(stats)
        """What the peer connection sends."""

    def compose(self, frame: GeneratedFrame) -> OutgoingFrame:
        """The view in a new ``av.VideoFrame`` with the camera frame's test stamp, ``pts`` and ``time_base``
        (generation worker thread)."""
        if self.view == "target":
            out = compose_target(frame.generated, frame.stamp)
        else:
            out = compose_side_by_side(frame.stick_figure, frame.generated, frame.stamp)
        out.pts = frame.pts
        out.time_base = frame.time_base
        return OutgoingFrame(out, frame.arrival_s)

    def start(self, feed: LatestSlot[OutgoingFrame]) -> None:
        """Give the track its feed: aiortc's calls of ``recv()`` take from it (no task of its own)."""
        self.track.use_feed(feed)

    async def stop(self) -> None:
        """End the track (its ``recv()`` then raises ``MediaStreamError``). Idempotent."""
        self.track.stop()
