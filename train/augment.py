"""Training-time pose corruption: keypoint dropout (single joints and whole limb chains) and jitter.

Generators trained only on clean stick figures break on the poses a live estimator produces: missed joints,
a lost arm, keypoints off by a few pixels. Yang et al. ("Pose Guided Human Video Generation", ECCV 2018) call
these "abnormal poses" (keypoints missing or misplaced) and make their generator robust to them; Everybody
Dance Now (Chan et al., ICCV 2019, Sec. 7) names missed keypoints as a main failure. Here the training stick
figures are drawn from corrupted keypoints, so the generator learns to fill in what the pose lacks.

Settings are :class:`train.config.AugmentConfig`; :class:`train.dataset.FramePairs` applies them.
"""

from __future__ import annotations

import numpy as np
import torch

from realtime.pose.skeleton import NUM_JOINTS, Joint
from train.config import AugmentConfig

#: Limb chains, from the joint nearest the torso outward. Dropping a chain drops a random joint of it and
#: every joint after it (an arm from the elbow on, a whole leg, the face...).
LIMB_CHAINS: tuple[tuple[Joint, ...], ...] = (
    (Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST),
    (Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW, Joint.LEFT_WRIST),
    (Joint.RIGHT_HIP, Joint.RIGHT_KNEE, Joint.RIGHT_ANKLE, Joint.RIGHT_HEEL, Joint.RIGHT_BIG_TOE),
    (Joint.LEFT_HIP, Joint.LEFT_KNEE, Joint.LEFT_ANKLE, Joint.LEFT_HEEL, Joint.LEFT_BIG_TOE),
    (Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE, Joint.RIGHT_EAR, Joint.LEFT_EAR),
)


def corrupt_pose(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    config: AugmentConfig,
    generator: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's pose with random dropout and jitter (see :class:`train.config.AugmentConfig`).

    Random numbers come from ``generator`` or torch's global RNG (which DataLoader seeds per worker).

    Args:
        joints_px: float32 ``(NUM_JOINTS, 2)`` canvas pixels.
        confidence: float32 ``(NUM_JOINTS,)`` in [0, 1].
        config: the corruption's probabilities and jitter.

    Returns:
        new ``(joints_px, confidence)`` arrays of the same shapes: dropped joints get confidence 0, every
        joint moves by N(0, ``jitter_px``^2) in x and in y.

    Raises:
        ValueError: on wrong shapes.
    """
    if joints_px.shape != (NUM_JOINTS, 2) or confidence.shape != (NUM_JOINTS,):
        raise ValueError(
            f"expected joints ({NUM_JOINTS}, 2) and confidence ({NUM_JOINTS},), "
            f"got {joints_px.shape} and {confidence.shape}"
        )
    joints = np.array(joints_px, dtype=np.float32, copy=True)
    conf = np.array(confidence, dtype=np.float32, copy=True)
    drop = torch.rand(NUM_JOINTS, generator=generator).numpy() < config.joint_dropout_p
    if float(torch.rand((), generator=generator)) < config.chain_dropout_p:
        chain = LIMB_CHAINS[int(torch.randint(len(LIMB_CHAINS), (), generator=generator))]
        start = int(torch.randint(len(chain), (), generator=generator))
        drop[[int(joint) for joint in chain[start:]]] = True
    conf[drop] = 0.0
    if config.jitter_px > 0:
        joints += config.jitter_px * torch.randn(NUM_JOINTS, 2, generator=generator).numpy()
    return joints, conf
