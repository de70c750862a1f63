"""The rendered source dancer (train/synthetic/source.py): its motion, its cache, MediaPipe on it, its CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.pose.skeleton import Joint
from realtime.video import read_frames, video_info
from train.synthetic import BODY, DEFAULT_STYLE, generate_motion
from train.synthetic.cli import main as synthetic_main
from train.synthetic.motion import ANGLE_INDEX
from train.synthetic.source import (
    SOURCE_BODY,
    SOURCE_STYLE,
    SourceParams,
    cache_key,
    cached_source_video,
    generate_source_motion,
)

TINY = SourceParams(seconds=0.5, fps=24.0, width=64, height=96)


def test_the_source_is_another_figure_in_another_room() -> None:
    assert SOURCE_BODY.height_m < BODY.height_m - 0.05
    assert SOURCE_BODY.shoulder_half_width_m != BODY.shoulder_half_width_m
    for field in ("shirt", "trousers", "shoes", "wall_top", "floor_near"):  # (skin is near the wood)
        ours, target = np.array(getattr(SOURCE_STYLE, field)), np.array(getattr(DEFAULT_STYLE, field))
        assert np.abs(ours - target).sum() > 60, field


def test_source_motion_is_seeded_and_unlike_the_training_motion() -> None:
    params = SourceParams(seconds=8.0, width=256, height=256)
    motion = generate_source_motion(params)
    again = generate_source_motion(params)
    assert np.array_equal(motion.joints_px, again.joints_px)
    other = generate_source_motion(SourceParams(seconds=8.0, width=256, height=256, seed=1))
    assert not np.allclose(motion.joints_px, other.joints_px)
    training = generate_motion(params.num_frames, 256, 256, seed=0)
    assert np.abs(motion.angles_rad - training.angles_rad).mean() > 0.1
    # Mostly facing the camera; every joint but an ear behind the head visible (no random dropouts for the
    # renderer to leave a hand or foot out of the picture).
    assert np.abs(motion.angles_rad[:, ANGLE_INDEX["yaw"]]).max() < 1.0
    ears = [Joint.RIGHT_EAR, Joint.LEFT_EAR]
    assert np.delete(motion.confidence, ears, axis=1).min() == 1.0


def test_source_knees_bounce_on_the_beat() -> None:
    params = SourceParams(seconds=16.0, width=256, height=256, bpm=120.0)
    knee = generate_source_motion(params).angles_rad[:, ANGLE_INDEX["right_knee_flexion"]]
    spectrum = np.abs(np.fft.rfft(knee - knee.mean()))
    freqs = np.fft.rfftfreq(len(knee), 1.0 / params.fps)
    assert freqs[np.argmax(spectrum[1:]) + 1] == pytest.approx(2.0, abs=0.1)  # 120 bpm = 2 Hz


def test_cached_source_video_renders_once_and_keys_on_the_parameters(tmp_path: Path) -> None:
    first = cached_source_video(TINY, folder=tmp_path)
    assert not first.cached and first.render_s > 0 and first.path.parent == tmp_path
    info = video_info(first.path)
    assert (info.width, info.height, info.num_frames) == (64, 96, 12) and info.fps == pytest.approx(24)
    frames = np.stack([f for f, _ in read_frames(first.path)])
    assert frames.std() > 10  # a figure over the room, not a blank picture
    second = cached_source_video(TINY, folder=tmp_path)
    assert second.cached and second.path == first.path and second.render_s == 0
    assert cache_key(SourceParams(seconds=0.5, fps=24.0, width=64, height=96, seed=3)) != cache_key(TINY)
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no partial file left behind
    with pytest.raises(ValueError, match="16x16"):
        cached_source_video(SourceParams(width=8, height=8), folder=tmp_path)


def test_mediapipe_finds_the_source_dancer_with_left_and_right_right() -> None:
    """The default clip (the tests' stand-in for the real source videos): a pose in most frames, with the
    shoulders on the right sides (one frame in four of the 12 s clip)."""
    from realtime.pose.estimators import MediaPipePose

    params = SourceParams()
    video = cached_source_video(params)
    truth = generate_source_motion(params).joints_px
    found = straight = 0
    checked = range(0, params.num_frames, 4)
    frames = {i: f for i, (f, _) in enumerate(read_frames(video.path)) if i in checked}
    with MediaPipePose(video_mode=False) as estimator:
        for i in checked:
            pose = estimator.estimate(frames[i])
            if pose.is_empty:
                continue
            found += 1
            seen, gt = pose.joints_px, truth[i]
            r, l = Joint.RIGHT_SHOULDER, Joint.LEFT_SHOULDER  # noqa: E741
            direct = np.linalg.norm(seen[r] - gt[r]) + np.linalg.norm(seen[l] - gt[l])
            crossed = np.linalg.norm(seen[r] - gt[l]) + np.linalg.norm(seen[l] - gt[r])
            straight += direct < crossed
    assert found >= 0.9 * len(checked), (found, len(checked))
    assert straight >= 0.9 * found, (straight, found)


def test_source_cli_writes_the_video_and_reports_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DANCE_LIVE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo" / "dance.mp4"
    args = ["source", "--out", str(out), "--seconds", "0.5", "--size", "64x96"]
    assert synthetic_main(args) == 0
    assert "rendered in" in capsys.readouterr().out
    assert video_info(out).num_frames == 12
    assert synthetic_main(args) == 0
    assert "from the cache" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:  # argparse's one-line error
        synthetic_main(["source", "--out", str(out), "--seconds", "0"])
    assert exited.value.code == 2 and "expected a finite number > 0, got 0.0" in capsys.readouterr().err
