"""Thread primitives of the live stream (realtime/serving/workers.py): latest-wins slots, FIFO turns, the
shared fair worker threads."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from realtime.serving.workers import FairWorker, FifoSlots, LatestSlot, SlotClosed


def run(coro: Any, timeout_s: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


# -- LatestSlot --------------------------------------------------------------------------------------------


def test_slot_latest_wins_and_counts_drops() -> None:
    async def main() -> None:
        slot: LatestSlot[int] = LatestSlot()
        for i in range(5):
            slot.put(i)
        assert await slot.get() == 4
        assert slot.dropped == 4
        with pytest.raises(asyncio.TimeoutError):  # nothing queued behind the latest item
            await asyncio.wait_for(slot.get(), 0.05)
        slot.put(5)
        assert await slot.get() == 5
        assert slot.dropped == 4

    run(main())


def test_slot_get_waits_for_a_fresh_item_and_close_wakes_it() -> None:
    async def main() -> None:
        slot: LatestSlot[str] = LatestSlot()
        waiter = asyncio.create_task(slot.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        slot.put("a")
        assert await waiter == "a"
        waiter = asyncio.create_task(slot.get())
        await asyncio.sleep(0.01)
        slot.close()
        with pytest.raises(SlotClosed):
            await waiter
        with pytest.raises(SlotClosed):
            slot.put("b")
        slot.close()  # idempotent
        assert slot.closed

    run(main())


def test_slot_wait_does_not_take_and_take_needs_an_item() -> None:
    async def main() -> None:
        slot: LatestSlot[int] = LatestSlot()
        with pytest.raises(LookupError):
            slot.take()
        slot.put(1)
        await slot.wait()
        await slot.wait()  # still there
        slot.put(2)
        assert slot.take() == 2 and slot.dropped == 1
        slot.close()
        with pytest.raises(SlotClosed):
            slot.take()

    run(main())


def test_fair_worker_takes_turns_round_robin_and_runs_one_job_at_a_time() -> None:
    order: list[str] = []
    running = threading.Lock()
    overlaps = []

    def job(name: str) -> str:
        if not running.acquire(blocking=False):
            overlaps.append(name)
            return name
        try:
            order.append(name)
            time.sleep(0.002)
        finally:
            running.release()
        return name

    async def lane(worker: FairWorker, name: str, count: int) -> None:
        for _ in range(count):
            async with worker.turn():
                assert await worker.run(job, name) == name

    async def main() -> FairWorker:
        worker = FairWorker("test")
        await asyncio.gather(lane(worker, "a", 12), lane(worker, "b", 12), lane(worker, "c", 12))
        worker.shutdown()
        return worker

    worker = run(main())
    assert not overlaps
    assert worker.jobs == 36 and worker.busy_s > 0
    # after the first round, every three consecutive jobs are one of each lane
    for i in range(0, 36, 3):
        assert sorted(order[i : i + 3]) == ["a", "b", "c"], order


def test_fifo_slots_serve_in_order_and_a_cancelled_waiter_passes_its_slot_on() -> None:
    async def main() -> None:
        slots = FifoSlots(2)
        await slots.acquire()
        await slots.acquire()
        order: list[str] = []

        async def wait(name: str) -> None:
            await slots.acquire()
            order.append(name)

        waiters = {name: asyncio.create_task(wait(name)) for name in "abc"}
        await asyncio.sleep(0.01)
        assert slots.waiting == 3 and not order
        slots.release()
        await asyncio.sleep(0.01)
        assert order == ["a"]
        waiters["b"].cancel()  # cancelled while waiting: leaves the queue
        slots.release()
        await asyncio.sleep(0.01)
        assert order == ["a", "c"] and slots.waiting == 0
        slots.release()
        slots.release()
        await asyncio.wait_for(slots.acquire(), 1)  # two free again
        await asyncio.wait_for(slots.acquire(), 1)
        late = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        slots.release()  # the slot is handed to `late`...
        late.cancel()  # ...which is cancelled before it runs: the slot must not be lost
        await asyncio.gather(late, return_exceptions=True)
        await asyncio.wait_for(slots.acquire(), 1)
        with pytest.raises(ValueError):
            FifoSlots(0)

    run(main())


def test_a_two_thread_worker_runs_two_stages_at_once() -> None:
    active = [0]
    peak = [0]
    lock = threading.Lock()

    def job() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1

    async def lane(worker: FairWorker) -> None:
        for _ in range(5):
            async with worker.turn():
                await worker.run(job)

    async def main() -> None:
        worker = FairWorker("two", threads=2)
        await asyncio.gather(*(lane(worker) for _ in range(4)))
        worker.shutdown()
        assert worker.jobs == 20

    run(main())
    assert peak[0] == 2
