"""Live streaming stages: camera track -> pose (one thread) -> generation (another thread) -> sinks.

The stages follow aiortc's style, one ``recv()`` each, with a latest-wins slot after each::

    LatestFrameReader(camera track)   recv() -> the newest camera frame not yet taken (older ones dropped)
      -> WorkerStage "pose"           recv() -> the newest estimated pose (PosedFrame) not yet taken
        -> WorkerStage "generate"     the newest generated frame with each sink's composition of it
          -> SinkRelay                each sink's own feed (realtime.serving.relay)
            -> BrowserTrackSink.track recv() -> av.VideoFrame (stick figure | generated) for aiortc
            -> any other sink         (a recorder, ...), attached with RetargetStream.add_sink

:class:`RetargetStream` builds and owns them for one peer connection, with their statistics.

The asyncio event loop only moves frames. Colour conversion and :meth:`RetargeterLike.estimate` run on the
server's pose :class:`realtime.serving.workers.FairWorker`; :meth:`RetargeterLike.generate` and every sink's
composition of the result (e.g. building the browser's ``av.VideoFrame``) run on its generation
:class:`realtime.serving.workers.FairWorker` (one thread). Each worker is shared by every session and takes
turns among them (round-robin over the sessions with a pending frame); the two run at once, so the pose of
frame t+1 is estimated while frame t is generated. A stage picks its input when its worker is free, so a
slow stage makes the stream drop stale frames, never queue them, and the latency cannot grow.
"""

from __future__ import annotations

import asyncio
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

from realtime.pose.estimators import PoseFrame
from realtime.serving.relay import ComposedFrame, SinkRelay
from realtime.serving.sink import GeneratedFrame, OutputSink
from realtime.serving.stamp import band_height
from realtime.serving.stats import StreamStats
from realtime.serving.webrtc_track import BrowserTrackSink, SideBySideTrack
from realtime.serving.workers import FairWorker, LatestSlot, SlotClosed, StreamWorkers, log_if_failed

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

FAILURE_LOG_INTERVAL_S = 5.0
"""At most one logged traceback per stage in this many seconds when frames keep failing."""


class RetargetResultLike(Protocol):
    """What the stream needs from :class:`realtime.model.pipeline.RetargetResult` (a frozen dataclass: the
    stream only reads these, so they are read-only properties here)."""

    @property
    def generated(self) -> np.ndarray:
        """uint8 ``(H, W, 3)``: the generated target."""
        ...

    @property
    def stick_figure(self) -> np.ndarray:
        """uint8 ``(H, W, 3)``: the stick figure the generator saw."""
        ...

    @property
    def timings_ms(self) -> dict[str, float]:
        """Milliseconds per pipeline stage."""
        ...

    @property
    def pose(self) -> PoseFrame:
        """The source pose the frame was made from."""
        ...


class RetargeterLike(Protocol):
    """The stream's view of :class:`realtime.model.pipeline.Retargeter`.

    ``estimate`` and ``generate`` may run at the same time on two threads; each of them, and ``close``, is
    called from one thread at a time, and ``close`` never while either runs.
    """

    def estimate(self, rgb: np.ndarray, timestamp_ms: float) -> PoseFrame: ...

    def generate(self, pose: PoseFrame, timings_ms: dict[str, float] | None = None) -> RetargetResultLike: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CameraFrame:
    """An incoming camera frame and when it reached the server (``time.perf_counter()`` seconds)."""

    frame: av.VideoFrame
    arrival_s: float


@dataclass(frozen=True)
class PosedFrame:
    """A camera frame's pose, on its way to generation.

    Attributes:
        pose: the estimated pose (in pixels of the camera frame).
        pts, time_base: the camera frame's.
        arrival_s: when the camera frame reached the server (``time.perf_counter()`` seconds).
        timings_ms: ``"pose"`` (colour conversion and estimation) in ms.
        stamp: the camera frame's test-stamp band, uint8 ``(band, W, 3)``, when test stamps are on.
    """

    pose: PoseFrame
    pts: int | None
    time_base: fractions.Fraction | None
    arrival_s: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    stamp: np.ndarray | None = None


