"""A WHIP publisher and WHEP viewers in aiortc against the live server: one dancer, several viewers, one of
which vanishes.

As a CLI (prints a JSON summary; exit code 0 when every viewer got generated frames, the vanished viewer
left nothing behind and nothing failed)::

    python -m bench.whip_aiortc --url http://127.0.0.2:8080 --source VIDEO.mp4 --seconds 20 [--viewers 2]
        [--target NAME] [--token TOKEN] [--stamp] [--json OUT.json]

The publisher POSTs its offer (``application/sdp``, a sendonly video of ``--source`` played as a camera)
to ``/whip/TARGET`` as OBS would, and the session id is taken from the ``Location``. Viewer 1 plays
``/whep/ID`` for the whole run; viewers 2.. join after a third of it and, at two thirds, the last of them
closes its peer connection without a DELETE (it vanishes); the run then polls ``/status`` until the server
has let it go (ICE consent or the DTLS close). ``/status`` is recorded before the extra viewers, with them,
after the vanish, and after the publisher's DELETE. With ``--stamp`` (the server with ``--test-stamp``),
each viewer's glass-to-glass latency is read from the frames' stamps (:mod:`realtime.serving.stamp`).

aiortc never offers 127.0.0.1 as an ICE candidate: run server and client on another loopback address
(e.g. 127.0.0.2 inside a network namespace, :mod:`bench.netns`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bench.client import FrameReceiver, LatencySummary, VideoFileTrack
from realtime.serving.aiortc_patch import use_marker_jitter_buffers

log = logging.getLogger(__name__)

SDP = "application/sdp"


class WhipError(Exception):
    """An endpoint answered something other than 201 (the status and the server's line)."""


async def post_offer(
    http: aiohttp.ClientSession, url: str, pc: RTCPeerConnection, token: str | None
) -> tuple[str, str]:
    """POST ``pc``'s offer (after ICE gathering: aiortc's ``setLocalDescription``) to ``url``; apply the
    answer. Returns ``(the resource URL from Location, made absolute, the answer SDP)``.

    Raises:
        WhipError: for any status but 201, or a 201 without ``Location``.
    """
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": SDP, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with http.post(url, data=pc.localDescription.sdp.encode(), headers=headers) as response:
        body = await response.text()
        if response.status != 201:
            raise WhipError(f"POST {url}: {response.status} {body.strip()}")
        location = response.headers.get("Location")
        if not location:
            raise WhipError(f"POST {url}: 201 without a Location header")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return urljoin(url, location), body


async def delete(http: aiohttp.ClientSession, url: str, token: str | None) -> int:
    """DELETE ``url``; its status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.delete(url, headers=headers) as response:
        return response.status


class Viewer:
    """A WHEP viewer: a recvonly peer connection and the frames it got."""

    def __init__(self, camera: VideoFileTrack) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        use_marker_jitter_buffers(self.pc)
        self.receiver = FrameReceiver(camera)
        self.resource: str | None = None
        self.task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.task = asyncio.create_task(self.receiver.consume(track), name="whep-receive")

    def summary(self, start_s: float, end_s: float) -> dict[str, Any]:
        """Frames received, fps between ``start_s`` and ``end_s`` (``time.perf_counter()``), sizes, and
        glass-to-glass latency (with stamps)."""
        times = [t for t in self.receiver.times_s if start_s <= t <= end_s]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None
        latencies = [v for _, v in self.receiver.latencies]
        return {
            "frames": self.receiver.count,
            "fps": None if fps is None else round(fps, 2),
            "frame_sizes": dict(self.receiver.sizes),
            "glass_to_glass_ms": LatencySummary.of(latencies).__dict__,
        }


async def _status(http: aiohttp.ClientSession, base: str, token: str | None) -> dict[str, Any]:
    params = {"token": token} if token else {}
    async with http.get(urljoin(base, "/status"), params=params) as response:
        status: dict[str, Any] = await response.json()
    return {k: status[k] for k in ("sessions", "whip_sessions", "streams", "viewers", "asyncio_tasks",
                                   "threads", "rss_bytes")}  # fmt: skip


async def run(
    url: str,
    source: Path,
    seconds: float,
    *,
    viewers: int = 2,
    target: str | None = None,
    token: str | None = None,
    stamp: bool = False,
    vanish_timeout_s: float = 60.0,
    vanish_cycles: int = 0,
) -> dict[str, Any]:
    """Publish ``source`` by WHIP for ``seconds`` with ``viewers`` WHEP viewers (see the module docstring);
    the summary. Failures are listed in ``errors``. ``vanish_cycles``: after the run, that many more viewers
    each watch for 2 s and vanish, one after another, with ``/status`` after each is let go
    (``vanish_cycles`` in the summary: whether memory, tasks and threads level off).

    Raises:
        FileNotFoundError, ValueError: if ``source`` is not a readable video.
    """
    if viewers < 1:
        raise ValueError(f"viewers must be >= 1, got {viewers}")
    camera = VideoFileTrack(source, max_side_px=640, stamp=stamp)
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(camera, direction="sendonly")
    result: dict[str, Any] = {"url": url, "source": str(source), "seconds": seconds, "errors": []}
    watchers = [Viewer(camera) for _ in range(viewers)]
    async with aiohttp.ClientSession() as http:
        try:
            endpoint = urljoin(url, f"/whip/{target}" if target else "/whip")
            session_url, _ = await post_offer(http, endpoint, publisher, token)
            session = session_url.rstrip("/").rsplit("/", 1)[1]
            result["session"] = int(session)
            whep = urljoin(url, f"/whep/{session}")
            first = watchers[0]
            first.resource, _ = await post_offer(http, whep, first.pc, token)
            start_s = time.perf_counter()
            await asyncio.sleep(seconds / 3)
            result["status_one_viewer"] = await _status(http, url, token)
            for watcher in watchers[1:]:
                watcher.resource, _ = await post_offer(http, whep, watcher.pc, token)
            joined_s = time.perf_counter()
            await asyncio.sleep(seconds / 3)
            result["status_all_viewers"] = await _status(http, url, token)
            vanish_s = time.perf_counter()
            if len(watchers) > 1:
                await watchers[-1].pc.close()  # no DELETE: the viewer just goes away
                waited_s = 0.0
                while waited_s < vanish_timeout_s:
                    status = await _status(http, url, token)
                    if status["viewers"] == len(watchers) - 1:
                        break
                    await asyncio.sleep(0.5)
                    waited_s = time.perf_counter() - vanish_s
                result["vanished_viewer_released_after_s"] = round(time.perf_counter() - vanish_s, 2)
                await asyncio.sleep(1.0)  # its tasks finish
                result["status_after_vanish"] = await _status(http, url, token)
            await asyncio.sleep(max(0.0, seconds - (time.perf_counter() - start_s)))
            end_s = time.perf_counter()
            result["viewers"] = [
                watchers[0].summary(start_s, end_s),
                *(w.summary(joined_s, vanish_s) for w in watchers[1:]),
            ]
            result["vanish_cycles"] = []
            for _ in range(vanish_cycles):
                extra = Viewer(camera)
                watchers.append(extra)
                extra.resource, _ = await post_offer(http, whep, extra.pc, token)
                await asyncio.sleep(2.0)
                gone_s = time.perf_counter()
                await extra.pc.close()
                while time.perf_counter() - gone_s < vanish_timeout_s:
                    if (await _status(http, url, token))["viewers"] == 1:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.0)
                status = await _status(http, url, token)
                status["frames"] = extra.receiver.count
                status["released_after_s"] = round(time.perf_counter() - gone_s - 1.0, 2)
                result["vanish_cycles"].append(status)
            result["delete_viewer"] = await delete(http, first.resource or "", token)
            result["delete_session"] = await delete(http, session_url, token)
            result["delete_again"] = await delete(http, session_url, token)
            await asyncio.sleep(1.0)
            result["status_end"] = await _status(http, url, token)
        except (WhipError, aiohttp.ClientError, OSError) as exc:
            result["errors"].append(f"{type(exc).__name__}: {exc}")
        finally:
            for watcher in watchers:
                await watcher.pc.close()
                if watcher.task is not None:
                    watcher.task.cancel()
            await publisher.close()
            camera.stop()
    result["frames_sent"] = camera.frames_sent
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.whip_aiortc",
        description="Publish a video by WHIP and watch it by WHEP with several viewers, one vanishing; "
        "prints a JSON summary.",
    )
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.2:8080")
    parser.add_argument("--source", type=Path, required=True, help="a video file played as the camera")
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming time (default: %(default)s)")
    parser.add_argument("--viewers", type=int, default=2, help="WHEP viewers, >= 1 (default: %(default)s)")
    parser.add_argument("--target", default=None, help="the target (default: the server's default)")
    parser.add_argument("--token", default=None, help="the server's token (default: none)")
    parser.add_argument("--stamp", action="store_true", help="stamp frames to measure glass-to-glass")
    parser.add_argument(
        "--vanish-cycles",
        type=int,
        default=0,
        help="after the run, this many more viewers watch 2 s and vanish, one after another (default: 0)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    if args.viewers < 1:
        parser.error(f"--viewers must be >= 1, got {args.viewers}")
    if not args.source.is_file():
        parser.error(f"--source {args.source}: no such file")
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(
        run(args.url, args.source, args.seconds, viewers=args.viewers, target=args.target, token=args.token,
            stamp=args.stamp, vanish_cycles=args.vanish_cycles)
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    ok = not result["errors"] and all(v["frames"] > 0 for v in result.get("viewers", [{"frames": 0}]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
