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
