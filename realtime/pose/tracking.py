"""Robustness of a pose stream: person continuity, single-joint hold, pose hold and the neutral pose.

A pose estimator sometimes loses the person for a frame (motion blur), drops a single joint, or jumps to
somebody else who walks through. Feeding those frames as they come makes the temporal generator see a blank
or garbled stick figure together with its previous output, which smears for several frames. This module
turns such a stream into one the generator can follow. Two stages, both driven by the frames' timestamps
in milliseconds:

- :class:`SourceTracker` (source pixels, after the pose estimator): rejects a pose whose torso jumps
  implausibly from the tracked one (treated as "lost" unless the new person persists for
  :attr:`TrackingParams.switch_confirm_frames` frames), keeps a joint that drops out for up to
  :attr:`TrackingParams.joint_hold_ms` at its last offset from its parent joint (so it moves with its
  limb), and removes any joint left without its parent (a wrist without an elbow), so nothing floats free.
- :class:`PoseHold` (target canvas pixels, after normalization): when the person is lost, holds the last
  output pose for :attr:`TrackingParams.hold_ms`, then eases it into a neutral standing pose of the target
  (:func:`neutral_pose`) over :attr:`TrackingParams.ease_to_neutral_ms`; when the person returns, blends
  from the pose shown to the live one over :attr:`TrackingParams.resume_blend_ms`.

See ``docs/robustness.md`` for the rules, their limits and the measured effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.pose.normalize import BodyStats
from realtime.pose.skeleton import LIMB_INDEX, LIMBS, NUM_JOINTS, Joint, as_pose_arrays

#: Joints that need no parent to be drawn: the torso (a frame showing only the upper body has no hips).
TORSO_JOINTS: tuple[Joint, ...] = (
    Joint.NECK,
    Joint.RIGHT_SHOULDER,
    Joint.LEFT_SHOULDER,
    Joint.MID_HIP,
    Joint.RIGHT_HIP,
    Joint.LEFT_HIP,
)

#: Neck-to-mid-hip length over shoulder width of an adult facing the camera (about 50 cm over 35 cm between
#: MediaPipe's shoulder landmarks); used for the torso's scale when the hips are not seen.
TORSO_PER_SHOULDER_WIDTH = 1.4

#: Each joint's parent in :data:`LIMBS` (the root has none: -1).
PARENT: tuple[int, ...] = tuple(
    next((int(limb.parent) for limb in LIMBS if limb.child == joint), -1) for joint in Joint
)


@dataclass(frozen=True)
class TrackingParams:
    """Settings of :class:`SourceTracker` and :class:`PoseHold` (times in milliseconds).

    Attributes:
        hold_ms: after the person is lost, the last pose is held this long (>= 0).
        ease_to_neutral_ms: then the pose eases into the neutral pose over this long (> 0).
        resume_blend_ms: when the person returns, the shown pose blends into the live one over this long
            (>= 0; 0 = jump at once).
        joint_hold_ms: a single joint that drops out keeps its offset from its parent this long (>= 0).
        max_torso_speed_per_s: the torso center may move this many torso lengths per second between two
            accepted frames (plus :attr:`torso_jump_slack`); a faster jump is "a different person".
        torso_jump_slack: torso lengths a torso center may move between any two frames, whatever the time.
        max_torso_scale_ratio: the torso length may change by at most this factor between two accepted
            frames (> 1); a larger change is "a different person".
        switch_confirm_frames: a different person is accepted after this many consecutive frames of it
            (each consistent with the one before); until then the stream counts as lost (>= 1).
        reacquire_after_ms: once the tracked person has been lost this long, the next pose is accepted
            whoever it is (re-acquisition).
    """

    hold_ms: float = 300.0
    ease_to_neutral_ms: float = 700.0
    resume_blend_ms: float = 200.0
    joint_hold_ms: float = 300.0
    max_torso_speed_per_s: float = 6.0
    torso_jump_slack: float = 0.35
    max_torso_scale_ratio: float = 1.5
    switch_confirm_frames: int = 5
    reacquire_after_ms: float = 300.0

    def __post_init__(self) -> None:
        if not (
            self.hold_ms >= 0
            and self.ease_to_neutral_ms > 0
            and self.resume_blend_ms >= 0
            and self.joint_hold_ms >= 0
            and self.max_torso_speed_per_s >= 0
            and self.torso_jump_slack >= 0
            and self.max_torso_scale_ratio > 1
            and self.switch_confirm_frames >= 1
            and self.reacquire_after_ms >= 0
        ):
            raise ValueError(f"invalid tracking settings: {self}")


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def drop_orphans(present: np.ndarray) -> np.ndarray:
    """Joints that can be drawn attached to the body: a torso joint (:data:`TORSO_JOINTS`) when present,
    any other joint when present and its parent is kept (walking :data:`LIMBS` outward, so a wrist whose
    elbow is missing is dropped, and so is everything beyond it).

    Args:
        present: bool ``(NUM_JOINTS,)``.

    Returns:
        bool ``(NUM_JOINTS,)``, a subset of ``present``.
    """
    keep = np.asarray(present, dtype=bool).copy()
    if keep.shape != (NUM_JOINTS,):
        raise ValueError(f"expected present ({NUM_JOINTS},), got {keep.shape}")
    for limb in LIMBS:
        if limb.child not in TORSO_JOINTS:
            keep[limb.child] &= keep[limb.parent]
    return keep


def fill_from_reference(joints_px: np.ndarray, present: np.ndarray, reference_px: np.ndarray) -> np.ndarray:
    """Place the missing joints of a pose at the reference's offsets from their present neighbours.

    Walks the limbs (both ways) until every joint connected to a present one is placed: a missing child
    goes to ``joints[parent] + reference[child] - reference[parent]``, a missing parent likewise from its
    child. Without any present joint the reference itself is returned.

    Args:
        joints_px: float ``(NUM_JOINTS, 2)``; present: bool ``(NUM_JOINTS,)``;
        reference_px: float ``(NUM_JOINTS, 2)`` a complete pose in the same pixels.

    Returns:
        float32 ``(NUM_JOINTS, 2)``, equal to ``joints_px`` where present.
    """
    out = np.asarray(joints_px, dtype=np.float32).copy()
    reference = np.asarray(reference_px, dtype=np.float32)
    placed = np.asarray(present, dtype=bool).copy()
    if not placed.any():
        return reference.copy()
    changed = True
    while changed:
        changed = False
        for limb in LIMBS:
            p, c = limb.parent, limb.child
            if placed[p] and not placed[c]:
                out[c] = out[p] + reference[c] - reference[p]
                placed[c] = changed = True
            elif placed[c] and not placed[p]:
                out[p] = out[c] + reference[p] - reference[c]
                placed[p] = changed = True
    return out


def torso_center_and_length(joints_px: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Torso center (mean of the present :data:`TORSO_JOINTS`, float32 ``(2,)`` pixels) and torso length
    (neck to mid-hip, or :data:`TORSO_PER_SHOULDER_WIDTH` shoulder widths when the mid-hip is missing), or
    None without neck and mid-hip or both shoulders."""
    torso = [int(j) for j in TORSO_JOINTS if present[j]]
    if not torso:
        return None
    center = joints_px[torso].mean(axis=0)
    if present[Joint.NECK] and present[Joint.MID_HIP]:
        length = float(np.linalg.norm(joints_px[Joint.NECK] - joints_px[Joint.MID_HIP]))
    elif present[Joint.RIGHT_SHOULDER] and present[Joint.LEFT_SHOULDER]:
        width = float(np.linalg.norm(joints_px[Joint.RIGHT_SHOULDER] - joints_px[Joint.LEFT_SHOULDER]))
        length = TORSO_PER_SHOULDER_WIDTH * width
    else:
        return None
    return (center.astype(np.float32), length) if length > 1e-3 else None


