"""The signaling server on 127.0.0.1 with a fake pipeline: the page, the protocol, malformed input, cleanup.

No media flows here: offers carry no ICE candidates (the server then has nobody to send to), so these tests
need no network namespace. The media path is tested in tests/test_webrtc.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fake_pipeline import FakeRetargeter, FakeTarget
from realtime.signaling import WEB_DIR, SignalingServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 10.0


def run(coro: Any) -> Any:
    """Run a test coroutine on a fresh event loop, with a time limit."""
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S * 3))


class Harness:
    """A running :class:`SignalingServer` with fake retargeters, and what it made."""

    def __init__(self, server: SignalingServer, made: list[FakeRetargeter]) -> None:
        self.server = server
        self.made = made

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws"

    async def wait_no_sessions(self) -> None:
        for _ in range(200):
            if not self.server.sessions:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"sessions still open: {self.server.sessions}")


@contextlib.asynccontextmanager
async def serving(make: Callable[[], FakeRetargeter] | None = None, **kwargs: Any) -> AsyncIterator[Harness]:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    made: list[FakeRetargeter] = []

    def make_retargeter() -> FakeRetargeter:
        retargeter = make() if make is not None else FakeRetargeter(FakeTarget())
        made.append(retargeter)
        return retargeter

    server = SignalingServer(make_retargeter, executor, stats_interval_s=0.1, **kwargs)
    await server.start("127.0.0.1", 0)
    try:
        yield Harness(server, made)
    finally:
        await server.stop()
        executor.shutdown(wait=True)


async def offer_sdp(kinds: tuple[str, ...] = ("video",)) -> str:
    """A real aiortc offer with the given tracks, ICE candidates removed (so no packet is ever sent)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        pc.addTrack(VideoStreamTrack() if kind == "video" else AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))


async def receive(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, skipping stats messages (fails on anything else)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        if message["type"] == kind:
            return message
        assert message["type"] == "stats", f"expected {kind!r}, got {message}"


async def offer_and_answer(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp(), "sdpType": "offer"}))
    answer = await receive(ws, "answer")
    assert answer["sdp"].startswith("v=0")
    return answer


def http_get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a plain GET (http.client: never goes through a proxy)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


def test_get_serves_the_page_and_404s_the_rest() -> None:
    async def main() -> None:
        async with serving() as h:
            port = h.server.port
            status, content_type, body = await asyncio.to_thread(http_get, port, "/")
            assert status == 200 and content_type.startswith("text/html")
            assert body == (WEB_DIR / "index.html").read_text()
            status, content_type, body = await asyncio.to_thread(http_get, port, "/app.js")
            assert status == 200 and "javascript" in content_type and "RTCPeerConnection" in body
            status, _, _ = await asyncio.to_thread(http_get, port, "/index.html?x=1")
            assert status == 200
            for path in ("/nope", "/../server.py", "/web/index.html"):
                status, _, _ = await asyncio.to_thread(http_get, port, path)
                assert status == 404, path
            status, _, _ = await asyncio.to_thread(http_get, port, "/ws")  # not a WebSocket upgrade
            assert status == 426

    run(main())


def test_page_is_found_relative_to_the_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def main() -> None:
        async with serving() as h:
            status, _, _ = await asyncio.to_thread(http_get, h.server.port, "/")
            assert status == 200

    run(main())


def test_offer_answer_stats_bye_and_cleanup() -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                await offer_and_answer(ws)
                stats = await receive(ws, "stats")
                for key in (
                    "frames_in",
                    "frames_out",
                    "frames_dropped",
                    "fps",
                    "latency_ms_mean",
                    "latency_ms_last",
                ):
                    assert key in stats, key
                assert stats["frames_in"] == 0 and stats["latency_ms_mean"] is None  # no media in this test
                (session,) = h.server.sessions
                await ws.send(json.dumps({"type": "bye"}))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(receive(ws, "never"), TIMEOUT_S)
                assert ws.close_code == 1000
            await h.wait_no_sessions()
            assert session.stream is None and not session.tasks
            assert len(h.made) == 1 and h.made[0].close_count == 1

    run(main())


