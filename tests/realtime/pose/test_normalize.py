import math

import numpy as np
import pytest

from conftest import standing_pose
from realtime.pose.normalize import (
    BodyStats,
    PoseNormalizer,
    body_stats,
    depth_fraction,
    global_normalize,
    retarget_bone_lengths,
)
from realtime.pose.skeleton import HEAD_JOINTS, LIMB_INDEX, LIMBS, NUM_JOINTS, NUM_LIMBS, Joint

ONES = np.ones(NUM_LIMBS)


def stats(far_y, near_y, far_h, near_h, center_x=0.0, lengths=None):
    return BodyStats(
        limb_lengths_px=tuple(lengths if lengths is not None else ONES),
        far_foot_y_px=far_y,
        near_foot_y_px=near_y,
        far_height_px=far_h,
        near_height_px=near_h,
        center_x_px=center_x,
        num_frames=1,
    )


def test_bone_lengths_scale_each_limb_and_carry_its_subtree():
    joints = standing_pose(256, 256)
    conf = np.ones(NUM_JOINTS, np.float32)
    target = np.ones(NUM_LIMBS)
    source = np.ones(NUM_LIMBS)
    target[LIMB_INDEX["spine"]] = 0.5  # the target's spine is half the source's
    out = retarget_bone_lengths(joints, conf, source, target)
    # The root stays; the neck moves halfway down the spine; everything above moves with it.
    np.testing.assert_allclose(out[Joint.MID_HIP], joints[Joint.MID_HIP])
    half_spine = (joints[Joint.NECK] - joints[Joint.MID_HIP]) * 0.5
    np.testing.assert_allclose(out[Joint.NECK], joints[Joint.MID_HIP] + half_spine, atol=1e-4)
    shift = out[Joint.NECK] - joints[Joint.NECK]
    for joint in (Joint.NOSE, Joint.LEFT_WRIST, Joint.RIGHT_EAR):
        np.testing.assert_allclose(out[joint], joints[joint] + shift, atol=1e-4)
    # Legs hang from the root: untouched.
    np.testing.assert_allclose(out[Joint.LEFT_ANKLE], joints[Joint.LEFT_ANKLE], atol=1e-4)


def test_bone_lengths_keep_angles_and_foreshortening():
    joints = standing_pose(256, 256)
    conf = np.ones(NUM_JOINTS, np.float32)
    target = np.full(NUM_LIMBS, 2.0)
    out = retarget_bone_lengths(joints, conf, ONES, target)
    for limb in LIMBS:  # every limb twice as long, same direction
        np.testing.assert_allclose(
            out[limb.child] - out[limb.parent], 2 * (joints[limb.child] - joints[limb.parent]), atol=1e-3
        )


def test_bone_lengths_missing_joints_move_with_their_parent_and_nan_lengths_keep_length():
    joints = standing_pose(256, 256)
    conf = np.ones(NUM_JOINTS, np.float32)
    conf[Joint.RIGHT_ELBOW] = 0.0
    target = np.full(NUM_LIMBS, 2.0)
    target[LIMB_INDEX["left_forearm"]] = math.nan
    out = retarget_bone_lengths(joints, conf, ONES, target)
    # Right wrist: its limb (elbow missing) cannot be measured, so it moves with the (moved) shoulder's
    # displacement carried through the missing elbow.
    shoulder_shift = out[Joint.RIGHT_SHOULDER] - joints[Joint.RIGHT_SHOULDER]
    np.testing.assert_allclose(out[Joint.RIGHT_WRIST], joints[Joint.RIGHT_WRIST] + shoulder_shift, atol=1e-4)
    # Left forearm with an unknown target length keeps its own length.
    np.testing.assert_allclose(
        out[Joint.LEFT_WRIST] - out[Joint.LEFT_ELBOW],
        joints[Joint.LEFT_WRIST] - joints[Joint.LEFT_ELBOW],
        atol=1e-4,
    )


def test_depth_fraction_clamps_and_handles_a_static_person():
    s = stats(100, 200, 50, 100)
    assert depth_fraction(150, s) == 0.5
    assert depth_fraction(100, s) == 0.0 and depth_fraction(200, s) == 1.0
    assert depth_fraction(220, s) == pytest.approx(1.2)  # linear a little beyond the anchors...
    assert depth_fraction(400, s) == 1.5 and depth_fraction(0, s) == -0.5  # ...clamped further out
    assert depth_fraction(123, stats(100, 100.5, 50, 50)) == 0.5


def test_global_normalization_known_answer():
    # Source: feet between y=100 (far, 50 px tall) and y=200 (near, 100 px tall), centered at x=40.
    # Target: feet between y=300 (far, 100 px tall) and y=400 (near, 300 px tall), centered at x=500.
    source, target = stats(100, 200, 50, 100, center_x=40), stats(300, 400, 100, 300, center_x=500)
    # A source foot at y=150 is halfway: target foot y = 350, scale = 2 + 0.5 * (3 - 2) = 2.5.
    joints = np.zeros((NUM_JOINTS, 2), np.float32)
    joints[Joint.NOSE] = (40, 80)  # 70 px above the foot, on the center line
    joints[Joint.LEFT_WRIST] = (60, 150)  # 20 px right of center, at foot height
    out = global_normalize(joints, 150.0, source, target)
    np.testing.assert_allclose(out[Joint.NOSE], (500, 350 - 70 * 2.5))
    np.testing.assert_allclose(out[Joint.LEFT_WRIST], (500 + 20 * 2.5, 350))
    # At the far extreme the scale is the far height ratio, 2.
    out = global_normalize(joints, 100.0, source, target)
    np.testing.assert_allclose(out[Joint.NOSE], (500, 300 - 20 * 2))