class SourceTracker:
    """Person continuity and single-joint hold on a stream of source poses (one stream, in time order).

    :meth:`update` takes each pose from the estimator (source pixels) and returns the pose to use: the
    same pose with briefly missing joints held and orphaned joints removed, or an empty pose when the
    person is lost or the pose belongs to somebody else (see :class:`TrackingParams`). Not thread-safe.

    Args:
        params: the settings.
        threshold: joints below this confidence are missing.
    """

    def __init__(self, params: TrackingParams | None = None, threshold: float = 0.5) -> None:
        self.params = params or TrackingParams()
        self.threshold = threshold
        # The last accepted pose's torso and time.
        self._torso: tuple[np.ndarray, float] | None = None
        self._accepted_ms: float | None = None
        # A candidate "different person": its torso, time and how many consecutive frames it was seen.
        self._candidate: tuple[np.ndarray, float] | None = None
        self._candidate_ms = 0.0
        self._candidate_frames = 0
        # Per joint: offset from its parent (pixels), last confidence, and time last seen.
        self._offset = np.zeros((NUM_JOINTS, 2), np.float32)
        self._last_conf = np.zeros(NUM_JOINTS, np.float32)
        self._seen_ms = np.full(NUM_JOINTS, -math.inf)
        #: Counters of what happened (for logs and tests): frames rejected as another person, person
        #: switches accepted after confirmation, joints held, joints dropped as orphans.
        self.rejected_frames = 0
        self.switches = 0
        self.held_joints = 0
        self.dropped_joints = 0

    def reset(self) -> None:
        """Forget the tracked person (the next pose is accepted as it is)."""
        self._torso = self._accepted_ms = self._candidate = None
        self._candidate_frames = 0
        self._seen_ms[:] = -math.inf

    def _consistent(self, a: tuple[np.ndarray, float], b: tuple[np.ndarray, float], dt_ms: float) -> bool:
        p = self.params
        (ca, la), (cb, lb) = a, b
        ratio = max(la, lb) / min(la, lb)
        allowed = (p.torso_jump_slack + p.max_torso_speed_per_s * max(dt_ms, 0.0) / 1000.0) * la
        return ratio <= p.max_torso_scale_ratio and float(np.linalg.norm(cb - ca)) <= allowed

    def update(
        self, joints_px: np.ndarray, confidence: np.ndarray, timestamp_ms: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """One estimated pose in, the pose to use out.

        Args:
            joints_px: float ``(NUM_JOINTS, 2)`` source pixels; confidence: float ``(NUM_JOINTS,)`` in
                [0, 1] (all 0 when the estimator found nobody).
            timestamp_ms: the frame's time in milliseconds (increasing).

        Returns:
            ``(joints_px, confidence)``, float32 ``(NUM_JOINTS, 2)`` and ``(NUM_JOINTS,)``: held joints
            carry their last confidence, dropped joints and a lost or rejected pose have confidence 0.

        Raises:
            ValueError: on wrong shapes.
        """
        joints_px, confidence = as_pose_arrays(joints_px, confidence)
        if joints_px.ndim != 2:
            raise ValueError(f"SourceTracker takes one pose at a time, got {joints_px.shape}")
        present = confidence >= self.threshold
        torso = torso_center_and_length(joints_px, present)
        lost = np.zeros_like(confidence)
        if torso is None:
            return joints_px.copy(), lost
        if not self._accept(torso, timestamp_ms):
            self.rejected_frames += 1
            return joints_px.copy(), lost
        return self._hold_joints(joints_px, confidence, present, timestamp_ms)

    def _accept(self, torso: tuple[np.ndarray, float], timestamp_ms: float) -> bool:
        p = self.params
        if (
            self._torso is None
            or self._accepted_ms is None
            or timestamp_ms - self._accepted_ms > p.reacquire_after_ms
            or self._consistent(self._torso, torso, timestamp_ms - self._accepted_ms)
        ):
            self._torso, self._accepted_ms = torso, timestamp_ms
            self._candidate, self._candidate_frames = None, 0
            return True
        # Somebody else (or a wild estimate): count it as a candidate while it stays consistent.
        if self._candidate is not None and self._consistent(
            self._candidate, torso, timestamp_ms - self._candidate_ms
        ):
            self._candidate_frames += 1
        else:
            self._candidate_frames = 1
        self._candidate, self._candidate_ms = torso, timestamp_ms
        if self._candidate_frames >= p.switch_confirm_frames:
            self.switches += 1
            self._seen_ms[:] = -math.inf  # the new person's joints owe nothing to the old one's
            self._torso, self._accepted_ms = torso, timestamp_ms
            self._candidate, self._candidate_frames = None, 0
            return True
        return False

    def _hold_joints(
        self, joints_px: np.ndarray, confidence: np.ndarray, present: np.ndarray, timestamp_ms: float
    ) -> tuple[np.ndarray, np.ndarray]:
        out = joints_px.copy()
        conf = confidence.copy()
        kept = present.copy()
        recent = (timestamp_ms - self._seen_ms) <= self.params.joint_hold_ms
        # Walk outward so a held parent carries its held children along.
        for limb in LIMBS:
            joint, parent = int(limb.child), int(limb.parent)
            if kept[joint] or not kept[parent] or not recent[joint]:
                continue
            out[joint] = out[parent] + self._offset[joint]
            conf[joint] = self._last_conf[joint]
            kept[joint] = True
            self.held_joints += 1
        attached = drop_orphans(kept)
        self.dropped_joints += int((kept & ~attached).sum())
        conf = np.where(attached, conf, 0.0).astype(np.float32)
        # Remember what was really seen this frame (not what was held).
        seen = present & attached
        for joint in np.flatnonzero(seen):
            parent = PARENT[joint]
            if parent >= 0 and attached[parent]:
                self._offset[joint] = out[joint] - out[parent]
                self._last_conf[joint] = confidence[joint]
                self._seen_ms[joint] = timestamp_ms
        return out, conf


def neutral_pose(stats: BodyStats, depth: float = 0.5) -> np.ndarray:
    """A neutral standing pose of the target, in its canvas pixels.

    Built from the target's median limb lengths (:attr:`BodyStats.limb_lengths_px`): upright spine, arms
    hanging slightly away from the body, straight legs, face to the camera; then scaled so that its height
    (ankles to the top of nose and eyes) is the target's height at ``depth`` between its far (0) and near (1)
    anchors, with the ankles on that depth's foot line and the mid-hip at the target's center x. A limb
    never seen in the target (NaN length) takes a default proportion of the spine.

    Args:
        stats: the target's statistics (canvas pixels).
        depth: where between the far and near foot lines to stand, in [0, 1].

    Returns:
        float32 ``(NUM_JOINTS, 2)`` canvas pixels, every joint placed.
    """
    defaults = {  # in spine lengths, used only where the target never showed a limb
        "spine": 1.0, "right_clavicle": 0.3, "left_clavicle": 0.3, "right_upper_arm": 0.55,
        "left_upper_arm": 0.55, "right_forearm": 0.48, "left_forearm": 0.48, "right_pelvis": 0.16,
        "left_pelvis": 0.16, "right_thigh": 0.88, "left_thigh": 0.88, "right_shin": 0.86, "left_shin": 0.86,
        "neck": 0.38, "right_eye": 0.09, "left_eye": 0.09, "right_ear": 0.14, "left_ear": 0.14,
        "right_toe": 0.28, "left_toe": 0.28, "right_heel": 0.12, "left_heel": 0.12,
    }  # fmt: skip
    spine = stats.limb_lengths_px[LIMB_INDEX["spine"]]
    spine = spine if math.isfinite(spine) and spine > 0 else 1.0

    def length(name: str) -> float:
        value = stats.limb_lengths_px[LIMB_INDEX[name]]
        return value if math.isfinite(value) and value > 0 else defaults[name] * spine

    # Unit directions (x right, y down) of each limb from parent to child; right is the image's left side
    # of a person facing the camera.
    directions = {
        "spine": (0.0, -1.0), "right_clavicle": (-1.0, 0.0), "left_clavicle": (1.0, 0.0),
        "right_upper_arm": (-0.17, 0.985), "left_upper_arm": (0.17, 0.985),
        "right_forearm": (-0.1, 0.995), "left_forearm": (0.1, 0.995),
        "right_pelvis": (-1.0, 0.0), "left_pelvis": (1.0, 0.0),
        "right_thigh": (0.0, 1.0), "left_thigh": (0.0, 1.0),
        "right_shin": (0.0, 1.0), "left_shin": (0.0, 1.0),
        "neck": (0.0, -1.0), "right_eye": (-0.6, -0.8), "left_eye": (0.6, -0.8),
        "right_ear": (-0.95, 0.3), "left_ear": (0.95, 0.3),
        "right_toe": (-0.35, 0.94), "left_toe": (0.35, 0.94),
        "right_heel": (0.2, 0.98), "left_heel": (-0.2, 0.98),
    }  # fmt: skip
    joints = np.zeros((NUM_JOINTS, 2), np.float64)
    for limb in LIMBS:
        joints[limb.child] = joints[limb.parent] + np.array(directions[limb.name]) * length(limb.name)
    ankles = [int(Joint.RIGHT_ANKLE), int(Joint.LEFT_ANKLE)]
    heads = [int(Joint.NOSE), int(Joint.RIGHT_EYE), int(Joint.LEFT_EYE)]
    foot_y = float(joints[ankles, 1].max())
    height = foot_y - float(joints[heads, 1].min())
    depth = min(max(depth, 0.0), 1.0)
    target_height = stats.far_height_px + depth * (stats.near_height_px - stats.far_height_px)
    target_foot = stats.far_foot_y_px + depth * (stats.near_foot_y_px - stats.far_foot_y_px)
    scale = target_height / height
    center_x = stats.center_x_px if math.isfinite(stats.center_x_px) else 0.0
    anchor = np.array([0.0, foot_y])
    return ((joints - anchor) * scale + np.array([center_x, target_foot])).astype(np.float32)


class PoseHold:
    """What to show when the person is lost, and how to come back (target canvas pixels, one stream).

    :meth:`update` takes each frame's normalized pose, or None when the person is lost, and returns the
    pose to draw: the live pose; or, while lost, the last shown pose for :attr:`TrackingParams.hold_ms`,
    then a smoothstep ease into ``neutral_px`` over :attr:`TrackingParams.ease_to_neutral_ms` (joints the
    held pose lacked are placed at the neutral pose's offsets from their neighbours); on return, a
    smoothstep blend from the pose shown when the person came back to the live pose over
    :attr:`TrackingParams.resume_blend_ms`. Before the first live pose it returns None (nothing to hold).
    Not thread-safe.

    Args:
        neutral_px: float ``(NUM_JOINTS, 2)`` the neutral pose (:func:`neutral_pose`), every joint placed.
        params: the settings.
        threshold: joints below this confidence are missing.
    """

    def __init__(self, neutral_px: np.ndarray, params: TrackingParams | None = None, threshold: float = 0.5):
        self.neutral_px = np.asarray(neutral_px, dtype=np.float32)
        if self.neutral_px.shape != (NUM_JOINTS, 2):
            raise ValueError(f"neutral pose must be ({NUM_JOINTS}, 2), got {self.neutral_px.shape}")
        self.params = params or TrackingParams()
        self.threshold = threshold
        self._shown: tuple[np.ndarray, np.ndarray] | None = None  # last output (joints, confidence)
        self._lost_since_ms: float | None = None
        self._lost_from: tuple[np.ndarray, np.ndarray] | None = None  # the pose shown when lost
        self._resume_since_ms: float | None = None
        self._resume_from: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def is_lost(self) -> bool:
        """True while the person is lost (holding or easing to neutral)."""
        return self._lost_since_ms is not None

    def update(
        self, live: tuple[np.ndarray, np.ndarray] | None, timestamp_ms: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """One frame: ``live`` = ``(joints_px (NUM_JOINTS, 2), confidence (NUM_JOINTS,))`` on the canvas,
        or None when lost. Returns the pose to draw as float32 ``(joints_px, confidence)``, or None when no
        person has been seen yet."""
        p = self.params
        if live is None:
            if self._shown is None:
                return None
            if self._lost_since_ms is None:
                self._lost_since_ms = timestamp_ms
                self._lost_from = self._shown
                self._resume_since_ms = self._resume_from = None
            assert self._lost_from is not None
            t = (timestamp_ms - self._lost_since_ms - p.hold_ms) / p.ease_to_neutral_ms
            joints, conf = self._lost_from
            if t > 0:
                w = _smoothstep(t)
                present = conf >= self.threshold
                start = fill_from_reference(joints, present, self.neutral_px)
                joints = ((1.0 - w) * start + w * self.neutral_px).astype(np.float32)
                conf = np.ones(NUM_JOINTS, np.float32)
            self._shown = (joints, conf)
            return self._shown
        joints, conf = (np.asarray(a, dtype=np.float32) for a in live)
        if self._lost_since_ms is not None:
            self._lost_since_ms = self._lost_from = None
            if self._shown is not None and p.resume_blend_ms > 0:
                self._resume_since_ms, self._resume_from = timestamp_ms, self._shown
        if self._resume_since_ms is not None and self._resume_from is not None:
            t = (timestamp_ms - self._resume_since_ms) / p.resume_blend_ms if p.resume_blend_ms > 0 else 1.0
            if t >= 1.0:
                self._resume_since_ms = self._resume_from = None
            else:
                w = _smoothstep(t)
                present = conf >= self.threshold
                from_joints, from_conf = self._resume_from
                start = fill_from_reference(from_joints, from_conf >= self.threshold, joints)
                blended = (1.0 - w) * start + w * joints
                joints = np.where(present[:, None], blended, joints).astype(np.float32)
        self._shown = (joints, conf)
        return self._shown

    def reset(self) -> None:
        """Forget everything (as at a stream's start)."""
        self._shown = self._lost_since_ms = self._lost_from = None
        self._resume_since_ms = self._resume_from = None


__all__ = [
    "PARENT",
    "TORSO_JOINTS",
    "PoseHold",
    "SourceTracker",
    "TrackingParams",
    "drop_orphans",
    "fill_from_reference",
    "neutral_pose",
    "torso_center_and_length",
]
