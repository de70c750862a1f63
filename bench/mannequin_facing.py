"""How often MediaPipe reads the bundled mannequin's generated frames with left and right swapped.

Drives the bundled model with the two source videos through the offline retargeting, as
``python -m train evaluate --synthetic`` does (:func:`realtime.offline.retarget.retarget_frames`), and counts
the frames where MediaPipe's shoulders on the generated frame lie closer to the driving shoulders crossed
(right to left) than straight: ``python bench/mannequin_facing.py`` from the repository root (needs
../shared/data).
"""

from pathlib import Path

import numpy as np

from realtime.model.pipeline import Target
from realtime.offline.retarget import retarget_frames
from realtime.pose.estimators import MediaPipePose
from realtime.pose.skeleton import Joint
from realtime.targets import DEFAULT_TARGET

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

target = Target.load(DEFAULT_TARGET)
for video in (DATA / "source_dance.mp4", DATA / "source_dribble.mp4"):
    swapped = same = 0
    with MediaPipePose() as est:
        for frame in retarget_frames(target, video):
            res = frame.result
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
    print(f"{video.name}: shoulders read swapped in {swapped} of {swapped + same} frames")
