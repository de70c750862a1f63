"""Live streaming stages: camera track -> latest frame wins -> Retargeter (in a thread) -> outgoing track.

The stages follow aiortc's style, one ``recv()`` each::

    LatestFrameReader(camera track)       recv() -> the newest camera frame not yet taken (older ones dropped)
      -> RetargetStage(reader, retargeter) recv() -> the newest processed frame not yet taken
        -> RetargetedTrack(stage)          recv() -> av.VideoFrame (stick figure | generated) for aiortc

:class:`RetargetStream` builds and owns the three for one peer connection, with their statistics.

The asyncio event loop only moves frames. Colour conversion, :meth:`Retargeter.process`, ``side_by_side()``
and building the output ``av.VideoFrame`` run in a thread executor shared by all sessions; one session's
calls are sequential. A slow stage makes the stream drop stale frames, never queue them, so the latency
cannot grow over time.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import fractions
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.pose import PoseFrame

log = logging.getLogger(__name__)

T = TypeVar("T")

FAILURE_LOG_INTERVAL_S = 5.0
"""At most one logged traceback per stream in this many seconds when frames keep failing."""


class RetargetResultLike(Protocol):
    """What the stream needs from :class:`realtime.pipeline.RetargetResult`."""

    timings_ms: dict[str, float]
    pose: PoseFrame

    def side_by_side(self) -> np.ndarray: ...


class RetargeterLike(Protocol):
    """The stream's view of :class:`realtime.pipeline.Retargeter` (not thread-safe: one thread at a time)."""

    def process(self, rgb: np.ndarray, timestamp_ms: float) -> RetargetResultLike: ...

    def close(self) -> None: ...


def _log_if_failed(task: asyncio.Task[Any]) -> None:
    """Done callback: a stage task that died of an exception says so at once (not only at stop())."""
    if not task.cancelled() and task.exception() is not None:
        log.error("stream task %s failed", task.get_name(), exc_info=task.exception())


class SlotClosed(Exception):
    """Raised by :meth:`LatestSlot.get` once the slot is closed and empty."""


class LatestSlot(Generic[T]):
    """A one-item mailbox where the latest item wins: ``put`` overwrites, ``get`` awaits the next fresh item.

    Nothing ever queues: an item not taken before the next ``put`` is dropped and counted in
    :attr:`dropped`. Meant for one producer and one consumer on one event loop.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self._event = asyncio.Event()
        self.dropped = 0
        """Items overwritten before anyone took them."""

    def put(self, item: T) -> None:
        """Store ``item``, dropping (and counting) the previous one if it was not taken.

        Raises:
            SlotClosed: if the slot is closed.
        """
        if self._closed:
            raise SlotClosed("put on a closed slot")
        if self._has_item:
            self.dropped += 1
        self._item = item
        self._has_item = True
        self._event.set()

    async def get(self) -> T:
        """Wait for an item that was not taken yet and take it.

        Raises:
            SlotClosed: once the slot is closed (an item still in it is discarded).
        """
        while not self._has_item or self._closed:
            if self._closed:
                raise SlotClosed("slot closed")
            self._event.clear()
            await self._event.wait()
        item = self._item
        self._item = None
        self._has_item = False
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Wake the consumer with :class:`SlotClosed` and refuse further items. Idempotent."""
        self._closed = True
        self._item = None
        self._has_item = False
        self._event.set()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed


@dataclass(frozen=True)
class CameraFrame:
    """An incoming camera frame and when it reached the server (``time.perf_counter()`` seconds)."""

    frame: av.VideoFrame
    arrival_s: float


@dataclass(frozen=True)
class ProcessedFrame:
    """A ready output frame: ``frame`` holds ``side_by_side()`` (RGB24, its pts not set yet).

    Attributes:
        frame: the outgoing frame, ``(2W, H)`` of the target canvas.
        pts, time_base: taken from the camera frame it was made from.
        arrival_s: when that camera frame reached the server (``time.perf_counter()`` seconds).
        timings_ms: the pipeline's per-stage timings, plus ``"total"`` (the whole executor job).
        person_found: whether a person was found in the camera frame.
    """

    frame: av.VideoFrame
    pts: int | None
    time_base: fractions.Fraction | None
    arrival_s: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    person_found: bool = False


