"""Load and fault tests against a running live server (run it and this inside one network namespace).

Load: N aiortc clients stream the same video at once (decoded once, shared); each reports frames per second
received, server latency and (with ``--stamp`` and a server run with ``--test-stamp``) glass-to-glass latency.
``--clients 1,2,4`` runs one round per count and reports the largest count at which every client still got
``--min-fps``::

    python -m bench.loadtest --url ws://127.0.0.2:8080/ws --source VIDEO.mp4 --clients 1,2,4 --seconds 30

Faults (``--faults``): clients that vanish mid-stream (killed, or their socket cut), renegotiate, send audio
only, find the server full, send malformed signaling, and frames of odd sizes (1x1, odd widths, 4K) and with
nobody, several people or half a body in them. Every case must get a clear answer (an error message, or
generated frames), and at the end the server must be back to no sessions and no more asyncio tasks than at
the start::

    python -m bench.loadtest --url ws://127.0.0.2:8080/ws --source VIDEO.mp4 --faults

Both read the server's ``GET /status`` (sessions, resident memory, CPU time) before and after. Prints a JSON
report (also written with ``--json``); exit code 0 when every round / case passed, 1 otherwise, 2 for a bad
source file.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fractions
import json
import logging
import resource
import signal
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.client import ClientSummary, DecodedClip, LatencySummary, VideoFileTrack, run_client

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 20.0
"""How long a fault case waits for the server's answer."""
IDLE_TIMEOUT_S = 20.0
"""How long to wait for the server to close every session after a round."""


# -- the server's HTTP side ----------------------------------------------------------------------------------


