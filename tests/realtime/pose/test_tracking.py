"""Pose-stream robustness (realtime/pose/tracking.py): joint hold, orphans, person continuity, pose hold."""

import numpy as np
import pytest

from realtime.pose.normalize import BodyStats
from realtime.pose.skeleton import LIMBS, NUM_JOINTS, Joint
from realtime.pose.tracking import (
    PoseHold,
    SourceTracker,
    TrackingParams,
    drop_orphans,
    fill_from_reference,
    neutral_pose,
)

STATS = BodyStats(
    limb_lengths_px=tuple([10.0] * len(LIMBS)),
    far_foot_y_px=180.0,
    near_foot_y_px=220.0,
    far_height_px=100.0,
    near_height_px=140.0,
    center_x_px=128.0,
    num_frames=10,
)


def standing(offset=(0.0, 0.0), scale=1.0):
    """A complete pose in source pixels: the neutral pose of STATS, shifted and scaled."""
    return (neutral_pose(STATS) * scale + np.array(offset, np.float32)).astype(np.float32)


def test_neutral_pose_stands_on_the_target_foot_line_at_its_height_and_center():
    pose = neutral_pose(STATS, depth=0.5)
    assert pose.shape == (NUM_JOINTS, 2) and np.isfinite(pose).all()
    foot = pose[[Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE], 1].max()
    head = pose[[Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE], 1].min()
    assert foot == pytest.approx(200.0, abs=1e-3) and foot - head == pytest.approx(120.0, abs=1e-3)
    assert pose[Joint.MID_HIP, 0] == pytest.approx(128.0, abs=1e-3)
    assert pose[Joint.NECK, 1] < pose[Joint.MID_HIP, 1] < pose[Joint.RIGHT_KNEE, 1]  # upright
    assert pose[Joint.RIGHT_WRIST, 1] > pose[Joint.RIGHT_SHOULDER, 1]  # arms hang down


def test_drop_orphans_removes_a_joint_without_its_parent_and_what_hangs_from_it():
    present = np.ones(NUM_JOINTS, bool)
    present[Joint.RIGHT_ELBOW] = False
    present[Joint.MID_HIP] = False  # an upper-body frame: the torso joints still stand on their own
    kept = drop_orphans(present)
    assert not kept[Joint.RIGHT_WRIST] and not kept[Joint.RIGHT_ELBOW]
    assert (
        kept[Joint.NECK] and kept[Joint.RIGHT_SHOULDER] and kept[Joint.LEFT_WRIST] and kept[Joint.RIGHT_HIP]
    )
    present[Joint.NECK] = False
    assert not drop_orphans(present)[Joint.NOSE] and not drop_orphans(present)[Joint.LEFT_EAR]


def test_fill_from_reference_keeps_present_joints_and_attaches_missing_ones():
    reference = standing()
    joints = standing(offset=(5.0, -3.0))
    present = np.ones(NUM_JOINTS, bool)
    present[[Joint.LEFT_ELBOW, Joint.LEFT_WRIST, Joint.MID_HIP]] = False
    filled = fill_from_reference(
        np.zeros_like(joints) + np.where(present[:, None], joints, 999), present, reference
    )
    np.testing.assert_allclose(filled, joints, atol=1e-4)  # a rigid shift is recovered exactly
    np.testing.assert_array_equal(
        fill_from_reference(joints, np.zeros(NUM_JOINTS, bool), reference), reference
    )


def test_a_briefly_missing_joint_moves_with_its_parent_then_is_dropped():
    tracker = SourceTracker(TrackingParams(joint_hold_ms=100.0))
    conf = np.ones(NUM_JOINTS, np.float32)
    pose = standing()
    tracker.update(pose, conf, 0.0)
    offset = pose[Joint.RIGHT_WRIST] - pose[Joint.RIGHT_ELBOW]
    moved = pose.copy()
    moved[[Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST]] += 4.0  # the arm moves while its wrist is not seen
    missing = conf.copy()
    missing[Joint.RIGHT_WRIST] = 0.0
    joints, out_conf = tracker.update(moved, missing, 40.0)
    assert out_conf[Joint.RIGHT_WRIST] == 1.0
    np.testing.assert_allclose(joints[Joint.RIGHT_WRIST], moved[Joint.RIGHT_ELBOW] + offset, atol=1e-4)
    _, out_conf = tracker.update(moved, missing, 200.0)  # missing for longer than joint_hold_ms
    assert out_conf[Joint.RIGHT_WRIST] == 0.0
    # An elbow missing with its wrist seen: the elbow is held, so the wrist stays attached.
    tracker = SourceTracker(TrackingParams(joint_hold_ms=100.0))
    tracker.update(pose, conf, 0.0)
    no_elbow = conf.copy()
    no_elbow[Joint.LEFT_ELBOW] = 0.0
    _, out_conf = tracker.update(pose, no_elbow, 40.0)
    assert out_conf[Joint.LEFT_ELBOW] == 1.0 and out_conf[Joint.LEFT_WRIST] == 1.0
    # Never seen before: the wrist without an elbow is dropped, not drawn floating.
    fresh = SourceTracker()
    _, out_conf = fresh.update(pose, no_elbow, 0.0)
    assert out_conf[Joint.LEFT_ELBOW] == 0.0 and out_conf[Joint.LEFT_WRIST] == 0.0
    assert fresh.dropped_joints == 1