BAD_MESSAGES = {
    "malformed json": "{not json",
    "truncated json": '{"type": "offer", "sdp": ',
    "json array": "[1, 2, 3]",
    "json string": '"offer"',
    "json null": "null",
    "no type": "{}",
    "type not a string": '{"type": 5}',
    "unknown type": '{"type": "dance"}',
    "sdp missing": '{"type": "offer"}',
    "sdp not a string": '{"type": "offer", "sdp": 42}',
    "sdp empty": '{"type": "offer", "sdp": "  "}',
    "sdpType not offer": '{"type": "offer", "sdp": "v=0", "sdpType": "answer"}',
    "garbage sdp": '{"type": "offer", "sdp": "hello, this is not SDP"}',
    "sdp header only": json.dumps({"type": "offer", "sdp": "v=0\r\n"}),
    "sdp bad media line": json.dumps(
        {
            "type": "offer",
            "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x UDP/TLS/RTP/SAVPF\r\n",
        }
    ),
    "oversized": json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 30_000}),
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_bad_message_gets_an_error_and_the_session_goes_on(name: str) -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                await ws.send(BAD_MESSAGES[name])
                error = await receive(ws, "error")
                assert isinstance(error["message"], str) and error["message"]
                await offer_and_answer(ws)  # a later valid message is still answered
            await h.wait_no_sessions()
            assert all(r.close_count == 1 for r in h.made)

    run(main())


def test_garbage_sdp_variants_leave_no_peer_connection_behind() -> None:
    async def main() -> None:
        good = await offer_sdp()
        variants = [
            good.replace("m=video", "m=vidoe"),
            good.replace("a=ice-ufrag", "a=ice-ufrog"),
            good.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz"),
            good[: len(good) // 2],
            "\x00" * 100,
            "v=0\r\n" * 50,
        ]
        async with serving() as h:
            for sdp in variants:
                async with connect(h.url) as ws:
                    await ws.send(json.dumps({"type": "offer", "sdp": sdp}))
                    message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
                    if message["type"] == "error":
                        (session,) = h.server.sessions
                        assert session.stream is None
                        await offer_and_answer(ws)
                    else:  # aiortc tolerated this damage; the session must still end cleanly
                        assert message["type"] == "answer", message
                await h.wait_no_sessions()
            assert h.made and all(r.close_count == 1 for r in h.made)

    run(main())


def test_binary_message_and_audio_only_offer_are_errors() -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                await ws.send(b"\x01\x02")
                assert "binary" in (await receive(ws, "error"))["message"]
                await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp(("audio",))}))
                assert "no video track" in (await receive(ws, "error"))["message"]
                await offer_and_answer(ws)
                await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp()}))
                assert "already" in (await receive(ws, "error"))["message"]
            await h.wait_no_sessions()
            assert len(h.made) == 1 and h.made[0].close_count == 1

    run(main())


def test_offer_with_audio_and_video_streams_video_and_drains_audio() -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp(("audio", "video"))}))
                await receive(ws, "answer")
                (session,) = h.server.sessions
                assert session.stream is not None
                assert any("drain-audio" in t.get_name() for t in session.tasks)
            await h.wait_no_sessions()
            assert not session.tasks

    run(main())


def test_message_over_max_size_closes_only_that_connection() -> None:
    async def main() -> None:
        async with serving(max_frame_bytes=256 << 10) as h:
            async with connect(h.url, max_size=None) as ws:
                await offer_and_answer(ws)
                await ws.send("x" * (512 << 10))
                with pytest.raises(ConnectionClosed):
                    await receive(ws, "never")
                assert ws.close_code == 1009  # message too big
            await h.wait_no_sessions()
            assert h.made[0].close_count == 1
            async with connect(h.url) as ws:  # the server still serves
                await offer_and_answer(ws)

    run(main())


