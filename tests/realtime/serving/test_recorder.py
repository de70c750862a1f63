"""The file recorder sink (realtime/serving/recorder.py): a decodable file with the frames, size and timing
given; stale frames dropped and counted when the encoder falls behind; the file closed on stop."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from realtime.serving.recorder import VideoRecorder
from realtime.serving.relay import ComposedFrame, SinkRelay
from realtime.serving.sink import GeneratedFrame
from realtime.serving.workers import LatestSlot

TIME_BASE = Fraction(1, 90000)


def run(coro: Any, timeout_s: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def generated(index: int, width: int, height: int) -> GeneratedFrame:
    """Frame ``index``: the generated image is grey level ``20 * index``, the stick figure black; pts 40 ms
    apart (25 fps)."""
    image = np.full((height, width, 3), (20 * index) % 256, np.uint8)
    return GeneratedFrame(image, np.zeros_like(image), index * 3600, TIME_BASE, time.perf_counter())


def decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def test_the_recorder_writes_every_frame_it_is_given_timed_by_the_camera(tmp_path: Path) -> None:
    path = tmp_path / "session-1.mp4"

    async def main() -> VideoRecorder:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        recorder = VideoRecorder(path)
        relay.attach(recorder)
        relay.start()
        for index in range(10):
            source.put(relay.compose(generated(index, 64, 48)))
            while recorder.frames_written + recorder.dropped <= index:  # the encoder keeps up here
                await asyncio.sleep(0.005)
        await relay.stop()
        await recorder.stop()  # idempotent
        return recorder

    recorder = run(main())
    assert recorder.frames_written == 10 and recorder.dropped == 0
    frames = decode(path)
    assert len(frames) == 10
    assert {(f.width, f.height) for f in frames} == {(64, 48)}
    times_s = [float(f.time) for f in frames]
    assert times_s == pytest.approx([0.04 * i for i in range(10)], abs=2e-3)
    levels = [float(f.to_ndarray(format="rgb24").mean()) for f in frames]
    assert levels == pytest.approx([20.0 * i for i in range(10)], abs=4.0)  # generated, not stick


def test_a_recorder_behind_drops_stale_frames_and_an_odd_canvas_is_padded(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"

    async def main() -> VideoRecorder:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        recorder = VideoRecorder(path)
        relay.attach(recorder)
        relay.start()
        for index in range(40):  # far faster than the encoder: it falls behind
            source.put(relay.compose(generated(index, 63, 47)))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        await relay.stop()
        return recorder

    recorder = run(main())
    frames = decode(path)
    assert recorder.dropped > 0, "the encoder kept up; the test did not make it fall behind"
    assert len(frames) == recorder.frames_written and recorder.frames_written + recorder.dropped <= 40
    assert {(f.width, f.height) for f in frames} == {(64, 48)}  # padded by one column and one row
    last = frames[-1].to_ndarray(format="rgb24").astype(int)
    assert abs(last[:47, :63].mean() - (20 * 39) % 256) < 4  # the newest frame was written last
    times = [float(f.time) for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_a_recorder_that_cannot_write_is_detached_at_its_first_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> tuple[VideoRecorder, SinkRelay]:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        recorder = VideoRecorder(tmp_path / "missing" / "session-1.mp4")  # its folder does not exist
        relay.attach(recorder)
        relay.start()
        source.put(relay.compose(generated(0, 16, 16)))
        for _ in range(200):
            if not relay.sinks:
                break
            await asyncio.sleep(0.01)
        sinks = relay.sinks
        await relay.stop()
        assert sinks == ()
        return recorder, relay

    with caplog.at_level("ERROR", logger="realtime.serving.relay"):
        recorder, _ = run(main())
    assert recorder.frames_written == 0 and not (tmp_path / "missing").exists()
    (record,) = caplog.records  # one error: the failure, not another one at stop
    assert "'recorder' failed; detaching it" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], FileNotFoundError)
