"""The relay (realtime/serving/relay.py) and the sink shape (realtime/serving/sink.py), driven by hand: each
generated frame reaches every attached sink once, a slow sink drops only its own stale items, a failing sink
is detached while the others go on."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest

from realtime.serving.relay import ComposedFrame, SinkRelay
from realtime.serving.sink import GeneratedFrame, PushSink, rgb_view
from realtime.serving.workers import LatestSlot

SIZE = (8, 6)  # (W, H)


def run(coro: Any, timeout_s: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def frame(index: int) -> GeneratedFrame:
    """A generated frame whose pixels and pts are ``index``."""
    width, height = SIZE
    image = np.full((height, width, 3), index % 256, np.uint8)
    return GeneratedFrame(image, image.copy(), index, Fraction(1, 30), time.perf_counter())


class Recorder(PushSink[int]):
    """Composes a frame to its pts; records what it is given, and when (``time.perf_counter()``)."""

    def __init__(self, name: str, deliver_s: float = 0.0, fail_compose_at: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.deliver_s = deliver_s
        self.fail_compose_at = fail_compose_at
        self.fail_deliver_at: int | None = None
        self.items: list[int] = []
        self.times_s: list[float] = []
        self.stopped = 0

    def compose(self, frame: GeneratedFrame) -> int:
        assert frame.pts is not None
        if frame.pts == self.fail_compose_at:
            raise RuntimeError(f"{self.name} cannot compose frame {frame.pts}")
        return frame.pts

    async def deliver(self, item: int) -> None:
        if item == self.fail_deliver_at:
            raise RuntimeError(f"{self.name} cannot deliver frame {item}")
        self.items.append(item)
        self.times_s.append(time.perf_counter())
        if self.deliver_s:
            await asyncio.sleep(self.deliver_s)

    async def stop(self) -> None:
        await super().stop()
        self.stopped += 1


async def publish(relay: SinkRelay, source: LatestSlot[ComposedFrame], index: int) -> float:
    """Compose frame ``index`` as the generation worker does and offer it; returns when it was offered."""
    source.put(relay.compose(frame(index)))
    return time.perf_counter()


def test_each_frame_reaches_every_sink_once_in_order() -> None:
    async def main() -> None:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        sinks = [Recorder(name) for name in "abc"]
        for sink in sinks:
            relay.attach(sink)
        assert relay.sinks == tuple(sinks)
        relay.start()
        for index in range(20):
            await publish(relay, source, index)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.02)
        for sink in sinks:
            assert sink.items == list(range(20)) and sink.dropped == 0, (sink.name, sink.items)
        await relay.stop()
        await relay.stop()  # idempotent
        assert [s.stopped for s in sinks] == [1, 1, 1] and relay.sinks == ()
        with pytest.raises(RuntimeError, match="stopped"):
            relay.attach(Recorder("late"))

    run(main())


def test_a_slow_sink_drops_its_own_stale_items_and_delays_no_other() -> None:
    async def main() -> tuple[Recorder, Recorder, list[float]]:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        slow, fast = Recorder("slow", deliver_s=0.05), Recorder("fast")
        relay.attach(slow)
        relay.attach(fast)
        relay.start()
        offered_s = []
        for index in range(40):
            offered_s.append(await publish(relay, source, index))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.12)  # the slow sink finishes its last item
        await relay.stop()
        return slow, fast, offered_s

    slow, fast, offered_s = run(main())
    assert fast.items == list(range(40)) and fast.dropped == 0
    # each frame reached the fast sink before the next one was offered, whatever the slow one was doing (a
    # sink held up by the slow one would get its frames in bursts, 50 ms late)
    late = [i for i in range(39) if not fast.times_s[i] < offered_s[i + 1]]
    assert not late, late
    # the slow sink took about one frame per 50 ms, always the newest, and counted the rest as dropped
    assert 2 <= len(slow.items) <= 20, slow.items
    assert slow.items == sorted(slow.items) and slow.items[-1] == 39
    assert len(slow.items) + slow.dropped == 40


def test_a_failing_sink_is_detached_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[Recorder, Recorder, Recorder, SinkRelay]:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        bad_compose = Recorder("bad-compose", fail_compose_at=5)
        bad_deliver = Recorder("bad-deliver")
        bad_deliver.fail_deliver_at = 8
        good = Recorder("good")
        for sink in (bad_compose, bad_deliver, good):
            relay.attach(sink)
        relay.start()
        for index in range(15):
            await publish(relay, source, index)
            await asyncio.sleep(0.003)
        await asyncio.sleep(0.02)
        remaining = relay.sinks
        await relay.stop()
        assert remaining == (good,)
        return bad_compose, bad_deliver, good, relay

    with caplog.at_level("ERROR", logger="realtime.serving.relay"):
        bad_compose, bad_deliver, good, relay = run(main())
    assert good.items == list(range(15))
    assert bad_compose.items == list(range(5)) and bad_compose.stopped == 1
    assert bad_deliver.items == list(range(8)) and bad_deliver.stopped == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("bad-compose" in m and "detaching" in m for m in messages), messages
    assert any("bad-deliver" in m and "detaching" in m for m in messages), messages


def test_sinks_attach_and_detach_while_frames_flow_and_the_end_of_the_source_reaches_them() -> None:
    async def main() -> None:
        source: LatestSlot[ComposedFrame] = LatestSlot()
        relay = SinkRelay(source)
        first = Recorder("first")
        relay.attach(first)
        relay.start()
        for index in range(5):
            await publish(relay, source, index)
            await asyncio.sleep(0.002)
        late = Recorder("late")
        relay.attach(late)
        with pytest.raises(RuntimeError, match="already attached"):
            relay.attach(late)
        for index in range(5, 10):
            await publish(relay, source, index)
            await asyncio.sleep(0.002)
        await relay.detach(first)
        assert first.stopped == 1 and relay.sinks == (late,)
        for index in range(10, 12):
            await publish(relay, source, index)
            await asyncio.sleep(0.002)
        source.close()  # the camera ended: every feed closes, the push sink's task ends on its own
        await asyncio.sleep(0.01)
        assert late._task is not None and late._task.done()
        await relay.stop()
        assert first.items == list(range(10))
        assert late.items == list(range(5, 12)) and late.stopped == 1

    run(main())


def test_generated_frame_checks_its_images_and_rgb_view_writes_into_the_frame() -> None:
    good = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        GeneratedFrame(good[..., 0], good, None, None, 0.0)
    with pytest.raises(ValueError, match="same size"):
        GeneratedFrame(good, good[:, :4], None, None, 0.0)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        GeneratedFrame(good.astype(np.float32), good, None, None, 0.0)
    out = av.VideoFrame(81, 5, "rgb24")  # rows padded in PyAV's buffer
    pixels = rgb_view(out)
    assert pixels.shape == (5, 81, 3) and pixels.flags.writeable
    pixels[:] = 9
    pixels[4, 80] = (1, 2, 3)
    image = out.to_ndarray(format="rgb24")
    assert np.all(image[:4] == 9) and tuple(image[4, 80]) == (1, 2, 3)
    with pytest.raises(ValueError, match="rgb24"):
        rgb_view(av.VideoFrame(8, 6, "yuv420p"))
