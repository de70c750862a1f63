import numpy as np
import pytest

from realtime.pose.filters import OneEuroFilter, OneEuroParams, median_filter_poses
from realtime.pose.skeleton import NUM_JOINTS, Joint


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


def _track(filt, xs, fps=30.0, scale_px=100.0):
    """Filter a sequence of x positions of every joint (y = 0); returns the filtered x of joint 0."""
    conf = np.ones(NUM_JOINTS, np.float32)
    out = []
    for i, x in enumerate(xs):
        joints = np.zeros((NUM_JOINTS, 2), np.float32)
        joints[:, 0] = x
        out.append(filt(joints, conf, timestamp_ms=1000.0 * i / fps, scale_px=scale_px)[0, 0])
    return np.array(out)


@pytest.mark.parametrize("speed_heights_per_s", [0.005, 1.0])
def test_one_euro_lag_matches_its_time_constant(speed_heights_per_s):
    params = OneEuroParams()
    fps, scale_px = 30.0, 100.0
    xs = np.arange(300) * speed_heights_per_s * scale_px / fps  # a joint moving at constant speed
    filtered = _track(OneEuroFilter(params), xs, fps, scale_px)
    lag_ms = 1000.0 * (xs[-1] - filtered[-1]) / (speed_heights_per_s * scale_px)
    expected_ms = 1000.0 / (2 * np.pi * (params.min_cutoff_hz + params.beta * speed_heights_per_s))
    assert lag_ms == pytest.approx(expected_ms, rel=0.05)
    # The documented figures: about 100 ms when (nearly) still, under 10 ms at one height per second.
    assert (lag_ms > 90) if speed_heights_per_s < 0.1 else (lag_ms < 10)


def test_one_euro_removes_jitter_of_a_still_pose():
    rng = np.random.default_rng(0)
    xs = 50.0 + rng.normal(0, 0.5, 300)  # 0.5 px noise on a 100 px scale
    filtered = _track(OneEuroFilter(), xs)
    assert filtered[30:].std() < 0.6 * xs[30:].std()


def test_one_euro_restarts_a_joint_that_comes_back_and_on_a_time_jump():
    filt = OneEuroFilter()
    conf = np.ones(NUM_JOINTS, np.float32)
    joints = np.zeros((NUM_JOINTS, 2), np.float32)
    filt(joints, conf, 0.0, 100.0)
    filt(joints, conf, 33.0, 100.0)
    missing = conf.copy()
    missing[Joint.LEFT_WRIST] = 0.0
    moved = joints + 40.0
    out = filt(moved, missing, 66.0, 100.0)
    np.testing.assert_array_equal(out[Joint.LEFT_WRIST], moved[Joint.LEFT_WRIST])  # missing: passed through
    assert out[Joint.NOSE, 0] < 40.0  # present joints are smoothed
    out = filt(moved, conf, 99.0, 100.0)
    np.testing.assert_array_equal(out[Joint.LEFT_WRIST], moved[Joint.LEFT_WRIST])  # back: restarts there
    np.testing.assert_array_equal(filt(joints, conf, 10.0, 100.0), joints)  # time went back: restart
