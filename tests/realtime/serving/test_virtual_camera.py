"""The virtual camera sink (realtime/serving/virtual_camera.py) with a fake camera injected in place of
``pyvirtualcam.Camera``: frames at the camera's size with the view letterboxed, one session at a time, the
clear errors, a failing camera detached while the stream goes on; and the real pyvirtualcam's error where no
v4l2loopback device exists."""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import platform
import sys
import threading
import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from realtime.serving.relay import ComposedFrame, SinkRelay
from realtime.serving.sink import GeneratedFrame, PushSink
from realtime.serving.virtual_camera import (
    VirtualCameraError,
    VirtualCameraOutput,
    VirtualCameraSink,
    letterbox,
    open_virtual_camera,
)
from realtime.serving.workers import LatestSlot

CAMERA_W, CAMERA_H = 64, 48
RED, GREEN, BLUE = (200, 30, 10), (20, 180, 40), (10, 40, 220)


def run(coro: Any, timeout_s: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class FakeCamera:
    """Stands in for ``pyvirtualcam.Camera``: records each frame sent (a copy) and the thread that sent it;
    ``send_s`` makes each send take that long, ``fail_at`` makes send number ``fail_at`` (0-based, counting
    the black frame sent at open) raise."""

    def __init__(
        self, width: int, height: int, fps: float, *, fmt: Any, device: str | None, backend: str | None
    ) -> None:
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.device = device or "/dev/video-fake"
        self.backend = backend
        self.frames: list[np.ndarray] = []
        self.threads: list[str] = []
        self.send_s = 0.0
        self.fail_at: int | None = None
        self.sends = 0
        self.closed = 0

    def send(self, frame: np.ndarray) -> None:
        index, self.sends = self.sends, self.sends + 1
        if index == self.fail_at:
            raise RuntimeError("the device went away")
        assert frame.dtype == np.uint8 and frame.shape == (self.height, self.width, 3)
        self.frames.append(frame.copy())
        self.threads.append(threading.current_thread().name)
        if self.send_s:
            time.sleep(self.send_s)

    def close(self) -> None:
        self.closed += 1


class Factory:
    """A ``camera_factory`` that keeps the cameras it made, or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.cameras: list[FakeCamera] = []

    def __call__(self, *args: Any, **kwargs: Any) -> FakeCamera:
        if self.error is not None:
            raise self.error
        camera = FakeCamera(*args, **kwargs)
        self.cameras.append(camera)
        return camera


class Ints(PushSink[int]):
    """Another sink of the stream: records each frame's pts."""

    name = "ints"

    def __init__(self) -> None:
        super().__init__()
        self.items: list[int] = []

    def compose(self, frame: GeneratedFrame) -> int:
        assert frame.pts is not None
        return frame.pts

    async def deliver(self, item: int) -> None:
        self.items.append(item)


def generated_frame(generated: np.ndarray, stick: np.ndarray | None = None, pts: int = 0) -> GeneratedFrame:
    stick = np.zeros_like(generated) if stick is None else stick
    return GeneratedFrame(generated, stick, pts, Fraction(1, 30), time.perf_counter())


def solid(width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def open_output(view: str = "target") -> tuple[VirtualCameraOutput, FakeCamera]:
    factory = Factory()
    output = VirtualCameraOutput.open(
        CAMERA_W, CAMERA_H, 30, device="/dev/video10", view=view, camera_factory=factory
    )
    (camera,) = factory.cameras
    return output, camera


async def stream(sinks: list[Any], frames: list[GeneratedFrame], wait: Any, gap_s: float = 0.0) -> SinkRelay:
    """Attach ``sinks`` to a relay, offer ``frames`` as the generation worker does (waiting on ``wait(i)``
    after frame i, if given), then stop the relay (which stops the sinks)."""
    source: LatestSlot[ComposedFrame] = LatestSlot()
    relay = SinkRelay(source)
    for sink in sinks:
        relay.attach(sink)
    relay.start()
    for index, frame in enumerate(frames):
        source.put(relay.compose(frame))
        for _ in range(400):
            if wait is None or wait(index):
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(gap_s)
    await relay.stop()
    return relay


def test_open_announces_the_size_in_rgb_and_shows_black() -> None:
    output, camera = open_output()
    assert (camera.width, camera.height, camera.fps) == (CAMERA_W, CAMERA_H, 30)
    assert camera.device == "/dev/video10" and camera.backend is None
    # pyvirtualcam is installed here or not: the factory gets its RGB format or the string "RGB"
    assert str(camera.fmt) == "RGB"
    (black,) = camera.frames
    assert black.shape == (CAMERA_H, CAMERA_W, 3) and not black.any()
    assert output.holder is None


def test_a_tall_target_is_letterboxed_with_bars_left_and_right() -> None:
    # 20x40 (W x H) into 64x48: scale min(3.2, 1.2) = 1.2 -> 24x48, bars of 20 columns each side
    target = np.concatenate((solid(20, 20, RED), solid(20, 20, GREEN)), axis=0)  # red above green
    output, camera = open_output()
    sink = output.sink_for(1)
    assert isinstance(sink, VirtualCameraSink)
    frames = [generated_frame(target, solid(20, 40, BLUE), pts=i) for i in range(3)]
    run(stream([sink], frames, lambda i: sink.frames_sent > i))
    assert sink.frames_sent == 3 and sink.dropped == 0
    black_open, *sent, black_after = camera.frames
    assert len(sent) == 3 and not black_open.any() and not black_after.any()
    for image in sent:
        assert image.shape == (CAMERA_H, CAMERA_W, 3)
        assert not image[:, :20].any() and not image[:, 44:].any()  # the bars are black
        assert (image[:23, 20:44] == RED).all()  # the top half of the target, scaled, no stick figure
        assert (image[25:, 20:44] == GREEN).all()
        seam = image[23:25, 20:44].astype(int)  # the two rows where bilinear scaling blends the halves
        assert (seam >= np.minimum(RED, GREEN)).all() and (seam <= np.maximum(RED, GREEN)).all()
    # the frames went to the camera on the sink's own thread, not on the event loop's
    assert all(name.startswith("virtual-camera") for name in camera.threads[1:-1]), camera.threads


def test_letterbox_puts_a_wide_image_between_bars_above_and_below() -> None:
    # 40x10 into 64x48: scale min(1.6, 4.8) = 1.6 -> 64x16, bars of 16 rows above and below
    image = letterbox(solid(40, 10, RED), CAMERA_W, CAMERA_H)
    assert image.shape == (CAMERA_H, CAMERA_W, 3) and image.dtype == np.uint8
    assert not image[:16].any() and not image[32:].any()
    assert (image[16:32] == RED).all()
    # a gradient keeps its order and range when scaled up by 2 (content, not only its colour, survives)
    ramp = np.repeat(np.repeat(np.arange(0, 256, 8, dtype=np.uint8)[None, :, None], 3, 2), 24, 0)  # 32x24
    scaled = letterbox(ramp, CAMERA_W, CAMERA_H)[:, :, 0].astype(int)
    assert scaled.shape == (48, 64) and (np.diff(scaled, axis=1) >= 0).all()
    assert abs(scaled[:, 0].mean() - 0) <= 4 and abs(scaled[:, -1].mean() - 248) <= 4
    assert np.array_equal(letterbox(solid(64, 48, GREEN), 64, 48), solid(64, 48, GREEN))  # same size: as is
    with pytest.raises(ValueError, match="uint8"):
        letterbox(np.zeros((4, 4, 3), np.float32), 8, 8)


def test_side_by_side_shows_the_stick_figure_left_of_the_target() -> None:
    # stick 20x20 | target 20x20 = 40x20 into 64x48: scale min(1.6, 2.4) = 1.6 -> 64x32, bars of 8 rows
    output, camera = open_output(view="side_by_side")
    sink = output.sink_for(7)
    assert sink is not None and sink.view == "side_by_side"
    run(
        stream(
            [sink], [generated_frame(solid(20, 20, GREEN), solid(20, 20, BLUE))], lambda i: sink.frames_sent
        )
    )
    _, image, _ = camera.frames
    assert not image[:8].any() and not image[40:].any()
    assert (image[8:40, :31] == BLUE).all() and (image[8:40, 33:] == GREEN).all()


def test_one_session_at_a_time_and_the_next_one_gets_the_camera_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    output, camera = open_output()
    with caplog.at_level("INFO", logger="realtime.serving.virtual_camera"):
        first = output.sink_for(1)
        assert first is not None and output.holder == 1
        assert output.sink_for(2) is None  # session 2 runs without the camera
        assert output.holder == 1

        async def first_session() -> None:
            await stream([first], [generated_frame(solid(48, 48, RED), pts=0)], lambda i: first.frames_sent)
            assert output.holder is None  # session 1's sink stopped: the camera is free, showing black
            await first.stop()  # idempotent: nothing more is sent, the camera is not taken from anyone

        run(first_session())
        third = output.sink_for(3)
        assert third is not None and output.holder == 3
        assert output.sink_for(2) is None
        run(stream([third], [generated_frame(solid(48, 48, GREEN), pts=0)], lambda i: third.frames_sent))
    colours = [tuple(int(v) for v in f[24, 32]) for f in camera.frames]
    assert colours == [(0, 0, 0), RED, (0, 0, 0), GREEN, (0, 0, 0)]
    assert camera.closed == 0  # stopping a session's sink never closes the shared camera
    messages = [r.getMessage() for r in caplog.records]
    assert any("session 1 now holds the virtual camera /dev/video10" in m for m in messages), messages
    assert any("held by session 1" in m and "session 2" in m for m in messages), messages
    assert any("session 1 gave back" in m for m in messages), messages
    output.close()
    output.close()  # idempotent
    assert camera.closed == 1 and output.sink_for(4) is None


def test_a_session_holding_the_camera_at_close_fails_and_sends_nothing_more() -> None:
    output, camera = open_output()
    sink = output.sink_for(1)
    assert sink is not None
    output.close()
    with pytest.raises(VirtualCameraError, match="closed"):
        sink.camera.send(np.zeros((CAMERA_H, CAMERA_W, 3), np.uint8))
    run(sink.stop())  # no black frame into a closed camera
    assert len(camera.frames) == 1 and camera.closed == 1 and output.holder is None


def test_a_slow_camera_drops_stale_frames_and_counts_them() -> None:
    output, camera = open_output()
    camera.send_s = 0.03
    sink = output.sink_for(1)
    assert sink is not None
    frames = [generated_frame(solid(48, 48, (i, i, i)), pts=i) for i in range(30)]

    def all_taken_after_the_last(index: int) -> bool:  # else the frame left in the feed at stop is discarded
        return index < 29 or sink.frames_sent + sink.dropped == 30

    run(stream([sink], frames, all_taken_after_the_last, gap_s=0.002))
    assert sink.dropped > 0, "the camera kept up; the test did not make it fall behind"
    assert sink.frames_sent + sink.dropped == 30
    levels = [int(f[24, 32, 0]) for f in camera.frames[1:-1]]
    assert len(levels) == sink.frames_sent and levels == sorted(levels) and levels[-1] == 29  # newest last


def test_a_camera_that_fails_is_detached_while_the_other_sinks_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    output, camera = open_output()
    camera.fail_at = 3  # the black frame at open, two frames, then the device goes away
    sink = output.sink_for(1)
    other = Ints()
    assert sink is not None

    async def main() -> tuple[Any, ...]:
        relay = await stream(
            [sink, other], [generated_frame(solid(48, 48, RED), pts=i) for i in range(10)], None, 0.01
        )
        return relay.sinks

    with caplog.at_level("ERROR", logger="realtime.serving.relay"):
        remaining = run(main())
    assert remaining == ()
    assert other.items == list(range(10))  # the stream went on for the other sink
    assert sink.frames_sent == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("'virtual-camera-1' failed; detaching it" in m for m in messages), messages
    assert output.holder is None and output.sink_for(2) is not None  # the camera is free for the next session


def test_a_factory_that_cannot_open_a_device_gives_the_clear_error() -> None:
    cause = RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].")
    with pytest.raises(VirtualCameraError) as caught:
        VirtualCameraOutput.open(1280, 720, 30, device="/dev/video9", camera_factory=Factory(cause))
    message = str(caught.value)
    assert caught.value.__cause__ is cause
    assert "1280x720" in message and "/dev/video9" in message and "No v4l2 loopback device" in message
    assert "sudo apt install v4l2loopback-dkms" in message and "sudo modprobe v4l2loopback" in message
    assert "exclusive_caps=1" in message and "OBS" in message and "virtual camera" in message


def test_without_pyvirtualcam_the_error_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import pyvirtualcam -> ImportError
    with pytest.raises(
        VirtualCameraError, match=r"pyvirtualcam package is not installed.*pip install pyvirtualcam"
    ):
        open_virtual_camera(640, 480, 30)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1x1"):
        open_virtual_camera(0, 480, 30, camera_factory=Factory())
    with pytest.raises(ValueError, match="positive"):
        open_virtual_camera(640, 480, 0, camera_factory=Factory())
    with pytest.raises(ValueError, match="side_by_side"):
        VirtualCameraOutput.open(64, 48, 30, view="camera", camera_factory=Factory())


@pytest.mark.skipif(importlib.util.find_spec("pyvirtualcam") is None, reason="pyvirtualcam is not installed")
@pytest.mark.skipif(platform.system() != "Linux", reason="the v4l2loopback backend is Linux's")
@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a /dev/video* device exists here")
def test_the_real_pyvirtualcam_without_a_loopback_device_gives_the_clear_error() -> None:
    with pytest.raises(VirtualCameraError) as caught:
        open_virtual_camera(640, 480, 30)
    message = str(caught.value)
    assert "No v4l2 loopback device found" in message  # pyvirtualcam's own words, kept
    assert "sudo modprobe v4l2loopback" in message and "v4l2loopback-dkms" in message
    assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(VirtualCameraError, match="Device /dev/video7 does not exist"):
        open_virtual_camera(640, 480, 30, device="/dev/video7")
    with pytest.raises(
        VirtualCameraError, match=r"no 'obs' backend on this system \(available: v4l2loopback\)"
    ):
        open_virtual_camera(640, 480, 30, backend="obs")
