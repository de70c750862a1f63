"""Issue 21's acceptance, run for real: npm's ``@eyevinn/whip-web-client`` publishes Chromium's fake camera to
the WHIP endpoint and ``@eyevinn/webrtc-player`` plays the WHEP endpoint, from a page of another origin, in a
fresh network namespace; a second viewer plays the same session, then vanishes. The machinery is
:mod:`bench.whip_clients` (``python -m bench.whip_clients --seconds 60`` is the longer measurement)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from bench.browser import make_camera_y4m
from bench.whip_clients import ClientsUnavailable, RunOptions, prepare_clients, run_whip_clients, skip_reason
from bench.whip_clients import summarize as summarize_clients
from realtime.targets import DEFAULT_TARGET

SECONDS = 15.0


@pytest.mark.slow
def test_third_party_whip_and_whep_clients_publish_play_and_leave_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled default target, with a token, the harness on its own origin (CORS)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        prepare_clients()
    except ClientsUnavailable as exc:
        pytest.skip(f"the npm WHIP/WHEP clients cannot be installed here: {exc}")
    from conftest import shared_video
    from realtime.model.pipeline import Target

    canvas_size = Target.load(DEFAULT_TARGET).canvas_size
    camera = make_camera_y4m(shared_video("source_dance.mp4"), tmp_path / "camera.y4m", width=256)
    options = RunOptions(("server.py",), SECONDS, secrets.token_urlsafe(18), vanish_timeout_s=75.0)
    result, output = run_whip_clients(options, camera)
    summary = summarize_clients(result, camera, canvas_size)
    print(json.dumps(summary, indent=2))
    assert summary["failure"] is None, output
    viewer1, viewer2 = summary["viewer1"], summary["viewer2"]
    # the played frames are the target: its canvas's size, a picture (not black, not flat)
    assert viewer1["shows_target"]["ok"] and viewer2["shows_target"]["ok"], (viewer1, viewer2)
    # frames arrive at >= 5 fps; the second viewer of the same session at the first's rate (within 30%)
    assert viewer1["fps"] >= 5 and viewer2["fps"] >= 5, (viewer1, viewer2)
    assert abs(viewer2["fps"] - viewer1["fps_while_viewer2"]) <= 0.3 * viewer1["fps_while_viewer2"], summary
    # glass to glass, from the stamps of the camera preview and of each played video (viewer 2's page on the
    # publisher page's clock: performance.timeOrigin, checked against the wall clock)
    offsets = summary["viewer2_clock_offset_ms"]
    assert abs(offsets["by_time_origin"] - offsets["by_wall_clock"]) < 5, offsets
    for viewer in (viewer1, viewer2):
        g2g = viewer["glass_to_glass"]
        assert g2g["frames_measured"] >= 0.8 * g2g["frames_stamped"] > 0, g2g
        assert 20 < g2g["p50_ms"] <= g2g["p95_ms"] < 1000, g2g
    # the token and the other origin were accepted: nothing refused
    status = summary["status"]
    assert all(s["refused_by_access"] == {} for s in status.values()), status
    assert status["one_viewer"]["viewers"] == 1 and status["two_viewers"]["viewers"] == 2, status
    assert status["two_viewers"]["sessions"] == 1, status
    # the vanished viewer (page closed, no DELETE) is dropped, and leaves no task behind; threads: aiortc
    # encodes each viewer's frames on asyncio's default executor, whose idle threads stay (up to cpus + 4)
    assert summary["vanish"]["noticed_after_s"] is not None, summary["vanish"]
    one, after = status["one_viewer"], status["after_vanish"]
    assert after["viewers"] == 1 and after["sessions"] == 1, after
    assert abs(after["asyncio_tasks"] - one["asyncio_tasks"]) <= 2, (one, after)
    assert after["threads"] - one["threads"] <= 2, (one, after)
    assert summary["vanish"]["viewer1_frames_meanwhile"] > 0, summary["vanish"]  # viewer 1 played on
    # the clients' own DELETEs end the viewer and the session
    assert status["after_stop"]["sessions"] == 0 and status["after_stop"]["viewers"] == 0, status
    assert not any(summary["page_errors"].values()), summary["page_errors"]
    assert summary["server_rc"] == 0, output
    with capsys.disabled():
        print(
            f"\nWHIP/WHEP clients ({SECONDS:.0f} s): viewer 1 {viewer1['fps']} fps, glass-to-glass p50 "
            f"{viewer1['glass_to_glass']['p50_ms']} / p95 {viewer1['glass_to_glass']['p95_ms']} ms; viewer 2 "
            f"{viewer2['fps']} fps; vanish noticed after {summary['vanish']['noticed_after_s']} s"
        )
