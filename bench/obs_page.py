"""The OBS page in a real browser: Debian's Chromium, driven by Playwright in a fresh network namespace,
starts a session on the live page (a dance video as its fake camera), opens that session's OBS page
(``/obs?session=N``) with each background (green, plate, target) and takes a screenshot of each.

    python -m bench.obs_page --out DIR [--engine TARGET.onnx] [--seconds 8]

Writes ``DIR/obs-green.png``, ``DIR/obs-plate.png``, ``DIR/obs-target.png`` and prints one JSON summary:
per background the frames the OBS page showed, the fraction of pixels it keyed to the backdrop, and whether
its background estimate was ready. The machinery is :mod:`bench.browser`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import netns
from bench.browser import PORT, REPO_ROOT, launch_chromium, make_camera_y4m, serve_and_drive, skip_reason
from realtime.targets import DEFAULT_TARGET

RESULT_PREFIX = "OBS-RESULT "
BACKGROUNDS = ("green", "plate", "target")
VIEWPORT = {"width": 640, "height": 480}


def _drive(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """Start a session on the live page, then screenshot its OBS page with each background."""
    from playwright.sync_api import sync_playwright

    base = f"http://{netns.NETNS_HOST}:{PORT}/"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, spec["camera"])
        try:
            live = browser.new_page()
            live.goto(base)
            live.wait_for_function("document.querySelectorAll('#targets option').length > 0", timeout=15_000)
            live.click("#start")
            live.wait_for_function("window.dance.remoteFrames > 10", timeout=90_000)
            session = live.evaluate("window.dance.session.id")
            result["session"] = session
            result["outputs_line"] = live.inner_text("#outputs")
            result["obs_link"] = live.get_attribute("#outputs a", "href")
            for background in BACKGROUNDS:
                page = browser.new_page(viewport=VIEWPORT)
                console: list[str] = []
                page.on("console", lambda m, c=console: c.append(f"{m.type}: {m.text}"))
                page.goto(f"{base}obs?session={session}&background={background}")
                ready = "window.obs.frames > 40" + (
                    " && window.obs.backgroundReady" if background != "target" else ""
                )
                page.wait_for_function(ready, timeout=spec["seconds"] * 1000 + 60_000)
                page.wait_for_timeout(spec["seconds"] * 1000)
                shot = Path(spec["out"]) / f"obs-{background}.png"
                page.screenshot(path=str(shot))
                state = page.evaluate("window.obs")
                result[background] = {**state, "screenshot": str(shot), "console": console[-5:]}
                page.close()
        finally:
            browser.close()


def _inner(spec_json: str) -> int:
    """Inside the namespace: server up, pages driven, server stopped; prints the result line."""
    spec = json.loads(spec_json)
    result: dict[str, Any] = {}
    server_argv = [sys.executable, "server.py", "--engine", spec["engine"], "--host", netns.NETNS_HOST]
    serve_and_drive([*server_argv, "--port", str(PORT)], lambda out: _drive(spec, out), result)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_obs_page(engine: Path, source: Path, out: Path, seconds: float = 8.0) -> tuple[dict[str, Any], str]:
    """Run the server and Chromium in a fresh namespace; (the result, everything printed).

    Raises:
        RuntimeError: when the run printed no result.
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        camera = make_camera_y4m(source, Path(folder) / "camera.y4m", width=256, max_frames=240)
        spec = {
            "engine": str(engine),
            "camera": str(camera.path),
            "out": str(out.resolve()),
            "seconds": seconds,
        }
        started_s = time.monotonic()
        timeout_s = seconds * 3 + 300
        result, output = netns.run_module("bench.obs_page", spec, RESULT_PREFIX, timeout_s, "OBS page")
    result["wall_s"] = round(time.monotonic() - started_s, 1)
    return result, output


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--inner":
        return _inner(sys.argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench.obs_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument(
        "--engine", type=Path, default=DEFAULT_TARGET, help="target (default: the bundled one)"
    )
    parser.add_argument(
        "--source", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "source_dance.mp4"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        help="seconds each OBS page runs after it is ready, before its screenshot",
    )
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    result, output = run_obs_page(args.engine, args.source, args.out, args.seconds)
    print(json.dumps(result, indent=2))
    if "failure" in result:
        print(output, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
