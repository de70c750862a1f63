"""Streaming stages with a fake camera and a fake Retargeter (sleeps; its output names its input)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from fake_pipeline import FakeRetargeter, FakeTarget
from realtime.serving.sink import GeneratedFrame, PushSink
from realtime.serving.stages import RetargetStream
from realtime.serving.stamp import draw_stamp, read_stamp
from realtime.serving.workers import SlotClosed, StreamWorkers

TIME_BASE = Fraction(1, 90000)
PTS_START = 1000
PTS_STEP = 3000
CANVAS = (40, 30)


def run(coro: Any, timeout_s: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class FakeCamera(MediaStreamTrack):
    """Frames at ``fps``; frame ``i`` is filled with ``i % 256`` and has pts ``PTS_START + i * PTS_STEP``."""

    kind = "video"

    def __init__(
        self, fps: float, count: int | None = None, size: tuple[int, int] = (32, 24), stamp: bool = False
    ) -> None:
        super().__init__()
        self.fps = fps
        self.count = count
        self.size = size
        self.stamp = stamp
        self.sent = 0
        self._start_s: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.count is not None and self.sent >= self.count:
            self.stop()
            raise MediaStreamError
        now_s = time.perf_counter()
        self._start_s = now_s if self._start_s is None else self._start_s
        wait_s = self._start_s + self.sent / self.fps - now_s
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        width, height = self.size
        image = np.full((height, width, 3), self.sent % 256, np.uint8)
        if self.stamp:
            draw_stamp(image, self.sent)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = PTS_START + self.sent * PTS_STEP
        frame.time_base = TIME_BASE
        self.sent += 1
        return frame


def index_of(pts: int | None) -> int:
    assert pts is not None and (pts - PTS_START) % PTS_STEP == 0, pts
    return (pts - PTS_START) // PTS_STEP


def make_stream(
    camera: MediaStreamTrack,
    process_ms: float,
    fail_when: Callable[[int], bool] | None = None,
    workers: StreamWorkers | None = None,
    **kwargs: Any,
) -> tuple[RetargetStream, FakeRetargeter, StreamWorkers]:
    """A stream with a fake retargeter (``process_ms`` split evenly over its two stages); call on the loop."""
    workers = workers or StreamWorkers.create()
    retargeter = FakeRetargeter(FakeTarget(canvas_size=CANVAS), process_ms=process_ms, fail_when=fail_when)
    return RetargetStream(camera, retargeter, workers, **kwargs), retargeter, workers


async def collect(stream: RetargetStream, count: int) -> list[av.VideoFrame]:
    return [await stream.output.recv() for _ in range(count)]


# -- stream --------------------------------------------------------------------------------------------------


def test_reader_drops_stale_frames_and_never_queues() -> None:
    async def main() -> None:
        camera = FakeCamera(fps=500, count=40)
        stream, retargeter, workers = make_stream(camera, process_ms=1)
        stream.reader.start()  # reader only: nobody takes frames while they arrive
        assert stream.reader.task is not None
        await asyncio.wait_for(stream.reader.task, 5)
        assert camera.sent == 40 and stream.stats.frames_in == 40
        with pytest.raises(SlotClosed):  # the camera ended: the one frame left is not served stale
            await stream.reader.recv()
        assert stream.stats.dropped_before_processing == 39
        await stream.stop()
        workers.shutdown()

        camera = FakeCamera(fps=500)
        stream, retargeter, workers = make_stream(camera, process_ms=1)
        stream.reader.start()
        await asyncio.sleep(0.1)
        first = await stream.reader.recv()
        sent_then = camera.sent
        assert index_of(first.frame.pts) >= sent_then - 2  # the newest frame, not the oldest
        second = await stream.reader.recv()  # waits for the next fresh frame
        assert index_of(second.frame.pts) > index_of(first.frame.pts)
        await stream.stop()
        workers.shutdown()

    run(main())


def test_output_pts_and_content_follow_the_input_frame() -> None:
    async def main() -> None:
        stream, retargeter, workers = make_stream(FakeCamera(fps=60), process_ms=5)
        stream.start()
        frames = await collect(stream, 20)
        await stream.stop()
        workers.shutdown()
        indices = [index_of(f.pts) for f in frames]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)  # strictly increasing
        for frame, index in zip(frames, indices, strict=True):
            assert frame.time_base == TIME_BASE
            assert (frame.width, frame.height) == (2 * CANVAS[0], CANVAS[1])
            image = frame.to_ndarray(format="rgb24")
            assert np.all(image == index % 256), (index, image[0, 0])
        timestamps_ms = [t for t, _ in retargeter.calls]
        assert timestamps_ms[0] == pytest.approx(
            1000.0 * float((PTS_START + indices[0] * PTS_STEP) * TIME_BASE)
        )
        assert threading.get_ident() not in retargeter.thread_ids  # the event loop never ran process()

    run(main())


def test_stop_is_idempotent_cancels_tasks_and_closes_after_the_running_job() -> None:
    async def main() -> None:
        stream, retargeter, workers = make_stream(FakeCamera(fps=100), process_ms=150)
        stream.start()
        while not retargeter.calls:  # a job is running in the executor now
            await asyncio.sleep(0.005)
        tasks = stream.tasks
        assert len(tasks) == 4  # reader, pose stage, generation stage, relay
        # concurrent and repeated stops; the fake raises if close() overlaps process()
        await asyncio.gather(stream.stop(), stream.stop())
        await stream.stop()
        assert all(t.done() for t in tasks)
        assert retargeter.close_count == 1 and retargeter.closed
        assert stream.output.readyState == "ended"
        with pytest.raises(MediaStreamError):
            await stream.output.recv()
        calls = len(retargeter.calls)
        await asyncio.sleep(0.2)
        assert len(retargeter.calls) == calls  # nothing runs after stop
        workers.shutdown()

    run(main())


def test_stop_before_start_and_stop_after_camera_ended() -> None:
    async def main() -> None:
        stream, retargeter, workers = make_stream(FakeCamera(fps=100), process_ms=1)
        await stream.stop()
        assert retargeter.close_count == 1

        stream, retargeter, workers = make_stream(FakeCamera(fps=50, count=10), process_ms=1)
        stream.start()
        frames = []
        with pytest.raises(MediaStreamError):  # the camera ended, so does the output
            while True:
                frames.append(await stream.output.recv())
        assert frames
        await stream.stop()
        assert retargeter.close_count == 1
        workers.shutdown()

    run(main())


def test_process_exception_skips_the_frame_and_the_session_goes_on() -> None:
    async def main() -> None:
        stream, retargeter, workers = make_stream(
            FakeCamera(fps=60), process_ms=3, fail_when=lambda v: v % 3 == 1
        )
        stream.start()
        frames = await collect(stream, 15)
        failed = stream.stats.frames_failed
        await stream.stop()
        workers.shutdown()
        indices = [index_of(f.pts) for f in frames]
        assert failed > 0
        assert not [i for i in indices if i % 3 == 1]  # failed frames are skipped, not sent
        first_failure = min(v for _, v in retargeter.calls if v % 3 == 1)
        assert max(indices) > first_failure  # frames kept coming after a failure

    run(main())


def test_latency_does_not_grow_when_input_outpaces_processing() -> None:
    process_ms = 40.0

    async def main() -> tuple[list[float], RetargetStream]:
        stream, retargeter, workers = make_stream(FakeCamera(fps=200), process_ms=process_ms)
        latencies_ms: list[float] = []
        stream.output.on_latency = latencies_ms.append
        stream.start()
        await collect(stream, 30)  # 30 * 40 ms of processing while ~240 frames arrive
        await stream.stop()
        workers.shutdown()
        return latencies_ms, stream

    latencies_ms, stream = run(main())
    snapshot = stream.stats.snapshot()
    assert snapshot.frames_in > 3 * snapshot.frames_out  # input really outpaced processing
    # Every frame that came in was sent, dropped, or still in one of the six places a frame can be when
    # the stream stops: the camera slot, the pose job, the slot between the stages, the generation job, the
    # relay's input slot and the browser track's feed (one each: latest frame wins). A queue would leave ~100
    # frames unaccounted.
    in_flight_max = 6
    assert snapshot.frames_dropped >= snapshot.frames_in - snapshot.frames_out - in_flight_max
    # A queue would make latency grow by ~35 ms per output frame (to ~1 s by the end); latest-frame-wins
    # keeps every frame at about one processing time plus one camera interval.
    assert max(latencies_ms) < 5 * process_ms, latencies_ms
    assert np.mean(latencies_ms[-10:]) < np.mean(latencies_ms[:10]) + process_ms, latencies_ms
    assert all(latency >= process_ms * 0.9 for latency in latencies_ms)


def test_bad_result_images_are_a_failed_frame_and_stop_survives_shut_down_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class WrongShape(FakeRetargeter):
        def generate(self, pose: Any, timings_ms: Any = None) -> Any:
            result = super().generate(pose, timings_ms)
            return type(result)(result.generated[..., 0], result.stick_figure[..., 0], result.pose)

    async def main() -> RetargetStream:
        workers = StreamWorkers.create()
        retargeter = WrongShape(FakeTarget(canvas_size=CANVAS), process_ms=1)
        stream = RetargetStream(FakeCamera(fps=100), retargeter, workers)
        stream.start()
        while stream.stats.frames_failed < 3:
            await asyncio.sleep(0.01)
        workers.shutdown(wait=True)  # out of order on purpose: stop() must still close the retargeter
        await stream.stop()
        assert retargeter.close_count == 1
        return stream

    with caplog.at_level("ERROR", logger="realtime.serving.stages"):
        stream = run(main())
    assert stream.stats.frames_out == 0
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, ValueError) and "uint8 (H, W, 3)" in str(e) for e in failures), failures


def test_pose_of_the_next_frame_overlaps_generation_of_this_one() -> None:
    async def main() -> FakeRetargeter:
        # One pose thread: with the default pool of several, a stream's estimates may run on any of them.
        workers = StreamWorkers.create(pose_threads=1)
        stream, retargeter, _ = make_stream(FakeCamera(fps=100), process_ms=40, workers=workers)
        stream.start()
        await collect(stream, 15)
        await stream.stop()
        workers.shutdown()
        return retargeter

    retargeter = run(main())
    assert retargeter.overlapped  # estimate(t+1) ran while generate(t) ran
    assert retargeter.thread_ids.isdisjoint(retargeter.generate_thread_ids)  # two threads, one per stage
    assert len(retargeter.thread_ids) == 1 and len(retargeter.generate_thread_ids) == 1


def test_streams_sharing_the_workers_get_fair_shares() -> None:
    """Three streams with fast cameras share one pose and one generation thread that cannot keep up with
    all of them: each gets about a third of the frames, and the latest frames win."""

    async def main() -> list[RetargetStream]:
        workers = StreamWorkers.create()
        streams = []
        for _ in range(3):
            stream, _, _ = make_stream(FakeCamera(fps=100), process_ms=20, workers=workers)
            streams.append(stream)
        for stream in streams:
            stream.start()
        outputs = [asyncio.create_task(collect(stream, 1000)) for stream in streams]
        await asyncio.sleep(1.5)
        for task in outputs:
            task.cancel()
        await asyncio.gather(*outputs, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in streams))
        workers.shutdown()
        return streams

    streams = run(main())
    counts = [s.stats.frames_out for s in streams]
    # 1.5 s of 10 ms jobs per stage: ~150 frames in all, each stream ~50
    assert sum(counts) > 60, counts
    assert min(counts) >= 0.7 * max(counts), counts
    for stream in streams:
        snapshot = stream.stats.snapshot()
        assert snapshot.frames_dropped > snapshot.frames_out  # 100 fps in, ~33 fps out


def test_test_stamp_is_copied_from_each_input_to_its_output() -> None:
    async def main() -> list[av.VideoFrame]:
        camera = FakeCamera(fps=60, size=(96, 48), stamp=True)
        stream, _, workers = make_stream(camera, process_ms=4, test_stamp=True)
        stream.start()
        frames = await collect(stream, 12)
        await stream.stop()
        workers.shutdown()
        return frames

    for frame in run(main()):
        assert (frame.width, frame.height) == (2 * CANVAS[0], CANVAS[1])
        assert read_stamp(frame.to_ndarray(format="rgb24")) == index_of(frame.pts)


def test_without_test_stamp_the_output_is_the_retargeters_own() -> None:
    async def main() -> list[av.VideoFrame]:
        stream, _, workers = make_stream(FakeCamera(fps=60, size=(96, 48), stamp=True), process_ms=4)
        stream.start()
        frames = await collect(stream, 5)
        await stream.stop()
        workers.shutdown()
        return frames

    for frame in run(main()):
        assert read_stamp(frame.to_ndarray(format="rgb24")) is None


# -- sinks beside the browser's track ---------------------------------------------------------------------


class FrameCounter(PushSink[int | None]):
    """A dummy output: counts the frames it is given, by their camera pts (composes nothing else)."""

    name = "counter"

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.pts: list[int | None] = []
        self.fail_at = fail_at
        self.composed = 0
        self.compose_threads: set[int] = set()
        self.stopped = False

    def compose(self, frame: GeneratedFrame) -> int | None:
        self.compose_threads.add(threading.get_ident())
        if self.fail_at is not None and self.composed >= self.fail_at:
            raise RuntimeError("the counter is full")
        self.composed += 1
        return frame.pts

    async def deliver(self, item: int | None) -> None:
        self.pts.append(item)

    async def stop(self) -> None:
        await super().stop()
        self.stopped = True


def test_a_frame_counter_beside_the_browser_track_counts_the_frames_the_track_sent() -> None:
    async def main() -> tuple[list[av.VideoFrame], FrameCounter, RetargetStream]:
        stream, _, workers = make_stream(FakeCamera(fps=60), process_ms=5)
        counter = FrameCounter()
        stream.add_sink(counter)
        assert stream.relay.sinks == (stream.browser, counter)
        stream.start()
        frames = await collect(stream, 20)  # the track is pulled all along, as aiortc does
        await stream.stop()
        await stream.stop()
        workers.shutdown()
        return frames, counter, stream

    frames, counter, stream = run(main())
    sent = [f.pts for f in frames]
    assert stream.stats.frames_out == len(sent) == 20
    # every frame the track sent was counted, in the same order; at most the one generated after the last
    # recv() went to the counter alone
    assert counter.pts[: len(sent)] == sent and len(counter.pts) - len(sent) <= 1, (counter.pts, sent)
    assert counter.dropped == 0 and counter.stopped
    assert threading.get_ident() not in counter.compose_threads  # composed on the generation worker


def test_a_failing_sink_is_detached_and_the_stream_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[list[av.VideoFrame], FrameCounter, RetargetStream]:
        stream, _, workers = make_stream(FakeCamera(fps=60), process_ms=4)
        counter = FrameCounter(fail_at=3)
        stream.add_sink(counter)
        stream.start()
        frames = await collect(stream, 15)
        remaining = stream.relay.sinks
        await stream.stop()
        workers.shutdown()
        assert remaining == (stream.browser,)
        return frames, counter, stream

    with caplog.at_level("ERROR", logger="realtime.serving.relay"):
        frames, counter, stream = run(main())
    assert len(counter.pts) == 3 and counter.stopped  # detached (and stopped) at its first failure
    indices = [index_of(f.pts) for f in frames]
    assert indices == sorted(indices) and len(set(indices)) == 15  # the browser's frames kept coming
    assert stream.stats.frames_failed == 0  # a sink's failure is not the frame's
    assert any("counter" in r.getMessage() and "detaching" in r.getMessage() for r in caplog.records)


def test_sinks_added_and_removed_while_the_stream_runs() -> None:
    async def main() -> None:
        stream, _, workers = make_stream(FakeCamera(fps=60), process_ms=4)
        stream.start()
        await collect(stream, 3)
        counter = FrameCounter()
        stream.add_sink(counter)
        await collect(stream, 5)
        await stream.remove_sink(counter)
        assert counter.stopped and stream.relay.sinks == (stream.browser,)
        counted = len(counter.pts)
        await collect(stream, 3)
        assert len(counter.pts) == counted
        assert 4 <= counted <= 6, counter.pts
        await stream.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            stream.add_sink(FrameCounter())
        workers.shutdown()

    run(main())
