"""A real browser end to end: Debian's Chromium, driven by Playwright, streams a dance video as its camera to
``server.py`` and shows the generated target; glass-to-glass latency is measured in the page.

The measurement of docs/BENCHMARKS.md and the machinery of ``tests/test_browser.py``. Everything runs inside
a fresh loopback-only network namespace (:mod:`bench.netns`): this module runs itself there
(``python -m bench.browser --inner SPEC``, from the repository root), starts ``server.py --test-stamp``,
then drives Chromium with ``--use-file-for-fake-video-capture`` and prints one ``BROWSER-RESULT {json}``
line.

Glass-to-glass latency, the method
----------------------------------
The camera is ``../shared/data/source_dance.mp4`` turned into a y4m file whose every frame carries its own
index as a barcode in a band added above the picture (:mod:`realtime.serving.stamp`). The server, in test
mode,
copies that band from each camera frame into the output frame made from it. The page reads the barcode of
every frame it shows, on the local camera preview and on the generated video (``requestVideoFrameCallback``,
``drawImage`` of the band into a canvas, the same decoder as ``realtime/serving/stamp.py``), with the time the
frame is shown (``expectedDisplayTime``, the page's ``performance.now()`` clock).

Chromium's fake camera plays the y4m at about its frame rate, looping, so frame ``a`` (counting across
loops) is captured at ``t0 + a * T``. ``T`` is measured: the slope of Chromium's capture times
(``captureTime``) over the frame index (41.81 ms, not 41.67, for the 24 fps file: the fake camera runs
0.35% slow). ``t0`` is calibrated on the local preview: each shown local frame gives ``shown - a * T``,
which is ``t0`` plus that frame's capture-to-display delay; the 0.5th percentile over the whole run is
taken. Glass-to-glass latency of a generated frame = when the page first showed it minus the capture time
of its camera frame.

Its error: the estimate is low by the preview's quickest capture-to-display delay in the run (the time
from the fake camera handing over a frame to the page showing it), and each display time is quantized to
the compositor's frame interval (16.7 ms at 60 Hz). A camera frame delivered late by the fake device (a
busy machine) makes that frame's latency read high by its lateness.

Why the whole run: the preview's delay is not constant. In some runs it switched mid-run between ~50 and
~10 ms a frame, and the earlier calibration (the smallest offset among the preview frames within 2 s of
``a``, with the nominal period; still reported as ``latency_windowed_ms``) then under-read by ~40 ms while
the preview was slow and stepped up when it turned quick, which looked like growth. Chromium's own
``captureTime`` (``latency_by_capture_time_ms``) is no absolute reference either: some preview frames show
a display time up to ~45 ms before their ``captureTime``, so its offset is off, while its rate is sound.

What is measured: ``--seconds`` of plain streaming, after the page's features were exercised (a 2 s
recording, which encodes a second video in the page, and the mirror toggle). Beside the latency, once a
second the server's stats message (server latency, per-stage timings: ``server_latency_ms_by_10s``) and, at
the start and end, the page's WebRTC statistics (``browser``: the camera's encode time, the generated
video's jitter-buffer delay, decode time; :func:`browser_breakdown`).

For the 60 s measurement of docs/BENCHMARKS.md (from the repository root)::

    python -m bench.browser --engine TARGET.onnx --seconds 60 --width 256 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench import netns
from realtime.catalog import PLAYOUT_DELAYS
from realtime.serving.stamp import band_height, draw_stamp
from realtime.targets import DEFAULT_TARGET

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PORT = 8080
RESULT_PREFIX = "BROWSER-RESULT "
CHROMIUM_ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
RTC_TOTALS_JS = """async () => {
  const out = {};
  const session = window.dance.session;
  if (!session || !session.pc) return out;
  const report = await session.pc.getStats();
  const pick = (s, names) =>
    Object.fromEntries(names.filter((n) => s[n] !== undefined).map((n) => [n, s[n]]));
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out.camera = pick(s, ["framesEncoded", "totalEncodeTime", "packetsSent", "totalPacketSendDelay",
                            "framesSent", "bytesSent", "frameWidth", "frameHeight",
                            "qualityLimitationReason"]);
    }
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.target = pick(s, ["framesReceived", "framesDecoded", "totalDecodeTime", "totalProcessingDelay",
                            "totalAssemblyTime", "framesAssembledFromMultiplePackets", "jitterBufferDelay",
                            "jitterBufferTargetDelay", "jitterBufferMinimumDelay", "jitterBufferEmittedCount",
                            "framesDropped", "bytesReceived", "freezeCount"]);
    }
  });
  return out;
}"""
"""Cumulative WebRTC statistics of the page's session (W3C webrtc-stats): the camera's outbound-rtp and the
generated video's inbound-rtp."""
CALIBRATION_WINDOW_S = 2.0
"""Local frames within this many seconds of a frame calibrate its capture time (the sliding window)."""
GLOBAL_CALIBRATION_PERCENTILE = 0.5
"""The whole-run calibration takes this percentile of the detrended preview offsets as the capture start."""
MIN_FRAMES_FOR_DRIFT = 10
"""Preview frames with Chromium's capture time needed to measure the camera's frame period."""


