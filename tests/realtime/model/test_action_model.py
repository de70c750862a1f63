"""The bundled action artifact through realtime.model.actions: loading, sampling, errors, the mapping onto the
bundled mannequin's canvas, and the ActionPlayer's blends (no jump when an action starts, ends or hands
back to a person)."""

import json
import shutil

import numpy as np
import pytest

from realtime.model.actions import (
    ACTIONS_ARTIFACT,
    ActionError,
    ActionModel,
    ActionPlayer,
    TargetActions,
    load_action_model,
    read_action_labels,
)
from realtime.model.bundle import read_bundle
from realtime.pose.normalize import CANVAS_MARGIN_FRACTION
from realtime.pose.skeleton import NUM_JOINTS, Joint
from realtime.targets import DEFAULT_TARGET

LABELS = ("wave", "clap", "point", "arm_pump", "idle_sway", "turn")


@pytest.fixture(scope="module")
def mannequin_actions() -> TargetActions:
    bundle = read_bundle(DEFAULT_TARGET)
    return TargetActions(load_action_model(), bundle.stats, (bundle.canvas_width, bundle.canvas_height))


def test_the_bundled_artifact_is_small_made_on_synthetic_data_and_generates_every_label():
    assert ACTIONS_ARTIFACT.stat().st_size < 2_000_000
    meta = json.loads(ACTIONS_ARTIFACT.with_suffix(".json").read_text())
    assert meta["data"] == "synthetic" and len(meta["checkpoint_sha256"]) == 64
    model = load_action_model()
    assert model.labels == LABELS == read_action_labels() and model.fps == 12.0
    sequences = {label: model.generate(label, 30, seed=1) for label in LABELS}
    for joints in sequences.values():
        assert (
            joints.shape == (30, NUM_JOINTS, 2) and joints.dtype == np.float32 and np.isfinite(joints).all()
        )
        assert 0.05 < joints.min() and joints.max() < 0.95  # in the reference canvas
    assert np.array_equal(model.generate("wave", 30, seed=1), sequences["wave"])  # seeded
    assert not np.array_equal(model.generate("wave", 30, seed=2), sequences["wave"])
    # a wave moves a wrist far more than an idle sway does
    wrists = [Joint.RIGHT_WRIST, Joint.LEFT_WRIST]
    travel = {k: np.abs(np.diff(v[:, wrists], axis=0)).sum(axis=0).max() for k, v in sequences.items()}
    assert travel["wave"] > 3 * travel["idle_sway"], travel


def test_unknown_labels_short_durations_and_missing_artifacts_are_clear_errors(mannequin_actions, tmp_path):
    with pytest.raises(ActionError, match="unknown action 'dance'; known: wave, clap, point"):
        mannequin_actions.sample("dance", 2.0)
    with pytest.raises(ActionError, match="under two frames"):
        mannequin_actions.sample("wave", 0.1)
    with pytest.raises(ActionError, match="positive number"):
        mannequin_actions.clip("wave", float("nan"))
    with pytest.raises(FileNotFoundError, match="python -m train.actions export"):
        ActionModel.load(tmp_path / "none.onnx")
    copy = tmp_path / "a.onnx"
    shutil.copy(ACTIONS_ARTIFACT, copy)
    meta = json.loads(ACTIONS_ARTIFACT.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**meta, "format_version": 9}))
    with pytest.raises(ActionError, match="format 9"):
        ActionModel.load(copy)
    assert read_action_labels(tmp_path / "none.onnx") == ()


