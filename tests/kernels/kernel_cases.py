"""Shared inputs of the kernel tests: an upright pose and random batches with the degenerate cases."""

import torch

from realtime.pose.skeleton import NUM_JOINTS, Joint

#: An upright person on a 64x64 canvas.
STANDING = {
    Joint.NOSE: (32, 8), Joint.NECK: (32, 16), Joint.RIGHT_EYE: (30, 6), Joint.LEFT_EYE: (34, 6),
    Joint.RIGHT_EAR: (28, 7), Joint.LEFT_EAR: (36, 7), Joint.RIGHT_SHOULDER: (24, 16),
    Joint.LEFT_SHOULDER: (40, 16), Joint.RIGHT_ELBOW: (20, 26), Joint.LEFT_ELBOW: (44, 26),
    Joint.RIGHT_WRIST: (18, 36), Joint.LEFT_WRIST: (46, 36), Joint.MID_HIP: (32, 36),
    Joint.RIGHT_HIP: (27, 36), Joint.LEFT_HIP: (37, 36), Joint.RIGHT_KNEE: (26, 47),
    Joint.LEFT_KNEE: (38, 47), Joint.RIGHT_ANKLE: (26, 58), Joint.LEFT_ANKLE: (38, 58),
    Joint.RIGHT_HEEL: (25, 60), Joint.LEFT_HEEL: (39, 60), Joint.RIGHT_BIG_TOE: (23, 61),
    Joint.LEFT_BIG_TOE: (41, 61),
}  # fmt: skip


def standing(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    xy = torch.zeros(batch, NUM_JOINTS, 2)
    for joint, pos in STANDING.items():
        xy[:, joint] = torch.tensor(pos, dtype=torch.float32)
    return xy, torch.ones(batch, NUM_JOINTS)


def random_poses(seed: int, batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random poses with the degenerate cases: joints off the canvas, zero-length limbs, NaN missing
    joints, one image with every joint missing, one with every joint present."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, NUM_JOINTS, 2, generator=gen) * torch.tensor(
        [width, height]
    ) * 1.6 - 0.3 * torch.tensor([width, height])
    conf = torch.rand(batch, NUM_JOINTS, generator=gen)
    xy[0, Joint.RIGHT_WRIST] = xy[0, Joint.RIGHT_ELBOW]  # zero-length limb
    xy[0, Joint.LEFT_ANKLE] = float("nan")  # non-finite, even with confidence 1
    conf[0, Joint.LEFT_ANKLE] = 1.0
    xy[:, Joint.NOSE] = torch.tensor([-1e6, 1e6])  # far off the canvas
    conf[1 % batch] = 0.0  # every joint missing
    if batch > 2:
        conf[2] = 1.0  # every joint present
    return xy, conf


def random_case(seed: int, batch: int, height: int, width: int):
    """Random source and target poses near a person, with the degenerate cases mixed in."""
    gen = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height], dtype=torch.float32)
    base, _ = standing(batch)
    src = base / 64 * size + torch.randn(batch, NUM_JOINTS, 2, generator=gen) * 0.05 * size
    dst = (
        src
        + torch.randn(batch, NUM_JOINTS, 2, generator=gen) * 0.08 * size
        + torch.randn(batch, 1, 2, generator=gen) * 0.1 * size
    )
    src_conf = (torch.rand(batch, NUM_JOINTS, generator=gen) > 0.1).float()
    dst_conf = (torch.rand(batch, NUM_JOINTS, generator=gen) > 0.1).float()
    src[0, Joint.LEFT_ELBOW] = src[0, Joint.LEFT_WRIST]  # zero-length source limb
    dst[0, Joint.RIGHT_KNEE] = dst[0, Joint.RIGHT_ANKLE]  # zero-length target limb
    src[0, Joint.NOSE] = float("nan")
    dst[-1, Joint.LEFT_ANKLE] = torch.tensor([-3.0, 2.0]) * size  # off the canvas
    if batch > 1:
        src_conf[1] = 0.0  # all missing
    image = torch.rand(batch, 3, height, width, generator=gen)
    mask = (torch.rand(batch, height, width, generator=gen) > 0.15).float()
    return image, mask, src, src_conf, dst, dst_conf
