"""Pose normalization: make a source person's pose fit the target person's body and camera.

Two steps, after Everybody Dance Now (Chan et al., ICCV 2019, Sec. 3.4 "Global pose normalization"):

1. **Bone-length retargeting** (:func:`retarget_bone_lengths`): keep the source's joint angles and
   foreshortening, give each limb the target's proportions, walking outward from the torso.
2. **Global normalization** (:func:`global_normalize`): map the source's foot position between its far and
   near extremes linearly onto the target's, and scale the body by a factor interpolated the same way
   between the far and near height ratios of target to source.

:class:`PoseNormalizer` chains the two with statistics of the source (fitted on a whole video offline, or on
a window of a stream) and of the target (from ``train.prepare``). All coordinates are pixels, x to the
right and y down; "far" is the smaller foot y (higher in the image, further from the camera).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from realtime.pose.skeleton import (
    FOOT_JOINTS,
    HEAD_JOINTS,
    LIMB_INDEX,
    LIMBS,
    NUM_LIMBS,
    ROOT_JOINT,
    Joint,
    as_pose_arrays,
)

#: Limbs whose summed length sets a body's overall size (clavicles, spine, pelvis, arms and legs; not the
#: face or feet, whose detections are the least reliable).
SIZE_LIMBS: tuple[str, ...] = (
    "spine", "right_clavicle", "left_clavicle", "right_upper_arm", "left_upper_arm", "right_forearm",
    "left_forearm", "right_pelvis", "left_pelvis", "right_thigh", "left_thigh", "right_shin", "left_shin",
)  # fmt: skip

#: Fraction of a video's frames (by foot height rank) that form the "far" and the "near" band.
ANCHOR_BAND_FRACTION = 0.2
#: Within a band, the person's height is this percentile of per-frame heights (standing, not crouching).
HEIGHT_PERCENTILE = 90.0
#: A source whose far and near foot positions differ by less than this fraction of its height is treated
#: as standing at one depth: every frame maps to the middle of the target's range.
MIN_DEPTH_SPAN_FRACTION = 0.02
#: How far beyond the far and near anchors (as a fraction of the range between them) a foot position is
#: still mapped linearly; further out it is clamped.
MAX_EXTRAPOLATION = 0.5


@dataclass(frozen=True)
class BodyStats:
    """Statistics of one person in one video, in that video's pixels.

    Attributes:
        limb_lengths_px: median length of each limb of :data:`LIMBS` (NaN where never seen).
        far_foot_y_px, near_foot_y_px: foot height (image y of the lower ankle) at the far and near
            extremes of where the person stood.
        far_height_px, near_height_px: person height (foot y minus head y) at those extremes.
        center_x_px: median x of the mid-hip.
        num_frames: frames with a body that these figures come from.
    """

    limb_lengths_px: tuple[float, ...]
    far_foot_y_px: float
    near_foot_y_px: float
    far_height_px: float
    near_height_px: float
    center_x_px: float
    num_frames: int

    def __post_init__(self) -> None:
        if len(self.limb_lengths_px) != NUM_LIMBS:
            raise ValueError(f"limb_lengths_px needs {NUM_LIMBS} values, got {len(self.limb_lengths_px)}")
        for name in ("far_height_px", "near_height_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        lengths = zip(LIMBS, self.limb_lengths_px, strict=True)
        data["limb_lengths_px"] = {limb.name: _json_float(v) for limb, v in lengths}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BodyStats:
        fields = dict(data)
        lengths = data["limb_lengths_px"]
        missing = [limb.name for limb in LIMBS if limb.name not in lengths]
        if missing:
            raise ValueError(f"body statistics lack limb lengths for {missing}")
        fields["limb_lengths_px"] = tuple(
            float("nan") if lengths[limb.name] is None else float(lengths[limb.name]) for limb in LIMBS
        )
        return cls(**fields)


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _present(confidence: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(confidence) >= threshold


def limb_lengths(joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-frame limb lengths.

    Args:
        joints_px: float ``(..., NUM_JOINTS, 2)``; confidence: float ``(..., NUM_JOINTS)``.

    Returns:
        float32 ``(..., NUM_LIMBS)`` lengths in pixels, NaN where either end is below ``threshold``.
    """
    joints_px = np.asarray(joints_px, dtype=np.float32)
    present = _present(confidence, threshold)
    parents = [limb.parent for limb in LIMBS]
    children = [limb.child for limb in LIMBS]
    lengths = np.linalg.norm(joints_px[..., children, :] - joints_px[..., parents, :], axis=-1)
    return np.where(present[..., parents] & present[..., children], lengths, np.nan).astype(np.float32)


