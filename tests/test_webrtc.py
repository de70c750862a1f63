"""End to end over real WebRTC: `server.py` and `python -m bench.client` in one fresh network namespace.

The client sends a small generated video as its camera; the test checks the JSON summary the client writes
(generated frames arrived at the target canvas size, side by side, with server latency reported) and that the
server stopped cleanly on SIGTERM. Skipped, with the reason, where ``unshare -n`` is not permitted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from bench import netns
from fake_pipeline import server_command

REPO_ROOT = Path(__file__).resolve().parents[1]
PORT = 8080  # the namespace is fresh, so the port is always free
SOURCE_FPS = 15

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    reason = netns.skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def source_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 320x240, 15 fps H.264 clip: a white block sliding over a changing background."""
    path = tmp_path_factory.mktemp("webrtc") / "source.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=SOURCE_FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(2 * SOURCE_FPS):
            image = np.full((240, 320, 3), (i * 8) % 256, np.uint8)
            x = (i * 9) % 280
            image[80:160, x : x + 40] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def client_argv(source: Path, out: Path, seconds: float, *extra: str) -> list[str]:
    """``python -m bench.client`` streaming ``source`` for ``seconds``, its summary to ``out``."""
    url = f"ws://{netns.NETNS_HOST}:{PORT}/ws"
    options = ["--url", url, "--source", str(source), "--seconds", str(seconds), "--json", str(out), *extra]
    return [sys.executable, "-m", "bench.client", *options]


def fake_server_argv(
    tmp_path: Path, canvas_size: tuple[int, int], process_ms: float, *extra: str
) -> list[str]:
    """``server.py`` with the fake pipeline of tests/fake_pipeline.py standing in for
    realtime.model.pipeline."""
    engine = tmp_path / "fake.json"
    engine.write_text(json.dumps({"canvas_size": list(canvas_size), "process_ms": process_ms}))
    options = ["--engine", str(engine), "--host", netns.NETNS_HOST, "--port", str(PORT), *extra]
    return server_command(*options)