def test_a_different_person_is_rejected_until_it_persists():
    params = TrackingParams(switch_confirm_frames=3, reacquire_after_ms=1000.0)
    tracker = SourceTracker(params)
    conf = np.ones(NUM_JOINTS, np.float32)
    dt = 33.0
    for i in range(3):  # the tracked person walks slowly
        _, c = tracker.update(standing(offset=(2.0 * i, 0.0)), conf, i * dt)
        assert c.max() == 1.0
    other = standing(offset=(90.0, 0.0), scale=0.7)  # somebody else, elsewhere and smaller
    _, c = tracker.update(other, conf, 3 * dt)
    assert c.max() == 0.0 and tracker.rejected_frames == 1
    _, c = tracker.update(standing(offset=(6.0, 0.0)), conf, 4 * dt)  # the tracked person is back
    assert c.max() == 1.0
    results = [tracker.update(other, conf, (5 + i) * dt)[1].max() for i in range(3)]
    assert results == [0.0, 0.0, 1.0] and tracker.switches == 1  # it persisted: now it is the tracked one
    # After a long loss, whoever comes is accepted (re-acquisition).
    _, c = tracker.update(standing(), conf, 10 * dt + 2000.0)
    assert c.max() == 1.0


def test_pose_hold_holds_then_eases_to_neutral_then_blends_back():
    params = TrackingParams(hold_ms=100.0, ease_to_neutral_ms=200.0, resume_blend_ms=100.0)
    neutral = neutral_pose(STATS)
    hold = PoseHold(neutral, params)
    assert hold.update(None, 0.0) is None  # nobody seen yet: nothing to hold
    conf = np.ones(NUM_JOINTS, np.float32)
    live = neutral + np.float32(30.0)
    np.testing.assert_array_equal(hold.update((live, conf), 0.0)[0], live)
    held, held_conf = hold.update(None, 50.0)
    np.testing.assert_array_equal(held, live)
    assert hold.is_lost and held_conf.min() == 1.0
    np.testing.assert_array_equal(hold.update(None, 150.0)[0], live)  # lost at 50 ms: still within hold_ms
    mid = hold.update(None, 250.0)[0]  # halfway through the ease: smoothstep(0.5) = 0.5
    np.testing.assert_allclose(mid, 0.5 * (live + neutral), atol=1e-4)
    np.testing.assert_allclose(hold.update(None, 400.0)[0], neutral, atol=1e-4)
    # The person returns elsewhere: no jump, the shown pose moves to it over resume_blend_ms.
    back = neutral - np.float32(40.0)
    first = hold.update((back, conf), 433.0)[0]
    assert not hold.is_lost
    np.testing.assert_allclose(first, neutral, atol=1e-4)  # the blend starts where the shown pose was
    np.testing.assert_allclose(hold.update((back, conf), 483.0)[0], 0.5 * (neutral + back), atol=1e-4)
    np.testing.assert_array_equal(hold.update((back, conf), 540.0)[0], back)


def test_a_held_pose_lacking_joints_eases_to_a_complete_neutral_pose_without_loose_joints():
    params = TrackingParams(hold_ms=0.0, ease_to_neutral_ms=100.0)
    neutral = neutral_pose(STATS)
    hold = PoseHold(neutral, params)
    conf = np.ones(NUM_JOINTS, np.float32)
    conf[[Joint.LEFT_ELBOW, Joint.LEFT_WRIST]] = 0.0
    hold.update((neutral + np.float32(10.0), conf), 0.0)
    assert hold.update(None, 10.0)[1].min() == 0.0  # lost at 10 ms: the held pose as it was
    joints, c = hold.update(None, 20.0)  # easing: every joint of the neutral pose is drawn
    assert c.min() == 1.0
    # The missing arm starts attached at the neutral pose's offsets, not at the canvas origin.
    np.testing.assert_allclose(
        joints[Joint.LEFT_WRIST] - joints[Joint.LEFT_SHOULDER],
        neutral[Joint.LEFT_WRIST] - neutral[Joint.LEFT_SHOULDER],
        atol=1e-3,
    )


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="invalid tracking settings"):
        TrackingParams(max_torso_scale_ratio=0.9)
    with pytest.raises(ValueError, match="neutral pose"):
        PoseHold(np.zeros((3, 2)))
