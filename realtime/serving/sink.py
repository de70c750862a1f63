"""The one shape of a stream's outputs: :class:`GeneratedFrame` (what the pipeline emits, once per frame) and
:class:`OutputSink` (what every output implements), with :class:`PushSink` for outputs that take each item
as it comes.

After aiortc's ``MediaRecorder`` / ``MediaBlackhole`` / ``MediaRelay`` (``aiortc/contrib/media.py``): the
generation stage emits each :class:`GeneratedFrame` once, and :class:`realtime.serving.relay.SinkRelay`
gives it to every attached sink, each through its own latest-wins slot (its *feed*). A sink lives in two
places:

- :meth:`OutputSink.compose` runs on the generation worker thread, once per frame: it builds what the sink
  shows (an ``av.VideoFrame`` of the view it wants). Heavy work belongs here, never on the event loop.
- On the event loop, the sink takes the composed items from its feed: by being pulled (the browser's WebRTC
  track, :mod:`realtime.serving.webrtc_track`, whose ``recv()`` aiortc awaits), or in a task of its own
  (:class:`PushSink`, e.g. the file recorder, :mod:`realtime.serving.recorder`). The loop only hands items
  over.

A new output is one file with one :class:`OutputSink` subclass, attached with
:meth:`realtime.serving.stages.RetargetStream.add_sink` (for every session of a server: one factory in
``SessionSettings.sinks``, which ``server.py`` fills from its options).
"""

from __future__ import annotations

import abc
import asyncio
import fractions
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import av
import numpy as np

from realtime.serving.workers import LatestSlot, SlotClosed

T = TypeVar("T")


@dataclass(frozen=True)
class GeneratedFrame:
    """One result of a stream, emitted once and shared by every sink (read it; never write into it).

    Attributes:
        generated: uint8 ``(H, W, 3)`` RGB, the generated target on the target canvas.
        stick_figure: uint8 ``(H, W, 3)`` RGB, the normalized stick figure the generator saw (same size).
        pts, time_base: the camera frame's (``None`` when it had none).
        arrival_s: when that camera frame reached the server (``time.perf_counter()`` seconds).
        timings_ms: the pipeline's per-stage timings, plus ``"pose_job"`` and ``"generate_job"`` (each
            stage's whole job, the sinks' composition included) and ``"total"`` (their sum: compute time, not
            counting waits). Complete once the frame leaves the generation worker.
        person_found: whether a person was found in the camera frame.
        stamp: the camera frame's test-stamp band, uint8 ``(band, W_camera, 3)``, when test stamps are on
            (:mod:`realtime.serving.stamp`).
    """

    generated: np.ndarray
    stick_figure: np.ndarray
    pts: int | None
    time_base: fractions.Fraction | None
    arrival_s: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    person_found: bool = False
    stamp: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("generated", "stick_figure"):
            image = getattr(self, name)
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
                raise ValueError(
                    f"{name} must be a uint8 (H, W, 3) array, got {getattr(image, 'dtype', type(image))} "
                    f"{getattr(image, 'shape', '')}"
                )
            if image.shape[2] != 3:
                raise ValueError(f"{name} must be a uint8 (H, W, 3) array, got shape {image.shape}")
        if self.generated.shape != self.stick_figure.shape:
            raise ValueError(
                f"generated {self.generated.shape} and stick_figure {self.stick_figure.shape} must be the "
                "same size"
            )


def rgb_view(frame: av.VideoFrame) -> np.ndarray:
    """The pixels of an ``rgb24`` frame as a writable uint8 ``(height, width, 3)`` view of its plane.

    PyAV's plane buffers are writable and their rows padded to ``line_size`` bytes; the view skips the
    padding, so writing into it composes the outgoing frame in place (no intermediate array).

    Raises:
        ValueError: for a frame that is not ``rgb24``.
    """
    if frame.format.name != "rgb24":
        raise ValueError(f"expected an rgb24 frame, got {frame.format.name}")
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
    return rows[:, : 3 * frame.width].reshape(frame.height, frame.width, 3)


class OutputSink(abc.ABC, Generic[T]):
    """What every output of a stream implements (see the module docstring).

    Lifecycle, driven by :class:`realtime.serving.relay.SinkRelay`: :meth:`start` once on the event loop
    with the sink's feed; then :meth:`compose` on the generation worker thread for each frame, the result put
    into the feed (latest wins: an item the sink has not taken by the next frame is dropped and counted in
    ``feed.dropped``); at the end the feed is closed (taking from it raises
    :class:`realtime.serving.workers.SlotClosed`) and :meth:`stop` awaited.

    A sink that raises, in :meth:`compose` or in the task :meth:`start` returned, is logged and detached
    (by the relay, which then awaits :meth:`stop`); the stream and its other sinks go on. :meth:`compose`
    may still run once while or after the sink is detached (its item is then discarded): it should only
    build the item, not touch what :meth:`stop` releases.
    """

    name: str = "sink"
    """For logs."""

    @abc.abstractmethod
    def compose(self, frame: GeneratedFrame) -> T:
        """Build what this sink shows of ``frame`` (generation worker thread; one call at a time)."""

    @abc.abstractmethod
    def start(self, feed: LatestSlot[T]) -> asyncio.Task[None] | None:
        """Begin taking composed items from ``feed`` (event loop). Return the sink's own task, if it runs one,
        for the relay to watch; it must end when the feed closes."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """End the sink and release what it holds (files, threads, tracks). Idempotent."""


class PushSink(OutputSink[T]):
    """A sink that takes every item from its feed in a task of its own and hands it to :meth:`deliver`.

    While :meth:`deliver` awaits (e.g. an encoder thread still busy with the previous item), newer items
    replace each other in the feed: a slow sink drops its own stale items (``feed.dropped``) and delays
    nothing else.
    """

    def __init__(self) -> None:
        self._feed: LatestSlot[T] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Items this sink was too busy to take (replaced in its feed by newer ones)."""
        return 0 if self._feed is None else self._feed.dropped

    @abc.abstractmethod
    async def deliver(self, item: T) -> None:
        """Take one composed item (event loop: hand it over, do not compute)."""

    def start(self, feed: LatestSlot[T]) -> asyncio.Task[None]:
        """Start the task that takes items from ``feed`` (once)."""
        if self._task is None:
            self._feed = feed
            self._task = asyncio.create_task(self._run(feed), name=f"{self.name}-sink")
        return self._task

    async def _run(self, feed: LatestSlot[T]) -> None:
        while True:
            try:
                item = await feed.get()
            except SlotClosed:
                return
            await self.deliver(item)

    async def stop(self) -> None:
        """Close the feed and await the task (an item being delivered is finished first). Idempotent;
        subclasses release their own resources after calling it."""
        if self._feed is not None:
            self._feed.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
