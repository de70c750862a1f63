"""WHIP, WHEP and the access policy on 127.0.0.1 with a fake pipeline: statuses, headers, refusals, cleanup.

Offers carry no ICE candidates (no media flows: see tests/realtime/serving/test_whip_media.py for that), so
these tests need no network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from fake_pipeline import FakeRetargeter, FakeTarget
from realtime.serving.access import AccessPolicy, Refusal, StartLimiter
from realtime.serving.signaling import SessionSettings, SignalingServer, TargetChoice
from realtime.serving.workers import StreamWorkers

TIMEOUT_S = 10.0
TOKEN = "s3cret-token"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S * 3))


@contextlib.asynccontextmanager
async def serving(
    *, access: AccessPolicy | None = None, max_sessions: int = 4, max_viewers: int = 8
) -> AsyncIterator[SignalingServer]:
    workers = StreamWorkers.create()
    choices = [TargetChoice(n, lambda: FakeRetargeter(FakeTarget()), (64, 48)) for n in ("alice", "bob")]
    settings = SessionSettings(stats_interval_s=0.1, max_viewers=max_viewers)
    server = SignalingServer(choices, workers, settings=settings, access=access, max_sessions=max_sessions)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()
        workers.shutdown(wait=True)


async def make_offer(direction: str) -> str:
    """A real aiortc offer (``sendonly`` video: a WHIP publisher; ``recvonly``: a WHEP viewer), ICE
    candidates removed so no packet is ever sent."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if direction == "sendonly":
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body