class LatestFrameReader:
    """Consumes a camera track continuously into a :class:`LatestSlot`; ``recv()`` returns the newest frame.

    Frames arriving while the consumer is busy are dropped (counted in ``stats.dropped_before_processing``).
    The reading task starts with :meth:`start`; when the track ends, ``recv()`` raises :class:`SlotClosed`.
    A track that yields anything but ``av.VideoFrame`` (an audio track) ends the task with ``TypeError``
    (logged), and ``recv()`` then raises :class:`SlotClosed` too.
    """

    def __init__(self, track: MediaStreamTrack, stats: StreamStats) -> None:
        self._track = track
        self._stats = stats
        self.slot: LatestSlot[CameraFrame] = LatestSlot()
        """The newest frame (the next stage waits on it and takes from it)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the reading task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="camera-reader")
            self._task.add_done_callback(log_if_failed)

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
                if not isinstance(frame, av.VideoFrame):
                    raise TypeError(f"the camera track gave a {type(frame).__name__}, not an av.VideoFrame")
                now_s = time.perf_counter()
                self._stats.record_input(now_s)
                self.slot.put(CameraFrame(frame, now_s))
                self._stats.dropped_before_processing = self.slot.dropped
        finally:
            self.slot.close()

    async def recv(self) -> CameraFrame:
        """The newest camera frame not taken yet (waits for one).

        Raises:
            SlotClosed: once the camera track has ended or the reader was stopped.
        """
        return await self.slot.get()

    async def stop(self) -> None:
        """Cancel the reading task and wait for it. Idempotent."""
        self.slot.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WorkerStage(Generic[In, Out]):
    """One stage: when an input waits in ``source`` and ``worker`` gives this stage its turn, take the newest
    input, run ``job(input)`` on the worker, and offer the result in :attr:`slot` (latest wins).

    ``recv()`` returns the newest result not taken yet. An exception from ``job`` is counted in
    ``stats.frames_failed`` and that frame is skipped; the stage goes on with the next one. (A traceback is
    logged at most every :data:`FAILURE_LOG_INTERVAL_S` seconds, so a model failing on every frame cannot
    flood the log.)

    Args:
        name: the stage's name (task name, logs).
        source: the previous stage's slot.
        job: runs on the worker's thread, one call at a time.
        worker: the shared thread.
        stats: the stream's statistics.
        on_result: called on the event loop with each result before it is offered.
        on_dropped: called with :attr:`slot`'s drop count after each result.
    """

    def __init__(
        self,
        name: str,
        source: LatestSlot[In],
        job: Callable[[In], Out],
        worker: FairWorker,
        stats: StreamStats,
        *,
        on_result: Callable[[Out], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self._source = source
        self._job_fn = job
        self._worker = worker
        self._stats = stats
        self._on_result = on_result
        self._on_dropped = on_dropped
        self.slot: LatestSlot[Out] = LatestSlot()
        """The newest result (the next stage waits on it and takes from it)."""
        self._task: asyncio.Task[None] | None = None
        self._job: asyncio.Future[Out] | None = None
        self._last_failure_log_s = -math.inf

    def start(self) -> None:
        """Start the stage's task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-stage")
            self._task.add_done_callback(log_if_failed)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The stage's task, once started."""
        return self._task

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._source.wait()
                except SlotClosed:
                    return
                async with self._worker.turn():
                    try:
                        item = self._source.take()  # the newest input now that the thread is free
                    except SlotClosed:
                        return
                    self._job = self._worker.run(self._job_fn, item)
                    try:
                        # shield: a cancelled stage must still wait for the running job (see stop()).
                        result = await asyncio.shield(self._job)
                    except Exception:
                        self._failed()
                        continue
                    finally:
                        if self._job.done():
                            self._job = None
                if self._on_result is not None:
                    self._on_result(result)
                self.slot.put(result)
                if self._on_dropped is not None:
                    self._on_dropped(self.slot.dropped)
        finally:
            self.slot.close()

    def _failed(self) -> None:
        self._stats.frames_failed += 1
        now_s = time.perf_counter()
        if now_s - self._last_failure_log_s >= FAILURE_LOG_INTERVAL_S:
            self._last_failure_log_s = now_s
            log.exception(
                "%s failed on a frame (%d failed so far in this stream); skipping it",
                self.name,
                self._stats.frames_failed,
            )

    async def recv(self) -> Out:
        """The newest result not taken yet (waits for one).

        Raises:
            SlotClosed: once the stage has stopped (its input ended, or :meth:`stop`).
        """
        return await self.slot.get()

    async def stop(self) -> None:
        """Cancel the stage's task and wait until a job it started has finished on the worker. Idempotent."""
        self.slot.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._job is not None:  # a job interrupted by the cancel: wait until the thread is done with it
            (outcome,) = await asyncio.gather(self._job, return_exceptions=True)
            self._job = None
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                log.warning("%s job running at stop failed: %r", self.name, outcome)


