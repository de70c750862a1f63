"""An aiortc client for the live server: sends a video file as its camera, receives the generated video.

As a CLI (prints a JSON summary; exit code 0 when generated frames arrived and the server sent no error)::

    python -m bench.client --url ws://127.0.0.2:8080/ws --source VIDEO.mp4 --seconds 60 [--json OUT.json]

As a library: ``summary = await run_client(url, source, seconds)`` (see :class:`ClientSummary`).

With ``--stamp`` (and a server started with ``--test-stamp``) every camera frame carries its index as a
barcode (:mod:`realtime.serving.stamp`) and the client reads it back from each generated frame: the time from
handing a frame to WebRTC to receiving the frame made from it is the client's glass-to-glass latency
(encoding, network both ways, the server, decoding; no display).

aiortc never offers 127.0.0.1 as an ICE candidate: run server and client on another loopback address
(e.g. 127.0.0.2 inside a network namespace, see :mod:`bench.netns`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import fractions
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from realtime.serving.aiortc_patch import use_marker_jitter_buffers
from realtime.serving.stamp import INDEX_MODULUS, draw_stamp_yuv420, read_stamp

log = logging.getLogger(__name__)


def scaled_size(width: int, height: int, max_side_px: int | None) -> tuple[int, int]:
    """``(width, height)`` shrunk (never enlarged) so the longer side is at most ``max_side_px``, rounded to
    even numbers (what video encoders need)."""
    scale = 1.0 if not max_side_px else min(1.0, max_side_px / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


@dataclass(frozen=True)
class DecodedClip:
    """A video file decoded once into memory, for many tracks to play at once (load tests).

    Attributes:
        frames: yuv420p frames as uint8 ``(H * 3 // 2, W)`` arrays (``av.VideoFrame.to_ndarray()`` layout).
        fps: the file's frame rate.
        size: ``(width, height)`` in pixels.
    """

    frames: list[np.ndarray]
    fps: float
    size: tuple[int, int]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, max_side_px: int | None = 640, max_frames: int | None = None
    ) -> DecodedClip:
        """Decode ``path`` (at most ``max_frames`` frames), shrunk so its longer side is ``max_side_px``.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if it has no video stream or no frame.
        """
        path = Path(path)
        fps, size = _probe(path, max_side_px)
        frames = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(frame.reformat(width=size[0], height=size[1], format="yuv420p").to_ndarray())
                if max_frames is not None and len(frames) >= max_frames:
                    break
        if not frames:
            raise ValueError(f"{path} has no video frames")
        return cls(frames, fps, size)


def _probe(path: Path, max_side_px: int | None) -> tuple[float, tuple[int, int]]:
    """(frame rate, scaled size) of a video file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it has no video stream.
    """
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(30)
        return float(rate), scaled_size(stream.codec_context.width, stream.codec_context.height, max_side_px)


class VideoFileTrack(MediaStreamTrack):
    """A video track that plays a file at its own frame rate, looping, like a webcam would.

    Decoding, scaling and stamping run in a private one-thread executor, never on the event loop. Frames
    carry ``pts`` in 1/90000 s (the frame index times the frame interval), paced in real time from the first
    ``recv()``.

    Args:
        source: any video file PyAV can decode (decoded as it plays), or a :class:`DecodedClip` (shared).
        max_side_px: downscale a file so the longer side is at most this (None: keep the file's size).
        loop: start again at the end (otherwise the track ends).
        stamp: draw each frame's index into it (:mod:`realtime.serving.stamp`) and remember when it was sent,
            in :attr:`sent_at_s`.

    Set :attr:`max_fps` to send at most that many frames per second (the file's other frames are skipped,
    as a browser's sender with ``maxFramerate`` does; the server's ``input_rate`` messages set it).

    Raises:
        FileNotFoundError: if ``source`` is a path that does not exist.
        ValueError: if it has no video stream.
    """

    kind = "video"

    def __init__(
        self,
        source: str | os.PathLike[str] | DecodedClip,
        *,
        max_side_px: int | None = 640,
        loop: bool = True,
        stamp: bool = False,
    ) -> None:
        super().__init__()
        self.clip = source if isinstance(source, DecodedClip) else None
        if self.clip is not None:
            self.path: Path | None = None
            self.fps, self.size = self.clip.fps, self.clip.size
        else:
            self.path = Path(source)  # type: ignore[arg-type]
            self.fps, self.size = _probe(self.path, max_side_px)
        self.loop = loop
        self.stamp = stamp
        self.frames_sent = 0
        self.frames_skipped = 0
        self.max_fps: float | None = None
        """Send at most this many frames per second (None: every frame of the file)."""
        self._position = 0  # frames of the file played (sent or skipped)
        self._last_slot_s: float | None = None
        self.sent_at_s: dict[int, float] = {}
        """With ``stamp``: stamped index -> ``time.perf_counter()`` when the frame was handed to WebRTC."""
        self._frames: Iterator[np.ndarray] | None = None
        self._decoder = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._start_s: float | None = None

    def _decode_all(self) -> Iterator[np.ndarray]:
        assert self.path is not None
        while True:
            decoded = 0
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    decoded += 1
                    width, height = self.size
                    yield frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
            if not self.loop or decoded == 0:
                return

    def _play_clip(self) -> Iterator[np.ndarray]:
        assert self.clip is not None
        while True:
            yield from self.clip.frames
            if not self.loop:
                return

    def _next_yuv(self) -> np.ndarray | None:
        """The file's next frame (yuv420p), or None at its end."""
        if self._frames is None:
            self._frames = self._play_clip() if self.clip is not None else self._decode_all()
        return next(self._frames, None)

    def _next_frame(self, index: int) -> av.VideoFrame | None:
        yuv = self._next_yuv()
        if yuv is None:
            return None
        if self.stamp:
            yuv = yuv.copy()  # a clip's frames are shared with other tracks
            draw_stamp_yuv420(yuv, index)
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")

    async def recv(self) -> av.VideoFrame:
        """The next frame, at the file's frame rate.

        Raises:
            MediaStreamError: once the track is stopped, or at the end of the file without ``loop``.
        """
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now_s = time.perf_counter()
        if self._start_s is None:
            self._start_s = now_s
        while True:
            slot_s = self._start_s + self._position / self.fps
            wait_s = slot_s - time.perf_counter()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                if self.readyState != "live":  # stopped while waiting: the decoder is shut down
                    raise MediaStreamError
            index = self._position
            self._position += 1
            too_soon = (
                self.max_fps is not None
                and self._last_slot_s is not None
                and slot_s - self._last_slot_s < 1.0 / self.max_fps - 0.5 / self.fps
            )
            if not too_soon:
                break
            await loop.run_in_executor(self._decoder, self._next_yuv)  # skipped
            self.frames_skipped += 1
        self._last_slot_s = slot_s
        frame = await loop.run_in_executor(self._decoder, self._next_frame, index)
        if frame is None:
            self.stop()
            raise MediaStreamError
        frame.pts = int(round(index * VIDEO_CLOCK_RATE / self.fps))
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        if self.stamp:
            self.sent_at_s[index % INDEX_MODULUS] = time.perf_counter()
        return frame

    def stop(self) -> None:
        """End the track and release the decoder. Idempotent."""
        super().stop()
        self._decoder.shutdown(wait=False, cancel_futures=True)


@dataclass
class LatencySummary:
    """Server latency over a stretch of the run, in ms, from the per-frame values of the stats messages."""

    median: float | None
    p95: float | None
    count: int

    @classmethod
    def of(cls, latencies_ms: list[float]) -> LatencySummary:
        """Median and 95th percentile of ``latencies_ms`` (None for an empty list)."""
        if not latencies_ms:
            return cls(None, None, 0)
        values = np.asarray(latencies_ms, np.float64)
        return cls(
            round(float(np.median(values)), 2), round(float(np.percentile(values, 95)), 2), len(values)
        )


@dataclass
class ClientSummary:
    """What one run saw.

    Attributes:
        frames_sent: camera frames handed to WebRTC.
        frames_skipped: frames of the file not sent because the server asked for a lower rate.
        input_rate_fps: every rate the server asked for (``input_rate`` messages), in order.
        frames_received: generated frames received.
        received_fps: frames received per second between the first and the last one.
        first_frame_s: seconds from the answer to the first generated frame (None if none came).
        frame_size: most common ``[width, height]`` of the received frames.
        frame_sizes: ``{"WxH": count}``.
        server_latency_ms: ``{"all": ..., "start": ..., "end": ...}``: :class:`LatencySummary` over every
            stats message, and over the first and the last ``window_s`` seconds of them.
        server_counters: the last stats message's frame counters.
        glass_to_glass_ms: with ``stamp``: ``{"all": ..., "start": ..., "end": ...}``: :class:`LatencySummary`
            of the time from handing a camera frame to WebRTC to receiving the generated frame made from it.
        frames_stamped: generated frames whose stamp was read (with ``stamp``).
        errors: error messages from the server, or a failure of the run itself.
        stats: every stats message, with ``t_s`` (seconds since the answer) added.
        frame_times_s: ``time.perf_counter()`` seconds at which each generated frame arrived.
        glass_to_glass_samples_ms: with ``stamp``: every glass-to-glass latency measured, in arrival order.
    """

    url: str
    source: str
    seconds: float
    window_s: float
    target: str | None = None
    frames_sent: int = 0
    frames_skipped: int = 0
    input_rate_fps: list[float] = field(default_factory=list)
    frames_received: int = 0
    received_fps: float | None = None
    first_frame_s: float | None = None
    frame_size: list[int] | None = None
    frame_sizes: dict[str, int] = field(default_factory=dict)
    server_latency_ms: dict[str, LatencySummary] = field(default_factory=dict)
    server_counters: dict[str, int] = field(default_factory=dict)
    glass_to_glass_ms: dict[str, LatencySummary] = field(default_factory=dict)
    frames_stamped: int = 0
    errors: list[str] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    frame_times_s: list[float] = field(default_factory=list, repr=False)
    glass_to_glass_samples_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """Generated frames arrived and nothing went wrong."""
        return self.frames_received > 0 and not self.errors

    def to_dict(self, *, with_stats: bool = True) -> dict[str, Any]:
        """JSON-serializable form (``stats`` and the per-frame lists left out unless ``with_stats``)."""
        out = asdict(self)
        if not with_stats:
            for key in ("stats", "frame_times_s", "glass_to_glass_samples_ms"):
                out.pop(key)
        return out


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma plane ``(H, W)`` (no conversion for yuv420p, what aiortc's decoders give)."""
    if frame.format.name == "yuv420p":
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        return luma[: frame.height, : frame.width]
    return frame.to_ndarray(format="rgb24")


class FrameReceiver:
    """Counts the frames of the generated track and, with ``camera.stamp``, measures each one's latency."""

    def __init__(self, camera: VideoFileTrack) -> None:
        self.camera = camera
        self.count = 0
        self.sizes: collections.Counter[str] = collections.Counter()
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.latencies: list[tuple[float, float]] = []
        """``(time.perf_counter() s, glass-to-glass ms)`` of each generated frame whose stamp was read."""
        self.times_s: list[float] = []
        """``time.perf_counter()`` seconds at which each generated frame arrived."""

    async def consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    raise TypeError(f"the generated track gave {type(frame).__name__}, not a video frame")
                now_s = time.perf_counter()
                self.first_s = now_s if self.first_s is None else self.first_s
                self.last_s = now_s
                self.times_s.append(now_s)
                self.count += 1
                self.sizes[f"{frame.width}x{frame.height}"] += 1
                if self.camera.stamp:
                    index = read_stamp(_luma(frame))
                    sent_s = None if index is None else self.camera.sent_at_s.get(index)
                    if sent_s is not None:
                        self.latencies.append((now_s, (now_s - sent_s) * 1000.0))
        except MediaStreamError:
            return


async def run_client(
    url: str,
    source: str | os.PathLike[str] | DecodedClip,
    seconds: float,
    *,
    max_side_px: int | None = 640,
    window_s: float = 10.0,
    answer_timeout_s: float = 20.0,
    target: str | None = None,
    stamp: bool = False,
) -> ClientSummary:
    """Stream ``source`` to the server at ``url`` for ``seconds`` after its answer, and summarize.

    Args:
        url: the server's signaling WebSocket, e.g. ``ws://127.0.0.2:8080/ws``.
        source: video file sent as the camera, at its frame rate, looping (or a clip decoded in advance).
        seconds: streaming time, counted from the server's answer.
        max_side_px: downscale the source to this longer side (like a webcam); None keeps its size.
        window_s: length of the "start" and "end" stretches of the latency summary.
        answer_timeout_s: give up if no answer comes within this time.
        target: the target to ask for (None: the server's default).
        stamp: stamp the camera frames and measure glass-to-glass latency (the server needs ``--test-stamp``).

    Returns:
        The summary; failures (no answer, server errors, connection refused) are in ``summary.errors``.

    Raises:
        FileNotFoundError, ValueError: if ``source`` is not a readable video.
    """
    camera = VideoFileTrack(source, max_side_px=max_side_px, stamp=stamp)
    name = str(camera.path) if camera.path is not None else "decoded clip"
    summary = ClientSummary(url=url, source=name, seconds=seconds, window_s=window_s, target=target)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = FrameReceiver(camera)
    tasks: list[asyncio.Task[Any]] = []
    answered = asyncio.Event()
    answer_s = time.perf_counter()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            tasks.append(asyncio.create_task(receiver.consume(track), name="receive-generated"))

    async def read_messages(ws: Any) -> None:
        async for message in ws:
            msg = json.loads(message)
            kind = msg.get("type")
            if kind == "answer":
                await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
                summary.target = msg.get("target", summary.target)
                answered.set()
            elif kind == "stats":
                msg["t_s"] = round(time.perf_counter() - answer_s, 3)
                summary.stats.append(msg)
            elif kind == "input_rate":
                camera.max_fps = float(msg["max_fps"])
                summary.input_rate_fps.append(camera.max_fps)
            elif kind == "error":
                log.warning("server error: %s", msg.get("message"))
                summary.errors.append(f"server: {msg.get('message')}")
            else:
                log.warning("unexpected message from the server: %.200s", message)

    try:
        pc.addTrack(camera)
        use_marker_jitter_buffers(pc)  # generated frames are handed on when complete, as in a browser
        await pc.setLocalDescription(await pc.createOffer())  # returns once ICE gathering is complete
        async with connect(url, open_timeout=answer_timeout_s) as ws:
            reader = asyncio.create_task(read_messages(ws), name="signaling")
            tasks.append(reader)
            offer = {"type": "offer", "sdp": pc.localDescription.sdp, "sdpType": "offer"}
            if target is not None:
                offer["target"] = target
            await ws.send(json.dumps(offer))
            try:
                await asyncio.wait_for(answered.wait(), answer_timeout_s)
            except asyncio.TimeoutError:
                summary.errors.append(f"no answer from the server within {answer_timeout_s} s")
            else:
                answer_s = time.perf_counter()
                await asyncio.wait({reader}, timeout=seconds)
                if reader.done():
                    elapsed_s = time.perf_counter() - answer_s
                    summary.errors.append(f"the server closed the connection after {elapsed_s:.1f} s")
                else:
                    await ws.send(json.dumps({"type": "bye"}))
    except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
        summary.errors.append(f"signaling with {url} failed: {type(exc).__name__}: {exc}")
    finally:
        await pc.close()
        camera.stop()
        for task in tasks:
            task.cancel()
        for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
            if isinstance(outcome, Exception):
                log.warning("task %s failed: %r", task.get_name(), outcome)
                summary.errors.append(f"client task {task.get_name()} failed: {outcome!r}")

    summary.frames_sent = camera.frames_sent
    summary.frames_skipped = camera.frames_skipped
    summary.frames_received = receiver.count
    summary.frame_times_s = receiver.times_s
    if receiver.first_s is not None and receiver.last_s is not None:
        summary.first_frame_s = round(receiver.first_s - answer_s, 3)
        if receiver.count > 1 and receiver.last_s > receiver.first_s:
            summary.received_fps = round((receiver.count - 1) / (receiver.last_s - receiver.first_s), 2)
    summary.frame_sizes = dict(receiver.sizes)
    if receiver.sizes:
        width, height = receiver.sizes.most_common(1)[0][0].split("x")
        summary.frame_size = [int(width), int(height)]
    end_s = max((m["t_s"] for m in summary.stats), default=0.0)
    summary.server_latency_ms = {
        "all": LatencySummary.of([v for m in summary.stats for v in _window(m)]),
        "start": LatencySummary.of([v for m in summary.stats if m["t_s"] <= window_s for v in _window(m)]),
        "end": LatencySummary.of(
            [v for m in summary.stats if m["t_s"] >= end_s - window_s for v in _window(m)]
        ),
    }
    if receiver.latencies:
        first_s, last_s = receiver.latencies[0][0], receiver.latencies[-1][0]
        summary.frames_stamped = len(receiver.latencies)
        summary.glass_to_glass_samples_ms = [round(v, 2) for _, v in receiver.latencies]
        summary.glass_to_glass_ms = {
            "all": LatencySummary.of([v for _, v in receiver.latencies]),
            "start": LatencySummary.of([v for t, v in receiver.latencies if t <= first_s + window_s]),
            "end": LatencySummary.of([v for t, v in receiver.latencies if t >= last_s - window_s]),
        }
    if summary.stats:
        last = summary.stats[-1]
        summary.server_counters = {
            k: last[k]
            for k in ("frames_in", "frames_out", "frames_dropped", "frames_failed", "frames_with_person")
            if k in last
        }
    return summary


def _window(stats_message: dict[str, Any]) -> list[float]:
    values = stats_message.get("latency_ms_window") or []
    return [float(v) for v in values]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench.client``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.client",
        description=(
            "Send a video file to the live server as a webcam over WebRTC, receive the generated video, "
            "and print a JSON summary (frames sent/received, received fps, server latency at the start and "
            "the end, frame size)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="signaling WebSocket, e.g. ws://127.0.0.2:8080/ws")
    parser.add_argument(
        "--source", required=True, type=Path, help="video file to send as the camera (looped)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to stream after the answer")
    parser.add_argument(
        "--max-side", type=int, default=640, help="downscale the source to this longer side (0: off)"
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds of the start/end latency windows")
    parser.add_argument("--target", default=None, help="target to ask for (None: the server's default)")
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="stamp frame indices into the camera frames and measure glass-to-glass latency "
        "(the server must run with --test-stamp)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the summary, with every stats message"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; exit code 0 if generated frames arrived and there was no error, 1 otherwise, 2 for a bad
    source file."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        summary = asyncio.run(
            run_client(
                args.url,
                args.source,
                args.seconds,
                max_side_px=args.max_side or None,
                window_s=args.window,
                target=args.target,
                stamp=args.stamp,
            )
        )
    except (FileNotFoundError, ValueError, av.error.FFmpegError) as exc:
        print(f"error: cannot use {args.source} as the camera: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    print(json.dumps(summary.to_dict(with_stats=False), indent=2))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