def skip_reason() -> str | None:
    """None where this test can run here, else why not (no Chromium, no Playwright, no namespaces)."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is absent (Debian package chromium: apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright; no browser download needed)"
    return netns.skip_reason()


# -- the camera --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraVideo:
    """A y4m file for Chromium's fake camera: ``frames`` frames of ``size`` (width, height) at ``fps``."""

    path: Path
    fps: float
    frames: int
    size: tuple[int, int]


def make_camera_y4m(source: Path, out: Path, width: int = 256, max_frames: int | None = None) -> CameraVideo:
    """Write ``source`` as a y4m camera ``width`` pixels wide, each frame with its index stamped in a band
    added above the picture (so the stamp hides nothing of the dancer)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if rate is None:
            raise ValueError(
                f"{source}: the video stream has no frame rate; re-encode it with one (ffmpeg -r 24)"
            )
        fps = float(rate)
        src_w, src_h = stream.codec_context.width, stream.codec_context.height
        picture_h = int(round(width * src_h / src_w / 2)) * 2
        band = band_height(width)
        band += band % 2
        height = picture_h + band
        count = 0
        with out.open("wb") as file:
            rate_text = f"{rate.numerator}:{rate.denominator}"
            file.write(f"YUV4MPEG2 W{width} H{height} F{rate_text} Ip A1:1 C420jpeg\n".encode())
            for frame in container.decode(stream):
                rgb = np.zeros((height, width, 3), np.uint8)
                rgb[band:] = frame.to_ndarray(format="rgb24", width=width, height=picture_h)
                draw_stamp(rgb, count)
                yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
                file.write(b"FRAME\n")
                file.write(yuv.tobytes())
                count += 1
                if max_frames is not None and count >= max_frames:
                    break
    return CameraVideo(out, fps, count, (width, height))


# -- the analysis ------------------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50": None, "p95": None}
    array = np.asarray(values, np.float64)
    return {
        "count": len(values),
        "p50": round(float(np.percentile(array, 50)), 1),
        "p95": round(float(np.percentile(array, 95)), 1),
    }


def glass_to_glass(
    local: list[list[Any]], remote: list[list[Any]], fps: float, frames: int, window_s: float = 10.0
) -> dict[str, Any]:
    """Glass-to-glass latency from the page's stamp records (see the module docstring for the method).

    Args:
        local: ``[index, shown_ms, capture_ms or None]`` of each camera preview frame the page showed.
        remote: ``[index, shown_ms, received_ms or None]`` of each generated frame the page showed (received:
            the last packet of the frame, where Chromium gives it).
        fps: the camera's frame rate; frames: frames in one loop of the camera file.
        window_s: length of the "start" and "end" stretches.

    Returns:
        ``latency_ms`` (all, start, end: count / p50 / p95; ``p95_by_stretch``: p95 of each ``window_s``
        stretch in order; ``trend_ms_per_min``: the least-squares slope of latency over the run, its growth),
        ``calibration`` ("whole run", or "sliding window" where Chromium gives no capture times),
        ``camera_frame_ms`` (the fake camera's measured frame period), ``latency_windowed_ms`` (the same
        figures with the sliding-window calibration), ``latency_by_capture_time_ms`` (against Chromium's own
        capture times, where it gives them), ``received_to_shown_ms`` (the page's own share: from a generated
        frame's last packet to its display), ``calibration_ms`` (how far the estimated capture times lie from
        Chromium's: median and p95 of the absolute difference), and counts.
    """
    period_ms = 1000.0 / fps
    loop_ms = frames * period_ms
    # unwrap the local indices across loops of the camera file
    local_abs: list[tuple[int, float, float | None]] = []
    loops, previous = 0, None
    for index, shown_ms, capture_ms in local:
        if previous is not None and index < previous - frames // 2:
            loops += 1
        previous = index
        local_abs.append((index + loops * frames, shown_ms, capture_ms))
    if not local_abs or not remote:
        return {
            "latency_ms": {"all": _percentiles([])},
            "local_frames": len(local),
            "remote_frames": len(remote),
        }
    abs_index = np.array([a for a, _, _ in local_abs], np.int64)
    offsets_ms = np.array([shown - a * period_ms for a, shown, _ in local_abs])
    window = CALIBRATION_WINDOW_S * fps
    t0_ref_ms = float(np.min(offsets_ms[: max(1, int(window))]))
    capture_by_index = {a: c for a, _, c in local_abs if c is not None}

    def windowed_capture_time_ms(a: int) -> float | None:
        near = np.abs(abs_index - a) <= window
        return float(np.min(offsets_ms[near])) + a * period_ms if near.any() else None

    # The fake camera's true frame period, from the slope of Chromium's capture times (their rate is right
    # even where their offset is not); then one calibration for the whole run, against its quickest preview
    # frames (a low percentile of the detrended offsets, robust to a stray early display time).
    drift_ms: float | None = None
    if len(capture_by_index) >= MIN_FRAMES_FOR_DRIFT:
        indices = np.array(list(capture_by_index), np.float64)
        captures = np.array(list(capture_by_index.values()), np.float64)
        drift_ms = float(np.polyfit(indices, captures - indices * period_ms, 1)[0])
        t0_ms = float(np.percentile(offsets_ms - drift_ms * abs_index, GLOBAL_CALIBRATION_PERCENTILE))
        frame_ms = period_ms + drift_ms

        def capture_time_ms(a: int) -> float | None:
            return t0_ms + a * frame_ms

    else:
        capture_time_ms = windowed_capture_time_ms

    calibration = []
    for a, c in capture_by_index.items():
        estimated_ms = capture_time_ms(a)
        if estimated_ms is not None and c is not None:
            calibration.append(abs(estimated_ms - c))
    samples: list[tuple[float, float]] = []  # (shown_ms, latency_ms)
    windowed: list[tuple[float, float]] = []
    by_capture: list[tuple[float, float]] = []
    in_browser: list[tuple[float, float]] = []  # (shown_ms, shown - received: jitter buffer, decode, render)
    seen: set[int] = set()
    for index, shown_ms, received_ms in remote:
        # the loop whose frame ``index``, shown with the early preview's delay, lies nearest the display
        # (either side): rounded, not floored, so a generated frame shown sooner after capture than the early
        # preview frames were is not put one whole loop earlier (it read ~12 s instead of ~50 ms)
        loops_before = int(np.round((shown_ms - t0_ref_ms - index * period_ms) / loop_ms))
        a = index + loops_before * frames
        if a in seen:
            continue
        seen.add(a)
        captured_ms = capture_time_ms(a)
        if captured_ms is not None:
            samples.append((shown_ms, shown_ms - captured_ms))
        windowed_ms = windowed_capture_time_ms(a)
        if windowed_ms is not None:
            windowed.append((shown_ms, shown_ms - windowed_ms))
        if a in capture_by_index:
            by_capture.append((shown_ms, shown_ms - capture_by_index[a]))
        if received_ms is not None:
            in_browser.append((shown_ms, shown_ms - received_ms))

    def stretches(points: list[tuple[float, float]]) -> dict[str, Any]:
        if not points:
            return {"all": _percentiles([])}
        first, last = points[0][0], points[-1][0]
        times_min = np.array([(t - first) / 60_000.0 for t, _ in points])
        values = np.array([v for _, v in points])
        slope = float(np.polyfit(times_min, values, 1)[0]) if len(points) > 1 and last > first else 0.0
        stretch_ms = window_s * 1000
        count = max(1, int(round((last - first) / stretch_ms)))  # a short tail joins the last stretch
        by_stretch: list[list[float]] = [[] for _ in range(count)]
        for t, v in points:
            by_stretch[min(count - 1, int((t - first) // stretch_ms))].append(v)
        return {
            "all": _percentiles([v for _, v in points]),
            "start": _percentiles([v for t, v in points if t <= first + stretch_ms]),
            "end": _percentiles([v for t, v in points if t >= last - stretch_ms]),
            "p95_by_stretch": [_percentiles(values)["p95"] for values in by_stretch],
            "trend_ms_per_min": round(slope, 1),
        }

    return {
        "latency_ms": stretches(samples),
        "calibration": "whole run" if drift_ms is not None else "sliding window",
        "camera_frame_ms": round(period_ms + (drift_ms or 0.0), 3),
        "latency_windowed_ms": stretches(windowed),
        "latency_by_capture_time_ms": stretches(by_capture),
        "received_to_shown_ms": stretches(in_browser),
        "calibration_ms": {
            "count": len(calibration),
            "median": round(float(np.median(calibration)), 1) if calibration else None,
            "p95": round(float(np.percentile(calibration, 95)), 1) if calibration else None,
        },
        "local_frames": len(local),
        "remote_frames": len(remote),
        "remote_frames_measured": len(samples),
        "span_s": round((samples[-1][0] - samples[0][0]) / 1000.0, 1) if samples else 0.0,
    }


# -- inside the namespace --------------------------------------------------------------------------------


def _wait_for_port(host: str, port: int, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on {host}:{port} within {timeout_s} s")


def _get_json(url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def _drive(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """Drive the page with Playwright (server already up); fills ``result``."""
    from playwright.sync_api import sync_playwright

    base = f"http://{netns.NETNS_HOST}:{PORT}/"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, spec["camera"])
        try:
            page = browser.new_page(accept_downloads=True)
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(base)
            page.wait_for_function("document.querySelectorAll('#targets option').length > 0", timeout=15_000)
            result["targets"] = page.eval_on_selector_all("#targets option", "os => os.map(o => o.value)")
            page.select_option("#targets", spec["target"])
            page.click("#start")
            page.wait_for_function(
                "window.dance.remoteFrames > 10", timeout=spec["first_frame_timeout_s"] * 1000
            )
            result["first_frames_s"] = round(time.monotonic() - result["started_s"], 1)
            result["cameras"] = page.eval_on_selector_all(
                "#cameras option", "os => os.map(o => o.textContent)"
            )
            # record two seconds and download the file through the page's link
            page.click("#record")
            time.sleep(2.0)
            page.click("#record")
            page.wait_for_selector("#recording a", timeout=10_000)
            with page.expect_download(timeout=10_000) as download_info:
                page.click("#recording a")
            download = download_info.value
            if spec.get("recording_out"):
                download.save_as(spec["recording_out"])
            result["recording"] = {
                "name": download.suggested_filename,
                "bytes": os.path.getsize(download.path()),
                "page": page.evaluate("window.dance.recordings.map(r => ({size: r.size, type: r.type}))"),
            }
            # the mirror toggle flips the camera preview only
            transform = "getComputedStyle(document.getElementById('local')).transform"
            mirrored = page.evaluate(transform)
            page.uncheck("#mirror")
            result["mirror"] = {"on": mirrored, "off": page.evaluate(transform)}
            page.check("#mirror")
            # the measurement: `seconds` of plain streaming after those checks (the 2 s recording encodes a
            # second video in the page), with the server's stats message read once a second
            page.evaluate("window.dance.stamps.local.length = 0; window.dance.stamps.remote.length = 0")
            result["streaming_since_s"] = time.monotonic()
            result["rtc_start"] = page.evaluate(RTC_TOTALS_JS)
            series: list[dict[str, Any]] = []
            result["stats_series"] = series
            end_s = result["streaming_since_s"] + spec["seconds"]
            while (left_s := end_s - time.monotonic()) > 0:
                time.sleep(min(1.0, left_s))
                series.append(page.evaluate("window.dance.lastStats"))
            result["rtc_end"] = page.evaluate(RTC_TOTALS_JS)
            result["answer_playout_delay"] = page.evaluate(
                "window.dance.session.pc.remoteDescription.sdp.includes('rtp-hdrext/playout-delay')"
            )
            result["page"] = page.evaluate(
                "({frames: window.dance.remoteFrames, status: window.dance.status,"
                " errors: window.dance.errors,"
                " stats: window.dance.lastStats, headline: document.getElementById('headline').textContent,"
                " stats_text: document.getElementById('stats').textContent,"
                " stamps: window.dance.stamps,"
                " video: {width: document.getElementById('target').videoWidth,"
                "         height: document.getElementById('target').videoHeight}})"
            )
            # a second page while the server is full is told so
            if spec["check_full"]:
                other = browser.new_page()
                other.goto(base)
                other.wait_for_function("document.querySelectorAll('#targets option').length > 0")
                other.click("#start")
                other.wait_for_function("window.dance.errors.length > 0", timeout=15_000)
                result["second_page"] = other.evaluate(
                    "({errors: window.dance.errors, status: window.dance.status})"
                )
                other.close()
            result["status_streaming"] = _get_json(base + "status")
            page.click("#start")  # Stop
            page.wait_for_function("window.dance.status === 'stopped'", timeout=10_000)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = _get_json(base + "status")
                if status["sessions"] == 0:
                    break
                time.sleep(0.2)
            result["status_after_stop"] = status
            result["console_errors"] = [c for c in console if c.startswith("error")][:20]
        finally:
            browser.close()


def serve_and_drive(
    server_argv: list[str], drive: Callable[[dict[str, Any]], None], result: dict[str, Any]
) -> None:
    """Inside the namespace: start ``server_argv`` (from the repository root), wait for its port, run
    ``drive(result)``, then stop the server with SIGTERM. A failure of either is reported in ``result``
    (``failure``, with the traceback printed), beside ``server_rc`` and ``server_stop_s``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(server_argv, cwd=REPO_ROOT, env=env)
    try:
        _wait_for_port(netns.NETNS_HOST, PORT, server, 120.0)
        drive(result)
    except Exception as exc:  # reported in the result line, with the traceback above it
        import traceback

        traceback.print_exc()
        result["failure"] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_start_s = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            result["server_rc"] = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            result["server_rc"] = None
        result["server_stop_s"] = round(time.monotonic() - stop_start_s, 2)


def launch_chromium(playwright: Any, camera: str) -> Any:
    """Debian's Chromium, headless, with the y4m file ``camera`` as its fake camera (Playwright's Browser)."""
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)


