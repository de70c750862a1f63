import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from bench.client import DecodedClip, VideoFileTrack


def clip(frames: int = 3, fps: float = 5.0) -> DecodedClip:
    width, height = 64, 48
    yuv = [np.full((height * 3 // 2, width), 16 * i, np.uint8) for i in range(frames)]
    return DecodedClip(frames=yuv, fps=fps, size=(width, height))


def test_file_track_paces_frames_and_stops_cleanly_while_waiting():
    async def main() -> None:
        track = VideoFileTrack(clip(fps=5.0))
        first = await track.recv()
        assert (first.width, first.height) == (64, 48) and first.pts == 0
        waiting = asyncio.ensure_future(track.recv())  # the next frame is due 200 ms later
        await asyncio.sleep(0.05)
        track.stop()  # shuts the decoder down while recv() sleeps
        with pytest.raises(MediaStreamError):
            await waiting
        with pytest.raises(MediaStreamError):
            await track.recv()

    asyncio.run(main())


def test_file_track_ends_without_loop():
    async def main() -> int:
        track = VideoFileTrack(clip(frames=2, fps=100.0), loop=False)
        frames = 0
        with pytest.raises(MediaStreamError):
            while True:
                await track.recv()
                frames += 1
        return frames

    assert asyncio.run(main()) == 2


def test_file_track_skips_frames_down_to_the_asked_rate():
    """``max_fps`` (the server's ``input_rate`` message): a 40 fps file asked for 20 sends every other
    frame, each with its own file position's timestamp and content, paced in real time."""

    async def main() -> tuple[list[int], list[int], int, int, float]:
        track = VideoFileTrack(clip(frames=8, fps=40.0))
        track.max_fps = 20.0
        start_s = asyncio.get_running_loop().time()
        frames = [await track.recv() for _ in range(4)]
        elapsed_s = asyncio.get_running_loop().time() - start_s
        track.stop()
        pts = [f.pts for f in frames]
        lumas = [int(f.to_ndarray()[0, 0]) for f in frames]
        return pts, lumas, track.frames_sent, track.frames_skipped, elapsed_s

    pts, lumas, sent, skipped, elapsed_s = asyncio.run(main())
    step = round(90_000 / 40.0)
    assert pts == [0, 2 * step, 4 * step, 6 * step]
    assert lumas == [0, 32, 64, 96]  # the file's frames 0, 2, 4, 6
    assert sent == 4 and skipped == 3
    assert elapsed_s >= 6 / 40.0 - 0.01  # frame 6 is due 150 ms after frame 0
