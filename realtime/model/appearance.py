"""The reference appearance and the warped appearance prior: the target's look moved into the driving pose.

A short recording shows the generator few poses; asked for another, a generator that must recall the person's
look from its weights loses limbs or blurs them. Balakrishnan et al. ("Synthesizing Images of Humans in Unseen
Poses", CVPR 2018) and Yang et al. (eq. 1, ``F_t = max_i T_i(F_c * L_i)``) move the appearance itself: cut a
reference image of the person into body parts, warp each part by its own transform into the new pose, merge,
and let a network repair the result. Here:

1. **Reference appearance** (target data, made once per target from its training frames): up to
   :data:`NUM_REFERENCES` frames chosen to cover the target's views and poses (the most frontal frame, then
   farthest-point sampling over body orientation, head yaw and limb directions, among frames whose body
   joints are all confident, at least :data:`MIN_REFERENCE_GAP_FRAMES` apart), stored as
   :data:`REFERENCE_IMAGES` (RGB and person mask) and :data:`REFERENCE_KEYPOINTS` (keypoints, confidence and
   frame index).
2. **Warped prior** (a per-frame generator input, :data:`APPEARANCE_PRIOR`): for every body part the
   reference *nearest* to the driving pose is chosen (:func:`choose_reference_parts`: body orientation from
   the shoulders and hips, head yaw from nose and ears, the limb's direction), its part is cut by the
   skeleton's part table inside the person mask and warped with the part-warp op
   (:func:`realtime.pose.render.warp_body_parts`: the CPU build on the CPU, the CUDA kernel on a GPU), and
   the parts are merged by max. The prior is RGB (premultiplied by coverage) and the warped person mask
   (coverage), 0 where no part lands. A learned merge was not built: the nearest-reference rule has no
   weights and is exact for the references' own poses.
3. **Pose transfer in training** (Balakrishnan et al., Sec. 3.5: source and target frames from different
   times): when the context carries the frames' indices (:attr:`FrameContext.frame_indices`, training only), a
   reference within :data:`EXCLUDE_FRAMES` frames of the frame being predicted is not used while another can
   supply the part, so the network learns to repair warps rather than to copy its frame.

Garment colour (Yang et al.'s colour control) is an edit of :data:`REFERENCE_IMAGES`
(:func:`recolor_garment`): the prior, and so the generated target, follows.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from realtime.catalog import GARMENTS
from realtime.model.inputs import FrameContext, InputRole, TargetFrames, TensorSpec, declare_input
from realtime.pose.render import body_part_labels, default_part_radius_px, warp_body_parts
from realtime.pose.skeleton import BODY_PART_INDEX, BODY_PARTS, NUM_BODY_PARTS, NUM_JOINTS, Joint

log = logging.getLogger(__name__)

#: How many reference frames a target carries (front, back and the two sides, when the recording has them).
NUM_REFERENCES = 4
#: Channels of each reference image: RGB in [0, 1] and the person mask in [0, 1].
REFERENCE_CHANNELS = 4
#: Keypoint fields per joint in :data:`REFERENCE_KEYPOINTS`: x, y (canvas pixels), confidence, frame index.
KEYPOINT_FIELDS = 4
#: Joints at or above this confidence are present (the rasterizer's default threshold).
CONFIDENCE_THRESHOLD = 0.5
#: In training, a reference this close in time to the frame predicted (frames, either side) is avoided.
EXCLUDE_FRAMES = 15
#: References are chosen at least this many frames apart where the recording allows (so that the exclusion
#: above removes at most one of them).
MIN_REFERENCE_GAP_FRAMES = 2 * EXCLUDE_FRAMES + 1

REFERENCE_IMAGES = TensorSpec(
    "reference_images",
    NUM_REFERENCES,
    InputRole.TARGET_DATA,
    "reference frames of the target: (references, RGB + person mask, H, W) in [0, 1]",
)
REFERENCE_KEYPOINTS = TensorSpec(
    "reference_keypoints",
    NUM_REFERENCES,
    InputRole.TARGET_DATA,
    "the reference frames' keypoints: (references, joints, x px + y px + confidence + frame index)",
)
APPEARANCE_PRIOR = TensorSpec(
    "appearance_prior",
    4,
    InputRole.PER_FRAME,
    "reference body parts warped into the pose: RGB (premultiplied) and coverage",
)

#: The joints a reference frame must have (all body parts' but the face's): shoulders to ankles and the neck.
REQUIRED_JOINTS: tuple[Joint, ...] = (
    Joint.NECK,
    Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST,
    Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW, Joint.LEFT_WRIST,
    Joint.RIGHT_HIP, Joint.RIGHT_KNEE, Joint.RIGHT_ANKLE,
    Joint.LEFT_HIP, Joint.LEFT_KNEE, Joint.LEFT_ANKLE,
)  # fmt: skip
#: The limb parts (two transform joints each), whose direction decides which reference supplies them.
LIMB_PARTS: tuple[int, ...] = tuple(i for i, part in enumerate(BODY_PARTS) if len(part.joints) == 2)
_HEAD = BODY_PART_INDEX["head"]
_PART_JOINT_MASK = np.zeros((NUM_BODY_PARTS, NUM_JOINTS), dtype=bool)
for _i, _part in enumerate(BODY_PARTS):
    _PART_JOINT_MASK[_i, [int(j) for j in _part.joints]] = True


def body_orientation(joints_px: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The body's facing and the head's yaw, from 2-D keypoints.

    Facing is the signed width of the shoulders and of the hips (left minus right x, over the torso length,
    averaged over those present): about +0.5 facing the camera, near 0 in profile, negative from the back
    (the person's left side is on the image's right when they face the camera). Yaw is the nose's offset from
    the ears' midpoint over the torso length (0 when the face is frontal or missing).

    Args:
        joints_px: float32 ``(..., NUM_JOINTS, 2)`` pixels.
        present: bool ``(..., NUM_JOINTS)``.

    Returns:
        ``(facing, yaw)``, float32 ``(...)`` each; facing is NaN where neither pair is present.
    """
    x = joints_px[..., 0]
    neck, hip = joints_px[..., Joint.NECK, :], joints_px[..., Joint.MID_HIP, :]
    torso = (neck - hip).norm(dim=-1)
    torso_ok = present[..., Joint.NECK] & present[..., Joint.MID_HIP] & (torso > 1.0)
    shoulder_w = (x[..., Joint.LEFT_SHOULDER] - x[..., Joint.RIGHT_SHOULDER]).abs().clamp_min(1.0)
    # Without a torso, the shoulders' own width does not say facing; use 2.5x a shoulder width as torso.
    torso = torch.where(torso_ok, torso, 2.5 * shoulder_w)
    widths = []
    for left, right in ((Joint.LEFT_SHOULDER, Joint.RIGHT_SHOULDER), (Joint.LEFT_HIP, Joint.RIGHT_HIP)):
        ok = present[..., left] & present[..., right]
        w = (x[..., left] - x[..., right]) / torso
        widths.append(torch.where(ok, w, torch.full_like(w, float("nan"))))
    facing = torch.stack(widths, -1).nanmean(-1)
    ears_ok = present[..., Joint.LEFT_EAR] & present[..., Joint.RIGHT_EAR] & present[..., Joint.NOSE]
    ears = (x[..., Joint.LEFT_EAR] + x[..., Joint.RIGHT_EAR]) / 2
    yaw = torch.where(ears_ok, (x[..., Joint.NOSE] - ears) / torso, torch.zeros_like(torso))
    return facing, yaw