def _inner(spec_json: str) -> int:
    """Inside the namespace: server up, page driven, server stopped; prints the :data:`RESULT_PREFIX` line."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {"started_s": time.monotonic()}
    server_argv = [
        sys.executable,
        *spec["server"],
        "--host",
        netns.NETNS_HOST,
        "--port",
        str(PORT),
        "--test-stamp",
        "--max-sessions",
        "1",
    ]
    serve_and_drive(server_argv, lambda out: _drive(spec, out), result)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_browser(
    server: list[str],
    camera: CameraVideo,
    target: str,
    seconds: float,
    *,
    check_full: bool = True,
    recording_out: Path | None = None,
) -> tuple[dict[str, Any], str]:
    """Run server (``server`` = the argv after the Python interpreter, without host/port) and Chromium in a
    fresh namespace for about ``seconds``; returns (result, everything printed). The page's 2 s recording
    is saved to ``recording_out`` where given."""
    spec = {
        "server": server,
        "camera": str(camera.path),
        "target": target,
        "seconds": seconds,
        "first_frame_timeout_s": 60,
        "check_full": check_full,
        "recording_out": str(recording_out.resolve()) if recording_out is not None else None,
    }
    return netns.run_module("bench.browser", spec, RESULT_PREFIX, seconds + 240, "browser")


def _per(
    start: dict[str, Any], end: dict[str, Any], total: str, count: str, scale: float = 1000.0
) -> float | None:
    """Mean of ``total`` per ``count`` between two cumulative stats records (ms for seconds totals)."""
    if total not in end or count not in end:
        return None
    n = end[count] - start.get(count, 0)
    return round(scale * (end[total] - start.get(total, 0.0)) / n, 1) if n > 0 else None


def browser_breakdown(start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The browser's share of the latency between two :data:`RTC_TOTALS_JS` records: means per frame (ms)
    of the camera's encode and per packet of its send-side pacing, and of the generated video's
    jitter-buffer delay (and the target Chromium aimed at), decode, and processing delay (first packet
    received -> decoded; W3C webrtc-stats ``totalProcessingDelay``)."""
    camera_0, camera_1 = start.get("camera", {}), end.get("camera", {})
    target_0, target_1 = start.get("target", {}), end.get("target", {})
    return {
        "camera_encode_ms": _per(camera_0, camera_1, "totalEncodeTime", "framesEncoded"),
        "camera_packet_send_delay_ms": _per(camera_0, camera_1, "totalPacketSendDelay", "packetsSent"),
        "camera_bytes_per_frame": _per(camera_0, camera_1, "bytesSent", "framesSent", 1.0),
        "camera_size": [camera_1.get("frameWidth"), camera_1.get("frameHeight")],
        "camera_quality_limitation": camera_1.get("qualityLimitationReason"),
        "target_jitter_buffer_ms": _per(target_0, target_1, "jitterBufferDelay", "jitterBufferEmittedCount"),
        "target_jitter_buffer_target_ms": _per(
            target_0, target_1, "jitterBufferTargetDelay", "jitterBufferEmittedCount"
        ),
        "target_jitter_buffer_minimum_ms": _per(
            target_0, target_1, "jitterBufferMinimumDelay", "jitterBufferEmittedCount"
        ),
        "target_decode_ms": _per(target_0, target_1, "totalDecodeTime", "framesDecoded"),
        "target_processing_delay_ms": _per(target_0, target_1, "totalProcessingDelay", "framesDecoded"),
        "target_frames_dropped": target_1.get("framesDropped", 0) - target_0.get("framesDropped", 0),
        "target_freezes": target_1.get("freezeCount", 0) - target_0.get("freezeCount", 0),
    }