def http_url(ws_url: str, path: str) -> str:
    """The address of ``path`` on the server of signaling URL ``ws_url`` (ws -> http, wss -> https)."""
    parts = urllib.parse.urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def _get_json(url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


async def server_status(ws_url: str) -> dict[str, Any]:
    """The server's ``GET /status``.

    Raises:
        OSError: if the server cannot be reached.
    """
    return await asyncio.to_thread(_get_json, http_url(ws_url, "/status"))


async def wait_idle(ws_url: str, timeout_s: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
    """Poll ``/status`` until no session is open (or ``timeout_s`` passed); the last status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await server_status(ws_url)
        if status["sessions"] == 0 or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / (1 << 20), 1)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- load --------------------------------------------------------------------------------------------------


def client_figures(summary: ClientSummary, window: tuple[float, float] | None) -> dict[str, Any]:
    """One client's figures: frames per second received (over ``window``, perf_counter seconds, when all
    clients were streaming), server and glass-to-glass latency, errors."""
    fps = summary.received_fps
    if window is not None and window[1] > window[0]:
        inside = [t for t in summary.frame_times_s if window[0] <= t <= window[1]]
        fps = round(len(inside) / (window[1] - window[0]), 2)
    glass = summary.glass_to_glass_ms.get("all")
    server = summary.server_latency_ms.get("all")
    return {
        "fps": fps,
        "frames_received": summary.frames_received,
        "server_latency_ms": None if server is None else {"p50": server.median, "p95": server.p95},
        "glass_to_glass_ms": None if glass is None else {"p50": glass.median, "p95": glass.p95},
        "errors": summary.errors,
    }


async def load_round(
    url: str,
    clip: DecodedClip,
    clients: int,
    seconds: float,
    *,
    min_fps: float,
    target: str | None = None,
    stamp: bool = False,
    ramp_s: float = 0.5,
) -> dict[str, Any]:
    """``clients`` clients at once for ``seconds`` each (started ``ramp_s`` apart); the round's report.

    ``ok`` is true when every client received at least ``min_fps`` frames per second while all of them were
    streaming, and none saw an error.
    """
    before = await server_status(url)
    cpu_before_s = _own_cpu_s()
    tasks = []
    for i in range(clients):
        if i:
            await asyncio.sleep(ramp_s)
        coro = run_client(url, clip, seconds, target=target, stamp=stamp, window_s=min(10.0, seconds / 3))
        tasks.append(asyncio.create_task(coro, name=f"load-client-{i}"))
    summaries: list[ClientSummary] = await asyncio.gather(*tasks)
    client_cpu_s = _own_cpu_s() - cpu_before_s
    after = await wait_idle(url)
    starts = [s.frame_times_s[0] for s in summaries if s.frame_times_s]
    ends = [s.frame_times_s[-1] for s in summaries if s.frame_times_s]
    window = (max(starts), min(ends)) if len(starts) == clients else None
    per_client = [client_figures(s, window) for s in summaries]
    fps = [c["fps"] or 0.0 for c in per_client]
    glass = [v for s in summaries for v in s.glass_to_glass_samples_ms]
    server_cpu_s = after["cpu_s"] - before["cpu_s"]
    return {
        "clients": clients,
        "seconds": seconds,
        "ok": all(f >= min_fps for f in fps) and not any(c["errors"] for c in per_client),
        "fps_min": min(fps),
        "fps_mean": round(float(np.mean(fps)), 2),
        "all_streaming_s": None if window is None else round(window[1] - window[0], 1),
        "per_client": per_client,
        "glass_to_glass_ms": _summary_dict(LatencySummary.of(glass)) if glass else None,
        "rss_mib": {"start": _mib(before["rss_bytes"]), "end": _mib(after["rss_bytes"])},
        "cpu_s": {"server": round(server_cpu_s, 1), "clients": round(client_cpu_s, 1)},
        "sessions_after": after["sessions"],
        "asyncio_tasks": {"start": before["asyncio_tasks"], "end": after["asyncio_tasks"]},
    }


def _summary_dict(summary: LatencySummary) -> dict[str, Any]:
    return {"p50": summary.median, "p95": summary.p95, "count": summary.count}


# -- faults ------------------------------------------------------------------------------------------------


@dataclass
class FaultLog:
    """Cases tried per kind, and the ones that did not get a clear answer."""

    cases: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def case(self, kind: str, ok: bool, detail: str = "") -> None:
        """Count one case of ``kind``; a failed one is a problem."""
        self.cases[kind] += 1
        if not ok:
            self.problems.append(f"{kind}: {detail}")
            log.warning("fault case %s failed: %s", kind, detail)


async def _offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())  # returns once ICE gathering is done
    return pc.localDescription.sdp


async def _next_message(ws: ClientConnection, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The next message whose type is in ``kinds`` (stats skipped).

    Raises:
        asyncio.TimeoutError, ConnectionClosed.
    """
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
        if message.get("type") in kinds:
            return message


class CaseTrack(MediaStreamTrack):
    """A camera that plays a list of still images, each for ``frames_per_case`` frames at ``fps``, with a
    pause after each; :attr:`case` is the image being sent (None during pauses)."""

    kind = "video"

    def __init__(self, cases: list[tuple[str, np.ndarray]], fps: float = 10.0, frames_per_case: int = 8):
        super().__init__()
        self.cases = cases
        self.fps = fps
        self.frames_per_case = frames_per_case
        self.case: str | None = None
        self.case_started = asyncio.Event()
        self.done = asyncio.Event()
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        """The next frame; blocks while paused (the controller sets :attr:`case_started`)."""
        if self.readyState != "live":
            raise MediaStreamError
        await self.case_started.wait()
        await asyncio.sleep(1.0 / self.fps)
        index = min(self.sent // self.frames_per_case, len(self.cases) - 1)
        name, image = self.cases[index]
        self.case = name
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = int(self.sent * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.sent += 1
        if self.sent % self.frames_per_case == 0:
            self.case_started.clear()  # pause until the controller has counted the answers
            self.done.set()
        return frame


def frame_cases(clip: DecodedClip) -> list[tuple[str, np.ndarray]]:
    """Odd frames: tiny, odd-sized and 4K (the dancer squeezed in), nobody, several people, half a body."""
    yuv = clip.frames[len(clip.frames) // 2]
    width, height = clip.size
    dancer = av.VideoFrame.from_ndarray(yuv, format="yuv420p").to_ndarray(format="rgb24")

    def resized(w: int, h: int) -> np.ndarray:
        frame = av.VideoFrame.from_ndarray(dancer, format="rgb24")
        return frame.reformat(width=w, height=h, format="rgb24").to_ndarray()

    rng = np.random.default_rng(0)
    return [
        ("1x1", resized(1, 1)),
        ("2x2", resized(2, 2)),
        ("odd 33x17", resized(33, 17)),
        ("odd 641x479", resized(641, 479)),
        ("4K 3840x2160", resized(3840, 2160)),
        ("nobody: flat grey", np.full((height, width, 3), 128, np.uint8)),
        ("nobody: noise", rng.integers(0, 256, (height, width, 3), dtype=np.uint8)),
        ("several people: two", np.concatenate([dancer, dancer[:, ::-1]], axis=1)),
        ("several people: three", np.concatenate([dancer, dancer, dancer], axis=1)),
        ("half a body: top", np.ascontiguousarray(dancer[: height // 2])),
        ("half a body: bottom", np.ascontiguousarray(dancer[height // 2 :])),
        ("half a body: left", np.ascontiguousarray(dancer[:, : width // 2])),
        ("normal again", dancer),
    ]


class OfferRefused(Exception):
    """The server answered an offer with an error message (kept in :attr:`reply`)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"offer refused: {reply}")
        self.reply = reply


@contextlib.asynccontextmanager
async def _session(
    url: str, camera: MediaStreamTrack, on_frame: Callable[[], None] | None = None
) -> AsyncIterator[tuple[ClientConnection, RTCPeerConnection, list[asyncio.Task[Any]]]]:
    """A streaming session: ``camera`` offered to the server at ``url``, its answer applied, the generated
    frames consumed (``on_frame()`` after each). Yields ``(ws, pc, tasks)``; tasks added to ``tasks`` are
    cancelled with the session's own when it ends (camera stopped, peer connection closed).

    Raises:
        OfferRefused: if the server answers the offer with an error.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tasks: list[asyncio.Task[Any]] = []

    async def consume(track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                if on_frame is not None:
                    on_frame()
        except MediaStreamError:
            return

    pc.on("track", lambda track: tasks.append(asyncio.create_task(consume(track))))
    pc.addTrack(camera)
    try:
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "offer", "sdp": await _offer(pc)}))
            answer = await _next_message(ws, ("answer", "error"))
            if answer["type"] != "answer":
                raise OfferRefused(answer)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            yield ws, pc, tasks
    finally:
        camera.stop()
        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def fault_odd_frames(url: str, clip: DecodedClip, faults: FaultLog) -> None:
    """One session sends every frame case in turn; each must be answered by generated frames (or, for a
    frame the pipeline cannot take, a counted failure in the stats) and the session must survive."""
    cases = frame_cases(clip)
    camera = CaseTrack(cases)
    received = [0]
    last_stats: dict[str, Any] = {}

    def count() -> None:
        received[0] += 1

    try:
        async with _session(url, camera, on_frame=count) as (ws, _pc, tasks):

            async def read_stats() -> None:
                async for message in ws:
                    msg = json.loads(message)
                    if msg.get("type") == "stats":
                        last_stats.update(msg)

            tasks.append(asyncio.create_task(read_stats()))
            for name, image in cases:
                before_frames, before_failed = received[0], last_stats.get("frames_failed", 0)
                camera.done.clear()
                camera.case_started.set()
                await asyncio.wait_for(camera.done.wait(), 60)
                deadline = time.monotonic() + 8.0  # a 4K frame takes a while to encode and decode
                while time.monotonic() < deadline:
                    failed = last_stats.get("frames_failed", 0) - before_failed
                    if received[0] > before_frames or failed > 0:
                        break
                    await asyncio.sleep(0.1)
                answered = received[0] - before_frames
                failed = last_stats.get("frames_failed", 0) - before_failed
                faults.case(
                    f"frame {name}",
                    answered > 0 or failed > 0,
                    f"{image.shape}: no generated frame, no failure",
                )
                faults.notes.setdefault("frames", {})[name] = {"generated": answered, "failed": failed}
            await ws.send(json.dumps({"type": "bye"}))
    except OfferRefused as refused:
        faults.case("odd frames", False, f"offer refused: {refused.reply}")


async def fault_signaling(url: str, faults: FaultLog) -> None:
    """Malformed messages on the real server: each must be answered with an error, the session going on."""
    good_sdp = await _offer_sdp_without_candidates(("video",))
    bad = [
        "{not json",
        '{"type": "offer", "sdp": ',
        "[1, 2, 3]",
        "null",
        "{}",
        '{"type": 5}',
        '{"type": "dance"}',
        '{"type": "offer"}',
        '{"type": "offer", "sdp": 42}',
        '{"type": "offer", "sdp": "hello, not SDP"}',
        json.dumps({"type": "offer", "sdp": good_sdp, "target": ["not", "a", "name"]}),
        json.dumps({"type": "offer", "sdp": good_sdp, "target": "no such target"}),
        json.dumps({"type": "offer", "sdp": good_sdp[: len(good_sdp) // 2]}),
        json.dumps({"type": "offer", "sdp": good_sdp.replace("m=video", "m=vidoe")}),
        json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20_000}),  # huge (>64 KiB)
        "\x00\x01\x02",
    ]
    async with connect(url) as ws:
        for message in bad:
            await ws.send(message)
            try:
                reply = await _next_message(ws, ("error", "answer"))
            except (asyncio.TimeoutError, ConnectionClosed) as exc:
                faults.case("signaling garbage", False, f"{message[:40]!r}: {exc!r}")
                return
            ok = reply["type"] == "error" or "m=vidoe" in message  # aiortc may tolerate that damage
            faults.case("signaling garbage", ok, f"{message[:40]!r} got {reply}")
            if reply["type"] == "answer":
                return  # the session now streams; further offers would be renegotiations
        await ws.send(b"\x01\x02")  # binary
        reply = await _next_message(ws, ("error",))
        faults.case("signaling garbage", "binary" in reply["message"], str(reply))


async def _offer_sdp_without_candidates(kinds: tuple[str, ...]) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        pc.addTrack(AudioStreamTrack() if kind == "audio" else _Black())
    sdp = await _offer(pc)
    await pc.close()
    return "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith("a=candidate"))


class _Black(MediaStreamTrack):
    kind = "video"

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0.1)
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
        return frame


async def _stream_then(
    url: str, clip: DecodedClip, then: Callable[[ClientConnection, RTCPeerConnection], Awaitable[None]]
) -> None:
    """Stream ``clip`` for a second, then run ``then(ws, pc)``; cleans up after."""
    try:
        async with _session(url, VideoFileTrack(clip)) as (ws, pc, _tasks):
            await _next_message(ws, ("stats",))
            await asyncio.sleep(1.0)
            await then(ws, pc)
    except OfferRefused as refused:
        raise RuntimeError(f"the server refused a good offer: {refused.reply}") from None


async def fault_renegotiate(url: str, clip: DecodedClip, faults: FaultLog) -> None:
    """A second offer while streaming is refused clearly and the stream goes on."""

    async def renegotiate(ws: ClientConnection, pc: RTCPeerConnection) -> None:
        first = await _next_message(ws, ("stats",))
        await ws.send(json.dumps({"type": "offer", "sdp": await _offer_sdp_without_candidates(("video",))}))
        reply = await _next_message(ws, ("error", "answer"))
        faults.case("renegotiate", reply.get("code") == "bad_offer", str(reply))
        await asyncio.sleep(1.5)
        later = await _next_message(ws, ("stats",))
        faults.case(
            "renegotiate: stream goes on", later["frames_out"] > first["frames_out"], f"{first} {later}"
        )
        await ws.send(json.dumps({"type": "bye"}))

    await _stream_then(url, clip, renegotiate)


async def fault_audio_only(url: str, faults: FaultLog) -> None:
    """An audio-only offer gets an error; a video offer afterwards on the same socket is answered."""
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "offer", "sdp": await _offer_sdp_without_candidates(("audio",))}))
        reply = await _next_message(ws, ("error", "answer"))
        faults.case("audio only", "no video track" in reply.get("message", ""), str(reply))
        await ws.send(
            json.dumps({"type": "offer", "sdp": await _offer_sdp_without_candidates(("audio", "video"))})
        )
        reply = await _next_message(ws, ("error", "answer"))
        faults.case("audio and video", reply["type"] == "answer", str(reply)[:200])
        await ws.send(json.dumps({"type": "bye"}))


async def fault_full(url: str, faults: FaultLog) -> None:
    """With every session slot taken, the next client is told the server is full, politely."""
    status = await server_status(url)
    free = status["max_sessions"] - status["sessions"]
    holders = [await connect(url) for _ in range(free)]
    try:
        async with connect(url) as extra:
            try:
                reply = json.loads(await asyncio.wait_for(extra.recv(), REPLY_TIMEOUT_S))
                await asyncio.wait_for(extra.wait_closed(), REPLY_TIMEOUT_S)
            except (asyncio.TimeoutError, ConnectionClosed) as exc:
                faults.case("server full", False, repr(exc))
                return
            ok = reply.get("code") == "server_full" and extra.close_code == 1013
            faults.case("server full", ok, f"{reply} close code {extra.close_code}")
    finally:
        for ws in holders:
            await ws.close()


async def fault_vanish_killed(url: str, source: Path, faults: FaultLog, count: int = 2) -> None:
    """A client process killed mid-stream (SIGKILL: no bye, no close): its session must end on its own."""
    for _ in range(count):
        before = await server_status(url)
        argv = [
            sys.executable,
            "-m",
            "bench.client",
            "--url",
            url,
            "--source",
            str(source),
            "--seconds",
            "60",
        ]
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        streaming = False
        while time.monotonic() < deadline and not streaming:
            await asyncio.sleep(0.3)
            streaming = (await server_status(url))["streams"] > before["streams"]
        await asyncio.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        after = await wait_idle(url, timeout_s=15)
        ok = streaming and after["sessions"] == 0
        faults.case("vanish: client killed", ok, f"streaming={streaming}, sessions after={after['sessions']}")


async def fault_vanish_socket_cut(url: str, clip: DecodedClip, faults: FaultLog) -> None:
    """A client whose signaling socket is cut (no close handshake) while its media still flows."""

    async def cut(ws: ClientConnection, pc: RTCPeerConnection) -> None:
        ws.transport.abort()
        after = await wait_idle(url, timeout_s=15)
        ok = after["sessions"] == 0
        faults.case("vanish: socket cut", ok, f"sessions after={after['sessions']}")

    try:
        await _stream_then(url, clip, cut)
    except ConnectionClosed:
        pass  # the cut socket's context manager cannot close it cleanly: expected


async def run_faults(url: str, source: Path, clip: DecodedClip) -> dict[str, Any]:
    """Every fault scenario in turn; the report with case counts, problems and the server's state."""
    faults = FaultLog()
    before = await wait_idle(url)
    scenarios: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("signaling", lambda: fault_signaling(url, faults)),
        ("audio only", lambda: fault_audio_only(url, faults)),
        ("renegotiate", lambda: fault_renegotiate(url, clip, faults)),
        ("server full", lambda: fault_full(url, faults)),
        ("vanish: killed", lambda: fault_vanish_killed(url, source, faults)),
        ("vanish: socket cut", lambda: fault_vanish_socket_cut(url, clip, faults)),
        ("odd frames", lambda: fault_odd_frames(url, clip, faults)),
    ]
    for name, scenario in scenarios:
        log.info("fault scenario: %s", name)
        await wait_idle(url)  # the previous scenario's sessions have ended
        try:
            await scenario()
        except Exception as exc:  # a scenario that breaks is a problem in the report, and the rest still run
            log.exception("fault scenario %s broke", name)
            faults.case(name, False, f"scenario broke: {type(exc).__name__}: {exc}")
        served = await _still_serves(url, clip)
        faults.case("server still serves", served, f"after {name}")
    after = await wait_idle(url)
    await asyncio.sleep(1.0)  # let the server finish closing the last peer connection's tasks
    after = await server_status(url)
    leaks = {
        "sessions": after["sessions"],
        "streams": after["streams"],
        "asyncio_tasks": {"start": before["asyncio_tasks"], "end": after["asyncio_tasks"]},
        "threads": {"start": before["threads"], "end": after["threads"]},
    }
    no_leak = (
        after["sessions"] == 0 and after["streams"] == 0 and after["asyncio_tasks"] <= before["asyncio_tasks"]
    )
    return {
        "ok": not faults.problems and no_leak,
        "cases": dict(faults.cases),
        "cases_total": sum(faults.cases.values()),
        "problems": faults.problems,
        "leaks": leaks,
        "rss_mib": {"start": _mib(before["rss_bytes"]), "end": _mib(after["rss_bytes"])},
        "notes": faults.notes,
    }


async def _still_serves(url: str, clip: DecodedClip) -> bool:
    """A short normal session gets generated frames."""
    summary = await run_client(url, clip, 1.5)
    return summary.ok


# -- command line ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench.loadtest``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="signaling WebSocket, e.g. ws://127.0.0.2:8080/ws")
    parser.add_argument("--source", required=True, type=Path, help="video file the clients send (looped)")
    parser.add_argument("--clients", default="1", help="client counts, one round each: e.g. 1,2,4")
    parser.add_argument("--seconds", type=float, default=30.0, help="streaming time of each client")
    parser.add_argument("--min-fps", type=float, default=10.0, help="frames per second every client needs")
    parser.add_argument("--max-side", type=int, default=480, help="downscale the source to this longer side")
    parser.add_argument("--ramp", type=float, default=0.5, help="seconds between client starts")
    parser.add_argument("--target", default=None, help="target to ask for (None: the server's default)")
    parser.add_argument("--stamp", action="store_true", help="measure glass-to-glass (server: --test-stamp)")
    parser.add_argument(
        "--faults", action="store_true", help="run the fault scenarios instead of load rounds"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"], help="verbosity"
    )
    return parser


async def _main(args: argparse.Namespace, counts: list[int]) -> dict[str, Any]:
    clip = await asyncio.to_thread(DecodedClip.load, args.source, max_side_px=args.max_side or None)
    if args.faults:
        return {"faults": await run_faults(args.url, args.source, clip)}
    rounds = []
    for clients in counts:
        report = await load_round(
            args.url,
            clip,
            clients,
            args.seconds,
            min_fps=args.min_fps,
            target=args.target,
            stamp=args.stamp,
            ramp_s=args.ramp,
        )
        rounds.append(report)
        print(
            f"{clients} client(s): fps min {report['fps_min']}, mean {report['fps_mean']}, "
            f"{'ok' if report['ok'] else 'NOT ok'}",
            file=sys.stderr,
            flush=True,
        )
    passing = [r["clients"] for r in rounds if r["ok"]]
    return {
        "min_fps": args.min_fps,
        "largest_ok_clients": max(passing) if passing else 0,
        "source": {"path": str(args.source), "size": list(clip.size), "fps": clip.fps},
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; see the module docstring for exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--clients must be numbers separated by commas, got {args.clients!r}")
    if not counts or min(counts) < 1:
        parser.error(f"--clients must be at least 1, got {args.clients!r}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        report = asyncio.run(_main(args, counts))
    except (FileNotFoundError, ValueError, av.error.FFmpegError) as exc:
        print(f"error: cannot use {args.source} as the camera: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot reach the server at {args.url}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    ok = report["faults"]["ok"] if args.faults else all(r["ok"] for r in report["rounds"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
