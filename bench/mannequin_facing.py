"""How often MediaPipe reads the bundled mannequin's generated frames with left and right swapped.

Drives the bundled model with the two source videos as ``python -m train.evaluate --synthetic`` does and
counts the frames where MediaPipe's shoulders on the generated frame lie closer to the driving shoulders
crossed (right to left) than straight: ``python bench/mannequin_facing.py`` (needs ../shared/data).
"""

from pathlib import Path

import numpy as np

from realtime.filters import median_filter_poses
from realtime.pipeline import Retargeter, Target
from realtime.pose import PoseEstimator, PoseFrame
from realtime.skeleton import Joint
from realtime.targets import DEFAULT_TARGET
from realtime.video import read_frames

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

target = Target.load(DEFAULT_TARGET)
for video in (DATA / "source_dance.mp4", DATA / "source_dribble.mp4"):
    r = Retargeter(target, live=False)
    poses = [r.estimate(rgb, ts) for rgb, ts in read_frames(video)]
    confidence = np.stack([p.confidence for p in poses])
    joints = median_filter_poses(np.stack([p.joints_px for p in poses]), confidence, 5)
    r.fit_source(joints, confidence)
    swapped = same = 0
    with PoseEstimator() as est:
        for i, p in enumerate(poses):
            res = r.generate(PoseFrame(joints[i], p.confidence, p.timestamp_ms, p.image_size))
            seen = est.estimate(res.generated)
            if seen.is_empty:
                continue
            s, d = seen.joints_px, res.normalized.joints_px
            R, L = Joint.RIGHT_SHOULDER, Joint.LEFT_SHOULDER
            direct = np.linalg.norm(s[R] - d[R]) + np.linalg.norm(s[L] - d[L])
            cross = np.linalg.norm(s[R] - d[L]) + np.linalg.norm(s[L] - d[R])
            if cross < direct:
                swapped += 1
            else:
                same += 1
    r.close()
    print(f"{video.name}: shoulders read swapped in {swapped} of {swapped + same} frames")
