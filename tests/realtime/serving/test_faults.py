"""Faults: fuzzed signaling, odd camera frames through the real pipeline, and, over real WebRTC in a network
namespace, clients that vanish, renegotiate, send audio only or find the server full (``bench.loadtest``),
plus a short load run. Every case must get a clear answer; afterwards no session or task may be left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench import netns
from fake_pipeline import FakeRetargeter, FakeTarget, server_command
from realtime.serving.signaling import MAX_MESSAGE_BYTES, SessionSettings, SignalingServer, TargetChoice
from realtime.serving.stages import RetargetStream
from realtime.serving.workers import StreamWorkers

REPO_ROOT = Path(__file__).resolve().parents[3]
REPLY_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 256 << 10  # the fuzzed server's WebSocket max_size: bigger messages close the connection


# -- fuzzed signaling against a server running in a background thread --------------------------------------


class ServerThread:
    """A :class:`SignalingServer` with fake retargeters on its own event loop in a thread."""

    def __init__(self) -> None:
        self.made: list[FakeRetargeter] = []
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="fuzz-server")
        self.failure: BaseException | None = None

    def _make(self) -> FakeRetargeter:
        retargeter = FakeRetargeter(FakeTarget())
        self.made.append(retargeter)
        return retargeter

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        workers = StreamWorkers.create()
        targets = [TargetChoice("fake", self._make, (64, 48)), TargetChoice("other", self._make, (64, 48))]
        server = SignalingServer(
            targets, workers, settings=SessionSettings(stats_interval_s=0.2), max_frame_bytes=MAX_FRAME_BYTES
        )
        try:
            await server.start("127.0.0.1", 0)
            self.port = server.port
            self._ready.set()
            await self._stop.wait()
        except BaseException as exc:  # reported to the test thread
            self.failure = exc
            raise
        finally:
            self._ready.set()
            await server.stop()
            workers.shutdown(wait=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        assert self.failure is None and self.port, self.failure
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def status(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REPLY_TIMEOUT_S)
        try:
            conn.request("GET", "/status")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def wait_for(self, sessions: int, max_tasks: int) -> dict[str, Any]:
        """Poll /status until at most ``sessions`` sessions and ``max_tasks`` asyncio tasks remain."""
        deadline = time.monotonic() + 10
        while True:
            status = self.status()
            if status["sessions"] <= sessions and status["asyncio_tasks"] <= max_tasks:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"left behind: {status} (expected {sessions} sessions, {max_tasks} tasks)"
                )
            time.sleep(0.05)


def _real_offer_sdp() -> str:
    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(VideoStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))

    return asyncio.run(make())


GOOD_SDP = _real_offer_sdp()


def _mutate_sdp(rng: random.Random) -> str:
    """A real offer damaged: lines dropped, duplicated or shuffled, characters replaced, or cut short."""
    lines = GOOD_SDP.split("\r\n")
    for _ in range(rng.randint(1, 4)):
        if not lines:  # cut at the first line: nothing left to damage
            break
        what = rng.choice(["drop", "dup", "swap", "chars", "cut", "junk"])
        i = rng.randrange(len(lines))
        if what == "drop":
            lines.pop(i)
        elif what == "dup":
            lines.insert(i, lines[i])
        elif what == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif what == "chars" and lines[i]:
            k = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:k] + rng.choice(["\x00", "=", " ", "\u00e9", "9" * 30]) + lines[i][k + 1 :]
        elif what == "cut":
            lines = lines[:i]
        else:
            lines.insert(i, "".join(rng.choice("aeimv=: /0123456789") for _ in range(rng.randint(1, 40))))
    return "\r\n".join(lines)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
MESSAGES: dict[str, st.SearchStrategy[str | bytes]] = {
    "malformed json": st.text(max_size=200).filter(lambda t: not _is_json(t)),
    "truncated json": st.integers(1, 60).map(lambda n: json.dumps({"type": "offer", "sdp": GOOD_SDP})[:n]),
    "not an object": _json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    "wrong types": st.fixed_dictionaries(
        {"type": st.sampled_from(["offer", "answer", "stats", "", "OFFER", "bye "]) | _json_values},
        optional={"sdp": _json_values, "sdpType": _json_values, "target": _json_values},
    ).map(json.dumps),
    "sdp garbage": st.randoms(use_true_random=False).map(
        lambda rng: json.dumps({"type": "offer", "sdp": _mutate_sdp(rng)})
    ),
    "unknown target": st.text(min_size=1, max_size=30)
    .filter(lambda t: t not in ("fake", "other"))
    .map(lambda t: json.dumps({"type": "offer", "sdp": GOOD_SDP, "target": t})),
    "huge": st.integers(MAX_MESSAGE_BYTES + 1, MAX_FRAME_BYTES + (64 << 10)).map(
        lambda n: json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a" * n})
    ),
    "binary": st.binary(min_size=1, max_size=300),
}
CASES: collections.Counter[str] = collections.Counter()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _reply(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not stats."""
    while True:
        message = json.loads(ws.recv(timeout=REPLY_TIMEOUT_S))
        if message["type"] != "stats":
            return message


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[ServerThread, ClientConnection, dict[str, Any]]]:
    """The server, a witness session that streams all along (its offer was answered), and the baseline
    status with the witness open."""
    with ServerThread() as server, connect(f"ws://127.0.0.1:{server.port}/ws", max_queue=None) as witness:
        witness.send(json.dumps({"type": "offer", "sdp": GOOD_SDP}))
        assert _reply(witness)["type"] == "answer"
        time.sleep(0.5)
        baseline = server.status()
        assert baseline["sessions"] == 1 and baseline["streams"] == 1
        yield server, witness, baseline
        witness.close()
        status = server.wait_for(sessions=0, max_tasks=baseline["asyncio_tasks"])
        assert status["streams"] == 0
    assert server.failure is None, server.failure
    assert all(r.close_count == 1 for r in server.made), [r.close_count for r in server.made]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_fuzzed_signaling_gets_answers_leaves_nothing_and_others_keep_streaming(
    fuzz_server: tuple[ServerThread, ClientConnection, dict[str, Any]], data: st.DataObject
) -> None:
    server, witness, baseline = fuzz_server
    kinds = data.draw(st.lists(st.sampled_from(sorted(MESSAGES)), min_size=1, max_size=4), label="kinds")
    with connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as ws:
        answered = False
        for kind in kinds:
            message = data.draw(MESSAGES[kind], label=kind)
            CASES[kind] += 1
            ws.send(message)
            size = len(message) if isinstance(message, bytes) else len(message.encode())
            if size > MAX_FRAME_BYTES:  # over the WebSocket's max_size: the connection is closed, 1009
                with pytest.raises(ConnectionClosed):
                    _reply(ws)
                assert ws.close_code == 1009
                break
            reply = _reply(ws)
            if reply["type"] == "answer":  # a damaged SDP that aiortc still accepts: now streaming
                assert not answered and kind in ("sdp garbage", "wrong types")
                answered = True
                continue
            assert reply["type"] == "error" and reply["message"] and reply["code"], reply
            if answered and kind in ("sdp garbage", "unknown target"):
                assert reply["code"] in ("bad_offer", "unknown_target", "bad_message"), reply
    # this client's session ended without leftovers, and the witness kept streaming throughout
    server.wait_for(sessions=1, max_tasks=baseline["asyncio_tasks"])
    assert _latest_stats(witness)["uptime_s"] > 0


