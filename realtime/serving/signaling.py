"""One port for the page, the WebRTC signaling, WHIP and WHEP (aiohttp): HTTP GETs serve
``realtime/serving/web``; ``/ws`` is the page's WebSocket; ``/whip`` and ``/whep`` are
:mod:`realtime.serving.whip`'s.

HTTP (plain GETs): ``/`` (the page), ``/app.js``, ``/obs`` and ``/obs.js`` (the OBS page: one session's target
full-window, for an OBS Browser Source), ``/targets`` (JSON: the targets this server offers, see
:meth:`SignalingServer.targets_message`) and ``/status`` (JSON: sessions, viewers, memory, CPU time, workers;
see :meth:`SignalingServer.status`). With an SSL context everything is HTTPS and WSS on the same port.

Access (:mod:`realtime.serving.access`): the WebSocket is accepted only from the server's own page or an
allowed origin (else 403); with a token, ``/ws`` (``?token=``), ``/targets``, ``/status``, WHIP and WHEP
need it (else 401); session starts per client address are limited (429). Each refusal is one plain-text line
with its status, and logged.

Protocol on ``/ws`` (JSON text messages, one session per WebSocket, at most ``max_sessions`` sessions at once,
the page's and WHIP's together):

- server -> client, on connecting when ``max_sessions`` sessions are already open:
  ``{"type": "error", "code": "server_full", "message": "..."}``, then the server closes the WebSocket with
  code 1013 (try again later).
- client -> server ``{"type": "offer", "sdp": "...", "sdpType": "offer", "target": "NAME"}``: the client's
  offer, sent after its ICE gathering completed (no trickle ICE); ``target`` (optional) is one of the names of
  ``/targets``, the first one by default. The server answers ``{"type": "answer", "sdp": "...", "target":
  "NAME", "session": ID}`` after its own ICE gathering completed (``ID``: the session's number, for its WHEP
  playback ``/whep/ID`` and its OBS page ``/obs?session=ID``), then sends the generated video (stick figure |
  generated, side by side, with the camera frames' timestamps) on the offer's video transceiver; where the
  offer names the RTP playout-delay extension, the answer does too and the video carries it at zero
  (``SessionSettings.zero_playout_delay``).
- server -> client ``{"type": "stats", ...}`` about once a second while streaming (see
  :meth:`realtime.serving.stats.StreamStatsSnapshot.to_message`: frames in / out / dropped / failed, fps,
  per-frame server latency in ms (mean, last and every value over the last second), pipeline timings), with
  ``viewers``: the session's WHEP viewers.
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
- client -> server ``{"type": "action", "label": "wave", "seconds": 4}``: this session's target performs the
  action (one of the target's ``actions`` in ``/targets``; ``seconds`` > 0, at most
  :data:`MAX_ACTION_SECONDS`, 4 when absent) in place of the camera's poses, then blends back to the live pose
  (issue 22; :meth:`realtime.model.pipeline.Retargeter.play_action`). Answered ``{"type": "action", "label":
  "wave", "seconds": S}`` (``S``: the duration played, whole frames of the action model) once it is queued
  for the next frame; an error ``bad_message`` for a session without a stream yet, an unknown label or bad
  seconds.
- client -> server ``{"type": "bye"}`` or closing the WebSocket ends the session: the stream stops (tasks
  cancelled, Retargeter closed), its viewers end, the peer connection is closed, and the server closes the
  WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import resource
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from realtime.catalog import DEFAULT_MAX_SESSIONS
from realtime.cli import rgb_colour
from realtime.serving.access import AccessPolicy, Refusal
from realtime.serving.media import OfferError, PublishedStream, SessionSettings, TargetChoice
from realtime.serving.rate import InputRateControl
from realtime.serving.stages import RetargetStream
from realtime.serving.whip import WhipWhep, refusal_response
from realtime.serving.workers import StreamWorkers

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
"""The page's files, located relative to this module (never the working directory)."""

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/stamp.js": ("stamp.js", "text/javascript; charset=utf-8"),
    "/obs": ("obs.html", "text/html; charset=utf-8"),
    "/obs.js": ("obs.js", "text/javascript; charset=utf-8"),
}
WEBSOCKET_PATH = "/ws"
MAX_FRAME_BYTES = 1 << 20
"""The WebSocket's ``max_size``: a bigger message closes the connection with code 1009."""
MAX_MESSAGE_BYTES = 64 << 10
"""Messages bigger than this (but under ``MAX_FRAME_BYTES``) are answered with an error (SDP offers are a few
KiB)."""
MAX_ACTION_SECONDS = 30.0
"""The longest action an ``action`` message may ask for."""
CLOSE_TRY_AGAIN_LATER = 1013
"""WebSocket close code for a full server."""

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "WEB_DIR",
    "OfferError",
    "Session",
    "SessionSettings",
    "SignalingServer",
    "TargetChoice",
]