def _limb_directions(joints_px: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit directions ``(..., len(LIMB_PARTS), 2)`` of the limb parts and whether each is present."""
    a = torch.tensor([int(BODY_PARTS[p].joints[0]) for p in LIMB_PARTS], device=joints_px.device)
    b = torch.tensor([int(BODY_PARTS[p].joints[1]) for p in LIMB_PARTS], device=joints_px.device)
    vec = joints_px[..., b, :] - joints_px[..., a, :]
    ok = present[..., a] & present[..., b]
    return vec / vec.norm(dim=-1, keepdim=True).clamp_min(1e-6), ok


def _present(joints_px: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    return (confidence >= CONFIDENCE_THRESHOLD) & torch.isfinite(joints_px).all(-1)


def choose_reference_parts(
    reference_keypoints: torch.Tensor,
    joints_px: torch.Tensor,
    confidence: torch.Tensor,
    frame_indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """For each pose and body part, the reference that supplies the part: the nearest in body facing (and, for
    the head, yaw; for a limb, the limb's direction) among the references that have the part.

    The cost of reference ``r`` for part ``p`` of a pose is ``|facing - facing_r|`` (1 where either is
    unknown), plus ``|yaw - yaw_r|`` for the head, plus ``1 - cos`` of the angle between the limb's directions
    for a limb (1 where either is missing). A reference without two of the part's joints cannot supply it; one
    within :data:`EXCLUDE_FRAMES` of ``frame_indices`` (training) is used only when no other can.

    Args:
        reference_keypoints: float32 ``(R, NUM_JOINTS, 4)``: x, y pixels, confidence, frame index.
        joints_px: float32 ``(B, NUM_JOINTS, 2)`` driving pose in pixels.
        confidence: float32 ``(B, NUM_JOINTS)`` in [0, 1].
        frame_indices: int64 ``(B,)`` the poses' frames in the target's video (training), or None.

    Returns:
        int64 ``(B, NUM_BODY_PARTS)``: a reference index, or -1 where no reference has the part.

    Raises:
        ValueError: for shapes that do not match.
    """
    if reference_keypoints.ndim != 3 or reference_keypoints.shape[1:] != (NUM_JOINTS, KEYPOINT_FIELDS):
        raise ValueError(
            f"reference_keypoints must be (R, {NUM_JOINTS}, {KEYPOINT_FIELDS}), got "
            f"{tuple(reference_keypoints.shape)}"
        )
    if joints_px.shape[1:] != (NUM_JOINTS, 2) or confidence.shape != joints_px.shape[:2]:
        raise ValueError(f"joints_px must be (B, {NUM_JOINTS}, 2) with confidence (B, {NUM_JOINTS})")
    ref_joints, ref_conf, ref_frame = (
        reference_keypoints[..., :2],
        reference_keypoints[..., 2],
        reference_keypoints[:, 0, 3],
    )
    ref_present, present = _present(ref_joints, ref_conf), _present(joints_px, confidence)
    ref_facing, ref_yaw = body_orientation(ref_joints, ref_present)  # (R,)
    facing, yaw = body_orientation(joints_px, present)  # (B,)
    d_facing = (facing[:, None] - ref_facing[None]).abs()
    cost = torch.where(torch.isfinite(d_facing), d_facing, torch.ones_like(d_facing))  # (B, R)
    cost = cost[..., None].repeat(1, 1, NUM_BODY_PARTS)  # (B, R, P)
    cost[..., _HEAD] += (yaw[:, None] - ref_yaw[None]).abs()
    ref_dir, ref_dir_ok = _limb_directions(ref_joints, ref_present)  # (R, L, 2)
    drive_dir, drive_dir_ok = _limb_directions(joints_px, present)  # (B, L, 2)
    cos = (drive_dir[:, None] * ref_dir[None]).sum(-1)  # (B, R, L)
    ok = drive_dir_ok[:, None] & ref_dir_ok[None]
    cost[..., list(LIMB_PARTS)] += torch.where(ok, 1.0 - cos, torch.ones_like(cos))
    part_joints = torch.from_numpy(_PART_JOINT_MASK).to(reference_keypoints.device)
    has_part = (ref_present[:, None, :] & part_joints[None]).sum(-1) >= 2  # (R, P)
    cost = torch.where(has_part[None], cost, torch.full_like(cost, float("inf")))
    if frame_indices is not None:
        near = (ref_frame[None].round().long() - frame_indices.to(ref_frame.device)[:, None]).abs()
        cost = cost + 1e3 * (near <= EXCLUDE_FRAMES).to(cost.dtype)[..., None]
    best = cost.argmin(dim=1)  # (B, P)
    found = torch.isfinite(cost.amin(dim=1))
    return torch.where(found, best, torch.full_like(best, -1))


class AppearancePrior:
    """Warps a target's reference appearance into driving poses (see the module docstring).

    The references' part labels (which pixels of each reference belong to which part) depend only on the
    references' keypoints; they are computed on first use and kept for the next frames of the same target.

    Args:
        radius_px: a part's reach from its segments in pixels; default
            :func:`realtime.pose.render.default_part_radius_px` of the canvas.
        impl: the part-warp implementation (``"auto"``: the CUDA kernel for CUDA tensors, the CPU build for
            CPU tensors).
    """

    def __init__(self, radius_px: float | None = None, impl: str = "auto") -> None:
        self.radius_px = radius_px
        self.impl = impl
        self._labels_key: tuple[object, ...] | None = None
        self._labels: torch.Tensor | None = None

    def labels(self, reference_keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """int64 ``(R, height, width)``: each reference pixel's body part, -1 for none (cached)."""
        key = (reference_keypoints.device, height, width, reference_keypoints.cpu().numpy().tobytes())
        if self._labels is None or self._labels_key != key:
            self._labels = body_part_labels(
                reference_keypoints[..., :2].contiguous(), reference_keypoints[..., 2].contiguous(),
                height=height, width=width, radius_px=self._radius(height, width),
                confidence_threshold=CONFIDENCE_THRESHOLD,
            )  # fmt: skip
            self._labels_key = key
        return self._labels

    def _radius(self, height: int, width: int) -> float:
        return default_part_radius_px(width, height) if self.radius_px is None else self.radius_px

    def __call__(
        self,
        reference_images: torch.Tensor,
        reference_keypoints: torch.Tensor,
        joints_px: torch.Tensor,
        confidence: torch.Tensor,
        frame_indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The prior for a batch of driving poses.

        Args:
            reference_images: float32 ``(R, 4, H, W)``: RGB and person mask in [0, 1].
            reference_keypoints: float32 ``(R, NUM_JOINTS, 4)``: x, y pixels, confidence, frame index.
            joints_px: float32 ``(B, NUM_JOINTS, 2)`` the driving (normalized) poses in canvas pixels.
            confidence: float32 ``(B, NUM_JOINTS)``.
            frame_indices: int64 ``(B,)`` in training (:func:`choose_reference_parts`), else None.

        Returns:
            float32 ``(B, 4, H, W)`` in [0, 1]: RGB premultiplied by coverage, then coverage.

        Raises:
            ValueError: for shapes that do not match.
        """
        if reference_images.ndim != 4 or reference_images.shape[1] != REFERENCE_CHANNELS:
            raise ValueError(f"reference_images must be (R, 4, H, W), got {tuple(reference_images.shape)}")
        if reference_keypoints.shape[0] != reference_images.shape[0]:
            raise ValueError("reference_images and reference_keypoints disagree in the number of references")
        batch = joints_px.shape[0]
        height, width = reference_images.shape[-2:]
        out = torch.zeros(batch, 4, height, width, device=reference_images.device)
        if batch == 0:
            return out
        choice = choose_reference_parts(reference_keypoints, joints_px, confidence, frame_indices)
        labels = self.labels(reference_keypoints, height, width)  # (R, H, W)
        pairs = [(b, r) for b in range(batch) for r in torch.unique(choice[b]).tolist() if r >= 0]
        if not pairs:
            return out
        b_idx = torch.tensor([b for b, _ in pairs], device=out.device)
        r_idx = torch.tensor([r for _, r in pairs], device=out.device)
        # Each (pose, reference) pair warps only the parts that this reference supplies for this pose: the
        # person mask is cut to them (the op cuts it further by its own labels, which are these).
        chosen_parts = choice[b_idx] == r_idx[:, None]  # (K, P)
        part_of_pixel = labels[r_idx]  # (K, H, W)
        keep = torch.gather(
            torch.cat([chosen_parts, torch.zeros_like(chosen_parts[:, :1])], 1),  # column P: "no part"
            1,
            torch.where(
                part_of_pixel >= 0, part_of_pixel, torch.full_like(part_of_pixel, NUM_BODY_PARTS)
            ).flatten(1),
        ).view_as(part_of_pixel)
        images = reference_images[r_idx]
        masks = images[:, 3] * keep.to(images.dtype)
        rgb_and_one = torch.cat([images[:, :3], torch.ones_like(images[:, 3:])], 1)
        warped = warp_body_parts(
            rgb_and_one.contiguous(), masks.contiguous(),
            reference_keypoints[r_idx, :, :2].contiguous(), reference_keypoints[r_idx, :, 2].contiguous(),
            joints_px[b_idx].contiguous(), confidence[b_idx].contiguous(),
            radius_px=self._radius(height, width), confidence_threshold=CONFIDENCE_THRESHOLD, impl=self.impl,
        )  # fmt: skip
        for k, b in enumerate(b_idx.tolist()):  # merge the pairs of one pose by max, like the parts
            torch.maximum(out[b], warped[k], out=out[b])
        return out.clamp_(0.0, 1.0)


def reference_frame_indices(
    joints_px: np.ndarray, confidence: np.ndarray, count: int = NUM_REFERENCES
) -> np.ndarray:
    """Choose ``count`` reference frames that cover a target's views and poses.

    Candidates are the frames whose :data:`REQUIRED_JOINTS` are all present (else the frames with the most
    present joints). The first is the most frontal candidate (largest facing, :func:`body_orientation`); each
    next one is the candidate farthest, in (2 x facing, yaw, limb directions / 2), from those chosen, among
    candidates at least :data:`MIN_REFERENCE_GAP_FRAMES` from them (any candidate when none is). With fewer
    candidates than ``count``, frames repeat.

    Args:
        joints_px: float32 ``(N, NUM_JOINTS, 2)`` pixels.
        confidence: float32 ``(N, NUM_JOINTS)``.
        count: how many to choose (>= 1).

    Returns:
        int64 ``(count,)`` indices into the ``N`` frames.

    Raises:
        ValueError: for no frames or ``count < 1``.
    """
    if len(joints_px) == 0 or count < 1:
        raise ValueError(
            f"need at least one frame and count >= 1, got {len(joints_px)} frames, count {count}"
        )
    joints = torch.from_numpy(np.asarray(joints_px, np.float32))
    present = _present(joints, torch.from_numpy(np.asarray(confidence, np.float32)))
    required = present[:, [int(j) for j in REQUIRED_JOINTS]].all(-1)
    candidates = torch.nonzero(required).flatten()
    if len(candidates) == 0:
        most = present.sum(-1)
        candidates = torch.nonzero(most == most.max()).flatten()
        log.warning(
            "no frame has all body joints; the reference appearance uses frames with %d of %d joints",
            int(most.max()), NUM_JOINTS,
        )  # fmt: skip
    facing, yaw = body_orientation(joints, present)
    directions, ok = _limb_directions(joints, present)
    directions = torch.where(ok[..., None], directions, torch.zeros_like(directions))
    features = torch.cat(
        [2 * torch.nan_to_num(facing)[:, None], yaw[:, None], 0.5 * directions.flatten(1)], 1
    )[candidates]
    first = int(torch.nan_to_num(facing[candidates], nan=-math.inf).argmax())
    chosen = [first]
    distance = (features - features[first]).norm(dim=1)
    while len(chosen) < min(count, len(candidates)):
        frames = candidates[chosen]
        gap = (candidates[:, None] - frames[None]).abs().amin(1)
        spaced = gap >= MIN_REFERENCE_GAP_FRAMES
        pool = torch.where(spaced if spaced.any() else gap > 0, distance, torch.full_like(distance, -1.0))
        if float(pool.max()) < 0:
            break
        nxt = int(pool.argmax())
        chosen.append(nxt)
        distance = torch.minimum(distance, (features - features[nxt]).norm(dim=1))
    picked = candidates[chosen].tolist()
    while len(picked) < count:
        picked.append(picked[len(picked) % len(chosen)])
    return np.asarray(picked, dtype=np.int64)


def _references(frames: TargetFrames) -> np.ndarray:
    return reference_frame_indices(frames.joints_px, frames.confidence)


def produce_reference_images(frames: TargetFrames) -> np.ndarray:
    """Target producer of :data:`REFERENCE_IMAGES`: float32 ``(NUM_REFERENCES, 4, H, W)`` in [0, 1]."""
    picks = _references(frames)
    rgb = np.asarray(frames.frames[picks], np.float32).transpose(0, 3, 1, 2) / 255.0
    mask = np.asarray(frames.masks[picks], np.float32)[:, None] / 255.0
    return np.concatenate([rgb, mask], axis=1).astype(np.float32)


def produce_reference_keypoints(frames: TargetFrames) -> np.ndarray:
    """Target producer of :data:`REFERENCE_KEYPOINTS`: float32 ``(NUM_REFERENCES, NUM_JOINTS, 4)``: x, y
    pixels (0 where missing), confidence (0 where missing), and the frame's index in the prepared video."""
    picks = _references(frames)
    joints = np.asarray(frames.joints_px[picks], np.float32)
    conf = np.asarray(frames.confidence[picks], np.float32)
    missing = ~np.isfinite(joints).all(-1)
    joints = np.where(missing[..., None], 0.0, joints)
    conf = np.where(missing, 0.0, conf)
    index = np.asarray([frames.frame_range[i] for i in picks], np.float32)
    index = np.broadcast_to(index[:, None, None], (*conf.shape, 1))
    return np.concatenate([joints, conf[..., None], index], axis=-1).astype(np.float32)


_PRIOR = AppearancePrior()


def produce_appearance_prior(context: FrameContext) -> torch.Tensor:
    """Per-frame producer of :data:`APPEARANCE_PRIOR` from the context's reference appearance (target data).

    Raises:
        KeyError: if the context lacks the reference appearance (a target prepared without it).
    """
    for spec in (REFERENCE_IMAGES, REFERENCE_KEYPOINTS):
        if spec.name not in context.per_target:
            raise KeyError(
                f"the appearance prior needs the target's {spec.name}; prepare the target again "
                "(python -m train prepare) or export it again (python -m export onnx)"
            )
    return _PRIOR(
        context.per_target[REFERENCE_IMAGES.name][0],
        context.per_target[REFERENCE_KEYPOINTS.name][0],
        context.joints_px,
        context.confidence,
        context.frame_indices,
    )


#: Garment regions for the colour control, as body parts (stated once, in the light catalog).
GARMENT_PARTS: dict[str, tuple[str, ...]] = GARMENTS


def has_reference_appearance(per_target: Mapping[str, torch.Tensor]) -> bool:
    """Whether a target's per-target values hold the reference appearance (images and keypoints)."""
    return REFERENCE_IMAGES.name in per_target and REFERENCE_KEYPOINTS.name in per_target


def garment_masks(
    reference_images: torch.Tensor,
    reference_keypoints: torch.Tensor,
    garment: str,
    prior: AppearancePrior | None = None,
) -> torch.Tensor:
    """float32 ``(R, H, W)`` in [0, 1]: the garment's region in each reference: the person mask on the
    garment's body parts (:data:`GARMENT_PARTS`).

    Raises:
        ValueError: for an unknown garment.
    """
    if garment not in GARMENT_PARTS:
        raise ValueError(f"garment must be one of {sorted(GARMENT_PARTS)}, got {garment!r}")
    prior = prior or _PRIOR
    labels = prior.labels(reference_keypoints, *reference_images.shape[-2:])
    parts = torch.tensor([BODY_PART_INDEX[name] for name in GARMENT_PARTS[garment]], device=labels.device)
    return reference_images[:, 3] * torch.isin(labels, parts).to(reference_images.dtype)


def recolor_garment(
    reference_images: torch.Tensor,
    reference_keypoints: torch.Tensor,
    garment: str,
    rgb: Sequence[float],
    prior: AppearancePrior | None = None,
) -> torch.Tensor:
    """The reference images with a garment recoloured (Yang et al.'s colour control, on the appearance).

    Within the garment's region (:func:`garment_masks`), each pixel takes the requested colour's chroma and
    keeps its own shading: its lightness relative to the garment's median lightness scales the requested
    colour's lightness (CIE L*a*b*, through scikit-image), so folds and shadows stay.

    Args:
        reference_images: float32 ``(R, 4, H, W)`` in [0, 1].
        reference_keypoints: float32 ``(R, NUM_JOINTS, 4)``.
        garment: ``"upper"`` or ``"lower"``.
        rgb: the requested colour, three values in [0, 1].
        prior: whose part-label cache to use (:func:`garment_masks`; default the module's own).

    Returns:
        a new float32 ``(R, 4, H, W)`` tensor on the same device.

    Raises:
        ValueError: for an unknown garment or a colour outside [0, 1].
    """
    from skimage.color import lab2rgb, rgb2lab

    colour = np.asarray(rgb, np.float64).reshape(-1)
    if colour.shape != (3,) or not np.all((colour >= 0) & (colour <= 1)):
        raise ValueError(f"rgb must be three values in [0, 1], got {rgb!r}")
    weights = garment_masks(reference_images, reference_keypoints, garment, prior).cpu().numpy()
    images = reference_images.detach().cpu().numpy().copy()
    target_lab = rgb2lab(colour[None, None])[0, 0]
    for r in range(images.shape[0]):
        region = weights[r] > 0.5
        if not region.any():
            continue
        lab = rgb2lab(images[r, :3].transpose(1, 2, 0))
        median_l = float(np.median(lab[..., 0][region]))
        new = np.empty_like(lab)
        new[..., 0] = np.clip(lab[..., 0] * (target_lab[0] / max(median_l, 1.0)), 0, 100)
        new[..., 1], new[..., 2] = target_lab[1], target_lab[2]
        with warnings.catch_warnings():  # out-of-gamut colours are clipped, as wanted; no warning each frame
            warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
            recolored = lab2rgb(new).transpose(2, 0, 1)
        w = weights[r][None]
        images[r, :3] = images[r, :3] * (1 - w) + recolored * w
    return torch.from_numpy(images.astype(np.float32)).to(reference_images.device)


declare_input(REFERENCE_IMAGES, produce_reference_images)
declare_input(REFERENCE_KEYPOINTS, produce_reference_keypoints)
declare_input(
    APPEARANCE_PRIOR, produce_appearance_prior, needs=(REFERENCE_IMAGES.name, REFERENCE_KEYPOINTS.name)
)