def stream_once(
    server_argv: list[str],
    source: Path,
    out: Path,
    seconds: float,
    *client_extra: str,
    quiet_about: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Serve with ``server_argv``, stream ``source`` for ``seconds`` in a namespace; the client summary.
    None of ``quiet_about`` may appear in the output of the server or the client."""
    run = netns.run_server_and_client(
        server_argv, client_argv(source, out, seconds, *client_extra), port=PORT
    )
    assert run.server_early_rc is None, f"the server exited early ({run.server_early_rc}):\n{run.output}"
    assert run.client_rc == 0, f"client exit code {run.client_rc}:\n{run.output}"
    assert run.server_rc == 0, f"server exit code {run.server_rc} after SIGTERM:\n{run.output}"
    assert run.server_stop_s is not None and run.server_stop_s < 10.0, run.output
    assert not [text for text in quiet_about if text in run.output], run.output
    return json.loads(out.read_text())


def check_summary(
    summary: dict[str, Any], canvas_size: tuple[int, int], seconds: float, min_frames: int
) -> None:
    width, height = canvas_size
    assert not summary["errors"], summary["errors"]
    assert summary["frames_sent"] >= SOURCE_FPS * seconds * 0.7, summary
    assert summary["frames_received"] >= min_frames, summary
    assert summary["frame_size"] == [2 * width, height], summary  # stick figure | generated
    assert set(summary["frame_sizes"]) == {f"{2 * width}x{height}"}, summary
    start, end = summary["server_latency_ms"]["start"], summary["server_latency_ms"]["end"]
    assert start["count"] > 0 and end["count"] > 0, summary
    assert 0 < start["median"] <= start["p95"] < 5000, summary
    assert summary["stats"] and summary["server_counters"]["frames_out"] > 0, summary


def test_webrtc_end_to_end_fake_pipeline(source_video: Path, tmp_path: Path) -> None:
    """The transport alone (fake pipeline, 20 ms per frame): fast, and independent of any model. The camera
    frames carry index stamps that the server copies into its output: the client measures glass to glass."""
    seconds = 4.0
    server_argv = fake_server_argv(tmp_path, (96, 64), 20, "--test-stamp")
    summary = stream_once(server_argv, source_video, tmp_path / "summary.json", seconds, "--stamp")
    check_summary(summary, (96, 64), seconds, min_frames=int(SOURCE_FPS * seconds * 0.5))
    assert summary["received_fps"] > SOURCE_FPS * 0.6, summary
    assert summary["target"] == "fake" and summary["frames_stamped"] >= 0.8 * summary["frames_received"], (
        summary
    )
    glass = summary["glass_to_glass_ms"]["all"]
    server = summary["server_latency_ms"]["start"]
    assert server["median"] < glass["median"] < 1000, summary  # the whole trip takes longer than the server


def test_webrtc_sigterm_during_a_live_session_stops_cleanly(source_video: Path, tmp_path: Path) -> None:
    """SIGTERM mid-session: the session ends, and its recording (``--record``) is closed as a whole file."""
    out = tmp_path / "summary.json"
    recordings = tmp_path / "recordings"
    run = netns.run_server_and_client(
        fake_server_argv(tmp_path, (96, 64), 20, "--record", str(recordings)),
        client_argv(source_video, out, seconds=30),
        port=PORT,
        sigterm_server_after_s=4.0,
        client_timeout_s=20.0,
    )
    assert run.server_rc == 0, run.output
    assert run.server_stop_s is not None and run.server_stop_s < 5.0, run.output
    assert "session 1: stream stopped" in run.output and "session 1: closed" in run.output, run.output
    summary = json.loads(out.read_text())
    assert summary["frames_received"] > 0, summary
    assert any("closed the connection" in e for e in summary["errors"]), summary
    assert run.client_rc == 1, run.output  # the client reports that the server went away
    with av.open(str(recordings / "session-1.mp4")) as container:
        recorded = list(container.decode(video=0))
    assert len(recorded) > 0.5 * summary["frames_received"], (len(recorded), summary)
    assert {(f.width, f.height) for f in recorded} == {(96, 64)}  # the generated view alone


def test_webrtc_end_to_end_tiny_engine(tiny_engine: Path, tmp_path: Path) -> None:
    """The real pipeline (pose, normalization, stick figure, ONNX generator) behind ``server.py``, driven by
    the frames of the real dance video, ~10 s."""
    from conftest import shared_video
    from realtime.model.pipeline import Target

    source_video = shared_video("source_dance.mp4")

    canvas_size = Target.load(tiny_engine).canvas_size
    options = ["--engine", str(tiny_engine), "--host", netns.NETNS_HOST, "--port", str(PORT)]
    server_argv = [sys.executable, "server.py", *options]
    seconds = 10.0
    summary = stream_once(server_argv, source_video, tmp_path / "summary.json", seconds)
    check_summary(summary, canvas_size, seconds, min_frames=10)
    counters = summary["server_counters"]
    assert counters["frames_with_person"] >= 0.8 * counters["frames_out"], counters  # the dancer was seen


def test_whip_publisher_and_whep_viewers_over_real_webrtc(source_video: Path, tmp_path: Path) -> None:
    """A WHIP publisher (aiortc, as OBS would) and two WHEP viewers of its session, one of which vanishes
    without a DELETE (``python -m bench.whip_aiortc``): both viewers get the target alone at the canvas
    size, the vanished one is let go and leaves no viewer, session, task or thread behind, and the DELETEs
    end the session."""
    seconds = 9.0
    server_argv = fake_server_argv(tmp_path, (96, 64), 20, "--test-stamp")
    out = tmp_path / "whip.json"
    client = [
        sys.executable, "-m", "bench.whip_aiortc", "--url", f"http://{netns.NETNS_HOST}:{PORT}",
        "--source", str(source_video), "--seconds", str(seconds), "--viewers", "2", "--stamp",
        "--vanish-cycles", "3", "--json", str(out),
    ]  # fmt: skip
    run = netns.run_server_and_client(server_argv, client, port=PORT)
    assert run.client_rc == 0 and run.server_rc == 0, run.output
    result = json.loads(out.read_text())
    assert not result["errors"], result
    first, second = result["viewers"]
    for viewer in (first, second):
        assert set(viewer["frame_sizes"]) == {"96x64"}, result  # the target alone
        assert viewer["glass_to_glass_ms"]["count"] > 0 and viewer["glass_to_glass_ms"]["p95"] < 1000, result
    assert first["fps"] > SOURCE_FPS * 0.6, result
    assert abs(second["fps"] - first["fps"]) < 0.3 * first["fps"], result  # the same rate for both
    one, both, after = (
        result["status_one_viewer"],
        result["status_all_viewers"],
        result["status_after_vanish"],
    )
    assert (one["viewers"], both["viewers"], after["viewers"]) == (1, 2, 1), result
    assert both["whip_sessions"] == 1 and after["whip_sessions"] == 1, result
    assert result["vanished_viewer_released_after_s"] < 45, result
    # The tasks go back to one viewer's; threads may not (aiortc encodes on asyncio's default thread pool,
    # which keeps the threads it started, up to its bound), but never beyond the two viewers' count.
    assert after["asyncio_tasks"] <= one["asyncio_tasks"] + 1 and after["threads"] <= both["threads"], result
    cycles = result["vanish_cycles"]  # three more viewers come and vanish: nothing piles up
    assert [c["viewers"] for c in cycles] == [1, 1, 1] and all(c["frames"] > 0 for c in cycles), cycles
    assert all(c["asyncio_tasks"] <= one["asyncio_tasks"] + 1 for c in cycles), cycles
    assert max(c["threads"] for c in cycles) <= both["threads"] + 1, cycles
    assert (result["delete_viewer"], result["delete_session"], result["delete_again"]) == (200, 200, 404)
    end = result["status_end"]
    assert (end["sessions"], end["streams"], end["viewers"]) == (0, 0, 0), result