def _latest_stats(ws: ClientConnection) -> dict[str, Any]:
    """Drain the witness's queued messages (all stats); the newest, waiting for one if none is queued."""
    latest = json.loads(ws.recv(timeout=REPLY_TIMEOUT_S))
    with contextlib.suppress(TimeoutError):
        while True:
            latest = json.loads(ws.recv(timeout=0))
    assert latest["type"] == "stats", latest
    return latest


def test_fuzz_case_counts(fuzz_server: tuple[ServerThread, ClientConnection, dict[str, Any]]) -> None:
    """Reports how many cases of each kind the fuzz test sent (run after it; skipped when run alone)."""
    if not CASES:
        pytest.skip("run together with the fuzz test to count its cases")
    print(f"fuzzed signaling cases: {sum(CASES.values())} {dict(sorted(CASES.items()))}")
    assert sum(CASES.values()) >= 60 and len(CASES) >= 6, CASES


# -- odd frames through the real pipeline -----------------------------------------------------------------


class ListCamera(MediaStreamTrack):
    """Plays ``(name, rgb)`` frames at ``fps``, each ``repeat`` times, then ends; :attr:`names` maps pts to
    the case."""

    kind = "video"

    def __init__(self, frames: list[tuple[str, np.ndarray]], fps: float, repeat: int) -> None:
        super().__init__()
        self.frames = [f for f in frames for _ in range(repeat)]
        self.fps = fps
        self.sent = 0
        self.names: dict[int, str] = {}

    async def recv(self) -> av.VideoFrame:
        if self.sent >= len(self.frames):
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(1.0 / self.fps)
        name, rgb = self.frames[self.sent]
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self.sent * 3000, Fraction(1, 90000)
        self.names[frame.pts] = name
        self.sent += 1
        return frame


