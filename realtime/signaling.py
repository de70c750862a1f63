"""One port for the page and the WebRTC signaling: HTTP GETs serve ``realtime/web``; ``/ws`` is a WebSocket.

Protocol on ``/ws`` (JSON text messages, one session per WebSocket):

- client -> server ``{"type": "offer", "sdp": "...", "sdpType": "offer"}``: the client's offer, sent after its
  ICE gathering completed (no trickle ICE). The server answers
  ``{"type": "answer", "sdp": "..."}`` after its own ICE gathering completed, then sends the generated video
  (stick figure | generated, side by side) on the offer's video transceiver.
- server -> client ``{"type": "stats", ...}`` about once a second while streaming (see
  :meth:`realtime.stream.StreamStatsSnapshot.to_message`: frames in / out / dropped / failed, fps,
  per-frame server latency in ms (mean, last and every value over the last second), pipeline timings).
- server -> client ``{"type": "error", "message": "..."}`` for anything malformed (bad JSON, wrong types,
  unknown type, a message over ``max_message_bytes``, an SDP that cannot be negotiated, a second offer);
  the session goes on and later messages are still answered. A message over the WebSocket's ``max_size``
  closes that WebSocket (code 1009) and its session.
- client -> server ``{"type": "bye"}`` or closing the WebSocket ends the session: the stream stops (tasks
  cancelled, Retargeter closed), the peer connection is closed, and the server closes the WebSocket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.stream import RetargeterLike, RetargetStream

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


class OfferError(Exception):
    """An offer this server cannot use; the message is sent to the client."""


class Session:
    """One WebSocket client: at most one peer connection and one :class:`RetargetStream`.

    Args:
        session_id: a number for the logs.
        websocket: the client's connection.
        make_retargeter: builds this session's Retargeter; called in ``executor`` (it may be slow).
        executor: the server's shared thread pool.
        stats_interval_s: seconds between ``stats`` messages.
        max_message_bytes: larger text messages are answered with an error.
    """

    def __init__(
        self,
        session_id: int,
        websocket: ServerConnection,
        make_retargeter: Callable[[], RetargeterLike],
        executor: concurrent.futures.Executor,
        *,
        stats_interval_s: float = 1.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.id = session_id
        self._ws = websocket
        self._make_retargeter = make_retargeter
        self._executor = executor
        self._stats_interval_s = stats_interval_s
        self._max_message_bytes = max_message_bytes
        self._pc: RTCPeerConnection | None = None
        self._stream: RetargetStream | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._started_s = time.perf_counter()

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
        try:
            async for message in self._ws:
                if not await self._handle(message):
                    break
        except ConnectionClosed as exc:
            log.info("session %d: websocket closed (%s)", self.id, exc)
        finally:
            await self.close()

    async def _handle(self, message: str | bytes) -> bool:
        """Handle one message; False ends the session."""
        if isinstance(message, bytes):
            await self.send_error("binary messages are not supported; send JSON text")
            return True
        size_bytes = len(message.encode("utf-8", errors="replace"))
        if size_bytes > self._max_message_bytes:
            await self.send_error(
                f"message too large: {size_bytes} bytes (at most {self._max_message_bytes})"
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
        await self.send_error(f"unknown message type {kind[:40]!r}; expected 'offer' or 'bye'")
        return True

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
            await self.send_error("this session already has a peer connection; send 'bye' and reconnect")
            return
        try:
            answer_sdp = await self._negotiate(sdp)
        except OfferError as exc:
            log.warning("session %d: offer rejected: %s", self.id, exc)
            await self._close_media()
            await self.send_error(str(exc))
            return
        except Exception as exc:  # aiortc raises many kinds of errors on hostile SDP; report, clean up, go on
            log.warning("session %d: cannot negotiate the offer", self.id, exc_info=True)
            await self._close_media()
            await self.send_error(f"cannot negotiate this offer: {type(exc).__name__}: {exc}")
            return
        if self._closing is not None or not await self.send({"type": "answer", "sdp": answer_sdp}):
            await self._close_media()  # the session ended while negotiating
            return
        self._spawn(self._send_stats(), "stats")
        log.info("session %d: answered; streaming", self.id)

    async def _negotiate(self, sdp: str) -> str:
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
        videos = [t for t in remote_tracks if t.kind == "video"]
        if not videos:
            raise OfferError("the offer has no video track; send the camera as a video track")
        for track in remote_tracks:
            if track is not videos[0]:  # unused tracks are drained, so aiortc's queues cannot grow
                self._spawn(self._drain(track), f"drain-{track.kind}")
        loop = asyncio.get_running_loop()
        try:
            retargeter = await loop.run_in_executor(self._executor, self._make_retargeter)
        except Exception as exc:
            log.exception("session %d: cannot create the retargeter", self.id)
            raise OfferError(f"server error: cannot start the retargeter: {exc}") from exc
        self._stream = RetargetStream(videos[0], retargeter, self._executor)
        pc.addTrack(self._stream.output)
        self._stream.start()
        await pc.setLocalDescription(await pc.createAnswer())  # aiortc: returns once ICE gathering is done
        return pc.localDescription.sdp

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        log.info("session %d: peer connection %s", self.id, pc.connectionState)
        if pc.connectionState == "failed" and pc is self._pc:
            self._spawn(self._peer_failed(), "peer-failed")

    async def _peer_failed(self) -> None:
        await self._close_media()
        await self.send_error("the peer connection failed; reconnect to start again")

    async def _drain(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    async def _send_stats(self) -> None:
        last_log_s = time.perf_counter()
        while self._stream is not None:
            await asyncio.sleep(self._stats_interval_s)
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

    async def send(self, message: dict[str, Any]) -> bool:
        """Send ``message`` as JSON; False if the WebSocket is already closed."""
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    async def send_error(self, text: str) -> bool:
        """Send ``{"type": "error", "message": text}``; False if the WebSocket is already closed."""
        log.info("session %d: error to client: %s", self.id, text)
        return await self.send({"type": "error", "message": text})

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


class SignalingServer:
    """Serves the page and the signaling WebSocket on one port, one :class:`Session` per WebSocket.

    Args:
        make_retargeter: builds a Retargeter for a new stream (called in ``executor``).
        executor: the thread pool that runs every Retargeter call; owned by the caller, shut down after
            :meth:`stop`.
        stats_interval_s: seconds between ``stats`` messages.
        max_message_bytes: text messages above this get an error answer.
        max_frame_bytes: the WebSocket's ``max_size``; messages above it close the connection (1009).
        web_dir: folder with ``index.html`` (and ``app.js``); defaults to :data:`WEB_DIR`.

    Use ``async with SignalingServer(...) as server: await server.start(host, port)``, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        make_retargeter: Callable[[], RetargeterLike],
        executor: concurrent.futures.Executor,
        *,
        stats_interval_s: float = 1.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        web_dir: Path = WEB_DIR,
    ) -> None:
        self._make_retargeter = make_retargeter
        self._executor = executor
        self._stats_interval_s = stats_interval_s
        self._max_message_bytes = max_message_bytes
        self._max_frame_bytes = max_frame_bytes
        self._web_dir = web_dir
        self._sessions: set[Session] = set()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._stopped = False
        self._pages: dict[str, tuple[str, str]] = {}

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
        )
        log.info("signaling server listening on %s:%d", host, self.port)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WEBSOCKET_PATH:
            return None  # the WebSocket handshake (websockets answers 426 to a plain GET)
        page = self._pages.get(path)
        if page is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"Not found: {path[:200]}\n")
        text, content_type = page
        response = connection.respond(http.HTTPStatus.OK, text)
        del response.headers["Content-Type"]  # websockets' Headers append on assignment
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def _handler(self, websocket: ServerConnection) -> None:
        session = Session(
            next(self._ids),
            websocket,
            self._make_retargeter,
            self._executor,
            stats_interval_s=self._stats_interval_s,
            max_message_bytes=self._max_message_bytes,
        )
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