class Session:
    """One WebSocket client: at most one published camera (:class:`realtime.serving.media.PublishedStream`)
    at a time.

    Args:
        session_id: a number for the logs, the WHEP URL and the OBS page.
        websocket: the client's prepared WebSocket.
        remote: the client's address, for the logs.
        targets: the targets the client may choose, by name; the first is the default.
        workers: the server's shared inference threads.
        settings: limits and intervals.
        published: the server's table of streams by session id, where this session's stream is listed
            while it runs (for WHEP viewers).
        viewer_ids: the server's viewer-id counter.
    """

    def __init__(
        self,
        session_id: int,
        websocket: web.WebSocketResponse,
        remote: str,
        targets: dict[str, TargetChoice],
        workers: StreamWorkers,
        settings: SessionSettings,
        published: dict[int, PublishedStream] | None = None,
        viewer_ids: itertools.count[int] | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a session needs at least one target")
        self.id = session_id
        self._ws = websocket
        self._remote = remote
        self._targets = targets
        self._workers = workers
        self._settings = settings
        self._published = published if published is not None else {}
        self._viewer_ids = viewer_ids or itertools.count(1)
        self._media: PublishedStream | None = None
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
        return None if self._media is None else self._media.stream

    @property
    def media(self) -> PublishedStream | None:
        """The published camera and its viewers, once an offer was answered."""
        return self._media

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """The session's own tasks still running (stats, draining unused tracks, failure handling)."""
        media_tasks = set() if self._media is None else self._media.tasks
        return {t for t in self._tasks if not t.done()} | media_tasks

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
        log.info("session %d: connected from %s", self.id, self._remote)
        self._spawn(self._offer_deadline(), "offer-deadline")
        try:
            async for message in self._ws:
                if message.type == WSMsgType.TEXT:
                    if not await self._handle(message.data):
                        break
                elif message.type == WSMsgType.BINARY:
                    await self.send_error("binary messages are not supported; send JSON text")
                elif message.type == WSMsgType.ERROR:
                    log.info("session %d: websocket error (%s)", self.id, message.data)
                    break
            log.info("session %d: websocket closed (%s)", self.id, self._ws.close_code)
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

    async def _handle(self, message: str) -> bool:
        """Handle one text message; False ends the session."""
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
        if kind == "action":
            await self._handle_action(msg)
            return True
        await self.send_error(
            f"unknown message type {kind[:40]!r}; expected 'offer', 'garment_colour', 'action' or 'bye'"
        )
        return True

    async def _handle_action(self, msg: dict[str, Any]) -> None:
        """Play an ``action`` message's action (see the module docstring) off the event loop."""
        label, seconds = msg.get("label"), msg.get("seconds", 4.0)
        retargeter = None if self._media is None else self._media.retargeter
        if retargeter is None or not hasattr(retargeter, "play_action"):
            await self.send_error("action needs a running session: send an offer first")
            return
        if (
            not isinstance(label, str)
            or isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_ACTION_SECONDS
        ):
            await self.send_error(
                f"action needs a string 'label' and a number 'seconds' in (0, {MAX_ACTION_SECONDS:g}]"
            )
            return
        try:
            played_s = await asyncio.to_thread(retargeter.play_action, label[:40], float(seconds))
        except (ValueError, FileNotFoundError) as exc:
            await self.send_error(f"action: {exc}")
            return
        log.info("session %d: action %s for %.2f s", self.id, label, played_s)
        await self.send({"type": "action", "label": label, "seconds": round(float(played_s), 3)})

    async def _handle_garment_colour(self, msg: dict[str, Any]) -> None:
        """Apply a ``garment_colour`` message (see the module docstring) off the event loop."""
        garment, colour = msg.get("garment"), msg.get("colour")
        retargeter = None if self._media is None else self._media.retargeter
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
        if self._media is not None:
            await self.send_error(
                "this session is already streaming and renegotiation is not supported; "
                "send 'bye' and reconnect to change the camera's tracks or the target",
                "bad_offer",
            )
            return
        media = PublishedStream(
            self.id, self._workers, self._settings, send_back=True,
            on_failed=lambda: self._spawn(self._peer_failed(), "peer-failed"), viewer_ids=self._viewer_ids,
        )  # fmt: skip
        self._media = media
        try:
            target = self._choose_target(msg)
            answer_sdp = await media.negotiate(sdp, target)
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
        self._published[self.id] = media
        answer = {"type": "answer", "sdp": answer_sdp, "target": target.name, "session": self.id}
        if not await self.send(answer):
            await self._close_media()
            return
        self._spawn(self._send_stats(), "stats")
        log.info("session %d: answered; streaming target %r", self.id, target.name)

    async def _peer_failed(self) -> None:
        await self._close_media()
        await self.send_error("the peer connection failed; reconnect to start again", "peer_failed")

    async def _send_stats(self) -> None:
        last_log_s = time.perf_counter()
        while self.stream is not None:
            await asyncio.sleep(self._settings.stats_interval_s)
            stream, media = self.stream, self._media
            if stream is None or media is None:
                return
            snapshot = stream.stats.snapshot()
            message = snapshot.to_message()
            message["uptime_s"] = round(time.perf_counter() - self._started_s, 3)
            message["viewers"] = [v.describe() for v in media.viewers.values()]
            log.debug("session %d: stats %s", self.id, message)
            if time.perf_counter() - last_log_s >= 10.0:
                last_log_s = time.perf_counter()
                log.info(
                    "session %d: in %.1f fps, out %.1f fps, latency %s ms (mean over %.0f s), "
                    "%d dropped, %d failed, %d viewer(s)",
                    self.id,
                    snapshot.fps_in,
                    snapshot.fps_out,
                    "n/a" if snapshot.latency_ms_mean is None else f"{snapshot.latency_ms_mean:.1f}",
                    snapshot.window_s,
                    snapshot.frames_dropped,
                    snapshot.frames_failed,
                    len(media.viewers),
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
        if self._ws.closed:
            return False
        try:
            await self._ws.send_str(json.dumps(message))
        except ConnectionError:
            return False
        return True

    async def send_error(self, text: str, code: str = "bad_message") -> bool:
        """Send ``{"type": "error", "message": text, "code": code}``; False if the WebSocket is closed."""
        log.info("session %d: error to client (%s): %s", self.id, code, text)
        return await self.send({"type": "error", "message": text, "code": code})

    async def _close_media(self) -> None:
        """Stop the stream and its viewers, close the peer connection. Idempotent."""
        media, self._media = self._media, None
        if media is not None:
            if self._published.get(self.id) is media:
                del self._published[self.id]
            await media.close()

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
            await self._ws.close(code=code, message=reason.encode())
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
    """Serves the page, the signaling WebSocket, WHIP and WHEP on one port (aiohttp), one :class:`Session`
    per WebSocket and one :class:`realtime.serving.media.PublishedStream` per WHIP client.

    Args:
        targets: the targets offered, the first being the default (names must be unique).
        workers: the shared pose and generation threads; owned by the caller, shut down after :meth:`stop`.
        max_sessions: sessions served at once (the page's and WHIP's together); the next client gets a
            ``server_full`` error (WHIP: 503).
        ssl_context: serve HTTPS and WSS instead of HTTP and WS.
        settings: per-session limits and intervals (and the test stamp).
        max_frame_bytes: the WebSocket's ``max_size``; messages above it close the connection (1009).
        web_dir: folder with ``index.html`` (and ``app.js``, ``obs.html``, ``obs.js``); defaults to
            :data:`WEB_DIR`.
        access: the origin allowlist, the token and the limit on session starts per address
            (:class:`realtime.serving.access.AccessPolicy`; none of them by default: loopback use).

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
        access: AccessPolicy | None = None,
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
        self.access = access or AccessPolicy()
        self._max_frame_bytes = max_frame_bytes
        self._web_dir = web_dir
        self._sessions: set[Session] = set()
        self._ids = itertools.count(1)
        self._viewer_ids = itertools.count(1)
        self.published: dict[int, PublishedStream] = {}
        """The streams running, by session id (the page's and WHIP's): what WHEP viewers watch."""
        self.whip = WhipWhep(
            self._targets, workers, self.settings, self.access, published=self.published,
            session_ids=self._ids, viewer_ids=self._viewer_ids, is_full=self._is_full,
            on_refused=self._count_refused, own_origin=self._own_origin,
        )  # fmt: skip
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._stopped = False
        self._pages: dict[str, tuple[str, str]] = {}
        self._started_s = time.perf_counter()
        self.refused = 0
        """Clients turned away because the server was full."""
        self.refusals: dict[int, int] = {}
        """Requests refused by the access policy, by HTTP status (401, 403, 429)."""

    @property
    def sessions(self) -> frozenset[Session]:
        """The page's sessions currently open (WHIP sessions: :attr:`whip_sessions`)."""
        return frozenset(self._sessions)

    @property
    def whip_sessions(self) -> frozenset[PublishedStream]:
        """WHIP sessions currently open."""
        return frozenset(self.whip.sessions.values())

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``).

        Raises:
            RuntimeError: before :meth:`start`.
        """
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the server is not started")
        return int(self._runner.addresses[0][1])

    def _is_full(self) -> bool:
        return len(self._sessions) + len(self.whip.sessions) >= self.max_sessions

    def _count_refused(self, status: int) -> None:
        if status == 503:
            self.refused += 1
        else:
            self.refusals[status] = self.refusals.get(status, 0) + 1

    def _own_origin(self, request: web.BaseRequest) -> str:
        """The origin of this server's own page as the client reached it (scheme and ``Host``)."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{request.host}"

    def targets_message(self) -> dict[str, Any]:
        """What ``GET /targets`` returns: ``{"targets": [{"name", "canvas_size", "garments"}], "default":
        name, "test_stamp": bool, "max_sessions": n, "max_input_fps": fps or null}``."""
        return {
            "targets": [t.describe() for t in self._targets.values()],
            "default": next(iter(self._targets)),
            "test_stamp": self.settings.test_stamp,
            "max_sessions": self.max_sessions,
            "max_input_fps": self.settings.max_input_fps or None,
        }

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` returns: open sessions (the page's and WHIP's) and streams, WHEP viewers,
        clients refused (full; and by the access policy, by status), resident memory in bytes, CPU seconds
        used by the process, asyncio tasks and threads alive, and per worker its jobs, busy seconds and
        waiting stages."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "sessions": len(self._sessions) + len(self.whip.sessions),
            "whip_sessions": len(self.whip.sessions),
            "streams": len(self.published),
            "viewers": sum(len(p.viewers) for p in self.published.values()),
            "max_sessions": self.max_sessions,
            "refused": self.refused,
            "refused_by_access": {str(k): v for k, v in sorted(self.refusals.items())},
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
        app = web.Application(client_max_size=self.settings.max_message_bytes)
        app.router.add_get(WEBSOCKET_PATH, self._websocket)
        app.router.add_get("/targets", self._json_route(self.targets_message))
        app.router.add_get("/status", self._json_route(self.status))
        self.whip.add_routes(app.router)
        app.router.add_route("*", "/{path:.*}", self._static)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        scheme = "wss" if self._ssl_context is not None else "ws"
        log.info("signaling server listening on %s:%d (%s)", host, self.port, scheme)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405, text=f"{request.method} is not allowed here\n", headers={"Allow": "GET"}
            )
        page = self._pages.get(request.path)
        if page is None:
            return web.Response(status=404, text=f"Not found: {request.path[:200]}\n")
        text, content_type = page
        return web.Response(text=text, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    def _json_route(self, make: Any) -> Any:
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                self.access.check_token(request.headers, request.query, request.path)
            except Refusal as refusal:
                return self._refuse(request, refusal)
            return web.Response(
                body=json.dumps(make()).encode(),
                headers={"Content-Type": "application/json", "Cache-Control": "no-cache"},
            )

        return route

    def _refuse(self, request: web.BaseRequest, refusal: Refusal) -> web.Response:
        self._count_refused(refusal.status)
        return refusal_response(request, refusal)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self._max_frame_bytes, autoping=True)
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=426, text="this is the page's WebSocket: connect with a WebSocket client\n",
                headers={"Upgrade": "websocket", "Connection": "Upgrade"},
            )  # fmt: skip
        try:
            self.access.check_origin(
                request.headers.get("Origin"), self._own_origin(request), "the WebSocket"
            )
            self.access.check_token(request.headers, request.query, "the WebSocket")
            if not self._stopped and not self._is_full():
                self.access.starts.admit(request.remote or "")
        except Refusal as refusal:
            return self._refuse(request, refusal)
        await ws.prepare(request)
        if self._stopped:
            await ws.close(code=1001, message=b"server shutting down")
            return ws
        if self._is_full():
            self.refused += 1
            log.warning("refusing a client from %s: %d sessions open", request.remote, self.max_sessions)
            message = (
                f"the server is full: it serves {self.max_sessions} session(s) at once and all are in use; "
                "try again later"
            )
            if not ws.closed:
                try:
                    await ws.send_str(
                        json.dumps({"type": "error", "code": "server_full", "message": message})
                    )
                except ConnectionError:
                    return ws
            await ws.close(code=CLOSE_TRY_AGAIN_LATER, message=b"server full")
            return ws
        session = Session(
            next(self._ids), ws, request.remote or "?", self._targets, self._workers, self.settings,
            self.published, self._viewer_ids,
        )  # fmt: skip
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws

    async def stop(self) -> None:
        """Close every session (streams stopped, viewers ended, peer connections closed, tasks cancelled),
        then stop listening and wait for the connection handlers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        sessions = list(self._sessions)
        if sessions or self.whip.sessions:
            log.info("closing %d session(s)", len(sessions) + len(self.whip.sessions))
        await asyncio.gather(*(s.close(1001, "server shutting down") for s in sessions))
        await self.whip.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("signaling server stopped")

    async def __aenter__(self) -> SignalingServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