def _walk(num_frames: int):
    """A person walking from far (small, high in the image) to near (big, low)."""
    poses = []
    for i in range(num_frames):
        a = i / (num_frames - 1)
        scale = 0.6 + 0.4 * a
        pose = standing_pose(256, 256, phase=0.3 * i) * scale
        pose[:, 1] += 20 + 10 * a
        poses.append(pose)
    return np.stack(poses).astype(np.float32), np.ones((num_frames, NUM_JOINTS), np.float32)


def test_body_stats_anchors():
    joints, conf = _walk(50)
    s = body_stats(joints, conf)
    foot = joints[:, [Joint.LEFT_ANKLE, Joint.RIGHT_ANKLE], 1].max(axis=1)
    head = joints[:, list(HEAD_JOINTS), 1].min(axis=1)
    assert s.far_foot_y_px == pytest.approx(np.median(foot[:10]))
    assert s.near_foot_y_px == pytest.approx(np.median(foot[-10:]))
    assert s.far_height_px == pytest.approx(np.percentile((foot - head)[:10], 90))
    assert s.num_frames == 50
    spine = np.linalg.norm(joints[:, Joint.NECK] - joints[:, Joint.MID_HIP], axis=1)
    assert s.limb_lengths_px[LIMB_INDEX["spine"]] == pytest.approx(np.median(spine), rel=1e-5)
    with pytest.raises(ValueError, match="feet"):
        body_stats(joints, np.zeros_like(conf))


def test_stats_survive_json():
    joints, conf = _walk(10)
    s = body_stats(joints, conf)
    assert BodyStats.from_json(s.to_json()) == s


def test_normalizer_maps_a_rescaled_copy_of_the_target_back_onto_the_target():
    target_joints, conf = _walk(40)
    target = body_stats(target_joints, conf)
    # The same person filmed by another camera: half the size, shifted.
    source_joints = target_joints * 0.5 + np.array([300.0, 50.0], np.float32)
    normalizer = PoseNormalizer(target)
    normalizer.fit(source_joints, conf)
    for i in range(40):
        np.testing.assert_allclose(
            normalizer.normalize(source_joints[i], conf[i]), target_joints[i], atol=1e-2
        )


def test_normalizer_without_feet_uses_limb_lengths():
    target_joints, conf = _walk(20)
    target = body_stats(target_joints, conf)
    upper = conf.copy()
    for joint in (Joint.LEFT_ANKLE, Joint.RIGHT_ANKLE, Joint.LEFT_KNEE, Joint.RIGHT_KNEE):
        upper[:, joint] = 0.0  # a webcam that shows the upper body
    source = target_joints * 2.0
    normalizer = PoseNormalizer(target)
    fitted = normalizer.fit(source, upper)
    # No full-body frame: heights come from the target's, scaled by the size ratio of the limbs (2x).
    assert fitted.num_frames == 0
    assert fitted.far_height_px == pytest.approx(2 * target.far_height_px, rel=1e-4)
    assert fitted.near_height_px == pytest.approx(2 * target.near_height_px, rel=1e-4)
    out = normalizer.normalize(source[5], upper[5])
    assert np.isfinite(out).all()
    # The body comes out at about the target's size: spine length close to the target's.
    spine = np.linalg.norm(out[Joint.NECK] - out[Joint.MID_HIP])
    assert spine == pytest.approx(target.limb_lengths_px[LIMB_INDEX["spine"]], rel=0.25)
    with pytest.raises(RuntimeError, match="fit"):
        PoseNormalizer(target).normalize(source[0], upper[0])


def test_canvas_clamp_pushes_the_whole_body_back_by_the_least_amount_and_fades_the_push_out():
    from realtime.pose.normalize import CanvasClamp

    clamp = CanvasClamp(100, 100, margin_px=5.0, return_px_per_s=10.0)
    joints = np.zeros((NUM_JOINTS, 2), np.float32) + 50.0
    joints[:, 0] += np.linspace(-20, 20, NUM_JOINTS)
    conf = np.ones(NUM_JOINTS, np.float32)
    np.testing.assert_array_equal(clamp(joints, conf, 0.0), joints)  # inside: untouched
    out = clamp(joints + np.float32([40.0, 0.0]), conf, 100.0)  # reaches x = 110: past the edge
    assert out[:, 0].max() == pytest.approx(95.0) and clamp.offset_px[0] == pytest.approx(-15.0)
    np.testing.assert_allclose(np.diff(out[:, 0]), np.diff(joints[:, 0]), atol=1e-5)  # shape kept
    # Back inside: the push fades at 10 px/s instead of snapping back.
    out = clamp(joints, conf, 1100.0)
    assert clamp.offset_px[0] == pytest.approx(-5.0)
    np.testing.assert_allclose(out, joints + np.float32([-5.0, 0.0]), atol=1e-5)
    # A body larger than the canvas is scaled down to fit; unconfident joints do not count.
    big = joints * 3.0
    conf[0] = 0.0
    out = clamp(big, conf, 1200.0)
    assert out[1:].min() >= 5.0 - 1e-4 and out[1:].max() <= 95.0 + 1e-4
    with pytest.raises(ValueError, match="leaves no room"):
        CanvasClamp(10, 10, margin_px=5.0)