def estimate_job(retargeter: RetargeterLike, camera: CameraFrame, *, test_stamp: bool = False) -> PosedFrame:
    """The pose worker's job for one camera frame: RGB conversion and ``retargeter.estimate``.

    Raises:
        Whatever ``retargeter.estimate`` raises.
    """
    start_s = time.perf_counter()
    frame = camera.frame
    rgb = frame.to_ndarray(format="rgb24")
    timestamp_ms = float(frame.time) * 1000.0 if frame.time is not None else camera.arrival_s * 1000.0
    pose = retargeter.estimate(rgb, timestamp_ms)
    stamp = rgb[: band_height(rgb.shape[1])].copy() if test_stamp else None
    timings_ms = {"pose_job": (time.perf_counter() - start_s) * 1000.0}
    return PosedFrame(pose, frame.pts, frame.time_base, camera.arrival_s, timings_ms, stamp)


def generate_job(retargeter: RetargeterLike, posed: PosedFrame) -> GeneratedFrame:
    """The generation worker's job for one pose: ``retargeter.generate``, as the frame every sink gets.

    The frame's ``timings_ms`` get ``"generate_job"`` and ``"total"`` here; :class:`RetargetStream`'s job
    updates them after the sinks' composition, which is part of the generation job.

    Raises:
        ValueError: if the result's images are not uint8 ``(H, W, 3)`` of one size.
        Whatever ``retargeter.generate`` raises.
    """
    start_s = time.perf_counter()
    timings_ms = dict(posed.timings_ms)
    result = retargeter.generate(posed.pose, timings_ms)
    timings_ms = {**timings_ms, **result.timings_ms}
    timings_ms["generate_job"] = (time.perf_counter() - start_s) * 1000.0
    timings_ms["total"] = timings_ms.get("pose_job", 0.0) + timings_ms["generate_job"]
    return GeneratedFrame(
        generated=result.generated,
        stick_figure=result.stick_figure,
        pts=posed.pts,
        time_base=posed.time_base,
        arrival_s=posed.arrival_s,
        timings_ms=timings_ms,
        person_found=not posed.pose.is_empty,
        stamp=posed.stamp,
    )