@dataclass(frozen=True)
class StreamStatsSnapshot:
    """Counters of one stream, and rates and latencies over the last ``window_s`` seconds.

    Attributes:
        frames_in: camera frames received since the start.
        frames_out: output frames returned by the outgoing track's ``recv()`` since the start.
        frames_dropped: camera frames never processed plus processed frames never sent (latest frame wins).
        frames_failed: frames whose processing raised (logged and skipped).
        frames_with_person: processed frames in which a person was found.
        fps_in, fps_out: frames per second over the window.
        latency_ms_mean, latency_ms_last: server latency (camera frame arrival -> its output frame leaving
            ``recv()``) over the window; ``None`` when no frame left in the window.
        latency_ms_window: every such latency in the window, oldest first.
        timings_ms: the pipeline's per-stage timings of the last processed frame.
    """

    frames_in: int
    frames_out: int
    frames_dropped: int
    frames_failed: int
    frames_with_person: int
    fps_in: float
    fps_out: float
    latency_ms_mean: float | None
    latency_ms_last: float | None
    latency_ms_window: list[float]
    timings_ms: dict[str, float]
    window_s: float

    def to_message(self) -> dict[str, Any]:
        """The ``{"type": "stats", ...}`` signaling message (JSON-serializable, values rounded)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "type": "stats",
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_dropped": self.frames_dropped,
            "frames_failed": self.frames_failed,
            "frames_with_person": self.frames_with_person,
            "fps_in": r(self.fps_in),
            "fps_out": r(self.fps_out),
            "fps": r(self.fps_out),
            "latency_ms_mean": r(self.latency_ms_mean),
            "latency_ms_last": r(self.latency_ms_last),
            "latency_ms_window": [round(v, 1) for v in self.latency_ms_window],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "window_s": self.window_s,
        }


class StreamStats:
    """Counts frames and keeps the per-frame server latencies of the last ``window_s`` seconds.

    Times are ``time.perf_counter()`` seconds. Updated and read on the event loop only.
    """

    def __init__(self, window_s: float = 1.0, clock: Callable[[], float] = time.perf_counter) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self.frames_in = 0
        self.frames_out = 0
        self.frames_failed = 0
        self.frames_with_person = 0
        self.dropped_before_processing = 0
        self.dropped_before_sending = 0
        self.last_timings_ms: dict[str, float] = {}
        self._arrivals_s: collections.deque[float] = collections.deque()
        self._outputs: collections.deque[tuple[float, float]] = collections.deque()  # (time_s, latency_ms)

    def record_input(self, now_s: float) -> None:
        """A camera frame arrived at ``now_s``."""
        self.frames_in += 1
        self._arrivals_s.append(now_s)
        self._trim(now_s)

    def record_output(self, now_s: float, latency_ms: float) -> None:
        """An output frame left ``recv()`` at ``now_s``, ``latency_ms`` after its camera frame arrived."""
        self.frames_out += 1
        self._outputs.append((now_s, latency_ms))
        self._trim(now_s)

    def _trim(self, now_s: float) -> None:
        start_s = now_s - self.window_s
        while self._arrivals_s and self._arrivals_s[0] < start_s:
            self._arrivals_s.popleft()
        while self._outputs and self._outputs[0][0] < start_s:
            self._outputs.popleft()

    def snapshot(self) -> StreamStatsSnapshot:
        """The counters now and the rates and latencies over the last ``window_s`` seconds."""
        self._trim(self._clock())
        latencies_ms = [latency for _, latency in self._outputs]
        return StreamStatsSnapshot(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=self.dropped_before_processing + self.dropped_before_sending,
            frames_failed=self.frames_failed,
            frames_with_person=self.frames_with_person,
            fps_in=len(self._arrivals_s) / self.window_s,
            fps_out=len(latencies_ms) / self.window_s,
            latency_ms_mean=float(np.mean(latencies_ms)) if latencies_ms else None,
            latency_ms_last=latencies_ms[-1] if latencies_ms else None,
            latency_ms_window=latencies_ms,
            timings_ms=dict(self.last_timings_ms),
            window_s=self.window_s,
        )


class LatestFrameReader:
    """Consumes a camera track continuously into a :class:`LatestSlot`; ``recv()`` returns the newest frame.

    Frames arriving while the consumer is busy are dropped (counted in ``stats.dropped_before_processing``).
    The reading task starts with :meth:`start`; when the track ends, ``recv()`` raises :class:`SlotClosed`.
    """

    def __init__(self, track: MediaStreamTrack, stats: StreamStats) -> None:
        self._track = track
        self._stats = stats
        self._slot: LatestSlot[CameraFrame] = LatestSlot()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the reading task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="camera-reader")
            self._task.add_done_callback(_log_if_failed)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The reading task, once started."""
        return self._task

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self._track.recv()
                except MediaStreamError:
                    log.info("camera track ended")
                    return
                now_s = time.perf_counter()
                self._stats.record_input(now_s)
                self._slot.put(CameraFrame(frame, now_s))
                self._stats.dropped_before_processing = self._slot.dropped
        finally:
            self._slot.close()

    async def recv(self) -> CameraFrame:
        """The newest camera frame not taken yet (waits for one).

        Raises:
            SlotClosed: once the camera track has ended or the reader was stopped.
        """
        return await self._slot.get()

    async def stop(self) -> None:
        """Cancel the reading task and wait for it. Idempotent."""
        self._slot.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _retarget_frame(retargeter: RetargeterLike, camera: CameraFrame) -> ProcessedFrame:
    """The executor job for one frame: RGB conversion, ``process``, ``side_by_side`` and the output frame.

    Raises:
        ValueError: if ``side_by_side()`` is not a uint8 ``(H, W, 3)`` array.
        Whatever ``retargeter.process`` raises.
    """
    start_s = time.perf_counter()
    frame = camera.frame
    rgb = frame.to_ndarray(format="rgb24")
    timestamp_ms = float(frame.time) * 1000.0 if frame.time is not None else camera.arrival_s * 1000.0
    result = retargeter.process(rgb, timestamp_ms)
    image = result.side_by_side()
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"side_by_side() must return a uint8 (H, W, 3) array, got "
            f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    timings_ms = dict(result.timings_ms)
    timings_ms["total"] = (time.perf_counter() - start_s) * 1000.0
    person_found = not result.pose.is_empty
    return ProcessedFrame(out, frame.pts, frame.time_base, camera.arrival_s, timings_ms, person_found)


