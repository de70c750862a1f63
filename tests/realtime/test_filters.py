import numpy as np
import pytest

from realtime.filters import median_filter_poses
from realtime.skeleton import NUM_JOINTS, Joint


def test_median_removes_a_one_frame_spike_and_keeps_missing_joints():
    n = 9
    joints = np.tile(np.arange(NUM_JOINTS * 2, dtype=np.float32).reshape(1, NUM_JOINTS, 2), (n, 1, 1))
    conf = np.ones((n, NUM_JOINTS), np.float32)
    joints[4, Joint.LEFT_WRIST] += 100.0  # a one-frame detection glitch
    joints[6, Joint.NOSE] = -1.0
    conf[6, Joint.NOSE] = 0.0  # missing in frame 6: ignored by neighbours, left as it was
    out = median_filter_poses(joints, conf, window=5)
    np.testing.assert_array_equal(out[4, Joint.LEFT_WRIST], joints[0, Joint.LEFT_WRIST])
    np.testing.assert_array_equal(out[6, Joint.NOSE], [-1.0, -1.0])
    np.testing.assert_array_equal(out[5, Joint.NOSE], joints[0, Joint.NOSE])


def test_window_one_is_identity_and_even_windows_are_refused():
    joints = np.random.default_rng(0).normal(size=(4, NUM_JOINTS, 2)).astype(np.float32)
    conf = np.ones((4, NUM_JOINTS), np.float32)
    np.testing.assert_array_equal(median_filter_poses(joints, conf, window=1), joints)
    with pytest.raises(ValueError, match="odd"):
        median_filter_poses(joints, conf, window=4)
