"""Real WHIP/WHEP clients that no one here wrote, in Chromium, against ``server.py`` (issue 21's acceptance).

npm's ``@eyevinn/whip-web-client`` publishes Chromium's fake camera (``../shared/data/source_dance.mp4`` as a
stamped y4m, :func:`bench.browser.make_camera_y4m`) to the server's WHIP endpoint and
``@eyevinn/webrtc-player`` plays the session's WHEP endpoint, in a harness page (``bench/whip/harness.html``)
served from a second origin (its own port), so the server's CORS answers are exercised as a third-party page
would (``server.py --allow-origin``). The versions are pinned in ``bench/whip/package.json`` and
``package-lock.json``; :func:`prepare_clients` installs them with ``npm ci`` and bundles them with esbuild
into ``bench/whip/build/clients.bundle.js`` (once; both folders are not committed), outside the namespace
since npm needs its registry.

The run, inside a fresh loopback-only network namespace (:mod:`bench.netns`; this module runs itself there,
``python -m bench.whip_clients --inner SPEC``):

1. ``server.py --test-stamp --allow-origin HARNESS --token TOKEN`` and the harness's HTTP server start;
   Chromium opens the harness as publisher and viewer 1.
2. Once frames play, ``/status`` is read (one viewer), and ``seconds`` of streaming are measured. A third of
   the way in a second page plays the same session (viewer 2); ``/status`` is read with both.
3. At the end viewer 2's page is closed without its DELETE (it vanishes); ``/status`` is polled until the
   server has dropped it (in the runs here the closed page sent nothing the server acted on: aioice's ICE
   consent freshness ended the viewer 29-33 s later), and read again a few seconds later.
4. The publisher page ends its viewer and session with the clients' own DELETEs; ``/status`` shows none left.

Printed (one JSON object): per viewer the frames shown per second (``requestVideoFrameCallback``), over the
whole run and over viewer 2's window; glass-to-glass latency of each viewer (the stamps of the camera preview
and of the played video, :func:`bench.browser.glass_to_glass`; viewer 2's page put on the publisher page's
clock by the pages' ``performance.timeOrigin``, checked against their offsets on the wall clock,
``viewer2_clock_offset_ms``: they agreed within 2 ms in the runs here); whether the played frames show the
target (the target canvas's size, a picture that is not black); and ``/status`` at each step (sessions,
viewers, asyncio tasks, threads, resident memory).

Options for the WHIP client's own default (``--whip-trickle auto``: it asks the endpoint with ``OPTIONS``
and trickles where it can read ``PATCH`` in ``Access-Control-Allow-Methods``) and for a harness on the
server's own origin (``--same-origin``: Playwright answers the harness's files there; no CORS).

From the repository root::

    python -m bench.whip_clients --seconds 60 --json out.json
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import netns
from bench.browser import (
    PORT,
    CameraVideo,
    _get_json,
    glass_to_glass,
    launch_chromium,
    make_camera_y4m,
    serve_and_drive,
)
from bench.browser import skip_reason as browser_skip_reason
from realtime.targets import DEFAULT_TARGET

REPO_ROOT = Path(__file__).resolve().parents[1]
WHIP_DIR = REPO_ROOT / "bench" / "whip"
"""The harness page, the clients' npm manifest and (not committed) ``node_modules`` and ``build``."""
BUNDLE = WHIP_DIR / "build" / "clients.bundle.js"
HARNESS_PORT = PORT + 1
"""The harness's own origin's port (the server listens on :data:`bench.browser.PORT`)."""
RESULT_PREFIX = "WHIP-CLIENTS-RESULT "
STATUS_KEYS = ("sessions", "whip_sessions", "streams", "viewers", "asyncio_tasks", "threads", "rss_bytes")
"""The ``/status`` figures the result keeps at each step."""
FIRST_FRAMES_TIMEOUT_S = 120.0
"""From opening the publisher page to its played video showing frames (model load, two negotiations)."""
VIEWER_TIMEOUT_S = 60.0
"""From opening viewer 2's page to its video showing frames."""
SETTLE_S = 3.0
"""Wait after a change before reading ``/status`` (tasks and threads winding down)."""
NPM_TIMEOUT_S = 300.0