def test_actions_are_mapped_onto_the_mannequin_canvas_at_its_height(mannequin_actions):
    width, height = mannequin_actions.canvas_size
    stats = mannequin_actions.stats
    margin = CANVAS_MARGIN_FRACTION * min(width, height)
    for label in LABELS:
        poses = mannequin_actions.sample(label, 3.0, seed=0, start_ms=100.0)
        assert len(poses) == 36 and poses[1].timestamp_ms == pytest.approx(100.0 + 1e3 / 12)
        joints = np.stack([p.joints_px for p in poses])
        assert all((p.confidence == 1).all() and p.image_size == (width, height) for p in poses)
        assert (joints >= margin - 1e-3).all() and (joints[..., 0] <= width - margin + 1e-3).all()
        assert (joints[..., 1] <= height - margin + 1e-3).all()
        # standing on the target's floor, about the target's height (ankles to eyes)
        feet = joints[:, [Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE], 1].max(axis=1)
        assert stats.far_foot_y_px - 5 <= np.median(feet) <= stats.near_foot_y_px + 5, label
        tall = np.median(feet - joints[:, Joint.NOSE, 1])
        assert 0.8 * stats.far_height_px < tall < 1.1 * stats.near_height_px, (label, tall)
        # the mid-hip near the target's centre line
        assert abs(np.median(joints[:, Joint.MID_HIP, 0]) - stats.center_x_px) < 25, label


def test_a_loop_runs_on_from_its_end_into_its_start(mannequin_actions):
    clip = mannequin_actions.clip("idle_sway", 2.0, seed=0, loop=True)
    once = mannequin_actions.clip("idle_sway", 2.0, seed=0)
    steps = np.abs(np.diff(clip.joints_px, axis=0)).max()
    seam = np.abs(clip.joints_px[0] - clip.joints_px[-1]).max()
    assert seam <= 1.5 * steps + 0.5, (seam, steps)
    assert np.allclose(clip.pose_at(clip.duration_ms), clip.pose_at(0.0))  # wraps around
    assert np.allclose(once.pose_at(10 * once.duration_ms), once.joints_px[-1])  # a single pass holds its end


def drive_player(actions: TargetActions, person: np.ndarray, blend_ms: float) -> tuple[np.ndarray, list]:
    """A still person at 30 fps; "wave" asked for at frame 20 (1.5 s); nobody from frame 120 to 219 (the idle
    loop after 1 s); the person again. The poses shown (float ``(300, NUM_JOINTS, 2)``) and what played."""
    ones = np.ones(NUM_JOINTS, np.float32)
    player = ActionPlayer(actions.clip("idle_sway", 2.0, loop=True), idle_after_ms=1000.0, blend_ms=blend_ms)
    shown, playing = [], []
    for i in range(300):
        if i == 20:
            player.play(actions.clip("wave", 1.5))
        here = not 120 <= i < 220
        out = player.update((person, ones), here, i * 1e3 / 30)  # the hold's pose stays below while lost
        assert out is not None
        shown.append(out[0])
        playing.append(player.playing)
    return np.stack(shown), playing


def test_the_player_blends_in_and_out_without_a_jump(mannequin_actions):
    person = mannequin_actions.sample("idle_sway", 1.0)[0].joints_px + np.float32([30.0, 0.0])
    shown, playing = drive_player(mannequin_actions, person, blend_ms=400.0)
    assert playing[19] is None and playing[20] == "wave" and playing[20 + 45] is None  # 1.5 s at 30 fps
    assert playing[148] is None and playing[149] == "idle_sway"  # 1 s after the person left (frame 119)
    assert playing[219] == "idle_sway" and playing[220] is None  # the person is back
    assert np.allclose(shown[-1], person) and np.allclose(shown[:20], person)
    steps = np.abs(np.diff(shown, axis=0)).max(axis=(1, 2))
    # Without blends, each change of source is one jump of tens of pixels; blended, a few pixels a frame.
    cut, _ = drive_player(mannequin_actions, person, blend_ms=0.0)
    cut_steps = np.abs(np.diff(cut, axis=0)).max(axis=(1, 2))
    for change in (20, 65, 149, 220):  # wave starts, wave ends, idle starts, the person is back
        assert cut_steps[change - 1] > 25.0, (change, cut_steps[change - 1])
        assert steps[change - 1 : change + 12].max() < 0.5 * cut_steps[change - 1], change
    assert steps.max() < 12.0, (int(steps.argmax()), float(steps.max()))
