"""The media of a session, whoever signals it: one published camera (:class:`PublishedStream`: its peer
connection, its :class:`realtime.serving.stages.RetargetStream`) and the viewers that watch what it generates
(:class:`Viewer`: a peer connection each, fed through the stream's sink relay).

The page's WebSocket session (:mod:`realtime.serving.signaling`) and a WHIP client
(:mod:`realtime.serving.whip`, RFC 9725) both publish through :class:`PublishedStream`: the offer's video
track is the camera; the page's session also gets the generated video back on the same peer connection
(``send_back``), a WHIP session does not (WHIP is ingest only; its output goes to WHEP viewers, the virtual
camera, the recorder). A WHEP viewer (draft-ietf-wish-whep) is a peer connection that only sends: a
:class:`realtime.serving.webrtc_track.BrowserTrackSink` of the chosen view attached to the stream's relay,
so one dancer is watched by any number of viewers, each dropping only its own stale frames.

Offers come whole (no trickle ICE: aiortc gathers its candidates before answering).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.serving.aiortc_patch import (
    AiortcInternalsError,
    use_marker_jitter_buffers,
    use_zero_playout_delay,
)
from realtime.serving.sink import OutputSink
from realtime.serving.stages import RetargeterLike, RetargetStream
from realtime.serving.stats import StreamStats
from realtime.serving.webrtc_track import VIEWS, BrowserTrackSink
from realtime.serving.workers import StreamWorkers

log = logging.getLogger(__name__)

DEFAULT_OFFER_TIMEOUT_S = 30.0
"""A client that sends no usable offer this long after connecting is closed (it holds a session slot)."""


class OfferError(Exception):
    """An offer this server cannot use; the message is sent to the client with ``code``."""

    def __init__(self, message: str, code: str = "bad_offer") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TargetChoice:
    """A target the server offers.

    Attributes:
        name: what the page lists and the offer's ``target`` (or the WHIP URL) names.
        make_retargeter: builds a Retargeter for one stream (slow: called off the event loop).
        canvas_size: ``(width, height)`` of the generated frames in pixels, if known.
        garments: the garments whose colour a session may change (``realtime.catalog.GARMENTS``; empty for a
            target without a reference appearance).
        actions: the actions a session may ask its target to perform (``action`` messages).
    """

    name: str
    make_retargeter: Callable[[], RetargeterLike]
    canvas_size: tuple[int, int] | None = None
    garments: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON form for ``/targets``."""
        size = None if self.canvas_size is None else list(self.canvas_size)
        return {
            "name": self.name,
            "canvas_size": size,
            "garments": list(self.garments),
            "actions": list(self.actions),
        }


@dataclass(frozen=True)
class SessionSettings:
    """What every session of a server shares.

    Attributes:
        stats_interval_s: seconds between ``stats`` messages.
        max_message_bytes: larger text messages (and WHIP / WHEP offers) are answered with an error.
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
            stream starts (on the event loop: keep it light); the sink it returns is attached to that stream
            (:meth:`realtime.serving.stages.RetargetStream.add_sink`) and stopped with it; a factory that has
            nothing for this session (e.g. a virtual camera held by another session) returns None.
        max_viewers: WHEP viewers of one session at once (the next is refused with 503).
    """

    stats_interval_s: float = 1.0
    max_message_bytes: int = 64 << 10
    offer_timeout_s: float = DEFAULT_OFFER_TIMEOUT_S
    test_stamp: bool = False
    max_input_fps: float = 0.0
    zero_playout_delay: bool = True
    sinks: tuple[Callable[[int], OutputSink[Any] | None], ...] = ()
    max_viewers: int = 8


class Viewer:
    """One WHEP viewer of a session: a peer connection sending one view of the session's generated video.

    Attributes:
        id: unique among the server's viewers.
        view: one of :data:`realtime.serving.webrtc_track.VIEWS`.
        stats: frames this viewer's track sent and their server latencies.
    """

    def __init__(
        self, viewer_id: int, view: str, pc: RTCPeerConnection, sink: BrowserTrackSink, stats: StreamStats
    ) -> None:
        self.id = viewer_id
        self.view = view
        self.pc = pc
        self.sink = sink
        self.stats = stats
        self.started_s = time.perf_counter()

    def describe(self) -> dict[str, Any]:
        """JSON for ``/status``: id, view, connection state, frames sent and fps over the last second."""
        snapshot = self.stats.snapshot()
        return {
            "id": self.id,
            "view": self.view,
            "state": self.pc.connectionState,
            "frames_sent": snapshot.frames_out,
            "fps": round(snapshot.fps_out, 2),
        }


