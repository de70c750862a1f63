"""One port for the page and the WebRTC signaling: HTTP GETs serve ``realtime/serving/web``; ``/ws`` is a
WebSocket.

HTTP (plain GETs): ``/`` (the page), ``/app.js``, ``/targets`` (JSON: the targets this server offers, see
:meth:`SignalingServer.targets_message`) and ``/status`` (JSON: sessions, memory, CPU time, workers; see
:meth:`SignalingServer.status`). With an SSL context everything is HTTPS and WSS on the same port.

Protocol on ``/ws`` (JSON text messages, one session per WebSocket, at most ``max_sessions`` at once):

- server -> client, on connecting when ``max_sessions`` sessions are already open:
  ``{"type": "error", "code": "server_full", "message": "..."}``, then the server closes the WebSocket with
  code 1013 (try again later).
- client -> server ``{"type": "offer", "sdp": "...", "sdpType": "offer", "target": "NAME"}``: the client's
  offer, sent after its ICE gathering completed (no trickle ICE); ``target`` (optional) is one of the names of
  ``/targets``, the first one by default. The server answers ``{"type": "answer", "sdp": "...", "target":
  "NAME"}`` after its own ICE gathering completed, then sends the generated video (stick figure | generated,
  side by side, with the camera frames' timestamps) on the offer's video transceiver; where the offer names
  the RTP playout-delay extension, the answer does too and the video carries it at zero
  (``SessionSettings.zero_playout_delay``).
- server -> client ``{"type": "stats", ...}`` about once a second while streaming (see
  :meth:`realtime.serving.stats.StreamStatsSnapshot.to_message`: frames in / out / dropped / failed, fps,
  per-frame server latency in ms (mean, last and every value over the last second), pipeline timings).
- server -> client ``{"type": "input_rate", "max_fps": N}`` when the camera should send at most N frames
  per second to match what the server generates for this session (see
  :class:`realtime.serving.rate.InputRateControl`; never above ``max_input_fps``); the page sets it as its
  camera track's ``frameRate`` constraint and its sender's ``maxFramerate``.
- server -> client ``{"type": "error", "message": "...", "code": "..."}`` for anything wrong; ``code`` is one
  of ``bad_message`` (bad JSON, wrong types, unknown type, a message over ``max_message_bytes``),
  ``unknown_target``, ``bad_offer`` (an SDP that cannot be negotiated, no video track, a second offer:
  renegotiation is not supported), ``server_error``, ``peer_failed``, ``offer_timeout`` (no offer within
  ``offer_timeout_s`` of connecting: the session is closed) and ``server_full``. Apart from
  ``offer_timeout`` and ``server_full`` the session goes on and later messages are still answered. A
  message over the WebSocket's ``max_size`` closes that WebSocket (code 1009) and its session.
- client -> server ``{"type": "garment_colour", "garment": "upper", "colour": "#RRGGBB"}`` (``colour`` null
  restores the recorded one): recolours a garment of this session's target from the next frame on, for a
  target with a reference appearance (``/targets`` lists its ``garments``; Yang et al.'s colour control,
  :meth:`realtime.model.pipeline.Retargeter.set_garment_colour`). Answered with the same message once applied;
  an error ``bad_message`` for a session without a stream yet, an unknown garment, a malformed colour or a
  target without a reference appearance.
- client -> server ``{"type": "bye"}`` or closing the WebSocket ends the session: the stream stops (tasks
  cancelled, Retargeter closed), the peer connection is closed, and the server closes the WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import itertools
import json
import logging
import os
import resource
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.catalog import DEFAULT_MAX_SESSIONS
from realtime.cli import rgb_colour
from realtime.serving.aiortc_patch import (
    AiortcInternalsError,
    use_marker_jitter_buffers,
    use_zero_playout_delay,
)
from realtime.serving.rate import InputRateControl
from realtime.serving.sink import OutputSink
from realtime.serving.stages import RetargeterLike, RetargetStream
from realtime.serving.workers import StreamWorkers

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
"""The page's files, located relative to this module (never the working directory)."""

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
}
WEBSOCKET_PATH = "/ws"
MAX_FRAME_BYTES = 1 << 20
"""The WebSocket's ``max_size``: a bigger message closes the connection with code 1009."""
MAX_MESSAGE_BYTES = 64 << 10
"""Messages bigger than this (but under ``MAX_FRAME_BYTES``) are answered with an error (SDP offers are a few
KiB)."""
DEFAULT_OFFER_TIMEOUT_S = 30.0
"""A client that sends no usable offer this long after connecting is closed (it holds a session slot)."""
CLOSE_TRY_AGAIN_LATER = 1013
"""WebSocket close code for a full server."""


