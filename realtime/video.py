"""Video files in and out, through PyAV (FFmpeg): RGB frames with timestamps, and an H.264 writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class VideoError(RuntimeError):
    """A video file that is missing, cannot be opened, or cannot be decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """A video stream's size (pixels), frame rate (frames per second) and frame count (0 if the container
    does not say)."""

    width: int
    height: int
    fps: float
    num_frames: int


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file not found: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"cannot open {path} as a video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    return container


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """Size, frame rate and frame count of the first video stream of ``path``.

    Raises:
        VideoError: if the file is missing or is not a video.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            num_frames=int(stream.frames or 0),
        )


def read_frames(
    path: str | os.PathLike[str], max_frames: int | None = None
) -> Iterator[tuple[np.ndarray, float]]:
    """Decode a video's frames in order.

    Yields:
        ``(rgb, timestamp_ms)``: uint8 ``(height, width, 3)`` RGB and the presentation time in milliseconds.

    Raises:
        VideoError: if the file is missing, not a video, or corrupt (the message names the frame reached).
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        try:
            for frame in container.decode(stream):
                if max_frames is not None and count >= max_frames:
                    return
                time_s = frame.time if frame.time is not None else count / float(stream.average_rate or 30)
                yield frame.to_ndarray(format="rgb24"), 1000.0 * float(time_s)
                count += 1
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot decode {path} after {count} frames: {exc}") from exc
        if count == 0:
            raise VideoError(f"{path} contains no decodable video frames")


class VideoWriter:
    """Write RGB frames to an H.264 (yuv420p) MP4 file.

    Args:
        path: output file; its folder is created.
        fps: frames per second (> 0).
        width, height: frame size in pixels; odd sizes are padded by one pixel (H.264 needs even sizes).

    Raises:
        ValueError: for a non-positive size or frame rate.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, width: int, height: int, crf: int = 20
    ) -> None:
        if width < 1 or height < 1 or not fps > 0:
            raise ValueError(f"invalid video size {width}x{height} or fps {fps}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        """Append one uint8 ``(height, width, 3)`` RGB frame.

        Raises:
            ValueError: if the frame's shape or dtype differs from the writer's.
        """
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 ({self.height}, {self.width}, 3), got {rgb.dtype} {rgb.shape}")
        if self.width % 2 or self.height % 2:
            rgb = np.pad(rgb, ((0, self.height % 2), (0, self.width % 2), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
