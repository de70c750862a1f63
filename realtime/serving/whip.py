"""WHIP ingest (RFC 9725) and WHEP playback (draft-ietf-wish-whep) on the server's port.

- ``POST /whip/TARGET`` (or ``/whip`` for the default target) with an SDP offer (``Content-Type:
  application/sdp``, ``Authorization: Bearer TOKEN`` where the server has a token) publishes a camera as a
  session like the page's: 201 Created with the SDP answer and ``Location: /whip/sessions/ID``; ``DELETE``
  on that URL ends it (200). The generated video goes to the session's WHEP viewers and the server's other
  outputs (virtual camera, recorder); WHIP itself is ingest only.
- ``POST /whep/ID?view=target|side_by_side`` with an SDP offer (recvonly video) plays session ``ID``'s
  generated video (the target alone by default, or stick figure | generated), from the page or WHIP alike:
  201 with the answer and ``Location: /whep/ID/viewers/VIEWER``; ``DELETE`` there ends that viewer. Any
  number of viewers (up to ``SessionSettings.max_viewers`` a session), each through the stream's relay.
- Errors as RFC 9725 Sec. 4.2 and 4.6 say: 400 (an offer that cannot be negotiated or is not UTF-8 text,
  an unknown view), 401 (no or a wrong token, with ``WWW-Authenticate: Bearer``), 403 (a browser page of
  an origin not allowed), 404 (an unknown target, session or resource), 405 (another method; ``PATCH``:
  no trickle ICE or ICE restarts here; with ``Allow``), 413 (an offer over ``max_message_bytes``), 415 (a
  body that is not ``application/sdp``), 429 (too many session starts from one address, with
  ``Retry-After``), 503 (the server or the session is full, with ``Retry-After``). Every refusal is one
  plain-text line, and logged.
- ``OPTIONS`` answers CORS preflights for the page's own origin and the allowlist (``Accept-Post:
  application/sdp``), so browser WHIP/WHEP clients on other pages may call the endpoints.

Offers must carry their ICE candidates (clients wait for gathering: the Eyevinn clients' ``noTrickleIce``;
OBS does).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from realtime.serving.access import AccessPolicy, Refusal
from realtime.serving.media import OfferError, PublishedStream, SessionSettings, TargetChoice
from realtime.serving.workers import StreamWorkers

log = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
RETRY_AFTER_FULL_S = 10
"""``Retry-After`` of a 503 (full) answer, in seconds."""
CORS_METHODS = "POST, DELETE, OPTIONS, PATCH"
CORS_HEADERS = "Authorization, Content-Type, If-Match"
CORS_EXPOSE = "Location, Link, ETag, Accept-Patch, Retry-After"


def _cors_headers(request: web.BaseRequest) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": CORS_EXPOSE,
        "Vary": "Origin",
    }


def refusal_response(request: web.BaseRequest, refusal: Refusal) -> web.Response:
    """The HTTP answer to a refused request: ``refusal.status`` with its line as plain text (and
    ``WWW-Authenticate`` for 401, ``Retry-After`` for 429 / 503); logged at warning level."""
    log.warning(
        "refused %s %s from %s: %d %s", request.method, request.path[:100], request.remote, refusal.status,
        refusal.message,
    )  # fmt: skip
    headers = _cors_headers(request) if refusal.status != 403 else {}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dance-live"'
    if refusal.retry_after_s:
        headers["Retry-After"] = str(refusal.retry_after_s)
    return web.Response(status=refusal.status, text=refusal.message + "\n", headers=headers)


class WhipWhep:
    """The WHIP and WHEP endpoints of a :class:`realtime.serving.signaling.SignalingServer` (see the module
    docstring).

    Args:
        targets: the server's targets by name, the first the default.
        workers: the shared inference threads.
        settings: the server's session settings.
        access: the server's access policy.
        published: the server's table of running streams by session id (WHIP sessions are added to it).
        session_ids, viewer_ids: the server's counters.
        is_full: whether the server already serves ``max_sessions`` sessions.
        on_refused: called with the HTTP status of every refusal (for ``/status``).
        own_origin: the origin of the server's own page for a request.
    """

    def __init__(
        self,
        targets: dict[str, TargetChoice],
        workers: StreamWorkers,
        settings: SessionSettings,
        access: AccessPolicy,
        *,
        published: dict[int, PublishedStream],
        session_ids: itertools.count[int],
        viewer_ids: itertools.count[int],
        is_full: Callable[[], bool],
        on_refused: Callable[[int], None],
        own_origin: Callable[[web.BaseRequest], str],
    ) -> None:
        self._targets = targets
        self._workers = workers
        self._settings = settings
        self._access = access
        self._published = published
        self._session_ids = session_ids
        self._viewer_ids = viewer_ids
        self._is_full = is_full
        self._on_refused = on_refused
        self._own_origin = own_origin
        self.sessions: dict[int, PublishedStream] = {}
        """WHIP sessions open, by id."""
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register ``/whip...`` and ``/whep...`` on ``router``."""
        router.add_route("*", "/whip", self._whip)
        router.add_route("*", "/whip/sessions/{session}", self._whip_session)
        router.add_route("*", "/whip/{target}", self._whip)
        router.add_route("*", "/whep/{session}", self._whep)
        router.add_route("*", "/whep/{session}/viewers/{viewer}", self._whep_viewer)

    # -- the shared checks -----------------------------------------------------------------------------------

    def _refuse(
        self, request: web.BaseRequest, status: int, message: str, retry_after_s: int = 0
    ) -> web.Response:
        self._on_refused(status)
        return refusal_response(request, Refusal(status, message, retry_after_s))

    def _preflight(self, request: web.BaseRequest) -> web.Response:
        """The answer to ``OPTIONS``: CORS for allowed origins, ``Accept-Post`` for WHIP/WHEP clients."""
        origin = request.headers.get("Origin")
        if not self._access.origin_allowed(origin, self._own_origin(request)):
            return self._refuse(request, 403, f"origin {str(origin)[:100]!r} is not allowed (--allow-origin)")
        headers = {"Accept-Post": SDP_TYPE, **_cors_headers(request)}
        if origin is not None:
            headers.update(
                {"Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Allow-Headers": CORS_HEADERS,
                 "Access-Control-Max-Age": "600"}
            )  # fmt: skip
        return web.Response(status=204, headers=headers)

    def _admissible(self, request: web.BaseRequest, method: str, what: str) -> web.Response | None:
        """None when ``request`` is ``method`` from an allowed origin with the token; else the answer: the
        CORS preflight for ``OPTIONS``, 405 for another method, the refusal (403, 401)."""
        if request.method == "OPTIONS":
            return self._preflight(request)
        if request.method != method:
            return self._method_not_allowed(request, f"{method}, OPTIONS")
        return self._check(request, what)

    def _check(self, request: web.BaseRequest, what: str) -> web.Response | None:
        """Origin and token; the refusal's response, or None when the request may go on."""
        try:
            self._access.check_origin(request.headers.get("Origin"), self._own_origin(request), what)
            self._access.check_token(request.headers, request.query, what)
        except Refusal as refusal:
            self._on_refused(refusal.status)
            return refusal_response(request, refusal)
        return None

    def _method_not_allowed(self, request: web.BaseRequest, allow: str) -> web.Response:
        what = (
            "trickle ICE and ICE restarts are not supported" if request.method == "PATCH" else "not allowed"
        )
        return web.Response(
            status=405, text=f"{request.method} {request.path[:100]}: {what}; allowed: {allow}\n",
            headers={"Allow": allow, **_cors_headers(request)},
        )  # fmt: skip

    async def _read_offer(self, request: web.Request, what: str) -> str | web.Response:
        """The SDP offer of a POST, or the refusal's response (415, 413, 400)."""
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != SDP_TYPE:
            return self._refuse(
                request,
                415,
                f"{what} takes an SDP offer as {SDP_TYPE}, got {content_type[:60] or 'no type'!r}",
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(request, 413, f"the offer is over {self._settings.max_message_bytes} bytes")
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(request, 400, "the offer is not UTF-8 text")
        if not sdp.lstrip().startswith("v=0"):
            return self._refuse(request, 400, "the offer is not an SDP session description (no 'v=0' line)")
        return sdp

    def _answer(self, request: web.BaseRequest, sdp: str, location: str) -> web.Response:
        headers = {"Location": location, "Content-Type": SDP_TYPE, **_cors_headers(request)}
        return web.Response(status=201, body=sdp.encode(), headers=headers)

    def _admit(self, request: web.BaseRequest) -> web.Response | None:
        try:
            self._access.starts.admit(request.remote or "")
        except Refusal as refusal:
            self._on_refused(refusal.status)
            return refusal_response(request, refusal)
        return None

    # -- WHIP ------------------------------------------------------------------------------------------------

    async def _whip(self, request: web.Request) -> web.StreamResponse:
        refused = self._admissible(request, "POST", "WHIP")
        if refused is not None:
            return refused
        name = request.match_info.get("target")
        if name is not None and name not in self._targets:
            available = ", ".join(self._targets)
            return self._refuse(request, 404, f"unknown target {name[:60]!r}; this server has {available}")
        target = self._targets[name] if name is not None else next(iter(self._targets.values()))
        offer = await self._read_offer(request, "WHIP")
        if isinstance(offer, web.Response):
            return offer
        if self._is_full():
            return self._refuse(
                request,
                503,
                "the server is full: all its sessions are in use; try again later",
                RETRY_AFTER_FULL_S,
            )
        refused = self._admit(request)
        if refused is not None:
            return refused
        session_id = next(self._session_ids)
        media = PublishedStream(
            session_id, self._workers, self._settings, send_back=False,
            on_failed=lambda: self._spawn(self._end(session_id, "its peer connection failed")),
            viewer_ids=self._viewer_ids,
        )  # fmt: skip
        self.sessions[session_id] = media
        try:
            answer = await media.negotiate(offer, target)
        except OfferError as exc:
            await self._end(session_id, f"offer refused: {exc}")
            status = 500 if exc.code == "server_error" else 400
            return self._refuse(request, status, str(exc))
        except Exception as exc:  # aiortc raises many kinds of errors on hostile SDP
            log.warning("WHIP session %d: cannot negotiate the offer", session_id, exc_info=True)
            await self._end(session_id, "offer could not be negotiated")
            return self._refuse(request, 400, f"cannot negotiate this offer: {type(exc).__name__}: {exc}")
        if session_id not in self.sessions:  # ended while negotiating (server stopping)
            return self._refuse(request, 503, "the server is shutting down", RETRY_AFTER_FULL_S)
        self._published[session_id] = media
        log.info("WHIP session %d from %s: streaming target %r", session_id, request.remote, target.name)
        return self._answer(request, answer, f"/whip/sessions/{session_id}")

    async def _whip_session(self, request: web.Request) -> web.StreamResponse:
        refused = self._admissible(request, "DELETE", "WHIP")
        if refused is not None:
            return refused
        session_id = _int(request.match_info["session"])
        if session_id not in self.sessions:
            return self._refuse(request, 404, f"no WHIP session {request.match_info['session'][:40]!r}")
        await self._end(session_id, "DELETE")
        return web.Response(status=200, text="ended\n", headers=_cors_headers(request))

    async def _end(self, session_id: int, why: str) -> None:
        media = self.sessions.pop(session_id, None)
        if media is None:
            return
        if self._published.get(session_id) is media:
            del self._published[session_id]
        await media.close()
        log.info("WHIP session %d ended (%s)", session_id, why)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- WHEP ------------------------------------------------------------------------------------------------

    def _stream_of(self, request: web.Request) -> PublishedStream | None:
        return self._published.get(_int(request.match_info["session"]))

    async def _whep(self, request: web.Request) -> web.StreamResponse:
        refused = self._admissible(request, "POST", "WHEP")
        if refused is not None:
            return refused
        media = self._stream_of(request)
        if media is None:
            running = ", ".join(str(i) for i in sorted(self._published)) or "none"
            return self._refuse(
                request,
                404,
                f"no session {request.match_info['session'][:40]!r} is streaming (running: {running})",
            )
        offer = await self._read_offer(request, "WHEP")
        if isinstance(offer, web.Response):
            return offer
        refused = self._admit(request)
        if refused is not None:
            return refused
        view = request.query.get("view", "target")
        try:
            viewer, answer = await media.add_viewer(offer, view)
        except OfferError as exc:
            if exc.code == "full":
                return self._refuse(request, 503, str(exc), RETRY_AFTER_FULL_S)
            return self._refuse(request, 404 if exc.code == "not_streaming" else 400, str(exc))
        except Exception as exc:
            log.warning("WHEP viewer of session %d: cannot negotiate the offer", media.id, exc_info=True)
            return self._refuse(request, 400, f"cannot negotiate this offer: {type(exc).__name__}: {exc}")
        return self._answer(request, answer, f"/whep/{media.id}/viewers/{viewer.id}")

    async def _whep_viewer(self, request: web.Request) -> web.StreamResponse:
        refused = self._admissible(request, "DELETE", "WHEP")
        if refused is not None:
            return refused
        media = self._stream_of(request)
        viewer_id = _int(request.match_info["viewer"])
        if media is None or not await media.remove_viewer(viewer_id):
            return self._refuse(request, 404, f"no WHEP viewer at {request.path[:100]}")
        return web.Response(status=200, text="ended\n", headers=_cors_headers(request))

    async def close(self) -> None:
        """End every WHIP session (and so its viewers). Idempotent."""
        await asyncio.gather(*(self._end(i, "server stopping") for i in list(self.sessions)))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _int(text: str) -> int:
    """``text`` as a positive int, or -1 (no such id) for anything else."""
    return int(text) if text.isdigit() and len(text) < 12 else -1
