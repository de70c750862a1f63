"""A file recorder sink: a session's generated frames to a video file (after aiortc's ``MediaRecorder``).

:class:`VideoRecorder` records the generated target alone (the target canvas, without the stick figure: the
view a recording of the target is for), H.264 in MP4 through PyAV, timed by the camera frames' timestamps
(so the file plays at the speed the person moved, whatever rate the server generated at). The frame is
composed on the generation worker thread; encoding runs on the recorder's own thread; while it is busy,
newer frames replace each other in the recorder's feed and the stale ones are dropped and counted
(:attr:`VideoRecorder.dropped`). :meth:`VideoRecorder.stop` flushes the encoder and closes the file.
``server.py --record DIR`` attaches one to every session (``DIR/session-N.mp4``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from realtime.serving.sink import GeneratedFrame, PushSink, rgb_view

log = logging.getLogger(__name__)

FILE_TIME_BASE = fractions.Fraction(1, 1000)
"""The encoder's time base: timestamps in milliseconds."""


@dataclass(frozen=True)
class RecordedFrame:
    """A frame composed for the file and when its camera frame was taken (seconds, any origin)."""

    frame: av.VideoFrame
    time_s: float


class VideoRecorder(PushSink[RecordedFrame]):
    """Writes the generated frames of one stream to ``path`` (H.264, yuv420p, MP4 or any container PyAV
    picks from the suffix); the file is created at the first frame.

    Odd canvas sizes are padded by one black row or column (H.264 in yuv420p needs even sizes). Frames are
    timed by their camera frame's ``pts`` (its arrival time when it had none), starting at 0, in
    milliseconds.

    Args:
        path: the file to write (replaced if it exists; its folder must exist and be writable).
        codec: the FFmpeg encoder.
        crf: libx264's constant rate factor (lower: better and larger).

    Errors while opening, encoding or closing the file are raised from the recorder's task; the relay then
    logs them and detaches the recorder, and the stream goes on.
    """

    name = "recorder"

    def __init__(self, path: str | os.PathLike[str], *, codec: str = "libx264", crf: int = 23) -> None:
        super().__init__()
        self.path = Path(path)
        self.codec = codec
        self.crf = crf
        self.frames_written = 0
        """Frames encoded so far."""
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self._container: Any = None
        self._stream: Any = None
        self._first_s: float | None = None
        self._last_pts = -1
        self._stopped = False

    def compose(self, frame: GeneratedFrame) -> RecordedFrame:
        """The generated frame in a new ``rgb24`` frame of even size (generation worker thread)."""
        height, width = frame.generated.shape[:2]
        out = av.VideoFrame(width + width % 2, height + height % 2, "rgb24")
        pixels = rgb_view(out)
        pixels[:height, :width] = frame.generated
        pixels[height:] = 0
        pixels[:, width:] = 0
        if frame.pts is not None and frame.time_base is not None:
            time_s = float(frame.pts * frame.time_base)
        else:
            time_s = frame.arrival_s
        return RecordedFrame(out, time_s)

    async def deliver(self, item: RecordedFrame) -> None:
        """Hand ``item`` to the encoder thread and wait until it is written (newer items wait in the feed,
        latest wins)."""
        await asyncio.wrap_future(self._executor.submit(self._encode, item))

    def _encode(self, item: RecordedFrame) -> None:  # the recorder's thread
        if self._container is None:
            self._open(item.frame.width, item.frame.height)
            self._first_s = item.time_s
        assert self._first_s is not None
        pts = max(round((item.time_s - self._first_s) / FILE_TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        frame = item.frame
        frame.pts = pts
        frame.time_base = FILE_TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        log.info("recording %dx%d to %s", width, height, self.path)
        container = av.open(str(self.path), mode="w")
        try:
            stream = container.add_stream(self.codec, rate=30)
            if not isinstance(stream, av.video.stream.VideoStream):
                raise ValueError(f"{self.codec!r} is not a video encoder; give one such as libx264")
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = FILE_TIME_BASE
            if self.codec == "libx264":
                stream.options = {"crf": str(self.crf), "preset": "veryfast"}
            container.start_encoding()  # creates the file now: a path that cannot be written fails here
        except Exception:
            container.close()
            raise
        self._container, self._stream = container, stream

    def _close(self) -> None:  # the recorder's thread
        container, self._container = self._container, None
        if container is None:
            return
        try:
            for packet in self._stream.encode():
                container.mux(packet)
        finally:
            container.close()
        log.info("recorded %d frames (%d dropped) to %s", self.frames_written, self.dropped, self.path)

    async def stop(self) -> None:
        """Take no more frames, finish the one being encoded, flush the encoder and close the file (on the
        recorder's thread). Idempotent.

        Raises:
            Whatever PyAV raises while flushing or closing the file (e.g. a full disk).
        """
        await super().stop()
        if self._stopped:
            return
        self._stopped = True
        try:
            await asyncio.wrap_future(self._executor.submit(self._close))
        finally:
            self._executor.shutdown(wait=False)
