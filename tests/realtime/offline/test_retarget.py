"""Offline retargeting's core, :func:`realtime.offline.retarget.retarget_frames`, on a real source video."""

import numpy as np

from conftest import shared_video
from realtime.model.pipeline import Target
from realtime.offline.retarget import retarget_frames
from realtime.pose.filters import median_filter_poses


def test_retarget_frames_drives_every_frame_with_the_median_filtered_poses(tiny_engine):
    video = shared_video("source_dance.mp4")
    target = Target.load(tiny_engine)
    frames = list(retarget_frames(target, video, max_frames=7, median_window=5))
    assert [f.index for f in frames] == list(range(7))
    source = frames[0].source_poses
    assert all(f.source_poses is source for f in frames)
    assert source.num_frames == 7 and source.frames_with_person == 7 and source.estimate_s > 0
    raw = np.stack([p.joints_px for p in source.poses])
    assert np.array_equal(source.joints_px, median_filter_poses(raw, source.confidence, 5))
    assert not np.array_equal(source.joints_px, raw)  # the dancer moves: the median changed some joints
    width, height = target.canvas_size
    for f in frames:
        assert f.source_rgb.dtype == np.uint8 and f.source_rgb.shape[2] == 3
        assert np.array_equal(f.result.pose.joints_px, source.joints_px[f.index])
        assert np.array_equal(f.result.pose.confidence, source.poses[f.index].confidence)
        assert f.result.generated.shape == (height, width, 3) and f.generate_s > 0

    (unfiltered, *_) = retarget_frames(target, video, max_frames=3, median_window=1)
    poses = unfiltered.source_poses
    assert np.array_equal(poses.joints_px, np.stack([p.joints_px for p in poses.poses]))