def server_latency_by_stretch(
    series: list[dict[str, Any] | None], stretch_s: int = 10
) -> list[dict[str, Any]]:
    """Server latency (camera frame in -> output frame out, ms) per ``stretch_s`` of the measurement, from
    the stats messages read once a second: count / p50 / p95 of the frames' latencies in each stretch."""
    stretches: list[list[float]] = []
    for second, stats in enumerate(series):
        if second % stretch_s == 0:
            stretches.append([])
        stretches[-1].extend((stats or {}).get("latency_ms_window") or [])
    return [_percentiles(values) for values in stretches]


def summarize(result: dict[str, Any], camera: CameraVideo) -> dict[str, Any]:
    """The run's figures: glass-to-glass latency, received frames, server stats, clean stop."""
    page = result.get("page") or {}
    stamps = page.get("stamps") or {"local": [], "remote": []}
    stats = page.get("stats") or {}
    return {
        "glass_to_glass": glass_to_glass(stamps["local"], stamps["remote"], camera.fps, camera.frames),
        "frames_shown": page.get("frames"),
        "page_stats_text": page.get("stats_text"),
        "server_stats": {
            k: stats.get(k)
            for k in (
                "frames_in",
                "frames_out",
                "frames_dropped",
                "frames_failed",
                "frames_with_person",
                "fps_out",
                "latency_ms_mean",
            )
        },
        "server_latency_ms_by_10s": server_latency_by_stretch(result.get("stats_series") or []),
        "browser": browser_breakdown(result.get("rtc_start") or {}, result.get("rtc_end") or {}),
        "video_size": page.get("video"),
        "camera": {"size": list(camera.size), "fps": camera.fps, "frames": camera.frames},
        "server_rc": result.get("server_rc"),
        "failure": result.get("failure"),
    }


