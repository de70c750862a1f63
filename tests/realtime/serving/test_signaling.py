"""The signaling server on 127.0.0.1 with a fake pipeline: the page, the protocol, malformed input, cleanup.

No media flows here: offers carry no ICE candidates (the server then has nobody to send to), so these tests
need no network namespace. The media path is tested in tests/test_webrtc.py.
"""

from __future__ import annotations

import asyncio
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
from websockets.exceptions import ConnectionClosed, InvalidMessage

from conftest import offer_with_extmap
from fake_pipeline import FakeRetargeter, FakeTarget, server_command
from realtime.serving.aiortc_patch import PLAYOUT_DELAY_URI
from realtime.serving.signaling import (
    WEB_DIR,
    SessionSettings,
    SignalingServer,
    TargetChoice,
)
from realtime.serving.sink import GeneratedFrame, PushSink
from realtime.serving.workers import StreamWorkers

REPO_ROOT = Path(__file__).resolve().parents[3]
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
async def serving(
    make: Callable[[], FakeRetargeter] | None = None,
    *,
    targets: tuple[str, ...] = ("fake",),
    settings: SessionSettings | None = None,
    **kwargs: Any,
) -> AsyncIterator[Harness]:
    """A server offering ``targets`` (all made by ``make``), stats every 0.1 s unless ``settings`` say."""
    workers = StreamWorkers.create()
    made: list[FakeRetargeter] = []

    def make_retargeter() -> FakeRetargeter:
        retargeter = make() if make is not None else FakeRetargeter(FakeTarget())
        made.append(retargeter)
        return retargeter

    choices = [TargetChoice(name, make_retargeter, (64, 48), actions=("wave",)) for name in targets]
    settings = settings or SessionSettings(stats_interval_s=0.1)
    server = SignalingServer(choices, workers, settings=settings, **kwargs)
    await server.start("127.0.0.1", 0)
    try:
        yield Harness(server, made)
    finally:
        await server.stop()
        workers.shutdown(wait=True)


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


class FrameCounter(PushSink[None]):
    """A dummy output: counts the frames it is given."""

    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.stopped = False

    def compose(self, frame: GeneratedFrame) -> None:
        return None

    async def deliver(self, item: None) -> None:
        self.count += 1

    async def stop(self) -> None:
        await super().stop()
        self.stopped = True


def test_the_settings_sinks_are_attached_to_each_stream_and_stopped_with_it() -> None:
    """``SessionSettings.sinks`` (``server.py --record``): one output per session beside the browser's
    track, made with the session's id; one that cannot be made is logged and the session goes on."""
    made: list[tuple[int, FrameCounter]] = []

    def make_counter(session_id: int) -> FrameCounter:
        counter = FrameCounter()
        made.append((session_id, counter))
        return counter

    def cannot_make(session_id: int) -> FrameCounter:
        raise OSError("no space left on device")

    async def main() -> None:
        settings = SessionSettings(stats_interval_s=0.1, sinks=(make_counter, cannot_make))
        async with serving(settings=settings) as h:
            async with connect(h.url) as ws:
                await offer_and_answer(ws)
                (session,) = h.server.sessions
                assert session.stream is not None
                ((session_id, counter),) = made
                assert session_id == session.id
                assert session.stream.relay.sinks == (session.stream.browser, counter)
            await h.wait_no_sessions()
            assert counter.stopped

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
        workers = StreamWorkers.create()
        made: list[FakeRetargeter] = []

        def make() -> FakeRetargeter:
            made.append(FakeRetargeter(FakeTarget()))
            return made[-1]

        server = SignalingServer([TargetChoice("fake", make)], workers)
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
        workers.shutdown(wait=True)
        await asyncio.sleep(0.1)  # let aiortc's own tasks finish their cancellation
        leftover = asyncio.all_tasks() - tasks_before
        assert not leftover, leftover

    run(main())