class RetargetStream:
    """One live session's stages: camera track in, :attr:`output` track out, with :attr:`stats`.

    Each generated frame is emitted once to every attached sink (:class:`realtime.serving.relay.SinkRelay`):
    the browser's track (:attr:`browser`, whose track is :attr:`output`) from the start, any others with
    :meth:`add_sink`.

    Args:
        camera: the incoming video track (aiortc ``RemoteStreamTrack`` or any ``MediaStreamTrack``).
        retargeter: this session's own Retargeter; the stream closes it on :meth:`stop`.
        workers: the server's shared pose and generation threads.
        test_stamp: copy the camera frames' test stamp (:mod:`realtime.serving.stamp`) into the output frames.
        stats_window_s: the window of :meth:`StreamStats.snapshot` rates and latencies, in seconds.

    Create it and call :meth:`start` on the event loop, add :attr:`output` to the peer connection, and
    :meth:`stop` at the end (idempotent; cancels and awaits every task and job, stops every sink, then closes
    the Retargeter).
    """

    def __init__(
        self,
        camera: MediaStreamTrack,
        retargeter: RetargeterLike,
        workers: StreamWorkers,
        *,
        test_stamp: bool = False,
        stats_window_s: float = 1.0,
    ) -> None:
        self.stats = StreamStats(stats_window_s)
        self._retargeter = retargeter
        self._workers = workers
        self._retargeter_closed = False
        stats = self.stats

        def estimate(camera_frame: CameraFrame) -> PosedFrame:
            return estimate_job(retargeter, camera_frame, test_stamp=test_stamp)

        def generate(posed: PosedFrame) -> ComposedFrame:
            start_s = time.perf_counter()
            frame = generate_job(retargeter, posed)
            composed = self.relay.compose(frame)
            # The sinks' composition is part of the generation job (the dict is the frame's own, and nobody
            # reads it before the job's result reaches the event loop).
            compose_ms = (time.perf_counter() - start_s) * 1000.0 - frame.timings_ms["generate_job"]
            frame.timings_ms["compose"] = compose_ms
            frame.timings_ms["generate_job"] += compose_ms
            frame.timings_ms["total"] += compose_ms
            return composed

        def on_generated(composed: ComposedFrame) -> None:
            stats.last_timings_ms = composed.frame.timings_ms
            stats.frames_with_person += composed.frame.person_found

        self.reader = LatestFrameReader(camera, stats)
        self.pose_stage: WorkerStage[CameraFrame, PosedFrame] = WorkerStage(
            "pose",
            self.reader.slot,
            estimate,
            workers.pose,
            stats,
            on_dropped=lambda n: setattr(stats, "dropped_between_stages", n),
        )
        self.generate_stage: WorkerStage[PosedFrame, ComposedFrame] = WorkerStage(
            "generate", self.pose_stage.slot, generate, workers.generate, stats, on_result=on_generated
        )
        self.relay = SinkRelay(self.generate_stage.slot)
        """Hands each generated frame to every attached sink."""
        self.browser = BrowserTrackSink(stats)
        """The browser's WebRTC output."""

        def browser_dropped(count: int) -> None:  # generated frames the browser's track never sent
            stats.dropped_before_sending = count + self.generate_stage.slot.dropped

        self.relay.attach(self.browser, on_dropped=browser_dropped)
        self._stopping: asyncio.Future[None] | None = None

    @property
    def output(self) -> SideBySideTrack:
        """The browser's track (stick figure | generated): add it to the peer connection."""
        return self.browser.track

    def add_sink(self, sink: OutputSink[Any]) -> None:
        """Attach another output (event loop; before or while the stream runs): it gets every frame
        generated from now on, and is stopped with the stream (or by :meth:`remove_sink`).

        Raises:
            RuntimeError: once the stream has stopped, or for a sink already attached.
        """
        self.relay.attach(sink)

    async def remove_sink(self, sink: OutputSink[Any]) -> None:
        """Detach ``sink`` and await its stop (nothing for a sink not attached)."""
        await self.relay.detach(sink)

    def start(self) -> None:
        """Start reading and processing (call on the event loop)."""
        self.reader.start()
        self.pose_stage.start()
        self.generate_stage.start()
        self.relay.start()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The stream's tasks (reader, pose stage, generation stage, relay) once started."""
        tasks = [s.task for s in (self.reader, self.pose_stage, self.generate_stage)]
        return [t for t in (*tasks, self.relay.task) if t is not None]

    async def stop(self) -> None:
        """Stop everything: cancel and await the tasks, wait for jobs still running, stop every sink (the
        browser's track ends), close the Retargeter (on a worker thread, after both stages' jobs).
        Idempotent; concurrent calls wait for the same stop."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            await self.reader.stop()
            await self.pose_stage.stop()
            await self.generate_stage.stop()
            await self.relay.stop()
            await self._close_retargeter()
        finally:
            self.output.stop()
            self._stopping.set_result(None)

    async def _close_retargeter(self) -> None:
        if self._retargeter_closed:
            return
        self._retargeter_closed = True
        try:
            closing = self._workers.pose.run(self._retargeter.close)
        except RuntimeError as exc:  # the worker is already shut down: close here instead
            log.warning("pose worker unavailable (%s); closing the retargeter on the event loop", exc)
            self._retargeter.close()
        else:
            await closing