# -- the measurement ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.browser [--engine E] --seconds 60 [--width 256] [--json OUT]``: the
    measurement of docs/BENCHMARKS.md (prints the summary as JSON)."""
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--inner":
        return _inner(sys.argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=main.__doc__)
    parser.add_argument(
        "--engine",
        type=Path,
        default=DEFAULT_TARGET,
        help="target engine for server.py (default: the bundled one)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming time")
    parser.add_argument(
        "--width",
        type=int,
        default=256,
        help=(
            "camera width in pixels (the y4m file; the page asks the camera for 480 rows, so a taller file "
            "is scaled down: --width 480 gives a 261x480 camera, as the load test's 480-pixel one)"
        ),
    )
    parser.add_argument(
        "--source", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "source_dance.mp4"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary and raw stamps here")
    parser.add_argument(
        "--max-input-fps",
        type=float,
        default=None,
        help="server.py --max-input-fps: the page's camera rate cap (default: server.py's)",
    )
    parser.add_argument(
        "--recording",
        type=Path,
        default=None,
        help="save the page's 2 s recording (WebM: camera | stick figure | generated) here",
    )
    parser.add_argument(
        "--playout-delay",
        choices=PLAYOUT_DELAYS,
        default=None,
        help="server.py --playout-delay (default: server.py's)",
    )
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    from realtime.model.pipeline import Target

    name = Target.load(args.engine).name
    with tempfile.TemporaryDirectory() as folder:
        camera = make_camera_y4m(args.source, Path(folder) / "camera.y4m", width=args.width)
        server = ["server.py", "--engine", str(args.engine)]
        if args.max_input_fps is not None:
            server += ["--max-input-fps", str(args.max_input_fps)]
        if args.playout_delay is not None:
            server += ["--playout-delay", args.playout_delay]
        result, output = run_browser(
            server, camera, name, args.seconds, check_full=False, recording_out=args.recording
        )
    summary = summarize(result, camera)
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": summary, "result": result}, indent=1) + "\n")
    if summary["failure"]:
        print(output, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