def foot_and_head_y(
    joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame foot y (the lower present ankle) and head y (the highest present nose/eye).

    Returns:
        two float32 ``(...,)`` arrays in pixels, NaN where no such joint is present.
    """
    joints_px = np.asarray(joints_px, dtype=np.float32)
    present = _present(confidence, threshold)
    ys = joints_px[..., 1]
    with np.errstate(all="ignore"):
        foot = np.where(present[..., list(FOOT_JOINTS)], ys[..., list(FOOT_JOINTS)], -np.inf).max(axis=-1)
        head = np.where(present[..., list(HEAD_JOINTS)], ys[..., list(HEAD_JOINTS)], np.inf).min(axis=-1)
    foot = np.where(np.isfinite(foot), foot, np.nan).astype(np.float32)
    head = np.where(np.isfinite(head), head, np.nan).astype(np.float32)
    return foot, head


def body_stats(joints_px: np.ndarray, confidence: np.ndarray, threshold: float = 0.5) -> BodyStats:
    """Estimate :class:`BodyStats` from a sequence of poses of one person.

    Far and near anchors: frames with feet and head visible are ranked by foot y; the lowest and highest
    :data:`ANCHOR_BAND_FRACTION` form the far and near bands. Each band's foot y is its median, its height
    the :data:`HEIGHT_PERCENTILE` percentile of the band's heights (so crouching frames do not shrink it).

    Args:
        joints_px: float ``(N, NUM_JOINTS, 2)`` pixels; confidence: float ``(N, NUM_JOINTS)`` in [0, 1].
        threshold: joints below this confidence are missing.

    Raises:
        ValueError: on wrong shapes, or if no frame shows both feet (ankles) and head.
    """
    joints_px, confidence = as_pose_arrays(joints_px, confidence, sequence=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # a never-seen limb's median stays NaN
        lengths = np.nanmedian(limb_lengths(joints_px, confidence, threshold), axis=0)
    foot, head = foot_and_head_y(joints_px, confidence, threshold)
    height = foot - head
    usable = np.isfinite(foot) & np.isfinite(height) & (height > 0)
    if not usable.any():
        raise ValueError(
            "no frame shows both the feet (ankles) and the head; global pose normalization needs at least "
            "one full-body frame"
        )
    foot_u, height_u = foot[usable], height[usable]
    order = np.argsort(foot_u, kind="stable")
    band = max(1, int(round(ANCHOR_BAND_FRACTION * len(order))))
    far, near = order[:band], order[-band:]
    present_hip = _present(confidence[:, ROOT_JOINT], threshold)
    center_x = float(np.median(joints_px[present_hip, ROOT_JOINT, 0])) if present_hip.any() else float("nan")
    return BodyStats(
        limb_lengths_px=tuple(float(v) for v in lengths),
        far_foot_y_px=float(np.median(foot_u[far])),
        near_foot_y_px=float(np.median(foot_u[near])),
        far_height_px=float(np.percentile(height_u[far], HEIGHT_PERCENTILE)),
        near_height_px=float(np.percentile(height_u[near], HEIGHT_PERCENTILE)),
        center_x_px=center_x,
        num_frames=int(usable.sum()),
    )


def retarget_bone_lengths(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    source_lengths_px: Sequence[float] | np.ndarray,
    target_lengths_px: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
) -> np.ndarray:
    """Give a pose the target's limb lengths, keeping the source's joint angles.

    Walks :data:`LIMBS` outward from :data:`ROOT_JOINT` (which stays put). For a limb whose two ends are
    present, the child is placed at ``new[parent] + (src[child] - src[parent]) * target_len / source_len``:
    the source's direction and foreshortening, scaled so that a limb at the source's typical length gets the
    target's typical length. A joint whose limb cannot be measured (an end missing, or a length unknown)
    moves with its parent. Missing joints stay missing: confidence is not changed.

    Args:
        joints_px: float ``(..., NUM_JOINTS, 2)`` pixels; confidence: float ``(..., NUM_JOINTS)``.
        source_lengths_px, target_lengths_px: ``NUM_LIMBS`` reference lengths in pixels (e.g.
            :attr:`BodyStats.limb_lengths_px` of the source and of the target); NaN or <= 0 keeps a limb's
            length.

    Returns:
        float32 ``(..., NUM_JOINTS, 2)`` retargeted joints.

    Raises:
        ValueError: on wrong shapes.
    """
    joints_px, confidence = as_pose_arrays(joints_px, confidence)
    if len(source_lengths_px) != NUM_LIMBS or len(target_lengths_px) != NUM_LIMBS:
        raise ValueError(f"limb lengths need {NUM_LIMBS} values each")
    present = _present(confidence, threshold)
    out = joints_px.copy()
    for i, limb in enumerate(LIMBS):
        src, tgt = float(source_lengths_px[i]), float(target_lengths_px[i])
        ratio = tgt / src if (math.isfinite(src) and math.isfinite(tgt) and src > 0 and tgt > 0) else 1.0
        p, c = limb.parent, limb.child
        both = (present[..., p] & present[..., c])[..., None]
        scaled = out[..., p, :] + (joints_px[..., c, :] - joints_px[..., p, :]) * ratio
        carried = joints_px[..., c, :] + (out[..., p, :] - joints_px[..., p, :])
        out[..., c, :] = np.where(both, scaled, carried)
    return out


def depth_fraction(foot_y_px: float, stats: BodyStats) -> float:
    """Where a foot height lies between ``stats``' far (0) and near (1) anchors.

    Linear, extrapolated up to :data:`MAX_EXTRAPOLATION` of the range beyond either anchor (the anchors are
    band medians, so some frames lie beyond them) and clamped there.

    A person who never changed depth (anchors closer than :data:`MIN_DEPTH_SPAN_FRACTION` of their height)
    gives 0.5.
    """
    span = stats.near_foot_y_px - stats.far_foot_y_px
    if span < MIN_DEPTH_SPAN_FRACTION * max(stats.far_height_px, stats.near_height_px):
        return 0.5
    fraction = (foot_y_px - stats.far_foot_y_px) / span
    return float(np.clip(fraction, -MAX_EXTRAPOLATION, 1.0 + MAX_EXTRAPOLATION))


def global_normalize(
    joints_px: np.ndarray, foot_y_px: float, source: BodyStats, target: BodyStats
) -> np.ndarray:
    """Everybody Dance Now's global pose normalization of one pose.

    With ``a = depth_fraction(foot_y_px, source)``, the foot moves to
    ``target.far + a * (target.near - target.far)`` and the body scales by
    ``t_far_h / s_far_h + a * (t_near_h / s_near_h - t_far_h / s_far_h)`` about the point
    ``(source.center_x, foot_y)``, which lands on ``(target.center_x, target foot y)``.

    Args:
        joints_px: float ``(NUM_JOINTS, 2)`` (or ``(..., NUM_JOINTS, 2)``) source pixels.
        foot_y_px: this frame's foot height in source pixels (:func:`foot_and_head_y`).
        source, target: the two people's statistics; a NaN ``center_x_px`` uses the other's.

    Returns:
        float32 joints of the same shape, in target pixels.
    """
    a = depth_fraction(foot_y_px, source)
    target_foot = target.far_foot_y_px + a * (target.near_foot_y_px - target.far_foot_y_px)
    far_ratio = target.far_height_px / source.far_height_px
    near_ratio = target.near_height_px / source.near_height_px
    scale = far_ratio + a * (near_ratio - far_ratio)
    source_x = source.center_x_px if math.isfinite(source.center_x_px) else target.center_x_px
    target_x = target.center_x_px if math.isfinite(target.center_x_px) else source_x
    anchor_src = np.array([source_x, foot_y_px], dtype=np.float32)
    anchor_tgt = np.array([target_x, target_foot], dtype=np.float32)
    return ((np.asarray(joints_px, dtype=np.float32) - anchor_src) * scale + anchor_tgt).astype(np.float32)


def overall_size_ratio(source_lengths_px: Sequence[float], target_lengths_px: Sequence[float]) -> float:
    """Target size over source size: summed :data:`SIZE_LIMBS` lengths seen in both (1.0 if none)."""
    src_sum = tgt_sum = 0.0
    for name in SIZE_LIMBS:
        i = LIMB_INDEX[name]
        s, t = float(source_lengths_px[i]), float(target_lengths_px[i])
        if math.isfinite(s) and math.isfinite(t) and s > 0 and t > 0:
            src_sum += s
            tgt_sum += t
    return tgt_sum / src_sum if src_sum > 0 else 1.0


class PoseNormalizer:
    """Source poses in, poses on the target's body and canvas out.

    :meth:`fit` estimates the source's statistics from a sequence of its poses (a whole video offline, a
    window of a stream live): first its limb lengths, then, on the poses given the target's *proportions*
    (bone-length retargeting with the target's lengths rescaled to the source's overall size), its far and
    near anchors. :meth:`normalize` then applies the same bone-length retargeting followed by global
    normalization, which sets position and size.

    Args:
        target: the target's statistics (from ``train.prepare``), in canvas pixels.
        threshold: joints below this confidence are missing.
    """

    def __init__(self, target: BodyStats, threshold: float = 0.5) -> None:
        self.target = target
        self.threshold = threshold
        self._fit: _SourceFit | None = None
        self._last_foot_y: float | None = None

    @property
    def source(self) -> BodyStats | None:
        """The source's fitted statistics (None before :meth:`fit`)."""
        fit = self._fit
        return None if fit is None else fit.stats

    @property
    def is_fitted(self) -> bool:
        return self._fit is not None

    def fit(self, joints_px: np.ndarray, confidence: np.ndarray) -> BodyStats:
        """Estimate the source's statistics from poses ``(N, NUM_JOINTS, 2)``, ``(N, NUM_JOINTS)``.

        Without any full-body frame (a webcam showing the upper body), the source's height is estimated from
        its limb lengths and the target's height (:func:`overall_size_ratio`), and it is taken to stand at
        one depth. The new fit replaces the old one in a single assignment, so :meth:`normalize` may run on
        another thread meanwhile.

        Raises:
            ValueError: if no frame has both ends of any limb used for size (:data:`SIZE_LIMBS`).
        """
        joints_px, confidence = as_pose_arrays(joints_px, confidence, sequence=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            raw_lengths = np.nanmedian(limb_lengths(joints_px, confidence, self.threshold), axis=0)
        if not any(math.isfinite(raw_lengths[LIMB_INDEX[name]]) for name in SIZE_LIMBS):
            raise ValueError("no frame shows a body (no torso, arm or leg); cannot fit the normalizer")
        ratio = overall_size_ratio(raw_lengths, self.target.limb_lengths_px)
        raw = raw_lengths.astype(np.float32)
        proportion = np.asarray(self.target.limb_lengths_px, dtype=np.float32) / ratio
        proportioned = retarget_bone_lengths(joints_px, confidence, raw, proportion, self.threshold)
        try:
            stats = body_stats(proportioned, confidence, self.threshold)
        except ValueError:
            stats = self._stats_without_feet(proportioned, confidence, ratio, proportion)
        self._fit = _SourceFit(raw, proportion, stats)
        return stats

    def _stats_without_feet(
        self, joints_px: np.ndarray, confidence: np.ndarray, ratio: float, proportion_lengths: np.ndarray
    ) -> BodyStats:
        t = self.target
        far_h, near_h = t.far_height_px / ratio, t.near_height_px / ratio
        _, head = foot_and_head_y(joints_px, confidence, self.threshold)
        head_y = float(np.nanmedian(head)) if np.isfinite(head).any() else 0.0
        foot_y = head_y + 0.5 * (far_h + near_h)
        xs = [
            joints_px[confidence[:, j] >= self.threshold, j, 0] for j in (ROOT_JOINT, Joint.NECK, Joint.NOSE)
        ]
        center_x = next((float(np.median(x)) for x in xs if len(x)), float("nan"))
        return BodyStats(
            limb_lengths_px=tuple(float(v) for v in proportion_lengths),
            far_foot_y_px=foot_y,
            near_foot_y_px=foot_y,
            far_height_px=far_h,
            near_height_px=near_h,
            center_x_px=center_x,
            num_frames=0,
        )

    def normalize(self, joints_px: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """Normalize one pose ``(NUM_JOINTS, 2)`` in source pixels to target canvas pixels.

        A frame without visible ankles places the feet one source height below the head (or, without a
        head either, reuses the last frame's foot height), so the figure holds its place instead of jumping.

        Raises:
            RuntimeError: if :meth:`fit` has not been called.
        """
        fit = self._fit
        if fit is None:
            raise RuntimeError("PoseNormalizer.normalize called before fit(); fit it on the source's poses")
        joints_px, confidence = as_pose_arrays(joints_px, confidence)
        proportioned = retarget_bone_lengths(
            joints_px, confidence, fit.raw_lengths_px, fit.proportion_lengths_px, self.threshold
        )
        foot, head = (float(v) for v in foot_and_head_y(proportioned, confidence, self.threshold))
        foot_y = foot
        if not math.isfinite(foot_y):
            if math.isfinite(head):
                foot_y = head + 0.5 * (fit.stats.far_height_px + fit.stats.near_height_px)
            elif self._last_foot_y is not None:
                foot_y = self._last_foot_y
            else:
                foot_y = 0.5 * (fit.stats.far_foot_y_px + fit.stats.near_foot_y_px)
        self._last_foot_y = foot_y
        return global_normalize(proportioned, foot_y, fit.stats, self.target)


#: Default margin between a normalized body's outermost joints and the canvas edge, as a fraction of the
#: canvas's smaller side (the rasterizer's joint discs and the generated body's outline lie outside the
#: joints).
CANVAS_MARGIN_FRACTION = 0.04
#: Default speed (fraction of the canvas's smaller side per second) at which a clamp's shift returns to 0
#: once the body no longer needs it.
CLAMP_RETURN_FRACTION_PER_S = 0.15


class CanvasClamp:
    """Keep a normalized body on the canvas with as little visible sliding as possible (one stream).

    The rule, per frame, on the box of the joints at or above ``threshold``:

    1. If the box is larger than the canvas less the margins, the pose is scaled about the box's center by
       the one factor (aspect kept) that makes it fit.
    2. The pose is shifted by an offset ``(dx, dy)``: the previous frame's offset, first moved toward 0 by
       at most ``return_px_per_s`` times the time since that frame, then clipped per axis into the interval
       of offsets that keep the box within ``margin_px`` of every edge. So a body already inside does not
       move; a body that reaches past an edge is pushed back by the smallest amount that keeps it inside
       (the whole body, so no joint is cut off and the pose keeps its shape); and when it no longer needs
       the push the shift fades out slowly instead of snapping back.

    Args:
        width, height: the canvas in pixels.
        margin_px: the smallest distance between a joint and an edge (>= 0; default
            :data:`CANVAS_MARGIN_FRACTION` of the smaller side).
        return_px_per_s: how fast an unneeded shift returns to 0 (pixels per second, >= 0; default
            :data:`CLAMP_RETURN_FRACTION_PER_S` of the smaller side).
        threshold: joints below this confidence are ignored (and left where they are).

    Raises:
        ValueError: for a canvas or margin that leaves no room.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        margin_px: float | None = None,
        return_px_per_s: float | None = None,
        threshold: float = 0.5,
    ) -> None:
        side = min(width, height)
        self.width, self.height = width, height
        self.margin_px = CANVAS_MARGIN_FRACTION * side if margin_px is None else float(margin_px)
        self.return_px_per_s = (
            CLAMP_RETURN_FRACTION_PER_S * side if return_px_per_s is None else float(return_px_per_s)
        )
        if not (self.margin_px >= 0 and self.return_px_per_s >= 0 and 2 * self.margin_px < side):
            raise ValueError(
                f"canvas {width}x{height} with margin {self.margin_px} px and return speed "
                f"{self.return_px_per_s} px/s leaves no room; use a margin under half the canvas's side"
            )
        self.threshold = threshold
        self._offset = np.zeros(2, np.float32)
        self._last_ms: float | None = None

    @property
    def offset_px(self) -> np.ndarray:
        """The current shift ``(dx, dy)`` in pixels (float32 ``(2,)``)."""
        return self._offset.copy()

    def reset(self) -> None:
        """Forget the shift (as at a stream's start)."""
        self._offset[:] = 0.0
        self._last_ms = None

    def __call__(self, joints_px: np.ndarray, confidence: np.ndarray, timestamp_ms: float) -> np.ndarray:
        """Clamp one pose.

        Args:
            joints_px: float ``(NUM_JOINTS, 2)`` canvas pixels; confidence: float ``(NUM_JOINTS,)``.
            timestamp_ms: the frame's time in milliseconds (the shift's return speed is per second).

        Returns:
            float32 ``(NUM_JOINTS, 2)``: every joint at or above ``threshold`` within ``margin_px`` of the
            canvas; a pose without such joints is returned unchanged.

        Raises:
            ValueError: on wrong shapes.
        """
        joints_px, confidence = as_pose_arrays(joints_px, confidence)
        if joints_px.ndim != 2:
            raise ValueError(f"CanvasClamp clamps one pose at a time, got {joints_px.shape}")
        present = _present(confidence, self.threshold)
        dt_s = 0.0 if self._last_ms is None else max(0.0, (timestamp_ms - self._last_ms) / 1000.0)
        self._last_ms = timestamp_ms
        if not present.any():
            return joints_px.copy()
        out = joints_px.astype(np.float32).copy()
        lo, hi = out[present].min(axis=0), out[present].max(axis=0)
        room = np.array([self.width, self.height], np.float32) - 2 * self.margin_px
        size = hi - lo
        fit = float(np.min(np.where(size > room, room / np.maximum(size, 1e-6), 1.0)))
        if fit < 1.0:
            center = 0.5 * (lo + hi)
            out = (out - center) * fit + center
            lo, hi = out[present].min(axis=0), out[present].max(axis=0)
        low = self.margin_px - lo  # smallest offset that keeps the box off the left/top edge
        high = np.array([self.width, self.height], np.float32) - self.margin_px - hi
        step = self.return_px_per_s * dt_s
        decayed = np.sign(self._offset) * np.maximum(np.abs(self._offset) - step, 0.0)
        self._offset = np.clip(decayed, low, np.maximum(low, high)).astype(np.float32)
        return (out + self._offset).astype(np.float32)


@dataclass(frozen=True)
class _SourceFit:
    """What :meth:`PoseNormalizer.fit` estimates: the source's median limb lengths, the lengths that give it
    the target's proportions at its own size, and its statistics after that retargeting."""

    raw_lengths_px: np.ndarray
    proportion_lengths_px: np.ndarray
    stats: BodyStats


__all__ = [
    "BodyStats",
    "CanvasClamp",
    "PoseNormalizer",
    "body_stats",
    "depth_fraction",
    "foot_and_head_y",
    "global_normalize",
    "limb_lengths",
    "overall_size_ratio",
    "retarget_bone_lengths",
]
