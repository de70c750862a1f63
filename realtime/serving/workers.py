"""Thread primitives of the live stream: latest-wins slots and the inference threads every stream shares.

:class:`LatestSlot` is a one-item mailbox where the newest item wins (:class:`SlotClosed` once closed);
:class:`FifoSlots` hands out a fixed number of turns first come, first served; :class:`FairWorker` runs
blocking jobs on threads shared fairly by the stages of every stream; :class:`StreamWorkers` is the server's
pair of them (pose estimation, generation).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from realtime.catalog import DEFAULT_POSE_THREADS

log = logging.getLogger(__name__)

T = TypeVar("T")


def log_if_failed(task: asyncio.Task[Any]) -> None:
    """Done callback: a task that died of an exception says so at once (not only when it is awaited)."""
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