class OfferError(Exception):
    """An offer this server cannot use; the message is sent to the client with ``code``."""

    def __init__(self, message: str, code: str = "bad_offer") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TargetChoice:
    """A target the server offers.

    Attributes:
        name: what the page lists and the offer's ``target`` names.
        make_retargeter: builds a Retargeter for one stream (slow: called off the event loop).
        canvas_size: ``(width, height)`` of the generated frames in pixels, if known.
        garments: the garments whose colour a session may change (``realtime.catalog.GARMENTS``; empty for a
            target without a reference appearance).
    """

    name: str
    make_retargeter: Callable[[], RetargeterLike]
    canvas_size: tuple[int, int] | None = None
    garments: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON form for ``/targets``."""
        size = None if self.canvas_size is None else list(self.canvas_size)
        return {"name": self.name, "canvas_size": size, "garments": list(self.garments)}


@dataclass(frozen=True)
class SessionSettings:
    """What every session of a server shares.

    Attributes:
        stats_interval_s: seconds between ``stats`` messages.
        max_message_bytes: larger text messages are answered with an error.
        offer_timeout_s: a session without a peer connection this long after connecting is closed.
        test_stamp: copy the camera frames' test stamp into the output frames (see
        :mod:`realtime.serving.stamp`).
        max_input_fps: the camera frame rate the page is asked to send at most (``GET /targets``); 0 = no
            cap. Frames beyond what the server generates are encoded by the browser and decoded here only to
            be dropped as stale.
        zero_playout_delay: send the generated video with the RTP playout-delay extension at zero (where the
            offer names it): the browser shows each frame once decoded, without a jitter-buffer delay
            (:func:`realtime.serving.aiortc_patch.use_zero_playout_delay`).
        sinks: outputs besides the browser's track, each a factory called with the session's id when its
            stream starts (on the event loop: keep it light); the sink is attached to that stream
            (:meth:`realtime.serving.stages.RetargetStream.add_sink`) and stopped with it.
    """

    stats_interval_s: float = 1.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    offer_timeout_s: float = DEFAULT_OFFER_TIMEOUT_S
    test_stamp: bool = False
    max_input_fps: float = 0.0
    zero_playout_delay: bool = True
    sinks: tuple[Callable[[int], OutputSink[Any]], ...] = ()


class Session:
    """One WebSocket client: at most one peer connection and one :class:`RetargetStream`.

    Args:
        session_id: a number for the logs.
        websocket: the client's connection.
        targets: the targets the client may choose, by name; the first is the default.
        workers: the server's shared inference threads.
        settings: limits and intervals.
    """

    def __init__(
        self,
        session_id: int,
        websocket: ServerConnection,
        targets: dict[str, TargetChoice],
        workers: StreamWorkers,
        settings: SessionSettings,
    ) -> None:
        if not targets:
            raise ValueError("a session needs at least one target")
        self.id = session_id
        self._ws = websocket
        self._targets = targets
        self._workers = workers
        self._settings = settings
        self._pc: RTCPeerConnection | None = None
        self._stream: RetargetStream | None = None
        self._retargeter: RetargeterLike | None = None  # the stream's, for its garment colour
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._started_s = time.perf_counter()
        self.input_rate = InputRateControl(settings.max_input_fps)
        """The camera rate this session's sender is asked for (``input_rate`` messages)."""
        self.target: str | None = None
        """The target being streamed, once an offer was answered."""
        self._answered = False

    @property
    def stream(self) -> RetargetStream | None:
        """The running stream, once an offer was answered."""
        return self._stream

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """The session's own tasks still running (stats, draining unused tracks, failure handling)."""
        return {t for t in self._tasks if not t.done()}

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %d: task %s failed", self.id, task.get_name(), exc_info=task.exception())

    async def run(self) -> None:
        """Serve messages until the client says bye or the WebSocket closes; then :meth:`close`."""
        log.info("session %d: connected from %s", self.id, self._ws.remote_address)
        self._spawn(self._offer_deadline(), "offer-deadline")
        try:
            async for message in self._ws:
                if not await self._handle(message):
                    break
        except ConnectionClosed as exc:
            log.info("session %d: websocket closed (%s)", self.id, exc)
        finally:
            await self.close()

    async def _offer_deadline(self) -> None:
        await asyncio.sleep(self._settings.offer_timeout_s)
        if not self._answered and self._closing is None:
            await self.send_error(
                f"no usable offer within {self._settings.offer_timeout_s:g} s of connecting; closing",
                "offer_timeout",
            )
            await self.close(1008, "no offer")

    async def _handle(self, message: str | bytes) -> bool:
        """Handle one message; False ends the session."""
        if isinstance(message, bytes):
            await self.send_error("binary messages are not supported; send JSON text")
            return True
        size_bytes = len(message.encode("utf-8", errors="replace"))
        if size_bytes > self._settings.max_message_bytes:
            await self.send_error(
                f"message too large: {size_bytes} bytes (at most {self._settings.max_message_bytes})"
            )
            return True
        try:
            msg = json.loads(message)
        except json.JSONDecodeError as exc:
            await self.send_error(f"malformed JSON: {exc}")
            return True
        if not isinstance(msg, dict):
            await self.send_error(f"expected a JSON object, got {type(msg).__name__}")
            return True
        kind = msg.get("type")
        if not isinstance(kind, str):
            await self.send_error("missing or non-string 'type'; expected 'offer' or 'bye'")
            return True
        if kind == "offer":
            await self._handle_offer(msg)
            return True
        if kind == "bye":
            log.info("session %d: bye", self.id)
            return False
        if kind == "garment_colour":
            await self._handle_garment_colour(msg)
            return True
        await self.send_error(
            f"unknown message type {kind[:40]!r}; expected 'offer', 'garment_colour' or 'bye'"
        )
        return True

    async def _handle_garment_colour(self, msg: dict[str, Any]) -> None:
        """Apply a ``garment_colour`` message (see the module docstring) off the event loop."""
        garment, colour = msg.get("garment"), msg.get("colour")
        retargeter = self._retargeter
        if retargeter is None or not hasattr(retargeter, "set_garment_colour"):
            await self.send_error("garment_colour needs a running session: send an offer first")
            return
        if not isinstance(garment, str) or not (colour is None or isinstance(colour, str)):
            await self.send_error(
                "garment_colour needs a string 'garment' and a '#RRGGBB' string (or null) 'colour'"
            )
            return
        try:
            rgb = None if colour is None else rgb_colour(colour)
            await asyncio.to_thread(retargeter.set_garment_colour, garment[:40], rgb)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            await self.send_error(f"garment_colour: {exc}")
            return
        log.info("session %d: %s garment colour %s", self.id, garment, colour)
        await self.send({"type": "garment_colour", "garment": garment, "colour": colour})

    def _choose_target(self, msg: dict[str, Any]) -> TargetChoice:
        """The offer's target (the default when it names none).

        Raises:
            OfferError: for a name this server does not have, or one that is not a string.
        """
        name = msg.get("target")
        if name is None:
            return next(iter(self._targets.values()))
        available = ", ".join(repr(n) for n in self._targets)
        if not isinstance(name, str):
            raise OfferError(f"'target' must be a string, one of {available}", "unknown_target")
        if name not in self._targets:
            raise OfferError(f"unknown target {name[:60]!r}; this server has {available}", "unknown_target")
        return self._targets[name]

    async def _handle_offer(self, msg: dict[str, Any]) -> None:
        sdp = msg.get("sdp")
        sdp_type = msg.get("sdpType", "offer")
        if not isinstance(sdp, str) or not sdp.strip():
            await self.send_error("'sdp' must be a non-empty string")
            return
        if sdp_type != "offer":
            await self.send_error(f"'sdpType' must be 'offer', got {str(sdp_type)[:40]!r}")
            return
        if self._pc is not None:
            await self.send_error(
                "this session is already streaming and renegotiation is not supported; "
                "send 'bye' and reconnect to change the camera's tracks or the target",
                "bad_offer",
            )
            return
        try:
            target = self._choose_target(msg)
            answer_sdp = await self._negotiate(sdp, target)
        except OfferError as exc:
            log.warning("session %d: offer rejected: %s", self.id, exc)
            await self._close_media()
            await self.send_error(str(exc), exc.code)
            return
        except Exception as exc:  # aiortc raises many kinds of errors on hostile SDP; report, clean up, go on
            log.warning("session %d: cannot negotiate the offer", self.id, exc_info=True)
            await self._close_media()
            await self.send_error(f"cannot negotiate this offer: {type(exc).__name__}: {exc}", "bad_offer")
            return
        if self._closing is not None:
            await self._close_media()  # the session ended while negotiating
            return
        self.target = target.name
        self._answered = True
        if not await self.send({"type": "answer", "sdp": answer_sdp, "target": target.name}):
            await self._close_media()
            return
        self._spawn(self._send_stats(), "stats")
        log.info("session %d: answered; streaming target %r", self.id, target.name)

    async def _negotiate(self, sdp: str, target: TargetChoice) -> str:
        """Set up the peer connection and the stream for ``sdp``; returns the answer's SDP.

        Raises:
            OfferError: for an offer without a video track or a Retargeter that cannot be made.
            Whatever aiortc raises for an SDP it cannot use.
        """
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc = pc
        remote_tracks: list[MediaStreamTrack] = []
        pc.on("track", remote_tracks.append)
        pc.on("connectionstatechange", lambda: self._on_connection_state(pc))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        try:
            use_marker_jitter_buffers(pc)  # camera frames leave aiortc's jitter buffer at their last packet
        except AiortcInternalsError as exc:
            log.warning("session %d: camera frames will arrive one frame interval late: %s", self.id, exc)
        videos = [t for t in remote_tracks if t.kind == "video"]
        if not videos:
            raise OfferError("the offer has no video track; send the camera as a video track")
        for track in remote_tracks:
            if track is not videos[0]:  # unused tracks are drained, so aiortc's queues cannot grow
                self._spawn(self._drain(track), f"drain-{track.kind}")
        try:
            retargeter = await asyncio.to_thread(target.make_retargeter)
        except Exception as exc:
            log.exception("session %d: cannot create the retargeter for %r", self.id, target.name)
            raise OfferError(f"server error: cannot start the retargeter: {exc}", "server_error") from exc
        test_stamp = self._settings.test_stamp
        self._stream = RetargetStream(videos[0], retargeter, self._workers, test_stamp=test_stamp)
        self._retargeter = retargeter
        pc.addTrack(self._stream.output)
        for make_sink in self._settings.sinks:  # an output that cannot be made is logged; the session goes on
            try:
                self._stream.add_sink(make_sink(self.id))
            except Exception:
                log.exception("session %d: cannot attach an output", self.id)
        self._stream.start()
        if self._settings.zero_playout_delay:
            try:
                use_zero_playout_delay(pc)  # the browser shows each generated frame once decoded
            except AiortcInternalsError as exc:
                log.warning("session %d: the browser will add its own playout delay: %s", self.id, exc)
        await pc.setLocalDescription(await pc.createAnswer())  # aiortc: returns once ICE gathering is done
        return pc.localDescription.sdp

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        log.info("session %d: peer connection %s", self.id, pc.connectionState)
        if pc.connectionState == "failed" and pc is self._pc:
            self._spawn(self._peer_failed(), "peer-failed")

    async def _peer_failed(self) -> None:
        await self._close_media()
        await self.send_error("the peer connection failed; reconnect to start again", "peer_failed")

    async def _drain(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    async def _send_stats(self) -> None:
        last_log_s = time.perf_counter()
        while self._stream is not None:
            await asyncio.sleep(self._settings.stats_interval_s)
            stream = self._stream
            if stream is None:
                return
            snapshot = stream.stats.snapshot()
            message = snapshot.to_message()
            message["uptime_s"] = round(time.perf_counter() - self._started_s, 3)
            log.debug("session %d: stats %s", self.id, message)
            if time.perf_counter() - last_log_s >= 10.0:
                last_log_s = time.perf_counter()
                log.info(
                    "session %d: in %.1f fps, out %.1f fps, latency %s ms (mean over %.0f s), "
                    "%d dropped, %d failed",
                    self.id,
                    snapshot.fps_in,
                    snapshot.fps_out,
                    "n/a" if snapshot.latency_ms_mean is None else f"{snapshot.latency_ms_mean:.1f}",
                    snapshot.window_s,
                    snapshot.frames_dropped,
                    snapshot.frames_failed,
                )
            if not await self.send(message):
                return
            rate = self.input_rate.update(message["uptime_s"], snapshot.fps_in, snapshot.fps_out)
            if rate is not None:
                log.info("session %d: asking the camera for at most %.0f frames per second", self.id, rate)
                if not await self.send({"type": "input_rate", "max_fps": rate}):
                    return

    async def send(self, message: dict[str, Any]) -> bool:
        """Send ``message`` as JSON; False if the WebSocket is already closed."""
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    async def send_error(self, text: str, code: str = "bad_message") -> bool:
        """Send ``{"type": "error", "message": text, "code": code}``; False if the WebSocket is closed."""
        log.info("session %d: error to client (%s): %s", self.id, code, text)
        return await self.send({"type": "error", "message": text, "code": code})

    async def _close_media(self) -> None:
        """Stop the stream (tasks, Retargeter) and close the peer connection. Idempotent."""
        stream, self._stream = self._stream, None
        pc, self._pc = self._pc, None
        try:
            if stream is not None:
                await stream.stop()
                snap = stream.stats.snapshot()
                log.info(
                    "session %d: stream stopped: %d frames in, %d out, %d dropped, %d failed",
                    self.id,
                    snap.frames_in,
                    snap.frames_out,
                    snap.frames_dropped,
                    snap.frames_failed,
                )
        finally:
            if pc is not None:
                await pc.close()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the session: stop the stream, close the peer connection, cancel and await every task, close
        the WebSocket with ``code``. Idempotent; concurrent calls wait for the same close."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._close_media()
        finally:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # failures were logged by _task_done
            await self._ws.close(code, reason)
            log.info("session %d: closed", self.id)
            self._closing.set_result(None)


def _rss_bytes() -> int | None:
    """This process's resident memory in bytes (Linux ``/proc``), or None where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class SignalingServer:
    """Serves the page and the signaling WebSocket on one port, one :class:`Session` per WebSocket.

    Args:
        targets: the targets offered, the first being the default (names must be unique).
        workers: the shared pose and generation threads; owned by the caller, shut down after :meth:`stop`.
        max_sessions: sessions served at once; the next client gets a ``server_full`` error.
        ssl_context: serve HTTPS and WSS instead of HTTP and WS.
        settings: per-session limits and intervals (and the test stamp).
        max_frame_bytes: the WebSocket's ``max_size``; messages above it close the connection (1009).
        web_dir: folder with ``index.html`` (and ``app.js``); defaults to :data:`WEB_DIR`.

    Use ``async with SignalingServer(...) as server: await server.start(host, port)``, or call
    :meth:`start` and :meth:`stop`.

    Raises:
        ValueError: for no targets, duplicate names, or ``max_sessions`` < 1.
    """

    def __init__(
        self,
        targets: Sequence[TargetChoice],
        workers: StreamWorkers,
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        ssl_context: ssl.SSLContext | None = None,
        settings: SessionSettings | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        web_dir: Path = WEB_DIR,
    ) -> None:
        if not targets:
            raise ValueError("the server needs at least one target")
        names = [t.name for t in targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique; repeated: {', '.join(duplicates)}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self._targets = {t.name: t for t in targets}
        self._workers = workers
        self.max_sessions = max_sessions
        self._ssl_context = ssl_context
        self.settings = settings or SessionSettings()
        self._max_frame_bytes = max_frame_bytes
        self._web_dir = web_dir
        self._sessions: set[Session] = set()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._stopped = False
        self._pages: dict[str, tuple[str, str]] = {}
        self._started_s = time.perf_counter()
        self.refused = 0
        """Clients turned away because the server was full."""

    @property
    def sessions(self) -> frozenset[Session]:
        """Sessions currently open."""
        return frozenset(self._sessions)

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``).

        Raises:
            RuntimeError: before :meth:`start`.
        """
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server.sockets[0].getsockname()[1]

    def targets_message(self) -> dict[str, Any]:
        """What ``GET /targets`` returns: ``{"targets": [{"name", "canvas_size"}], "default": name,
        "test_stamp": bool, "max_sessions": n, "max_input_fps": fps or null}``."""
        return {
            "targets": [t.describe() for t in self._targets.values()],
            "default": next(iter(self._targets)),
            "test_stamp": self.settings.test_stamp,
            "max_sessions": self.max_sessions,
            "max_input_fps": self.settings.max_input_fps or None,
        }

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` returns: open sessions and streams, clients refused, resident memory in
        bytes, CPU seconds used by the process, asyncio tasks and threads alive, and per worker its jobs, busy
        seconds and waiting stages."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "sessions": len(self._sessions),
            "streams": sum(1 for s in self._sessions if s.stream is not None),
            "max_sessions": self.max_sessions,
            "refused": self.refused,
            "rss_bytes": _rss_bytes(),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "workers": self._workers.describe(),
            "uptime_s": round(time.perf_counter() - self._started_s, 3),
        }

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """Read the page's files and start listening on ``host:port``.

        Raises:
            FileNotFoundError: if ``index.html`` is missing from the web folder.
            OSError: if the address cannot be bound.
        """
        index = self._web_dir / "index.html"
        if not index.is_file():
            raise FileNotFoundError(f"the page {index} is missing; reinstall the package")
        for route, (name, content_type) in STATIC_FILES.items():
            path = self._web_dir / name
            if path.is_file():
                self._pages[route] = (path.read_text(encoding="utf-8"), content_type)
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._process_request,
            max_size=self._max_frame_bytes,
            ssl=self._ssl_context,
        )
        scheme = "wss" if self._ssl_context is not None else "ws"
        log.info("signaling server listening on %s:%d (%s)", host, self.port, scheme)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WEBSOCKET_PATH:
            return None  # the WebSocket handshake (websockets answers 426 to a plain GET)
        if path == "/targets":
            return self._respond(connection, json.dumps(self.targets_message()), "application/json")
        if path == "/status":
            return self._respond(connection, json.dumps(self.status()), "application/json")
        page = self._pages.get(path)
        if page is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"Not found: {path[:200]}\n")
        text, content_type = page
        return self._respond(connection, text, content_type)

    @staticmethod
    def _respond(connection: ServerConnection, text: str, content_type: str) -> Response:
        response = connection.respond(http.HTTPStatus.OK, text)
        del response.headers["Content-Type"]  # websockets' Headers append on assignment
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def _handler(self, websocket: ServerConnection) -> None:
        if self._stopped:
            await websocket.close(1001, "server shutting down")
            return
        if len(self._sessions) >= self.max_sessions:
            self.refused += 1
            address = websocket.remote_address
            log.warning("refusing a client from %s: %d sessions open", address, self.max_sessions)
            message = (
                f"the server is full: it serves {self.max_sessions} session(s) at once and all are in use; "
                "try again later"
            )
            try:
                await websocket.send(json.dumps({"type": "error", "code": "server_full", "message": message}))
            except ConnectionClosed:
                return
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "server full")
            return
        session = Session(next(self._ids), websocket, self._targets, self._workers, self.settings)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    async def stop(self) -> None:
        """Close every session (streams stopped, peer connections closed, tasks cancelled), then stop
        listening and wait for the connection handlers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        sessions = list(self._sessions)
        if sessions:
            log.info("closing %d session(s)", len(sessions))
        await asyncio.gather(*(s.close(1001, "server shutting down") for s in sessions))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        log.info("signaling server stopped")

    async def __aenter__(self) -> SignalingServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