def test_server_cli_help_and_bad_engine(tmp_path: Path) -> None:
    help_run = subprocess.run(
        [sys.executable, "server.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert help_run.returncode == 0 and "--engine" in help_run.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("[not json")
    bad_run = subprocess.run(
        server_command("--engine", str(broken)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_run.returncode == 2
    (line,) = bad_run.stderr.strip().splitlines()
    assert line.startswith("error: cannot load the target") and str(broken) in line


def test_server_cli_real_pipeline_rejects_a_missing_or_broken_engine(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.onnx"
    result = subprocess.run(
        [sys.executable, "server.py", "--engine", str(missing)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"server.py: error: --engine {missing}: no such file or folder"
    )
    broken = tmp_path / "broken.onnx"  # exists, but no sidecar and not an ONNX model
    broken.write_bytes(b"not a model")
    result = subprocess.run(
        [sys.executable, "server.py", "--engine", str(broken), "--log-level", "error"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot load the target {broken}: ")


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


# -- targets, status, limits, TLS ----------------------------------------------------------------------------


def http_get_json(port: int, path: str) -> dict[str, Any]:
    status, content_type, body = http_get(port, path)
    assert status == 200 and content_type == "application/json", (status, content_type)
    return json.loads(body)


def test_targets_and_status_are_served_as_json() -> None:
    async def main() -> None:
        async with serving(targets=("alice", "bob"), max_sessions=3) as h:
            targets = await asyncio.to_thread(http_get_json, h.server.port, "/targets")
            assert targets == {
                "targets": [
                    {"name": "alice", "canvas_size": [64, 48], "garments": [], "actions": ["wave"]},
                    {"name": "bob", "canvas_size": [64, 48], "garments": [], "actions": ["wave"]},
                ],
                "default": "alice",
                "test_stamp": False,
                "max_sessions": 3,
                "max_input_fps": None,  # SessionSettings' default: no cap
            }
            async with connect(h.url) as ws:
                await offer_and_answer(ws)
                status = await asyncio.to_thread(http_get_json, h.server.port, "/status")
                assert status["sessions"] == 1 and status["streams"] == 1 and status["max_sessions"] == 3
                assert status["rss_bytes"] > 10 << 20 and status["cpu_s"] > 0 and status["threads"] >= 1
                assert set(status["workers"]) == {"pose", "generate"}
            await h.wait_no_sessions()
            status = await asyncio.to_thread(http_get_json, h.server.port, "/status")
            assert status["sessions"] == 0 and status["streams"] == 0

    run(main())


@pytest.mark.parametrize("zero_playout_delay", [True, False])
def test_the_answer_asks_for_zero_playout_delay_unless_told_not_to(zero_playout_delay: bool) -> None:
    """A browser's offer names the playout-delay extension; the answer names it too (so the generated video
    carries it) by default, and not with ``server.py --playout-delay browser``."""
    session_settings = SessionSettings(stats_interval_s=0.1, zero_playout_delay=zero_playout_delay)

    async def main() -> None:
        async with serving(settings=session_settings) as h:
            browser_like = offer_with_extmap(await offer_sdp(), 9, PLAYOUT_DELAY_URI)
            for offer, named in ((await offer_sdp(), False), (browser_like, zero_playout_delay)):
                async with connect(h.url) as ws:
                    await ws.send(json.dumps({"type": "offer", "sdp": offer}))
                    answer = await receive(ws, "answer")
                    assert (f"a=extmap:9 {PLAYOUT_DELAY_URI}" in answer["sdp"]) is named, answer["sdp"]
            await h.wait_no_sessions()

    run(main())


class ColourRetargeter(FakeRetargeter):
    """A fake retargeter whose target has a reference appearance: it records garment colours."""

    def __init__(self) -> None:
        super().__init__(FakeTarget())
        self.colours: list[tuple[str, tuple[float, ...] | None]] = []

    def set_garment_colour(self, garment: str, rgb: tuple[float, ...] | None) -> None:
        if garment not in ("upper", "lower"):
            raise ValueError(f"garment must be one of ['lower', 'upper'], got {garment!r}")
        self.colours.append((garment, rgb))


def test_garment_colour_messages_recolour_the_session_and_bad_ones_are_errors() -> None:
    async def main() -> None:
        async with serving(ColourRetargeter) as h:
            async with connect(h.url) as ws:
                message = {"type": "garment_colour", "garment": "upper", "colour": "#ff8000"}
                await ws.send(json.dumps(message))  # before the offer: no stream to recolour
                assert "send an offer first" in (await receive(ws, "error"))["message"]
                await offer_and_answer(ws)
                for bad, words in (
                    ({**message, "colour": "orange"}, "#RRGGBB"),
                    ({**message, "colour": 7}, "'colour'"),
                    ({**message, "garment": "hat"}, "garment must be one of"),
                ):
                    await ws.send(json.dumps(bad))
                    assert words in (await receive(ws, "error"))["message"]
                await ws.send(json.dumps(message))
                assert await receive(ws, "garment_colour") == message
                await ws.send(json.dumps({**message, "colour": None}))
                assert (await receive(ws, "garment_colour"))["colour"] is None
                (made,) = h.made
                assert made.colours == [("upper", (1.0, 128 / 255, 0.0)), ("upper", None)]
            await h.wait_no_sessions()

    run(main())


def test_action_messages_play_an_action_and_bad_ones_are_errors() -> None:
    async def main() -> None:
        async with serving() as h:
            async with connect(h.url) as ws:
                message = {"type": "action", "label": "wave", "seconds": 2.5}
                await ws.send(json.dumps(message))  # before the offer: no stream to act
                error = await receive(ws, "error")
                assert error["code"] == "bad_message" and "send an offer first" in error["message"]
                await offer_and_answer(ws)
                for bad, words in (
                    ({**message, "label": "dance"}, "unknown action 'dance'; known: wave, idle_sway"),
                    ({**message, "label": 3}, "string 'label'"),
                    ({**message, "seconds": 0}, "'seconds' in (0, 30]"),
                    ({**message, "seconds": "4"}, "'seconds' in (0, 30]"),
                ):
                    await ws.send(json.dumps(bad))
                    error = await receive(ws, "error")
                    assert error["code"] == "bad_message" and words in error["message"], error
                await ws.send(json.dumps(message))
                assert await receive(ws, "action") == message
                await ws.send(json.dumps({"type": "action", "label": "idle_sway"}))  # seconds default to 4
                assert await receive(ws, "action") == {"type": "action", "label": "idle_sway", "seconds": 4.0}
                (made,) = h.made
                assert made.actions == [("wave", 2.5), ("idle_sway", 4.0)]
            await h.wait_no_sessions()

    run(main())


def test_offer_chooses_the_target_and_an_unknown_one_is_a_clear_error() -> None:
    async def main() -> None:
        async with serving(targets=("alice", "bob")) as h:
            async with connect(h.url) as ws:
                sdp = await offer_sdp()
                for bad, words in (("carol", "unknown target 'carol'"), (7, "must be a string")):
                    await ws.send(json.dumps({"type": "offer", "sdp": sdp, "target": bad}))
                    error = await receive(ws, "error")
                    assert error["code"] == "unknown_target" and words in error["message"], error
                    assert "'alice', 'bob'" in error["message"], error
                (session,) = h.server.sessions
                assert session.stream is None and not h.made  # nothing was started for the bad names
                await ws.send(json.dumps({"type": "offer", "sdp": sdp, "target": "bob"}))
                answer = await receive(ws, "answer")
                assert answer["target"] == "bob" and session.target == "bob"
            async with connect(h.url) as ws:
                await ws.send(json.dumps({"type": "offer", "sdp": await offer_sdp()}))
                assert (await receive(ws, "answer"))["target"] == "alice"  # the default
            await h.wait_no_sessions()
            assert [r.close_count for r in h.made] == [1, 1]

    run(main())


def test_a_full_server_says_so_and_closes_politely_then_admits_again() -> None:
    async def main() -> None:
        async with serving(max_sessions=2) as h:
            first, second = await connect(h.url), await connect(h.url)
            await offer_and_answer(first)
            await offer_and_answer(second)
            async with connect(h.url) as third:
                error = json.loads(await asyncio.wait_for(third.recv(), TIMEOUT_S))
                assert error["type"] == "error" and error["code"] == "server_full", error
                assert "2 session(s)" in error["message"] and "try again later" in error["message"]
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(third.recv(), TIMEOUT_S)
                assert third.close_code == 1013
            assert len(h.server.sessions) == 2 and h.server.refused == 1
            await first.close()
            for _ in range(200):
                if len(h.server.sessions) < 2:
                    break
                await asyncio.sleep(0.025)
            async with connect(h.url) as fourth:
                await offer_and_answer(fourth)
            await second.close()
            await h.wait_no_sessions()
            assert len(h.made) == 3 and all(r.close_count == 1 for r in h.made)

    run(main())


def test_a_client_that_never_offers_is_closed_after_the_offer_timeout() -> None:
    async def main() -> None:
        settings = SessionSettings(stats_interval_s=0.1, offer_timeout_s=0.3)
        async with serving(settings=settings) as h:
            async with connect(h.url) as ws:
                await ws.send("{bad json")
                assert (await receive(ws, "error"))["code"] == "bad_message"
                error = await receive(ws, "error")
                assert error["code"] == "offer_timeout" and "no usable offer within 0.3 s" in error["message"]
                with pytest.raises(ConnectionClosed):
                    await receive(ws, "never")
                assert ws.close_code == 1008
            await h.wait_no_sessions()
            async with connect(h.url) as ws:  # a client that offers in time keeps streaming past the timeout
                await offer_and_answer(ws)
                await asyncio.sleep(0.5)
                assert (await receive(ws, "stats"))["type"] == "stats"
                assert len(h.server.sessions) == 1

    run(main())


def test_server_rejects_bad_target_lists() -> None:
    workers = StreamWorkers(None, None)  # type: ignore[arg-type]  # never used: construction fails first
    make = lambda: FakeRetargeter(FakeTarget())  # noqa: E731
    with pytest.raises(ValueError, match="at least one target"):
        SignalingServer([], workers)
    with pytest.raises(ValueError, match="repeated: a"):
        SignalingServer([TargetChoice("a", make), TargetChoice("a", make)], workers)
    with pytest.raises(ValueError, match="max_sessions"):
        SignalingServer([TargetChoice("a", make)], workers, max_sessions=0)


def self_signed_pair(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dance-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_and_wss_with_a_certificate(tmp_path: Path) -> None:
    import ssl

    import server as server_cli

    cert, key = self_signed_pair(tmp_path)
    client_context = ssl.create_default_context(cafile=str(cert))

    def https_get(port: int, path: str) -> tuple[int, str]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT_S, context=client_context)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    async def main() -> None:
        async with serving(ssl_context=server_cli.tls_context(cert, key)) as h:
            port = h.server.port
            status, body = await asyncio.to_thread(https_get, port, "/")
            assert status == 200 and body == (WEB_DIR / "index.html").read_text()
            status, body = await asyncio.to_thread(https_get, port, "/targets")
            assert status == 200 and json.loads(body)["default"] == "fake"
            async with connect(f"wss://127.0.0.1:{port}/ws", ssl=client_context) as ws:
                await offer_and_answer(ws)
            with pytest.raises(InvalidMessage):  # plain ws:// to a TLS port fails, and the server goes on
                async with connect(h.url, open_timeout=TIMEOUT_S):
                    pass
            await h.wait_no_sessions()

    run(main())
    assert server_cli.page_url("127.0.0.1", 8443, https=True) == "https://127.0.0.1:8443/"


def test_server_cli_several_engines_and_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import server as server_cli
    from fake_pipeline import fake_factory

    factory = fake_factory()
    (tmp_path / "a.json").write_text(json.dumps({"canvas_size": [32, 32]}))
    folder = tmp_path / "bundles"
    folder.mkdir()
    for stem in ("b", "c"):  # a folder is scanned for NAME.onnx (here fake JSON) beside NAME.json
        (folder / f"{stem}.onnx").write_text("{}")
        (folder / f"{stem}.json").write_text("{}")
    (folder / "lonely.onnx").write_text("{}")  # no sidecar: not a bundle
    choices = server_cli.load_targets([tmp_path / "a.json", folder, folder / "b.onnx"], factory)
    assert [c.name for c in choices] == ["a", "b", "c", "b (b.onnx)"]
    assert choices[0].canvas_size == (32, 32)
    assert isinstance(choices[1].make_retargeter(), FakeRetargeter)
    # the bundled folder lists the default target first, and becomes the default --engine once it has one
    monkeypatch.setattr(server_cli, "TARGETS_DIR", folder)
    monkeypatch.setattr(server_cli, "BUNDLED_TARGETS", folder)
    monkeypatch.setattr(server_cli, "DEFAULT_TARGET", folder / "c.onnx")
    assert [group[0].stem for group in server_cli.engines_in(folder)] == ["c", "b"]
    assert server_cli.default_engines() == [folder]
    assert server_cli.build_parser().parse_args([]).engine is None  # --engine is optional now
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(server_cli, "BUNDLED_TARGETS", empty)
    assert server_cli.default_engines() == []
    with pytest.raises(server_cli.TargetLoadError, match="holds no target bundles"):
        server_cli.load_targets([empty], factory)
    with pytest.raises(server_cli.TargetLoadError, match="missing.json"):
        server_cli.load_targets([tmp_path / "a.json", tmp_path / "missing.json"], factory)


def test_server_cli_checks_its_options(tmp_path: Path) -> None:
    engine = tmp_path / "fake.json"
    engine.write_text("{}")
    cases = {
        "--cert and --key go together": ["--cert", str(engine)],
        "--max-sessions must be >= 1, got 0": ["--max-sessions", "0"],
        "--pose-threads must be >= 1, got -2": ["--pose-threads", "-2"],
        "--torch-threads must be >= 1, got 0": ["--torch-threads", "0"],
        "--generator-threads must be >= 0 (0: all cores), got -1": ["--generator-threads", "-1"],
        "--max-input-fps must be >= 0 (0: no cap), got -1.0": ["--max-input-fps", "-1"],
        "--max-input-fps must be >= 0 (0: no cap), got inf": ["--max-input-fps", "inf"],
        "--port must be 1-65535, or 0 for any free port; got 80000": ["--port", "80000"],
        "--port must be 1-65535, or 0 for any free port; got -5": ["--port", "-5"],
        "argument --port: invalid int value: 'http'": ["--port", "http"],
        f"--engine {tmp_path / 'gone.json'}: no such file or folder": [
            "--engine",
            str(tmp_path / "gone.json"),
        ],
        f"--cert {tmp_path / 'c.pem'}: no such file": [
            "--cert",
            str(tmp_path / "c.pem"),
            "--key",
            str(engine),
        ],
        "--host must not be empty": ["--host", " "],
        "--token must be 1-256 characters": ["--token", " padded "],
        "--allow-origin 'evil.example': give an origin as scheme://host[:port]": [
            "--allow-origin",
            "evil.example",
        ],
        "--session-starts-per-minute must be >= 0 (0: no limit), got -1": [
            "--session-starts-per-minute",
            "-1",
        ],
        "--max-viewers must be >= 1, got 0": ["--max-viewers", "0"],
        "argument --virtual-camera-size: ": ["--virtual-camera-size", "big"],
        f"cannot use the certificate {engine} with key {engine}": [
            "--cert",
            str(engine),
            "--key",
            str(engine),
        ],
    }
    for words, options in cases.items():
        result = subprocess.run(
            server_command("--engine", str(engine), *options),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        last = result.stderr.strip().splitlines()[-1]  # argparse's style: usage, then one line
        assert result.returncode == 2 and last.startswith("server.py: error: ") and words in last, (
            options,
            result.stderr,
        )
        assert "Traceback" not in result.stderr