class RetargetStage:
    """Takes the newest camera frame, runs the Retargeter on it in ``executor``, and offers the result.

    ``recv()`` returns the newest :class:`ProcessedFrame` not taken yet; results not taken before the next one
    are dropped (``stats.dropped_before_sending``). An exception from ``process`` is logged, counted in
    ``stats.frames_failed``, and that frame is skipped; the stage goes on with the next frame. (The traceback
    is logged at most every :data:`FAILURE_LOG_INTERVAL_S` seconds, so a model failing on every frame cannot
    flood the log; every failure is counted.)

    Args:
        source: anything with ``async recv() -> CameraFrame`` raising :class:`SlotClosed` at the end.
        retargeter: used from the executor, one call at a time; closed by :meth:`stop`.
        executor: shared thread pool; this stage submits at most one job at a time.
    """

    def __init__(
        self,
        source: LatestFrameReader,
        retargeter: RetargeterLike,
        executor: concurrent.futures.Executor,
        stats: StreamStats,
    ) -> None:
        self._source = source
        self._retargeter = retargeter
        self._executor = executor
        self._stats = stats
        self._slot: LatestSlot[ProcessedFrame] = LatestSlot()
        self._task: asyncio.Task[None] | None = None
        self._job: asyncio.Future[ProcessedFrame] | None = None
        self._retargeter_closed = False
        self._last_failure_log_s = -math.inf

    def start(self) -> None:
        """Start the processing task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retarget-stage")
            self._task.add_done_callback(_log_if_failed)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The processing task, once started."""
        return self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    camera = await self._source.recv()
                except SlotClosed:
                    return
                self._job = loop.run_in_executor(self._executor, _retarget_frame, self._retargeter, camera)
                try:
                    # shield: a cancelled stage must still wait for the running job (see stop()).
                    processed = await asyncio.shield(self._job)
                except Exception:
                    self._stats.frames_failed += 1
                    now_s = time.perf_counter()
                    if now_s - self._last_failure_log_s >= FAILURE_LOG_INTERVAL_S:
                        self._last_failure_log_s = now_s
                        log.exception(
                            "retargeting failed on frame pts=%s (%d failed so far); skipping it",
                            camera.frame.pts,
                            self._stats.frames_failed,
                        )
                    continue
                finally:
                    if self._job.done():
                        self._job = None
                self._stats.last_timings_ms = processed.timings_ms
                self._stats.frames_with_person += processed.person_found
                self._slot.put(processed)
                self._stats.dropped_before_sending = self._slot.dropped
        finally:
            self._slot.close()

    async def recv(self) -> ProcessedFrame:
        """The newest processed frame not taken yet (waits for one).

        Raises:
            SlotClosed: once the stage has stopped (camera ended or :meth:`stop`).
        """
        return await self._slot.get()

    async def stop(self) -> None:
        """Cancel the processing task, wait for a job still running in the executor, then close the
        Retargeter (in the executor, so never concurrently with ``process``). Idempotent."""
        self._slot.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._job is not None:  # a job interrupted by the cancel: wait until the thread is done with it
            (outcome,) = await asyncio.gather(self._job, return_exceptions=True)
            self._job = None
            if isinstance(outcome, BaseException):
                log.warning("retargeting job running at stop failed: %r", outcome)
        if not self._retargeter_closed:
            self._retargeter_closed = True
            loop = asyncio.get_running_loop()
            try:
                closing = loop.run_in_executor(self._executor, self._retargeter.close)
            except RuntimeError as exc:  # the executor is already shut down: close here instead
                log.warning("executor unavailable (%s); closing the retargeter on the event loop", exc)
                self._retargeter.close()
            else:
                await closing