def request(
    port: int, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """One HTTP request with http.client (never through a proxy); header names in lower case."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request(method, path, body=body.encode() if body is not None else None, headers=headers or {})
        response = conn.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
        )
    finally:
        conn.close()


async def call(port: int, method: str, path: str, body: str | None = None, **headers: str) -> Reply:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return await asyncio.to_thread(request, port, method, path, body, named)


SDP = {"Content-Type": "application/sdp"}


async def publish(server: SignalingServer, path: str = "/whip/alice", **headers: str) -> Reply:
    return await call(server.port, "POST", path, await make_offer("sendonly"), **{**SDP, **headers})


def test_whip_publishes_a_session_and_delete_ends_it() -> None:
    async def main() -> None:
        async with serving() as server:
            reply = await call(
                server.port, "POST", "/whip/bob", await make_offer("sendonly"), Content_Type="application/sdp"
            )
            assert reply.status == 201, reply.body
            assert reply.headers["content-type"] == "application/sdp" and reply.body.startswith("v=0")
            assert "a=recvonly" in reply.body  # ingest only: nothing is sent back to the publisher
            location = reply.headers["location"]
            assert location.startswith("/whip/sessions/")
            (media,) = server.whip_sessions
            assert media.target == "bob" and media.stream is not None
            status = json.loads((await call(server.port, "GET", "/status")).body)
            assert status["sessions"] == 1 and status["whip_sessions"] == 1 and status["streams"] == 1
            assert (await call(server.port, "DELETE", location)).status == 200
            assert not server.whip_sessions and not server.published and media.stream is None
            again = await call(server.port, "DELETE", location)
            assert again.status == 404 and "no WHIP session" in again.body
            default = await publish(server, "/whip")  # the default target
            assert default.status == 201
            assert {m.target for m in server.whip_sessions} == {"alice"}

    run(main())


def test_whip_errors_are_the_rfc_statuses_with_one_line() -> None:
    async def main() -> None:
        async with serving(max_sessions=1) as server:
            port, offer = server.port, await make_offer("sendonly")
            not_sdp = await call(
                port, "POST", "/whip/alice", json.dumps({"sdp": offer}), Content_Type="application/json"
            )
            assert not_sdp.status == 415 and "application/sdp" in not_sdp.body
            assert not_sdp.body.count("\n") == 1
            garbage = await call(port, "POST", "/whip/alice", "v=0\r\nthis is no sdp\r\n", **SDP)
            assert garbage.status == 400 and "no video track" in garbage.body
            not_text = await call(port, "POST", "/whip/alice", "hello", **SDP)
            assert not_text.status == 400 and "v=0" in not_text.body
            unknown = await call(port, "POST", "/whip/carol", offer, **SDP)
            assert unknown.status == 404 and "'carol'" in unknown.body and "alice, bob" in unknown.body
            get = await call(port, "GET", "/whip/alice")
            assert get.status == 405 and get.headers["allow"] == "POST, OPTIONS"
            options = await call(port, "OPTIONS", "/whip/alice")
            assert options.status == 204 and options.headers["accept-post"] == "application/sdp"
            first = await call(port, "POST", "/whip/alice", offer, **SDP)
            assert first.status == 201
            patch = await call(port, "PATCH", first.headers["location"], "a=end-of-candidates", **SDP)
            assert patch.status == 405 and "trickle ICE" in patch.body
            full = await call(port, "POST", "/whip/alice", offer, **SDP)
            assert full.status == 503 and "full" in full.body and int(full.headers["retry-after"]) > 0
            assert server.refused == 1
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:  # the page's sessions count too
                message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
                assert message["code"] == "server_full"
            unknown_delete = await call(port, "DELETE", "/whip/sessions/999")
            assert unknown_delete.status == 404
            assert len(server.whip_sessions) == 1  # none of the refusals left anything behind

    run(main())


def test_whep_viewers_of_a_whip_session_and_of_a_page_session() -> None:
    async def main() -> None:
        async with serving(max_viewers=2) as server:
            port = server.port
            published = await publish(server)
            session = published.headers["location"].rsplit("/", 1)[1]
            viewer_offer = await make_offer("recvonly")
            first = await call(port, "POST", f"/whep/{session}", viewer_offer, **SDP)
            assert first.status == 201 and first.headers["content-type"] == "application/sdp"
            assert "a=sendonly" in first.body
            assert first.headers["location"].startswith(f"/whep/{session}/viewers/")
            second = await call(port, "POST", f"/whep/{session}?view=side_by_side", viewer_offer, **SDP)
            assert second.status == 201
            (media,) = server.whip_sessions
            assert [v.view for v in media.viewers.values()] == ["target", "side_by_side"]
            assert len(media.stream.relay.sinks) == 2  # the two viewers' tracks; no unused page track
            third = await call(port, "POST", f"/whep/{session}", viewer_offer, **SDP)
            assert third.status == 503 and "viewers" in third.body
            bad_view = await call(port, "POST", f"/whep/{session}?view=sideways", viewer_offer, **SDP)
            assert bad_view.status in (400, 503)
            assert (await call(port, "DELETE", first.headers["location"])).status == 200
            assert (await call(port, "DELETE", first.headers["location"])).status == 404
            bad_view = await call(port, "POST", f"/whep/{session}?view=sideways", viewer_offer, **SDP)
            assert bad_view.status == 400 and "unknown view" in bad_view.body
            assert (await call(port, "POST", "/whep/77", viewer_offer, **SDP)).status == 404
            status = json.loads((await call(port, "GET", "/status")).body)
            assert status["viewers"] == 1
            # Ending the published session ends its viewers.
            assert (await call(port, "DELETE", published.headers["location"])).status == 200
            assert not media.viewers and status["viewers"] == 1
            assert json.loads((await call(port, "GET", "/status")).body)["viewers"] == 0
            # A page's session is watched the same way: its answer names the session.
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                offer = {"type": "offer", "sdp": await make_offer("sendonly"), "sdpType": "offer"}
                await ws.send(json.dumps(offer))
                while (answer := json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S)))[
                    "type"
                ] != "answer":
                    pass
                page_viewer = await call(port, "POST", f"/whep/{answer['session']}", viewer_offer, **SDP)
                assert page_viewer.status == 201
                while (stats := json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S)))["type"] != "stats":
                    pass
                assert [v["view"] for v in stats["viewers"]] == ["target"]

    run(main())


def test_a_token_is_required_of_the_page_whip_and_whep_alike() -> None:
    async def main() -> None:
        async with serving(access=AccessPolicy.create(TOKEN)) as server:
            port, offer = server.port, await make_offer("sendonly")
            assert (await call(port, "GET", "/")).status == 200  # the page itself holds no secret
            for path in ("/targets", "/status"):
                refused = await call(port, "GET", path)
                assert refused.status == 401 and "token" in refused.body
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert (await call(port, "GET", f"{path}?token={TOKEN}")).status == 200
            missing = await call(port, "POST", "/whip/alice", offer, **SDP)
            assert missing.status == 401 and "needs the server's token" in missing.body
            wrong = await call(port, "POST", "/whip/alice", offer, **SDP, Authorization="Bearer nope")
            assert wrong.status == 401 and "wrong token" in wrong.body
            good = await call(port, "POST", "/whip/alice", offer, **SDP, Authorization=f"Bearer {TOKEN}")
            assert good.status == 201
            location = good.headers["location"]
            assert (await call(port, "DELETE", location)).status == 401  # deleting needs it too
            session = location.rsplit("/", 1)[1]
            viewer = await make_offer("recvonly")
            assert (await call(port, "POST", f"/whep/{session}", viewer, **SDP)).status == 401
            watched = await call(
                port, "POST", f"/whep/{session}", viewer, **SDP, Authorization=f"Bearer {TOKEN}"
            )
            assert watched.status == 201
            with pytest.raises(InvalidStatus) as no_token:
                async with connect(f"ws://127.0.0.1:{port}/ws"):
                    pass
            assert no_token.value.response.status_code == 401
            with pytest.raises(InvalidStatus):
                async with connect(f"ws://127.0.0.1:{port}/ws?token=nope"):
                    pass
            async with connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}") as ws:
                await ws.send(json.dumps({"type": "bye"}))
            assert server.refusals[401] == 8
            assert (await call(port, "DELETE", location, Authorization=f"Bearer {TOKEN}")).status == 200

    run(main())


def test_the_websocket_checks_the_origin_against_the_page_and_the_allowlist() -> None:
    async def main() -> None:
        access = AccessPolicy.create(allowed_origins=["https://studio.example.org/"])
        async with serving(access=access) as server:
            port = server.port
            for origin in (f"http://127.0.0.1:{port}", "https://studio.example.org", None):
                async with connect(f"ws://127.0.0.1:{port}/ws", origin=origin) as ws:  # type: ignore[arg-type]
                    await ws.send(json.dumps({"type": "bye"}))
            for origin in ("https://evil.example.com", f"http://localhost:{port}", "null"):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{port}/ws", origin=origin):  # type: ignore[arg-type]
                        pass
                assert refused.value.response.status_code == 403
                assert b"is neither this server's page" in refused.value.response.body
            assert server.refusals == {403: 3} and not server.sessions
            # CORS for browser WHIP/WHEP clients: allowed origins get their preflight, others 403.
            good = await call(port, "OPTIONS", "/whip/alice", Origin="https://studio.example.org")
            assert good.status == 204 and "POST" in good.headers["access-control-allow-methods"]
            assert "Authorization" in good.headers["access-control-allow-headers"]
            assert "Location" in good.headers["access-control-expose-headers"]
            bad = await call(port, "OPTIONS", "/whip/alice", Origin="https://evil.example.com")
            assert bad.status == 403
            evil_post = await call(
                port,
                "POST",
                "/whip/alice",
                await make_offer("sendonly"),
                **SDP,
                Origin="https://evil.example.com",
            )
            assert evil_post.status == 403 and not server.whip_sessions

    run(main())


def test_session_starts_are_limited_per_address() -> None:
    now = [0.0]
    limiter = StartLimiter(2, exempt_loopback=True, clock=lambda: now[0])
    for _ in range(5):
        limiter.admit("127.0.0.1")  # loopback is exempt
    limiter.admit("192.0.2.7")
    limiter.admit("192.0.2.7")
    with pytest.raises(Refusal) as refused:
        limiter.admit("192.0.2.7")
    assert refused.value.status == 429 and refused.value.retry_after_s == 60
    assert "at most 2 a minute" in refused.value.message
    limiter.admit("192.0.2.8")  # another address has its own count
    now[0] = 59.5
    with pytest.raises(Refusal):
        limiter.admit("192.0.2.7")
    now[0] = 60.0
    limiter.admit("192.0.2.7")  # the first start left the window

    async def main() -> None:
        access = AccessPolicy(starts=StartLimiter(1, exempt_loopback=False))
        async with serving(access=access) as server:
            first = await publish(server)
            assert first.status == 201
            second = await publish(server)
            assert second.status == 429 and int(second.headers["retry-after"]) >= 59
            with pytest.raises(InvalidStatus) as page:
                async with connect(f"ws://127.0.0.1:{server.port}/ws"):
                    pass
            assert page.value.response.status_code == 429
            assert len(server.whip_sessions) == 1 and not server.sessions

    run(main())


def test_the_access_policy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="empty"):
        AccessPolicy.create("")
    with pytest.raises(ValueError, match=">= 0"):
        StartLimiter(-1)