class PublishedStream:
    """One camera published to the server and what it generates: the peer connection that receives the
    camera, the :class:`RetargetStream`, the settings' sinks and the WHEP viewers.

    Args:
        session_id: the session's number (logs, the sinks' factories, the WHEP URL).
        workers: the server's shared inference threads.
        settings: the server's session settings.
        send_back: send the generated video (stick figure | generated) back on the camera's own peer
            connection (the page); False for WHIP (ingest only).
        on_failed: called on the event loop when the camera's peer connection fails.
        viewer_ids: where viewer ids come from (the server's counter, so they are unique server-wide).
    """

    def __init__(
        self,
        session_id: int,
        workers: StreamWorkers,
        settings: SessionSettings,
        *,
        send_back: bool,
        on_failed: Callable[[], object] | None = None,
        viewer_ids: itertools.count[int] | None = None,
    ) -> None:
        self.id = session_id
        self._workers = workers
        self._settings = settings
        self._send_back = send_back
        self._on_failed = on_failed
        self._viewer_ids = viewer_ids or itertools.count(1)
        self.pc: RTCPeerConnection | None = None
        self.stream: RetargetStream | None = None
        self.retargeter: RetargeterLike | None = None
        self.target: str | None = None
        self.viewers: dict[int, Viewer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        """Tasks of this stream still running (draining unused tracks)."""
        return {t for t in self._tasks if not t.done()}

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def negotiate(self, sdp: str, target: TargetChoice) -> str:
        """Set up the peer connection and the stream for the offer ``sdp``; returns the answer's SDP.

        Raises:
            OfferError: for a second offer, an offer without a video track, or a Retargeter that cannot be
                made (``server_error``).
            Whatever aiortc raises for an SDP it cannot use (the caller closes this stream).
        """
        if self.pc is not None or self._closed:
            raise OfferError(
                "this session is already streaming and renegotiation is not supported; "
                "send 'bye' and reconnect to change the camera's tracks or the target"
            )
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
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
                self._spawn(_drain(track), f"drain-{track.kind}")
        try:
            retargeter = await asyncio.to_thread(target.make_retargeter)
        except Exception as exc:
            log.exception("session %d: cannot create the retargeter for %r", self.id, target.name)
            raise OfferError(f"server error: cannot start the retargeter: {exc}", "server_error") from exc
        stream = RetargetStream(videos[0], retargeter, self._workers, test_stamp=self._settings.test_stamp)
        self.stream, self.retargeter = stream, retargeter
        if self._send_back:
            pc.addTrack(stream.output)
        else:
            await stream.remove_sink(stream.browser)  # nobody pulls it: no composition for nothing
        for make_sink in self._settings.sinks:  # an output that cannot be made is logged; the session goes on
            try:
                sink = make_sink(self.id)
                if sink is not None:
                    stream.add_sink(sink)
            except Exception:
                log.exception("session %d: cannot attach an output", self.id)
        stream.start()
        if self._send_back:
            self._zero_playout_delay(pc)
        await pc.setLocalDescription(await pc.createAnswer())  # aiortc: returns once ICE gathering is done
        self.target = target.name
        return pc.localDescription.sdp

    def _zero_playout_delay(self, pc: RTCPeerConnection) -> None:
        if self._settings.zero_playout_delay:
            try:
                use_zero_playout_delay(pc)  # the browser shows each generated frame once decoded
            except AiortcInternalsError as exc:
                log.warning("session %d: the browser will add its own playout delay: %s", self.id, exc)

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        log.info("session %d: peer connection %s", self.id, pc.connectionState)
        if pc.connectionState == "failed" and pc is self.pc and self._on_failed is not None:
            self._on_failed()

    async def add_viewer(self, sdp: str, view: str) -> tuple[Viewer, str]:
        """A WHEP viewer for the offer ``sdp``: a peer connection sending ``view`` of the generated video.
        Returns the viewer and the answer's SDP. The viewer ends by :meth:`remove_viewer`, when its peer
        connection fails or closes, or with this stream.

        Raises:
            OfferError: before the stream runs, for an unknown view, an offer that cannot receive video, or
                ``max_viewers`` viewers already watching (code ``full``).
            Whatever aiortc raises for an SDP it cannot use.
        """
        stream = self.stream
        if stream is None or self._closed:
            raise OfferError("this session is not streaming yet", "not_streaming")
        if view not in VIEWS:
            raise OfferError(f"unknown view {view[:40]!r}; one of {', '.join(VIEWS)}")
        if len(self.viewers) >= self._settings.max_viewers:
            raise OfferError(f"session {self.id} already has {len(self.viewers)} viewers (the most)", "full")
        viewer_id = next(self._viewer_ids)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        stats = StreamStats()
        sink = BrowserTrackSink(stats, view)
        viewer = Viewer(viewer_id, view, pc, sink, stats)
        pc.on("track", lambda track: self._spawn(_drain(track), f"viewer-{viewer_id}-drain-{track.kind}"))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                raise OfferError("the offer has no video to receive; offer a recvonly video transceiver")
            pc.addTrack(sink.track)
            self._zero_playout_delay(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            if self.stream is not stream or self._closed:
                raise OfferError("the session ended while the viewer was being answered", "not_streaming")
            stream.add_sink(sink)
        except BaseException:
            await pc.close()
            sink.track.stop()
            raise
        self.viewers[viewer_id] = viewer

        def on_state() -> None:
            log.info("session %d: viewer %d %s", self.id, viewer_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed") and viewer_id in self.viewers:
                self._spawn(self.remove_viewer(viewer_id), f"viewer-{viewer_id}-gone")

        pc.on("connectionstatechange", on_state)
        log.info("session %d: viewer %d watching (%s)", self.id, viewer_id, view)
        return viewer, pc.localDescription.sdp

    async def remove_viewer(self, viewer_id: int) -> bool:
        """End viewer ``viewer_id``: its sink detached, its peer connection closed. False if unknown."""
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        stream = self.stream
        if stream is not None:
            await stream.remove_sink(viewer.sink)
        viewer.sink.track.stop()
        await viewer.pc.close()
        log.info(
            "session %d: viewer %d left after %.1f s",
            self.id,
            viewer_id,
            time.perf_counter() - viewer.started_s,
        )
        return True

    async def close(self) -> None:
        """Stop the viewers, the stream (tasks, Retargeter) and close the peer connection. Idempotent."""
        self._closed = True
        for viewer_id in list(self.viewers):
            await self.remove_viewer(viewer_id)
        stream, self.stream = self.stream, None
        pc, self.pc = self.pc, None
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
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _drain(track: MediaStreamTrack) -> None:
    """Receive and drop ``track``'s frames until it ends (so aiortc's queues cannot grow)."""
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        return