class ClientsUnavailable(RuntimeError):
    """The npm clients could not be installed or bundled (npm missing, the registry unreachable...)."""


def skip_reason() -> str | None:
    """None where the run can happen here, else why not (no Chromium, Playwright, npm or namespaces)."""
    reason = browser_skip_reason()
    if reason is not None:
        return reason
    if shutil.which("npm") is None or shutil.which("node") is None:
        return (
            "npm and node are not installed (Debian: apt-get install -y npm); the WHIP/WHEP clients need them"
        )
    return None


def _run_npm(argv: list[str]) -> None:
    try:
        proc = subprocess.run(
            argv, cwd=WHIP_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClientsUnavailable(f"`{' '.join(argv)}` in {WHIP_DIR} failed: {exc}") from exc
    if proc.returncode != 0:
        raise ClientsUnavailable(
            f"`{' '.join(argv)}` in {WHIP_DIR} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )


def prepare_clients() -> Path:
    """Install the pinned clients (``npm ci``, where ``node_modules`` is missing or older than the lock file)
    and bundle them with esbuild (where the bundle is missing or older than its sources); returns the bundle.

    Raises:
        ClientsUnavailable: npm or esbuild failed (its output in the message); check the npm registry is
            reachable, or run ``npm ci`` in ``bench/whip`` by hand.
    """
    lock = WHIP_DIR / "package-lock.json"
    installed = WHIP_DIR / "node_modules" / ".package-lock.json"  # npm writes it on every install
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run_npm(["npm", "ci", "--no-audit", "--no-fund"])
    entry = WHIP_DIR / "clients.js"
    if not BUNDLE.is_file() or BUNDLE.stat().st_mtime < max(entry.stat().st_mtime, installed.stat().st_mtime):
        esbuild = WHIP_DIR / "node_modules" / ".bin" / "esbuild"
        _run_npm(
            [str(esbuild), str(entry), "--bundle", "--format=iife", "--platform=browser",
             f"--outfile={BUNDLE}", "--log-level=warning"]
        )  # fmt: skip
    return BUNDLE


# -- inside the namespace ------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def _serve_harness(host: str, port: int) -> http.server.ThreadingHTTPServer:
    """The harness's own origin: ``bench/whip`` over HTTP on ``host:port``, on a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(WHIP_DIR))
    httpd = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=httpd.serve_forever, name="harness-http", daemon=True).start()
    return httpd


def _status(spec: dict[str, Any]) -> dict[str, Any]:
    query = f"?token={urllib.parse.quote(spec['token'])}" if spec["token"] else ""
    status = _get_json(f"{spec['server_url']}/status{query}")
    return {k: status.get(k) for k in (*STATUS_KEYS, "refused", "refused_by_access")}


def _harness_url(spec: dict[str, Any], **query: Any) -> str:
    fields = {"server": spec["server_url"], **query}
    if spec["token"]:
        fields["token"] = spec["token"]
    if spec["whip_trickle"] == "auto":
        fields["trickle"] = "auto"
    return f"{spec['harness_url']}/harness.html?{urllib.parse.urlencode(fields)}"


def _fulfil_with(path: Path) -> Callable[[Any], None]:
    """A Playwright route handler answering with the file at ``path``."""

    def handler(route: Any) -> None:
        route.fulfill(path=path)

    return handler


def _open_page(browser: Any, spec: dict[str, Any], console: list[str], label: str) -> Any:
    """A new page (in a context of its own) whose console lines go to ``console``; with ``same_origin``,
    the harness's files are answered by Playwright on the server's own origin (the server is not changed)."""
    page = browser.new_page()
    page.on("console", lambda m: console.append(f"{label} {m.type}: {m.text}"))
    if spec["same_origin"]:
        for name in ("harness.html", "harness.js", "build/clients.bundle.js"):
            pattern = re.compile(re.escape(f"{spec['server_url']}/{name}") + r"(\?.*)?$")
            page.route(pattern, _fulfil_with(WHIP_DIR / name))
    return page


PAGE_STATE_JS = """() => ({
  status: harness.status, errors: harness.errors, sessionId: harness.sessionId,
  whipResource: harness.whipResource, timeOrigin: harness.timeOrigin, now: performance.now(),
  localFrames: harness.localFrames, remoteFrames: harness.remoteFrames,
  stamps: harness.stamps, remoteShownMs: harness.remoteShownMs, snapshot: harness.snapshot(),
})"""


def _drive(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """Drive the harness pages with Playwright (server and harness already up); fills ``result``."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, spec["camera"])
        try:
            publisher = _open_page(browser, spec, console, "publisher")
            publisher.goto(_harness_url(spec, role="publish", view="target"))
            publisher.wait_for_function(
                "harness.remoteFrames > 10 || harness.errors.length > 0",
                timeout=FIRST_FRAMES_TIMEOUT_S * 1000,
            )
            errors = publisher.evaluate("harness.errors")
            if errors:
                raise RuntimeError(f"the publisher page failed: {errors}")
            result["first_frames_s"] = round(time.monotonic() - result["started_s"], 1)
            session_id = publisher.evaluate("harness.sessionId")
            result["session_id"] = session_id
            time.sleep(SETTLE_S)
            result["status_one_viewer"] = _status(spec)
            # the measurement: `seconds` of streaming, a second viewer from a third of the way in
            start_ms = publisher.evaluate("harness.reset()")
            start_s = time.monotonic()
            time.sleep(spec["seconds"] / 3)
            viewer = _open_page(browser, spec, console, "viewer2")
            opened_s = time.monotonic()
            viewer.goto(_harness_url(spec, role="view", session=session_id, view="target"))
            viewer.wait_for_function(
                "harness.remoteFrames > 10 || harness.errors.length > 0", timeout=VIEWER_TIMEOUT_S * 1000
            )
            errors = viewer.evaluate("harness.errors")
            if errors:
                raise RuntimeError(f"viewer 2's page failed: {errors}")
            result["viewer2_first_frames_s"] = round(time.monotonic() - opened_s, 1)
            viewer2_start_ms = viewer.evaluate("harness.reset()")
            # a check of performance.timeOrigin, which puts viewer 2's times on the publisher page's clock
            result["clock_offset_by_wall_clock_ms"] = viewer.evaluate(
                "harness.wallClockStartMs()"
            ) - publisher.evaluate("harness.wallClockStartMs()")
            publisher_at_viewer2_ms = publisher.evaluate("performance.now()")
            time.sleep(min(SETTLE_S, max(0.0, start_s + spec["seconds"] - time.monotonic())))
            result["status_two_viewers"] = _status(spec)
            time.sleep(max(0.0, start_s + spec["seconds"] - time.monotonic()))
            publisher_state = publisher.evaluate(PAGE_STATE_JS)
            viewer_state = viewer.evaluate(PAGE_STATE_JS)
            result["publisher"] = {
                **publisher_state,
                "start_ms": start_ms,
                "viewer2_from_ms": publisher_at_viewer2_ms,
            }
            result["viewer2"] = {**viewer_state, "start_ms": viewer2_start_ms}
            # viewer 2 vanishes: its page closes, no DELETE
            frames_before = publisher_state["remoteFrames"]
            viewer.close()
            closed_s = time.monotonic()
            polls: list[list[Any]] = []
            noticed_s = None
            while time.monotonic() - closed_s < spec["vanish_timeout_s"]:
                status = _status(spec)
                polls.append(
                    [round(time.monotonic() - closed_s, 1), status["viewers"], status["asyncio_tasks"]]
                )
                if (
                    status["viewers"] is not None
                    and status["viewers"] < result["status_two_viewers"]["viewers"]
                ):
                    noticed_s = round(time.monotonic() - closed_s, 1)
                    break
                time.sleep(0.5)
            result["vanish"] = {"noticed_after_s": noticed_s, "polls": polls[-5:], "poll_count": len(polls)}
            time.sleep(SETTLE_S)
            result["status_after_vanish"] = _status(spec)
            result["viewer1_frames_during_vanish"] = (
                publisher.evaluate("harness.remoteFrames") - frames_before
            )
            # the publisher ends its viewer and its session with the clients' own DELETEs
            publisher.evaluate("harness.stop()")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = _status(spec)
                if status["sessions"] == 0 and status["viewers"] == 0:
                    break
                time.sleep(0.2)
            result["status_after_stop"] = status
            result["publisher_errors_at_end"] = publisher.evaluate("harness.errors")
        finally:
            result["console"] = console[-300:]
            browser.close()


def _drive_or_report(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """:func:`_drive`; where it fails, the server's ``/status`` at that moment joins the result."""
    try:
        _drive(spec, result)
    except Exception:
        try:
            result["status_at_failure"] = _status(spec)
        except OSError as status_error:
            result["status_at_failure"] = f"unreadable: {status_error}"
        raise


def _inner(spec_json: str) -> int:
    """Inside the namespace: server and harness up, pages driven, server stopped; prints the result line."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {"started_s": time.monotonic()}
    host = netns.NETNS_HOST
    spec["server_url"] = f"http://{host}:{PORT}"
    spec["harness_url"] = spec["server_url"] if spec["same_origin"] else f"http://{host}:{HARNESS_PORT}"
    server_argv = [sys.executable, *spec["server"], "--host", host, "--port", str(PORT), "--test-stamp"]
    if not spec["same_origin"]:
        server_argv += ["--allow-origin", spec["harness_url"]]
    if spec["token"]:
        server_argv.append(f"--token={spec['token']}")  # a token_urlsafe() may begin with "-"
    httpd = _serve_harness(host, HARNESS_PORT)
    try:
        serve_and_drive(server_argv, lambda out: _drive_or_report(spec, out), result)
    finally:
        httpd.shutdown()
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


@dataclass(frozen=True)
class RunOptions:
    """One run of the clients.

    Attributes:
        server: server.py's argv after the interpreter, without host, port, token, origin or test stamp.
        seconds: streaming measured (viewer 2 plays from a third of the way in to the end).
        token: the server's token, or None to start it without one.
        vanish_timeout_s: how long to wait for the server to drop the vanished viewer.
        whip_trickle: "off": the WHIP client with ``noTrickleIce`` (its offer carries its candidates); "auto":
            its default (it asks the endpoint with OPTIONS and trickles if PATCH is an allowed CORS method).
        same_origin: serve the harness on the server's own origin (Playwright answers its files) instead of
            its own port: no CORS, and the client can read ``Access-Control-Allow-Methods``.
    """

    server: tuple[str, ...]
    seconds: float
    token: str | None
    vanish_timeout_s: float = 90.0
    whip_trickle: str = "off"
    same_origin: bool = False


def run_whip_clients(options: RunOptions, camera: CameraVideo) -> tuple[dict[str, Any], str]:
    """Run the server, the harness and Chromium in a fresh namespace (see the module docstring); returns
    (result, everything printed). Call :func:`prepare_clients` first.

    Raises:
        RuntimeError: the run printed no result line (its output in the message).
    """
    spec = {
        "server": list(options.server),
        "camera": str(camera.path),
        "seconds": options.seconds,
        "token": options.token,
        "vanish_timeout_s": options.vanish_timeout_s,
        "whip_trickle": options.whip_trickle,
        "same_origin": options.same_origin,
    }
    timeout_s = options.seconds + options.vanish_timeout_s + FIRST_FRAMES_TIMEOUT_S + VIEWER_TIMEOUT_S + 120
    return netns.run_module("bench.whip_clients", spec, RESULT_PREFIX, timeout_s, "WHIP clients")


# -- the analysis --------------------------------------------------------------------------------------------


def frames_per_second(shown_ms: list[float], from_ms: float, to_ms: float) -> float | None:
    """Frames shown per second between two times of a page's clock (ms), or None for an empty span."""
    if to_ms <= from_ms:
        return None
    count = sum(1 for t in shown_ms if from_ms <= t < to_ms)
    return round(1000.0 * count / (to_ms - from_ms), 2)


def _shifted(records: list[list[Any]], offset_ms: float) -> list[list[Any]]:
    """Stamp records with their times (all but the index) moved by ``offset_ms`` (None stays None)."""
    return [[r[0], *(None if t is None else t + offset_ms for t in r[1:])] for r in records]


def shows_target(snapshot: dict[str, Any], canvas_size: tuple[int, int]) -> dict[str, Any]:
    """Whether a played frame (``harness.snapshot()``: size, luma mean and spread, 0-255) is the target: the
    target canvas's (width, height), not black (mean > 10) and not one flat colour (spread > 5)."""
    size_ok = [snapshot.get("width"), snapshot.get("height")] == list(canvas_size)
    mean, std = snapshot.get("mean"), snapshot.get("std")
    picture_ok = mean is not None and std is not None and mean > 10 and std > 5
    return {
        "ok": bool(size_ok and picture_ok),
        "size": [snapshot.get("width"), snapshot.get("height")],
        "target_canvas": list(canvas_size),
        "luma_mean": None if mean is None else round(mean, 1),
        "luma_std": None if std is None else round(std, 1),
    }


def _latency(g2g: dict[str, Any]) -> dict[str, Any]:
    latency = g2g["latency_ms"]["all"]
    return {
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "frames_measured": latency.get("count"),
        "frames_stamped": g2g.get("remote_frames"),
        "calibration": g2g.get("calibration"),
    }


def summarize(result: dict[str, Any], camera: CameraVideo, canvas_size: tuple[int, int]) -> dict[str, Any]:
    """The run's figures (see the module docstring) from :func:`run_whip_clients`'s result."""
    publisher, viewer = result.get("publisher") or {}, result.get("viewer2") or {}
    summary: dict[str, Any] = {
        "failure": result.get("failure"),
        "token": result.get("token_used"),
        "whip_trickle": result.get("whip_trickle"),
        "same_origin": result.get("same_origin"),
        "camera": {"size": list(camera.size), "fps": camera.fps, "frames": camera.frames},
        "session_id": result.get("session_id"),
        "first_frames_s": result.get("first_frames_s"),
        "viewer2_first_frames_s": result.get("viewer2_first_frames_s"),
    }
    if publisher and viewer:
        end1_ms, end2_ms = publisher["now"], viewer["now"]
        v2_from_ms = publisher["viewer2_from_ms"]
        offset_ms = viewer["timeOrigin"] - publisher["timeOrigin"]  # viewer 2's clock -> the publisher's
        by_wall_clock_ms = result.get("clock_offset_by_wall_clock_ms")
        summary["viewer2_clock_offset_ms"] = {
            "by_time_origin": round(offset_ms, 2),
            "by_wall_clock": None if by_wall_clock_ms is None else round(by_wall_clock_ms, 2),
        }
        local = publisher["stamps"]["local"]
        g2g_1 = glass_to_glass(local, publisher["stamps"]["remote"], camera.fps, camera.frames)
        g2g_2 = glass_to_glass(
            local, _shifted(viewer["stamps"]["remote"], offset_ms), camera.fps, camera.frames
        )
        summary["viewer1"] = {
            "fps": frames_per_second(publisher["remoteShownMs"], publisher["start_ms"], end1_ms),
            "fps_while_viewer2": frames_per_second(publisher["remoteShownMs"], v2_from_ms, end1_ms),
            "seconds": round((end1_ms - publisher["start_ms"]) / 1000.0, 1),
            "glass_to_glass": _latency(g2g_1),
            "shows_target": shows_target(publisher["snapshot"], canvas_size),
        }
        summary["viewer2"] = {
            "fps": frames_per_second(viewer["remoteShownMs"], viewer["start_ms"], end2_ms),
            "seconds": round((end2_ms - viewer["start_ms"]) / 1000.0, 1),
            "glass_to_glass": _latency(g2g_2),
            "shows_target": shows_target(viewer["snapshot"], canvas_size),
        }
        summary["camera_preview_fps"] = round(
            1000.0 * len(local) / (end1_ms - publisher["start_ms"]), 2
        ) if end1_ms > publisher["start_ms"] else None  # fmt: skip
    summary["status"] = {
        "one_viewer": result.get("status_one_viewer"),
        "two_viewers": result.get("status_two_viewers"),
        "after_vanish": result.get("status_after_vanish"),
        "after_stop": result.get("status_after_stop"),
    }
    summary["vanish"] = {
        **(result.get("vanish") or {}),
        "viewer1_frames_meanwhile": result.get("viewer1_frames_during_vanish"),
    }
    summary["page_errors"] = {
        "publisher": publisher.get("errors"),
        "viewer2": viewer.get("errors"),
        "publisher_at_end": result.get("publisher_errors_at_end"),
    }
    summary["console_errors"] = [
        line for line in result.get("console") or [] if " error: " in line or " warning: " in line
    ][:30]
    if result.get("status_at_failure") is not None:
        summary["status"]["at_failure"] = result["status_at_failure"]
    summary["server_rc"] = result.get("server_rc")
    summary["server_stop_s"] = result.get("server_stop_s")
    return summary


# -- the measurement -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.whip_clients [--engine E] --seconds 60 [--json OUT]``: the WHIP/WHEP clients run;
    prints the summary as JSON."""
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--inner":
        return _inner(sys.argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench.whip_clients", description=main.__doc__)
    parser.add_argument(
        "--engine",
        type=Path,
        default=DEFAULT_TARGET,
        help="target engine for server.py (default: the bundled one)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming time measured (at least 9)")
    parser.add_argument("--width", type=int, default=256, help="camera width in pixels (the y4m file)")
    parser.add_argument(
        "--source", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "source_dance.mp4"
    )
    parser.add_argument(
        "--no-token", action="store_true", help="start server.py without --token (default: a random token)"
    )
    parser.add_argument("--vanish-timeout", type=float, default=90.0, help="seconds to wait for the vanish")
    parser.add_argument(
        "--whip-trickle",
        choices=("off", "auto"),
        default="off",
        help="off: the WHIP client's noTrickleIce (default); auto: its own default (asks the endpoint)",
    )
    parser.add_argument(
        "--same-origin",
        action="store_true",
        help="the harness on the server's own origin (answered by Playwright) instead of a second port",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the summary and the raw result here"
    )
    args = parser.parse_args(argv)
    if args.seconds < 9:
        parser.error("--seconds must be at least 9 (viewer 2 needs a few seconds of its own)")
    reason = skip_reason()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        prepare_clients()
    except ClientsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from realtime.model.pipeline import Target

    canvas_size = Target.load(args.engine).canvas_size
    token = None if args.no_token else secrets.token_urlsafe(18)
    options = RunOptions(
        ("server.py", "--engine", str(args.engine)), args.seconds, token, args.vanish_timeout,
        whip_trickle=args.whip_trickle, same_origin=args.same_origin,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        camera = make_camera_y4m(args.source, Path(folder) / "camera.y4m", width=args.width)
        result, output = run_whip_clients(options, camera)
    result.update(token_used=token is not None, whip_trickle=args.whip_trickle, same_origin=args.same_origin)
    summary = summarize(result, camera, canvas_size)
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": summary, "result": result}, indent=1) + "\n")
    if summary["failure"]:
        print(output[-20000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
