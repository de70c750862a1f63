import numpy as np
import pytest

from realtime.pose.skeleton import (
    JOINT_COLORS,
    LIMBS,
    MEDIAPIPE_SOURCES,
    NUM_JOINTS,
    NUM_MEDIAPIPE_LANDMARKS,
    ROOT_JOINT,
    Joint,
    MediaPipeLandmark,
    from_mediapipe,
)


def test_mediapipe_enum_mirrors_mediapipe():
    mp_pose = pytest.importorskip("mediapipe").solutions.pose
    assert {lm.name: lm.value for lm in MediaPipeLandmark} == {
        lm.name: lm.value for lm in mp_pose.PoseLandmark
    }


def test_limbs_form_a_tree_walked_outward_from_the_root():
    placed = {ROOT_JOINT}
    children = [limb.child for limb in LIMBS]
    for limb in LIMBS:
        assert limb.parent in placed, f"{limb.name}: parent {limb.parent.name} is visited after its child"
        placed.add(limb.child)
    assert sorted(children) == sorted(j for j in Joint if j != ROOT_JOINT)  # each joint has one parent
    assert placed == set(Joint)


def test_colors_distinguish_every_limb_and_every_joint_has_one():
    colors = [limb.color for limb in LIMBS]
    assert len(set(colors)) == len(colors)
    assert len(JOINT_COLORS) == NUM_JOINTS
    assert all(all(0 <= c <= 255 for c in color) for color in colors)


def test_every_joint_has_a_mediapipe_source():
    assert set(MEDIAPIPE_SOURCES) == set(Joint)


def test_from_mediapipe_midpoints_and_min_visibility():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (2, NUM_MEDIAPIPE_LANDMARKS, 2)).astype(np.float32)
    vis = rng.uniform(0, 1, (2, NUM_MEDIAPIPE_LANDMARKS)).astype(np.float32)
    joints, conf = from_mediapipe(xy, vis)
    assert joints.shape == (2, NUM_JOINTS, 2) and conf.shape == (2, NUM_JOINTS)
    m = MediaPipeLandmark
    np.testing.assert_allclose(joints[:, Joint.NECK], (xy[:, m.LEFT_SHOULDER] + xy[:, m.RIGHT_SHOULDER]) / 2)
    np.testing.assert_allclose(conf[:, Joint.MID_HIP], np.minimum(vis[:, m.LEFT_HIP], vis[:, m.RIGHT_HIP]))
    np.testing.assert_array_equal(joints[:, Joint.LEFT_BIG_TOE], xy[:, m.LEFT_FOOT_INDEX])
    np.testing.assert_array_equal(conf[:, Joint.RIGHT_WRIST], vis[:, m.RIGHT_WRIST])


def test_from_mediapipe_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="33"):
        from_mediapipe(np.zeros((17, 2)), np.zeros(17))
