"""Live streaming stages: camera track -> pose (one thread) -> generation (another thread) -> outgoing track.

The stages follow aiortc's style, one ``recv()`` each, with a latest-wins slot after each::

    LatestFrameReader(camera track)    recv() -> the newest camera frame not yet taken (older ones dropped)
      -> PoseStage(reader)             recv() -> the newest estimated pose not yet taken
        -> GenerateStage(pose stage)   recv() -> the newest generated frame not yet taken
          -> RetargetedTrack(stage)    recv() -> av.VideoFrame (stick figure | generated) for aiortc

:class:`RetargetStream` builds and owns them for one peer connection, with their statistics.

The asyncio event loop only moves frames. Colour conversion and :meth:`Retargeter.estimate` run on the
server's pose :class:`FairWorker`; :meth:`Retargeter.generate`, ``side_by_side()`` and building the output
``av.VideoFrame`` run on its generation :class:`FairWorker` (one thread). Each worker is shared by every
session and takes turns among them (round-robin over the sessions with a pending frame); the two run at once,
so the pose of frame t+1 is estimated while frame t is generated. A stage picks its input when its worker is
free, so a slow stage makes the stream drop stale frames, never queue them, and the latency cannot grow.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fractions
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.catalog import DEFAULT_POSE_THREADS
from realtime.pose.estimators import PoseFrame
from realtime.serving.stamp import band_height, copy_stamp

log = logging.getLogger(__name__)

T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")

FAILURE_LOG_INTERVAL_S = 5.0
"""At most one logged traceback per stage in this many seconds when frames keep failing."""


class RetargetResultLike(Protocol):
    """What the stream needs from :class:`realtime.model.pipeline.RetargetResult` (a frozen dataclass: the
    stream
    only reads these, so they are read-only properties here)."""

    @property
    def timings_ms(self) -> dict[str, float]:
        """Milliseconds per pipeline stage."""
        ...

    @property
    def pose(self) -> PoseFrame:
        """The source pose the frame was made from."""
        ...

    def side_by_side(self) -> np.ndarray:
        """uint8 ``(H, 2W, 3)``: stick figure | generated."""
        ...


class RetargeterLike(Protocol):
    """The stream's view of :class:`realtime.model.pipeline.Retargeter`.

    ``estimate`` and ``generate`` may run at the same time on two threads; each of them, and ``close``, is
    called from one thread at a time, and ``close`` never while either runs.
    """

    def estimate(self, rgb: np.ndarray, timestamp_ms: float) -> PoseFrame: ...

    def generate(self, pose: PoseFrame, timings_ms: dict[str, float] | None = None) -> RetargetResultLike: ...

    def close(self) -> None: ...


def _log_if_failed(task: asyncio.Task[Any]) -> None:
    """Done callback: a stage task that died of an exception says so at once (not only at stop())."""
    if not task.cancelled() and task.exception() is not None:
        log.error("stream task %s failed", task.get_name(), exc_info=task.exception())


class SlotClosed(Exception):
    """Raised by :class:`LatestSlot` once the slot is closed."""


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

    async def wait(self) -> None:
        """Wait until an item not taken yet is in the slot, without taking it.

        Raises:
            SlotClosed: once the slot is closed (an item still in it is discarded).
        """
        while not self._has_item or self._closed:
            if self._closed:
                raise SlotClosed("slot closed")
            self._event.clear()
            await self._event.wait()

    def take(self) -> T:
        """Take the item now (call after :meth:`wait`; only the consumer takes, so it is still there).

        Raises:
            SlotClosed: if the slot is closed.
            LookupError: if the slot is empty.
        """
        if self._closed:
            raise SlotClosed("slot closed")
        if not self._has_item:
            raise LookupError("the slot is empty; await wait() first")
        item = self._item
        self._item = None
        self._has_item = False
        return item  # type: ignore[return-value]

    async def get(self) -> T:
        """Wait for an item that was not taken yet and take it.

        Raises:
            SlotClosed: once the slot is closed (an item still in it is discarded).
        """
        await self.wait()
        return self.take()

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


class FifoSlots:
    """``count`` slots handed out strictly first come, first served (an asyncio semaphore that never lets a
    newcomer pass a waiter). Use on one event loop."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came with the cancellation: hand it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest waiter, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class FairWorker:
    """Threads that run blocking jobs, shared fairly by the stages of every stream.

    A stage waits for its :meth:`turn` (first come, first served), picks its newest input, and runs the job
    with :meth:`run` before giving the turn back. Each stage holds at most one turn and asks again only after
    its job finished, so first-come-first-served is round-robin over the stages that have work; and as the
    input is picked when a thread is free, not when the stage queued, a busy worker never runs stale frames.
    With ``threads`` > 1, that many stages (of different streams) run at once.

    Create it on the event loop that uses it. :meth:`shutdown` after every stream has stopped.

    Args:
        name: the threads' name prefix (shows in logs and profilers).
        threads: jobs run at once.
    """

    def __init__(self, name: str, threads: int = 1) -> None:
        self.name = name
        self.threads = threads
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._slots = FifoSlots(threads)
        self._lock = threading.Lock()  # guards the counters, updated from the worker threads
        self.jobs = 0
        """Jobs run so far."""
        self.busy_s = 0.0
        """Seconds the threads spent in jobs so far (summed over threads)."""

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the worker's threads: stages waiting for a turn get it in the order they asked."""
        await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    @property
    def waiting(self) -> int:
        """Stages waiting for a turn now."""
        return self._slots.waiting

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        start_s = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.busy_s += time.perf_counter() - start_s
                self.jobs += 1

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Start ``fn(*args)`` on a thread; the returned future has its result. Jobs start in the order
        submitted; cancelling the future does not stop a job that has started.

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        return asyncio.get_running_loop().run_in_executor(self._executor, self._timed, fn, *args)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the threads (jobs not started are cancelled; with ``wait``, block until running ones end).
        Idempotent; blocking, so call it off the event loop when ``wait`` is true."""
        self._executor.shutdown(wait=wait, cancel_futures=True)


@dataclass
class StreamWorkers:
    """The server's inference threads, shared by every stream: pose estimation (``pose.threads`` streams at
    once) and generation (one thread: GPU engines keep all their work on one thread)."""

    pose: FairWorker
    generate: FairWorker

    @classmethod
    def create(cls, pose_threads: int = DEFAULT_POSE_THREADS) -> StreamWorkers:
        """Fresh workers (call on the event loop that will use them)."""
        return cls(FairWorker("pose", pose_threads), FairWorker("generate", 1))

    def shutdown(self, *, wait: bool = True) -> None:
        """Shut the threads down (see :meth:`FairWorker.shutdown`). Idempotent."""
        self.pose.shutdown(wait=wait)
        self.generate.shutdown(wait=wait)

    def describe(self) -> dict[str, Any]:
        """Per worker: threads, jobs run, busy seconds, stages waiting (for the server's status)."""
        return {
            w.name: {"threads": w.threads, "jobs": w.jobs, "busy_s": round(w.busy_s, 3), "waiting": w.waiting}
            for w in (self.pose, self.generate)
        }


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


@dataclass(frozen=True)
class ProcessedFrame:
    """A ready output frame: ``frame`` holds ``side_by_side()`` (RGB24, its pts not set yet).

    Attributes:
        frame: the outgoing frame, ``(2W, H)`` of the target canvas.
        pts, time_base: taken from the camera frame it was made from.
        arrival_s: when that camera frame reached the server (``time.perf_counter()`` seconds).
        timings_ms: the pipeline's per-stage timings, plus ``"pose_job"`` and ``"generate_job"`` (each
            stage's whole job) and ``"total"`` (their sum: compute time, not counting waits).
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
        frames_dropped: frames dropped anywhere on the way (latest frame wins): camera frames never
            estimated, poses never generated, generated frames never sent.
        frames_failed: frames whose estimation or generation raised (logged and skipped).
        frames_with_person: generated frames whose camera frame showed a person.
        fps_in, fps_out: frames per second over the window.
        latency_ms_mean, latency_ms_last: server latency (camera frame arrival -> its output frame leaving
            ``recv()``) over the window; ``None`` when no frame left in the window.
        latency_ms_window: every such latency in the window, oldest first.
        timings_ms: the pipeline's per-stage timings of the last generated frame.
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

    Times are ``time.perf_counter()`` seconds. Updated and read on the event loop only. The ``dropped_*``
    counters are each stage's slot's :attr:`LatestSlot.dropped`.
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
        self.dropped_between_stages = 0
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
        dropped = self.dropped_before_processing + self.dropped_between_stages + self.dropped_before_sending
        return StreamStatsSnapshot(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=dropped,
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


class InputRateControl:
    """How many camera frames per second to ask one stream's sender for: about what the server generates.

    A camera frame the server has no time for is still encoded by the sender and decoded here before it is
    dropped as stale (the pipeline keeps only the newest frame). When several streams share the CPU, those
    wasted codec passes take the time that generation needs. Once a second (:meth:`update`, from the
    ``stats`` loop) the rate follows the generated rate: while the stream drops frames (generated fps below
    :attr:`DROP_RATIO` x received fps) the sender is asked for :attr:`HEADROOM` x the generated fps (smoothed,
    at least :attr:`MIN_FPS`); while it keeps up, the asked rate grows by :attr:`GROWTH` per update until it
    is above what the sender sends anyway. Never above ``cap_fps`` (the server's ``--max-input-fps``; 0 =
    none). The page applies it as its camera track's ``frameRate`` constraint and the camera sender's
    ``maxFramerate`` (``RTCRtpSender.setParameters``), the load client by skipping frames. Same idea as
    receiver-driven rate adaptation in RTP (RFC 8888's feedback driving the sender), applied to the frame
    rate.

    Args:
        cap_fps: the highest rate ever asked for, or 0 for none.
        settle_s: no request before the stream has run this long (start-up drops are not congestion).
    """

    DROP_RATIO = 0.8
    HEADROOM = 1.25
    GROWTH = 1.1
    MIN_FPS = 5.0
    SMOOTHING = 0.5
    STEP_FPS = 1.0

    def __init__(self, cap_fps: float = 0.0, settle_s: float = 3.0) -> None:
        if cap_fps < 0 or settle_s < 0:
            raise ValueError(f"cap_fps and settle_s must be >= 0, got {cap_fps}, {settle_s}")
        self.cap_fps = cap_fps
        self.settle_s = settle_s
        self.asked_fps: float | None = None
        """The rate last asked for (None: nothing asked yet)."""
        self._generated_fps: float | None = None

    def update(self, uptime_s: float, fps_in: float, fps_out: float) -> float | None:
        """Take one second's received and generated rates (frames per second); return the rate to ask the
        sender for now, or None when the request does not change (by at least :attr:`STEP_FPS`)."""
        if uptime_s < self.settle_s or fps_in <= 0:
            return None
        smoothed = self._generated_fps
        smoothed = fps_out if smoothed is None else self.SMOOTHING * smoothed + (1 - self.SMOOTHING) * fps_out
        self._generated_fps = smoothed
        if smoothed < self.DROP_RATIO * fps_in:
            rate = max(self.MIN_FPS, self.HEADROOM * smoothed)
        elif self.asked_fps is not None and self.asked_fps <= self.HEADROOM * fps_in:
            rate = self.asked_fps * self.GROWTH
        else:
            return None
        if self.cap_fps:
            rate = min(rate, self.cap_fps)
        rate = float(round(rate))
        if self.asked_fps is not None and abs(rate - self.asked_fps) < self.STEP_FPS:
            return None
        self.asked_fps = rate
        return rate


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
            self._task.add_done_callback(_log_if_failed)

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


def generate_job(retargeter: RetargeterLike, posed: PosedFrame) -> ProcessedFrame:
    """The generation worker's job for one pose: ``retargeter.generate``, ``side_by_side`` (with the test
    stamp copied in, when there is one) and the output frame.

    Raises:
        ValueError: if ``side_by_side()`` is not a uint8 ``(H, W, 3)`` array.
        Whatever ``retargeter.generate`` raises.
    """
    start_s = time.perf_counter()
    timings_ms = dict(posed.timings_ms)
    result = retargeter.generate(posed.pose, timings_ms)
    image = result.side_by_side()
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"side_by_side() must return a uint8 (H, W, 3) array, got "
            f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    image = np.ascontiguousarray(image)
    if posed.stamp is not None:
        if not image.flags.writeable:
            image = image.copy()
        copy_stamp(posed.stamp, image)
    out = av.VideoFrame.from_ndarray(image, format="rgb24")
    timings_ms = {**timings_ms, **result.timings_ms}
    timings_ms["generate_job"] = (time.perf_counter() - start_s) * 1000.0
    timings_ms["total"] = timings_ms.get("pose_job", 0.0) + timings_ms["generate_job"]
    person_found = not posed.pose.is_empty
    return ProcessedFrame(out, posed.pts, posed.time_base, posed.arrival_s, timings_ms, person_found)


class RetargetedTrack(MediaStreamTrack):
    """The outgoing video track: ``recv()`` returns the newest processed frame as an ``av.VideoFrame``.

    The frame is ``side_by_side()`` of the result (stick figure | generated, ``(2W, H)`` of the target
    canvas, RGB24) with the ``pts`` and ``time_base`` of the camera frame it was made from, so output
    timestamps follow input timestamps. Each ``recv()`` records the server latency of that frame.
    """

    kind = "video"

    def __init__(self, stage: WorkerStage[PosedFrame, ProcessedFrame], stats: StreamStats) -> None:
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
        workers: the server's shared pose and generation threads.
        test_stamp: copy the camera frames' test stamp (:mod:`realtime.serving.stamp`) into the output frames.
        stats_window_s: the window of :meth:`StreamStats.snapshot` rates and latencies, in seconds.

    Call :meth:`start` on the event loop, add :attr:`output` to the peer connection, and :meth:`stop` at
    the end (idempotent; cancels and awaits every task and job, then closes the Retargeter).
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

        def generate(posed: PosedFrame) -> ProcessedFrame:
            return generate_job(retargeter, posed)

        def on_generated(processed: ProcessedFrame) -> None:
            stats.last_timings_ms = processed.timings_ms
            stats.frames_with_person += processed.person_found

        self.reader = LatestFrameReader(camera, stats)
        self.pose_stage: WorkerStage[CameraFrame, PosedFrame] = WorkerStage(
            "pose",
            self.reader.slot,
            estimate,
            workers.pose,
            stats,
            on_dropped=lambda n: setattr(stats, "dropped_between_stages", n),
        )
        self.generate_stage: WorkerStage[PosedFrame, ProcessedFrame] = WorkerStage(
            "generate",
            self.pose_stage.slot,
            generate,
            workers.generate,
            stats,
            on_result=on_generated,
            on_dropped=lambda n: setattr(stats, "dropped_before_sending", n),
        )
        self.output = RetargetedTrack(self.generate_stage, stats)
        self._stopping: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Start reading and processing (call on the event loop)."""
        self.reader.start()
        self.pose_stage.start()
        self.generate_stage.start()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The stream's tasks (reader, pose stage, generation stage) once started."""
        stages = (self.reader, self.pose_stage, self.generate_stage)
        return [s.task for s in stages if s.task is not None]

    async def stop(self) -> None:
        """Stop everything: cancel and await the tasks, wait for jobs still running, close the Retargeter
        (on a worker thread, after both stages' jobs), end :attr:`output`. Idempotent; concurrent calls wait
        for the same stop."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            await self.reader.stop()
            await self.pose_stage.stop()
            await self.generate_stage.stop()
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