def test_closing_the_socket_ends_the_session() -> None:
    async def main() -> None:
        async with serving() as h:
            ws = await connect(h.url)
            await offer_and_answer(ws)
            (session,) = h.server.sessions
            await ws.close()
            await h.wait_no_sessions()
            assert session.stream is None and not session.tasks
            assert h.made[0].close_count == 1

    run(main())


def test_retargeter_that_cannot_be_made_is_an_error_not_a_crash() -> None:
    calls = []

    def make() -> FakeRetargeter:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("model file vanished")
        return FakeRetargeter(FakeTarget())

    async def main() -> None:
        async with serving(make) as h:
            async with connect(h.url) as ws:
                await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp()}))
                assert "model file vanished" in (await receive(ws, "error"))["message"]
                await offer_and_answer(ws)  # the failed attempt left no peer connection behind

    run(main())


def test_stop_while_streaming_closes_sessions_and_cancels_tasks() -> None:
    async def main() -> None:
        tasks_before = asyncio.all_tasks()
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        made: list[FakeRetargeter] = []
        server = SignalingServer(lambda: made.append(FakeRetargeter(FakeTarget())) or made[-1], executor)
        await server.start("127.0.0.1", 0)
        clients = [await connect(f"ws://127.0.0.1:{server.port}/ws") for _ in range(2)]
        for ws in clients:
            await offer_and_answer(ws)
        sessions = list(server.sessions)
        assert len(sessions) == 2
        await server.stop()
        await server.stop()  # idempotent
        for ws in clients:
            with pytest.raises(ConnectionClosed):
                await receive(ws, "never")
            assert ws.close_code == 1001
        assert not server.sessions
        assert all(s.stream is None and not s.tasks for s in sessions)
        assert [r.close_count for r in made] == [1, 1]
        executor.shutdown(wait=True)
        await asyncio.sleep(0.1)  # let aiortc's own tasks finish their cancellation
        leftover = asyncio.all_tasks() - tasks_before
        assert not leftover, leftover

    run(main())


def test_server_cli_help_and_bad_engine(tmp_path: Path) -> None:
    help_run = subprocess.run(
        [sys.executable, "server.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert help_run.returncode == 0 and "--engine" in help_run.stdout
    fake = Path(__file__).resolve().parents[1] / "fake_pipeline.py"
    missing = tmp_path / "missing.json"
    bad_run = subprocess.run(
        [sys.executable, str(fake), "--engine", str(missing)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_run.returncode == 2
    (line,) = bad_run.stderr.strip().splitlines()
    assert line.startswith("error: cannot load the target") and str(missing) in line


def test_server_cli_real_pipeline_rejects_a_missing_engine(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.onnx"
    result = subprocess.run(
        [sys.executable, "server.py", "--engine", str(missing)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot load the target")


def _children(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)


def _is_bye(message: str) -> bool:
    try:
        decoded = json.loads(message)
    except ValueError:
        return False
    return isinstance(decoded, dict) and decoded.get("type") == "bye"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _children,
    max_leaves=6,
)
_messages = st.one_of(
    st.text(max_size=200),
    _json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["offer", "answer", "stats", "", "OFFER"]) | st.text(max_size=8)},
        optional={"sdp": _json_values, "sdpType": _json_values},
    ).map(json.dumps),
).filter(lambda m: not _is_bye(m))  # "bye" ends the session: tested on its own


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_messages, min_size=1, max_size=5))
def test_random_messages_get_errors_and_never_break_the_server(messages: list[str]) -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                for message in messages:
                    await ws.send(message)
                    error = await receive(ws, "error")
                    assert error["message"]
                await ws.send(json.dumps({"type": "ping"}))  # still answered afterwards
                assert "unknown message type" in (await receive(ws, "error"))["message"]
            await h.wait_no_sessions()

    run(main())