def odd_frames() -> list[tuple[str, np.ndarray]]:
    """Tiny, odd-sized, 4K and empty frames; with ../shared/data also several people and half a body."""
    from conftest import SHARED_DATA

    rng = np.random.default_rng(0)
    frames = [
        ("1x1", rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)),
        ("2x2", rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)),
        ("odd 17x33", rng.integers(0, 256, (33, 17, 3), dtype=np.uint8)),
        ("odd 641x479", rng.integers(0, 256, (479, 641, 3), dtype=np.uint8)),
        ("4K 3840x2160", np.full((2160, 3840, 3), 90, np.uint8)),
        ("nobody: flat", np.full((360, 640, 3), 128, np.uint8)),
        ("nobody: noise", rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)),
    ]
    source = SHARED_DATA / "source_dance.mp4"
    if source.is_file():
        with av.open(str(source)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == 120:
                    dancer = frame.to_ndarray(format="rgb24", width=270, height=480)
                    break
        frames += [
            ("dancer", dancer),
            ("several people: two", np.concatenate([dancer, dancer[:, ::-1]], axis=1)),
            ("several people: three", np.concatenate([dancer] * 3, axis=1)),
            ("half a body: top", np.ascontiguousarray(dancer[:240])),
            ("half a body: bottom", np.ascontiguousarray(dancer[240:])),
            ("half a body: left", np.ascontiguousarray(dancer[:, :135])),
            (
                "dancer in 4K",
                np.asarray(
                    av.VideoFrame.from_ndarray(dancer, format="rgb24").to_ndarray(width=2160, height=3840),
                    np.uint8,
                ),
            ),
        ]
    return frames


def test_odd_frames_each_get_an_answer_from_the_real_pipeline(tiny_engine: Path) -> None:
    from realtime.model.pipeline import Retargeter, Target

    frames = odd_frames()
    target = Target.load(tiny_engine)

    async def main() -> tuple[dict[str, int], RetargetStream, list[asyncio.Task[Any]], Retargeter]:
        workers = StreamWorkers.create()
        camera = ListCamera(frames, fps=4, repeat=2)  # slow enough that no frame is dropped as stale
        retargeter = await asyncio.to_thread(Retargeter, target, live=True)
        stream = RetargetStream(camera, retargeter, workers)
        stream.start()
        answered: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await asyncio.wait_for(stream.output.recv(), 30)
                assert (frame.width, frame.height) == (2 * target.canvas_size[0], target.canvas_size[1])
                assert frame.pts is not None
                answered[camera.names[frame.pts]] += 1
        tasks = stream.tasks
        await stream.stop()
        await asyncio.to_thread(workers.shutdown)
        return answered, stream, tasks, retargeter

    answered, stream, tasks, retargeter = asyncio.run(main())
    names = [name for name, _ in frames]
    assert set(answered) == set(names), f"no output for {set(names) - set(answered)}"
    snapshot = stream.stats.snapshot()
    assert snapshot.frames_failed == 0 and snapshot.frames_in == 2 * len(frames), snapshot
    assert all(t.done() for t in tasks) and retargeter._estimator is None  # closed
    print(f"odd frame cases: {len(names)}: {names}")


# -- over real WebRTC, in a network namespace --------------------------------------------------------------


@pytest.fixture
def _needs_netns() -> None:
    reason = netns.skip_reason()
    if reason is not None:
        pytest.skip(reason)


PORT = 8080


@pytest.mark.slow
@pytest.mark.usefixtures("_needs_netns")
def test_webrtc_faults_all_answered_and_nothing_leaks(tiny_engine: Path, tmp_path: Path) -> None:
    """``python -m bench.loadtest --faults`` against ``server.py`` with the real (tiny) pipeline."""
    from conftest import shared_video

    source = shared_video("source_dance.mp4")
    server = [sys.executable, "server.py", "--engine", str(tiny_engine), "--max-sessions", "3"]
    server += ["--host", netns.NETNS_HOST, "--port", str(PORT)]
    out = tmp_path / "faults.json"
    client = [sys.executable, "-m", "bench.loadtest", "--url", f"ws://{netns.NETNS_HOST}:{PORT}/ws"]
    client += ["--source", str(source), "--faults", "--json", str(out)]
    run = netns.run_server_and_client(server, client, port=PORT, client_timeout_s=240)
    assert run.server_rc == 0 and run.server_early_rc is None, run.output
    report = json.loads(out.read_text())["faults"]
    print(f"WebRTC fault cases: {report['cases_total']} {report['cases']}; leaks {report['leaks']}")
    assert report["ok"] and run.client_rc == 0, (report["problems"], report["leaks"], run.output[-3000:])
    assert report["cases_total"] >= 40
    assert {"vanish: client killed", "vanish: socket cut", "renegotiate", "audio only", "server full"} <= set(
        report["cases"]
    )
    assert sum(1 for kind in report["cases"] if kind.startswith("frame ")) >= 12


@pytest.mark.slow
@pytest.mark.usefixtures("_needs_netns")
def test_load_script_reports_fps_latency_and_memory(tmp_path: Path) -> None:
    """Two clients at once against the fake pipeline (fast, no model): per-client fps and latency, memory."""
    from conftest import shared_video

    source = shared_video("source_dance.mp4")
    engine = tmp_path / "fake.json"
    engine.write_text(json.dumps({"canvas_size": [96, 64], "process_ms": 20}))
    server = server_command("--engine", str(engine), "--test-stamp")
    server += ["--host", netns.NETNS_HOST, "--port", str(PORT)]
    out = tmp_path / "load.json"
    client = [sys.executable, "-m", "bench.loadtest", "--url", f"ws://{netns.NETNS_HOST}:{PORT}/ws"]
    client += ["--source", str(source), "--clients", "2", "--seconds", "5", "--stamp", "--json", str(out)]
    run = netns.run_server_and_client(server, client, port=PORT, client_timeout_s=120)
    assert run.server_rc == 0, run.output
    report = json.loads(out.read_text())
    (round_,) = report["rounds"]
    assert run.client_rc == 0 and round_["ok"] and report["largest_ok_clients"] == 2, round_
    assert len(round_["per_client"]) == 2
    for client_report in round_["per_client"]:
        assert client_report["fps"] >= 10 and not client_report["errors"], client_report
        assert (
            0 < client_report["server_latency_ms"]["p50"] < client_report["glass_to_glass_ms"]["p95"] < 2000
        )
    assert round_["rss_mib"]["start"] > 10 and round_["rss_mib"]["end"] > 10
    assert round_["sessions_after"] == 0