class RetargetedTrack(MediaStreamTrack):
    """The outgoing video track: ``recv()`` returns the newest processed frame as an ``av.VideoFrame``.

    The frame is ``side_by_side()`` of the result (stick figure | generated, ``(2W, H)`` of the target
    canvas, RGB24) with the ``pts`` and ``time_base`` of the camera frame it was made from, so output
    timestamps follow input timestamps. Each ``recv()`` records the server latency of that frame.
    """

    kind = "video"

    def __init__(self, stage: RetargetStage, stats: StreamStats) -> None:
        super().__init__()
        self._stage = stage
        self._stats = stats
        self.on_latency: Callable[[float], None] | None = None
        """Optional callback with each frame's latency in ms (called on the event loop)."""

    async def recv(self) -> av.VideoFrame:
        """Wait for the next processed frame.

        Raises:
            MediaStreamError: once the stream has stopped (aiortc then stops sending).
        """
        if self.readyState != "live":
            raise MediaStreamError
        try:
            processed = await self._stage.recv()
        except SlotClosed:
            self.stop()
            raise MediaStreamError from None
        frame = processed.frame
        frame.pts = processed.pts
        frame.time_base = processed.time_base
        now_s = time.perf_counter()
        latency_ms = (now_s - processed.arrival_s) * 1000.0
        self._stats.record_output(now_s, latency_ms)
        if self.on_latency is not None:
            self.on_latency(latency_ms)
        return frame


class RetargetStream:
    """One live session's stages: camera track in, :attr:`output` track out, with :attr:`stats`.

    Args:
        camera: the incoming video track (aiortc ``RemoteStreamTrack`` or any ``MediaStreamTrack``).
        retargeter: this session's own Retargeter; the stream closes it on :meth:`stop`.
        executor: the server's shared thread pool.
        stats_window_s: the window of :meth:`StreamStats.snapshot` rates and latencies, in seconds.

    Call :meth:`start` on the event loop, add :attr:`output` to the peer connection, and :meth:`stop` at
    the end (idempotent; cancels and awaits every task, then closes the Retargeter).
    """

    def __init__(
        self,
        camera: MediaStreamTrack,
        retargeter: RetargeterLike,
        executor: concurrent.futures.Executor,
        *,
        stats_window_s: float = 1.0,
    ) -> None:
        self.stats = StreamStats(stats_window_s)
        self.reader = LatestFrameReader(camera, self.stats)
        self.stage = RetargetStage(self.reader, retargeter, executor, self.stats)
        self.output = RetargetedTrack(self.stage, self.stats)
        self._stopping: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Start reading and processing (call on the event loop)."""
        self.reader.start()
        self.stage.start()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The stream's tasks (reader, processor) once started."""
        return [t for t in (self.reader.task, self.stage.task) if t is not None]

    async def stop(self) -> None:
        """Stop everything: cancel and await both tasks, wait for a running job, close the Retargeter, end
        :attr:`output`. Idempotent; concurrent calls wait for the same stop."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            await self.reader.stop()
            await self.stage.stop()
        finally:
            self.output.stop()
            self._stopping.set_result(None)
