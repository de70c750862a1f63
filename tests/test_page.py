"""The page's controls in Chromium, against the fake pipeline (fast, no model): the mirror option flips the
camera preview only, a recording holds the camera beside the generated video (or not, when unticked), the
action buttons are enabled while streaming and make the target perform, and Stop clears the live figures.

The test runs ``tests/fake_pipeline.py`` (the server) and this file as a module
(``python -m tests.test_page --drive OUT.json``: Chromium driven by Playwright, a generated y4m file as its
camera) in one fresh network namespace (bench/netns.py). Skipped, with the reason, without
``/usr/bin/chromium``, Playwright or namespaces.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import netns

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PORT = 8080
#: The fake target's canvas, portrait like a prepared portrait recording's: the generated video is
#: (2 * 64) x 96, stick figure | target, and the page shows each half at 64:96.
CANVAS = (64, 96)
CAMERA = (160, 120)
CHROMIUM_ARGS = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = pytest.mark.slow


def skip_reason() -> str | None:
    """None where this test can run here, else why not."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is absent (Debian package chromium: apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright; no browser download needed)"
    return netns.skip_reason()


def write_camera_y4m(path: Path, frames: int = 30) -> None:
    """A ``CAMERA``-sized y4m file at 15 fps, a grey level rising frame by frame (Chromium loops it)."""
    width, height = CAMERA
    with path.open("wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            luma = np.full((height, width), 40 + 6 * i, np.uint8)
            chroma = np.full((height // 2) * (width // 2) * 2, 128, np.uint8)
            file.write(b"FRAME\n" + luma.tobytes() + chroma.tobytes())


#: The video file played as the camera (the page's file option): its size differs from the fake camera's.
FILE_SOURCE = (128, 96)


def write_source_webm(path: Path, frames: int = 24) -> None:
    """A ``FILE_SOURCE``-sized VP8 WebM at 12 fps (PyAV), a bright square moving across a dark frame."""
    import av

    width, height = FILE_SOURCE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = np.full((height, width, 3), 30, np.uint8)
            rgb[30:60, 4 * i : 4 * i + 30] = 220
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


RECORDING_SIZE_JS = """async () => {
  const recording = window.dance.recordings[window.dance.recordings.length - 1];
  const video = document.createElement("video");
  video.muted = true;
  video.src = recording.url;
  await new Promise((resolve, reject) => {
    video.onloadedmetadata = resolve;
    video.onerror = () => reject(new Error("the recording cannot be decoded"));
  });
  return {width: video.videoWidth, height: video.videoHeight, size: recording.size,
          withCamera: recording.withCamera};
}"""


#: The shown size (CSS pixels) of the stick figure's and the target's video elements.
BOXES_JS = """() => Object.fromEntries(["stick", "target"].map((id) => {
  const box = document.getElementById(id).getBoundingClientRect();
  return [id, [box.width, box.height]];
}))"""


#: The action buttons: [id, disabled] in order.
ACTIONS_JS = """() => [...document.querySelectorAll('#actions button')].map((b) => [b.id, b.disabled])"""


def drive(url: str, camera: Path, source: Path) -> dict[str, Any]:
    """Open the page, check the mirror option, stream, record twice, stop, then stream a video file as the
    camera; what was seen."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    transform = "id => getComputedStyle(document.getElementById(id)).transform"
    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#targets option').length > 0", timeout=15_000)
            seen["boxes_before"] = page.evaluate(BOXES_JS)
            seen["mirror_default"] = page.is_checked("#mirror")
            seen["record_camera_default"] = page.is_checked("#record-camera")
            seen["mirror_on"] = {v: page.evaluate(transform, v) for v in ("local", "stick", "target")}
            seen["actions_before"] = page.evaluate(ACTIONS_JS)
            page.uncheck("#mirror")
            seen["mirror_off"] = {v: page.evaluate(transform, v) for v in ("local", "stick", "target")}
            page.check("#mirror")
            page.click("#start")
            page.wait_for_function("window.dance.remoteFrames > 10", timeout=30_000)
            page.wait_for_function("document.getElementById('headline').textContent !== ''", timeout=10_000)
            seen["headline_streaming"] = page.text_content("#headline")
            seen["boxes_streaming"] = page.evaluate(BOXES_JS)
            seen["actions_streaming"] = page.evaluate(ACTIONS_JS)
            page.click("#action-wave")
            page.wait_for_function("window.dance.actionsPlayed.length === 1", timeout=10_000)
            seen["actions_played"] = page.evaluate("window.dance.actionsPlayed")
            for with_camera in (True, False):
                page.set_checked("#record-camera", with_camera)
                page.click("#record")
                time.sleep(1.5)
                page.click("#record")
                page.wait_for_function(f"window.dance.recordings.length === {1 + (not with_camera)}")
                seen[f"recording_with_camera_{with_camera}"] = page.evaluate(RECORDING_SIZE_JS)
            page.click("#start")  # Stop
            page.wait_for_function("window.dance.status === 'stopped'", timeout=10_000)
            seen["actions_stopped"] = page.evaluate(ACTIONS_JS)
            time.sleep(1.5)  # a stats message sent before the stop must not bring the figures back
            seen["after_stop"] = page.evaluate(
                "({headline: document.getElementById('headline').textContent,"
                " stats: document.getElementById('stats').textContent, lastStats: window.dance.lastStats})"
            )
            # a video file as the camera
            page.set_input_files("#source-file", str(source))
            seen["clear_button_hidden"] = page.is_hidden("#source-clear")
            shown_before = page.evaluate("window.dance.remoteFrames")  # counted over the page's life
            page.click("#start")
            page.wait_for_function(f"window.dance.remoteFrames > {shown_before + 10}", timeout=30_000)
            page.wait_for_function("document.getElementById('local').videoWidth > 0", timeout=10_000)
            seen["file_source"] = page.evaluate(
                "({source: window.dance.source, width: document.getElementById('local').videoWidth,"
                " height: document.getElementById('local').videoHeight})"
            )
            page.click("#start")  # Stop
            page.wait_for_function("window.dance.status === 'stopped'", timeout=10_000)
            seen["errors"] = page.evaluate("window.dance.errors")
        finally:
            browser.close()
    return seen


def test_page_mirror_recording_and_stop(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    engine = tmp_path / "fake.json"
    engine.write_text(json.dumps({"canvas_size": list(CANVAS), "process_ms": 10}))
    camera = tmp_path / "camera.y4m"
    write_camera_y4m(camera)
    source = tmp_path / "source.webm"
    write_source_webm(source)
    out = tmp_path / "seen.json"
    from fake_pipeline import server_command

    server = server_command("--engine", str(engine))
    server += ["--host", netns.NETNS_HOST, "--port", str(PORT)]
    # this file is also the client, run as a module from the repository root (where bench is importable)
    client = [sys.executable, "-m", "tests.test_page", "--drive", str(out), "--camera", str(camera)]
    client += ["--source", str(source)]
    run = netns.run_server_and_client(server, client, port=PORT, client_timeout_s=120)
    assert run.client_rc == 0 and run.server_rc == 0, run.output
    seen = json.loads(out.read_text())
    assert seen["errors"] == [], seen
    # the camera preview is mirrored by default, like a selfie view; the generated video never is
    assert seen["mirror_default"] and seen["mirror_on"]["local"] != "none", seen
    assert seen["mirror_on"]["stick"] == seen["mirror_on"]["target"] == "none", seen
    assert set(seen["mirror_off"].values()) == {"none"}, seen
    assert "fps" in seen["headline_streaming"], seen
    # one button per action of the target (fake_pipeline.FAKE_ACTIONS), enabled only while streaming
    ids = ["action-wave", "action-idle_sway"]
    assert seen["actions_before"] == seen["actions_stopped"] == [[i, True] for i in ids], seen
    assert seen["actions_streaming"] == [[i, False] for i in ids], seen
    assert seen["actions_played"] == [{"label": "wave", "seconds": 4}], seen
    # the stick figure and the target are shown at the canvas's aspect, before the video arrives (from the
    # target list) and while it plays: a portrait canvas is not squashed into a square
    width, height = CANVAS
    for when in ("boxes_before", "boxes_streaming"):
        for shown_w, shown_h in seen[when].values():
            assert shown_h > 0 and shown_w / shown_h == pytest.approx(width / height, rel=0.02), (when, seen)
    # recordings: camera (160x120 scaled to the canvas's height) | stick figure | target, or those two alone
    assert seen["record_camera_default"], seen
    with_camera = seen["recording_with_camera_True"]
    assert with_camera["withCamera"] and with_camera["size"] > 1000, seen
    camera_width = CAMERA[0] * height / CAMERA[1]
    even_width = 2 * math.ceil((camera_width + 2 * width) / 2)
    assert (with_camera["width"], with_camera["height"]) == (even_width, height), seen
    without = seen["recording_with_camera_False"]
    assert not without["withCamera"] and (without["width"], without["height"]) == (2 * width, height), seen
    # Stop clears the live figures
    assert seen["after_stop"] == {"headline": "", "stats": "", "lastStats": None}, seen
    # a video file stands in for the camera: it is what the preview shows and what is sent
    assert not seen["clear_button_hidden"], seen
    assert seen["file_source"] == {
        "source": "source.webm",
        "width": FILE_SOURCE[0],
        "height": FILE_SOURCE[1],
    }, seen


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.test_page --drive OUT.json --camera CAMERA.y4m --source FILE.webm`` (from the
    repository root): drive the page (inside the namespace, the server already listening) and write what was
    seen to OUT.json."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--drive", type=Path, required=True)
    parser.add_argument("--camera", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    args = parser.parse_args(argv)
    seen = drive(f"http://{netns.NETNS_HOST}:{PORT}/", args.camera, args.source)
    args.drive.write_text(json.dumps(seen, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
