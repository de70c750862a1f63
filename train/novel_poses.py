"""Training pairs in poses the recording never showed, and in garment colours it never showed.

Trained long on a short recording, a generator learns the recording rather than the stick figure: the
woman of ``target_fashion.mp4``, who keeps her arms down, was drawn with her arms down and faint ghosts where
a dancer's raised arms were (issue 18, docs/RESULTS.md: limb-direction p90 157.5 degrees after 4000 steps,
7.8 after 575, when it still copied the warped reference). Balakrishnan et al. (CVPR 2018) learn pose
transfer from many videos; one short video has to make its own pairs. Here, with probability
``augment.novel_pose_p`` per training pair (:class:`train.config.AugmentConfig`):

1. :func:`sample_novel_pose`: the arms take new directions (each arm with probability
   :data:`ARM_MOVE_P`: the upper arm any direction, the forearm bent up to :data:`MAX_ELBOW_BEND_DEG` either
   way), the legs swing up to ``augment.novel_leg_deg`` at the hip and bend as much at the knee; bone lengths
   are kept. The same new directions are given to both frames of the pair, so the unroll stays coherent.
2. :func:`warp_to_novel_pose`: the frame's own moved body parts are warped into the new pose with the
   part-warp op (:func:`realtime.pose.render.warp_body_parts`) and laid over the parts that did not move;
   where a moved part was and nothing covers now, the pixel becomes the nearest unmoved person pixel inside
   the convex hull of the unmoved parts (the cloth behind an arm) and the background plate outside it.
   This is the pair's ground truth; its person mask follows.

The generator then sees stick figures and warped appearance priors (made from the *other* reference frames,
as always) in poses outside the recording, with a target that has the limbs there: it has to follow the
stick figure and the prior instead of its memory. The ground truth is a warp, with a warp's seams at the
joints; the share of such pairs keeps them from dominating.

Garment colour (Yang et al.'s colour control): with probability ``augment.garment_colour_p`` per pair
(:func:`recolour_frames`), one garment (upper or lower, :data:`realtime.catalog.GARMENTS`) gets a random
colour in the reference frames *and* in the frames predicted, by the same rule as the live colour control
(:func:`realtime.model.appearance.recolor_garment`), while the rest of the person keeps its colour. The
generator learns that the garment's colour comes from the prior and the rest from the person: without it, a
recoloured torso spilled onto the dress below (issue 18: body SSIM outside the garment -0.136 for yellow).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from realtime.catalog import GARMENTS
from realtime.model.appearance import CONFIDENCE_THRESHOLD, AppearancePrior, recolor_garment
from realtime.pose.render import body_part_labels, default_part_radius_px, warp_body_parts
from realtime.pose.skeleton import BODY_PART_INDEX, NUM_JOINTS, Joint

#: Probability that each arm takes a new direction in a novel pose.
ARM_MOVE_P = 0.8
#: Largest bend of the forearm against the new upper arm, either way (degrees).
MAX_ELBOW_BEND_DEG = 150.0
#: Probability that each leg swings in a novel pose.
LEG_MOVE_P = 0.5

#: (root, middle, joints that follow the middle joint) per limb: the upper segment turns about the root,
#: the lower one about the middle joint.
_Limb = tuple[Joint, Joint, tuple[Joint, ...]]
_ARMS: tuple[_Limb, ...] = (
    (Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW, (Joint.RIGHT_WRIST,)),
    (Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW, (Joint.LEFT_WRIST,)),
)
_LEGS: tuple[_Limb, ...] = (
    (Joint.RIGHT_HIP, Joint.RIGHT_KNEE, (Joint.RIGHT_ANKLE, Joint.RIGHT_HEEL, Joint.RIGHT_BIG_TOE)),
    (Joint.LEFT_HIP, Joint.LEFT_KNEE, (Joint.LEFT_ANKLE, Joint.LEFT_HEEL, Joint.LEFT_BIG_TOE)),
)
_MOVED_PARTS = {
    Joint.RIGHT_SHOULDER: ("right_upper_arm", "right_lower_arm"),
    Joint.LEFT_SHOULDER: ("left_upper_arm", "left_lower_arm"),
    Joint.RIGHT_HIP: ("right_upper_leg", "right_lower_leg"),
    Joint.LEFT_HIP: ("left_upper_leg", "left_lower_leg"),
}


def _rotate(points: np.ndarray, centre: np.ndarray, angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    d = points - centre
    return centre + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)


def sample_novel_pose(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    leg_deg: float,
    generator: torch.Generator | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """New limb directions for the frames of one training pair (see the module docstring).

    Args:
        joints_px: float32 ``(F, NUM_JOINTS, 2)`` canvas pixels (NaN where missing), the pair's frames.
        confidence: float32 ``(F, NUM_JOINTS)`` in [0, 1].
        leg_deg: the largest swing of a leg at the hip and bend at the knee, degrees (0: legs stay).
        generator: random numbers (default torch's global RNG, which DataLoader seeds per worker).

    Returns:
        ``(joints, moved)``: float32 ``(F, NUM_JOINTS, 2)`` with the moved limbs' joints in their new places
        (bone lengths kept, every frame the same new arm directions and leg turns), and the names of the body
        parts that moved. A limb whose root or middle joint is missing in any frame stays.

    Raises:
        ValueError: on wrong shapes.
    """
    shape_ok = joints_px.ndim == 3 and joints_px.shape[1:] == (NUM_JOINTS, 2)
    if not shape_ok or confidence.shape != joints_px.shape[:2]:
        raise ValueError(
            f"expected joints (F, {NUM_JOINTS}, 2) and confidence (F, {NUM_JOINTS}), "
            f"got {joints_px.shape} and {confidence.shape}"
        )
    joints = np.array(joints_px, dtype=np.float32, copy=True)
    present = (confidence >= CONFIDENCE_THRESHOLD) & np.isfinite(joints).all(-1)
    moved: list[str] = []

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    def chosen(p: float, root: Joint, middle: Joint) -> bool:
        return float(torch.rand((), generator=generator)) < p and bool(present[:, [root, middle]].all())

    for root, middle, tail in _ARMS:
        if not chosen(ARM_MOVE_P, root, middle):
            continue
        upper = uniform(-math.pi, math.pi)
        lower = upper + math.radians(uniform(-MAX_ELBOW_BEND_DEG, MAX_ELBOW_BEND_DEG))
        for f in range(len(joints)):
            length = float(np.linalg.norm(joints[f, middle] - joints[f, root]))
            new_middle = joints[f, root] + length * np.array([math.cos(upper), math.sin(upper)], np.float32)
            for j in tail:
                if present[f, j]:
                    forearm = float(np.linalg.norm(joints[f, j] - joints[f, middle]))
                    direction = np.array([math.cos(lower), math.sin(lower)], np.float32)
                    joints[f, j] = new_middle + forearm * direction
            joints[f, middle] = new_middle
        moved += _MOVED_PARTS[root]
    if leg_deg > 0:
        for root, middle, tail in _LEGS:
            if not chosen(LEG_MOVE_P, root, middle):
                continue
            swing = math.radians(uniform(-leg_deg, leg_deg))
            bend = math.radians(uniform(-leg_deg, leg_deg))
            chain = [int(middle), *(int(j) for j in tail)]
            for f in range(len(joints)):
                joints[f, chain] = _rotate(joints[f, chain], joints[f, root], swing)
                joints[f, chain[1:]] = _rotate(joints[f, chain[1:]], joints[f, middle], bend)
            moved += _MOVED_PARTS[root]
    return joints, tuple(moved)


def warp_to_novel_pose(
    frames: torch.Tensor,
    masks: torch.Tensor,
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    novel_joints_px: torch.Tensor,
    moved_parts: tuple[str, ...],
    plate: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ground truth of a novel pose: the frames' moved body parts warped into it (module docstring).

    Args:
        frames: float32 ``(F, 3, H, W)`` in [0, 1], the real frames.
        masks: float32 ``(F, 1, H, W)`` in [0, 1], their person masks.
        joints_px: float32 ``(F, NUM_JOINTS, 2)`` the frames' poses in canvas pixels (NaN where missing).
        confidence: float32 ``(F, NUM_JOINTS)``.
        novel_joints_px: float32 ``(F, NUM_JOINTS, 2)`` from :func:`sample_novel_pose`.
        moved_parts: the body parts that moved (names of :data:`realtime.pose.skeleton.BODY_PARTS`).
        plate: float32 ``(3, H, W)`` in [0, 1], the target's background plate.

    Returns:
        ``(frames, masks)`` in the novel pose, the same shapes and ranges; the inputs themselves when no part
        moved.
    """
    if not moved_parts:
        return frames, masks
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    count, _, height, width = frames.shape
    radius = default_part_radius_px(width, height)
    joints = torch.nan_to_num(joints_px)
    conf = torch.where(torch.isfinite(joints_px).all(-1), confidence, torch.zeros_like(confidence))
    labels = body_part_labels(
        joints, conf, height=height, width=width, radius_px=radius, confidence_threshold=CONFIDENCE_THRESHOLD
    )
    moved_ids = torch.tensor([BODY_PART_INDEX[name] for name in moved_parts])
    person = masks[:, 0]
    moved_mask = person * torch.isin(labels, moved_ids).to(person.dtype)
    static_mask = (person - moved_mask).clamp(0, 1)
    warped = warp_body_parts(
        torch.cat([frames, torch.ones_like(masks)], 1).contiguous(), moved_mask.contiguous(),
        joints.contiguous(), conf.contiguous(), novel_joints_px.contiguous(), conf.contiguous(),
        radius_px=radius, confidence_threshold=CONFIDENCE_THRESHOLD,
    )  # fmt: skip
    coverage = warped[:, 3:4].clamp(0, 1)
    out_frames, out_masks = [], []
    plate_np = plate.numpy()
    for f in range(count):
        image = frames[f].numpy().copy()
        static = static_mask[f].numpy()
        vacated = (moved_mask[f].numpy() > 0.05) & (static < 0.5)
        new_mask = static.copy()
        if vacated.any():
            static_bool = static >= 0.5
            hull = convex_hull_image(static_bool) if static_bool.any() else np.zeros_like(static_bool)
            inside = vacated & hull
            outside = vacated & ~hull
            image[:, outside] = plate_np[:, outside]
            if inside.any() and static_bool.any():
                _, (iy, ix) = ndimage.distance_transform_edt(~static_bool, return_indices=True)
                image[:, inside] = image[:, iy[inside], ix[inside]]
                new_mask[inside] = 1.0
        base = torch.from_numpy(image)
        cover = coverage[f]
        out_frames.append(warped[f, :3] + (1 - cover) * base)
        out_masks.append(torch.maximum(torch.from_numpy(new_mask)[None], cover))
    return torch.stack(out_frames).clamp(0, 1), torch.stack(out_masks).clamp(0, 1)


def random_garment_colour(generator: torch.Generator | None = None) -> tuple[str, tuple[float, float, float]]:
    """A garment (``"upper"`` or ``"lower"``) and a colour for it: RGB in [0, 1], uniform in hue, saturation
    in [0.3, 1], value in [0.2, 1] (the colours a user picks, not near-greys)."""
    import colorsys

    garments = sorted(GARMENTS)
    garment = garments[int(torch.randint(len(garments), (), generator=generator))]
    h, s, v = (float(x) for x in torch.rand(3, generator=generator))
    rgb = colorsys.hsv_to_rgb(h, 0.3 + 0.7 * s, 0.2 + 0.8 * v)
    return garment, (rgb[0], rgb[1], rgb[2])


def recolour_frames(
    frames: torch.Tensor,
    masks: torch.Tensor,
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    garment: str,
    rgb: tuple[float, float, float],
    prior: AppearancePrior,
) -> torch.Tensor:
    """Frames with a garment recoloured as the colour control recolours the reference appearance
    (:func:`realtime.model.appearance.recolor_garment`: the same body parts, the same shading rule).

    Args:
        frames: float32 ``(F, 3, H, W)`` in [0, 1].
        masks: float32 ``(F, 1, H, W)`` in [0, 1].
        joints_px: float32 ``(F, NUM_JOINTS, 2)`` canvas pixels (NaN where missing).
        confidence: float32 ``(F, NUM_JOINTS)``.
        garment, rgb: as :func:`recolor_garment`.
        prior: an :class:`AppearancePrior` whose part-label cache these frames may use (not the one that
            warps the references, so that its cache stays theirs).

    Returns:
        float32 ``(F, 3, H, W)`` in [0, 1].
    """
    joints = torch.nan_to_num(joints_px)
    conf = torch.where(torch.isfinite(joints_px).all(-1), confidence, torch.zeros_like(confidence))
    keypoints = torch.cat([joints, conf[..., None], torch.zeros_like(conf[..., None])], -1)
    images = torch.cat([frames, masks], 1)
    return recolor_garment(images, keypoints, garment, rgb, prior=prior)[:, :3]
