"""The one skeleton definition: joints, limbs, colors, and the mapping from MediaPipe's 33 landmarks.

Every other module (renderer, normalizer, face crop, metrics) names joints through :class:`Joint` and limbs
through :data:`LIMBS`; no bare joint indices elsewhere.

The body follows OpenPose's BODY_25 layout (Cao et al., "OpenPose", TPAMI 2019) without the two small toes:
a neck (midpoint of the shoulders) and a mid-hip (midpoint of the hips) are added to MediaPipe Pose's
landmarks (Bazarevsky et al., "BlazePose", 2020), which have neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

SKELETON_NAME = "openpose23-from-mediapipe33"


class Joint(IntEnum):
    """Joints of the project's skeleton, in array order (BODY_25 order, small toes removed)."""

    NOSE = 0
    NECK = 1
    RIGHT_SHOULDER = 2
    RIGHT_ELBOW = 3
    RIGHT_WRIST = 4
    LEFT_SHOULDER = 5
    LEFT_ELBOW = 6
    LEFT_WRIST = 7
    MID_HIP = 8
    RIGHT_HIP = 9
    RIGHT_KNEE = 10
    RIGHT_ANKLE = 11
    LEFT_HIP = 12
    LEFT_KNEE = 13
    LEFT_ANKLE = 14
    RIGHT_EYE = 15
    LEFT_EYE = 16
    RIGHT_EAR = 17
    LEFT_EAR = 18
    LEFT_BIG_TOE = 19
    LEFT_HEEL = 20
    RIGHT_BIG_TOE = 21
    RIGHT_HEEL = 22


NUM_JOINTS = len(Joint)


class MediaPipeLandmark(IntEnum):
    """MediaPipe Pose's 33 landmarks (mirrors ``mediapipe.solutions.pose.PoseLandmark``)."""

    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32


NUM_MEDIAPIPE_LANDMARKS = len(MediaPipeLandmark)

_M = MediaPipeLandmark
#: Each joint is the mean of these MediaPipe landmarks (two for the neck and the mid-hip).
MEDIAPIPE_SOURCES: dict[Joint, tuple[MediaPipeLandmark, ...]] = {
    Joint.NOSE: (_M.NOSE,),
    Joint.NECK: (_M.LEFT_SHOULDER, _M.RIGHT_SHOULDER),
    Joint.RIGHT_SHOULDER: (_M.RIGHT_SHOULDER,),
    Joint.RIGHT_ELBOW: (_M.RIGHT_ELBOW,),
    Joint.RIGHT_WRIST: (_M.RIGHT_WRIST,),
    Joint.LEFT_SHOULDER: (_M.LEFT_SHOULDER,),
    Joint.LEFT_ELBOW: (_M.LEFT_ELBOW,),
    Joint.LEFT_WRIST: (_M.LEFT_WRIST,),
    Joint.MID_HIP: (_M.LEFT_HIP, _M.RIGHT_HIP),
    Joint.RIGHT_HIP: (_M.RIGHT_HIP,),
    Joint.RIGHT_KNEE: (_M.RIGHT_KNEE,),
    Joint.RIGHT_ANKLE: (_M.RIGHT_ANKLE,),
    Joint.LEFT_HIP: (_M.LEFT_HIP,),
    Joint.LEFT_KNEE: (_M.LEFT_KNEE,),
    Joint.LEFT_ANKLE: (_M.LEFT_ANKLE,),
    Joint.RIGHT_EYE: (_M.RIGHT_EYE,),
    Joint.LEFT_EYE: (_M.LEFT_EYE,),
    Joint.RIGHT_EAR: (_M.RIGHT_EAR,),
    Joint.LEFT_EAR: (_M.LEFT_EAR,),
    Joint.LEFT_BIG_TOE: (_M.LEFT_FOOT_INDEX,),
    Joint.LEFT_HEEL: (_M.LEFT_HEEL,),
    Joint.RIGHT_BIG_TOE: (_M.RIGHT_FOOT_INDEX,),
    Joint.RIGHT_HEEL: (_M.RIGHT_HEEL,),
}
del _M


@dataclass(frozen=True)
class Limb:
    """A bone from ``parent`` (nearer the torso) to ``child``, drawn in ``color`` (RGB, 0-255)."""

    name: str
    parent: Joint
    child: Joint
    color: tuple[int, int, int]


_J = Joint
#: Limbs in drawing order. Parents come before children, walking outward from the root
#: :data:`ROOT_JOINT`, so one pass over this tuple visits a joint only after its parent.
#: Colors follow OpenPose's BODY_25 rendering palette: warm hues on the right side, cool on the left.
LIMBS: tuple[Limb, ...] = (
    Limb("spine", _J.MID_HIP, _J.NECK, (255, 0, 0)),
    Limb("right_clavicle", _J.NECK, _J.RIGHT_SHOULDER, (255, 85, 0)),
    Limb("right_upper_arm", _J.RIGHT_SHOULDER, _J.RIGHT_ELBOW, (255, 170, 0)),
    Limb("right_forearm", _J.RIGHT_ELBOW, _J.RIGHT_WRIST, (255, 255, 0)),
    Limb("left_clavicle", _J.NECK, _J.LEFT_SHOULDER, (170, 255, 0)),
    Limb("left_upper_arm", _J.LEFT_SHOULDER, _J.LEFT_ELBOW, (85, 255, 0)),
    Limb("left_forearm", _J.LEFT_ELBOW, _J.LEFT_WRIST, (0, 255, 0)),
    Limb("right_pelvis", _J.MID_HIP, _J.RIGHT_HIP, (0, 255, 85)),
    Limb("right_thigh", _J.RIGHT_HIP, _J.RIGHT_KNEE, (0, 255, 170)),
    Limb("right_shin", _J.RIGHT_KNEE, _J.RIGHT_ANKLE, (0, 255, 255)),
    Limb("left_pelvis", _J.MID_HIP, _J.LEFT_HIP, (0, 170, 255)),
    Limb("left_thigh", _J.LEFT_HIP, _J.LEFT_KNEE, (0, 85, 255)),
    Limb("left_shin", _J.LEFT_KNEE, _J.LEFT_ANKLE, (0, 0, 255)),
    Limb("neck", _J.NECK, _J.NOSE, (255, 0, 85)),
    Limb("right_eye", _J.NOSE, _J.RIGHT_EYE, (255, 0, 170)),
    Limb("right_ear", _J.RIGHT_EYE, _J.RIGHT_EAR, (255, 0, 255)),
    Limb("left_eye", _J.NOSE, _J.LEFT_EYE, (170, 0, 255)),
    Limb("left_ear", _J.LEFT_EYE, _J.LEFT_EAR, (85, 0, 255)),
    Limb("left_toe", _J.LEFT_ANKLE, _J.LEFT_BIG_TOE, (0, 0, 170)),
    Limb("left_heel", _J.LEFT_ANKLE, _J.LEFT_HEEL, (0, 85, 170)),
    Limb("right_toe", _J.RIGHT_ANKLE, _J.RIGHT_BIG_TOE, (0, 170, 170)),
    Limb("right_heel", _J.RIGHT_ANKLE, _J.RIGHT_HEEL, (85, 170, 170)),
)
del _J

NUM_LIMBS = len(LIMBS)
ROOT_JOINT = Joint.MID_HIP
LIMB_INDEX: dict[str, int] = {limb.name: i for i, limb in enumerate(LIMBS)}

#: Joint disc colors (RGB, 0-255): each joint takes the color of the limb that ends in it; the root takes
#: the spine's color.
JOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    next((limb.color for limb in LIMBS if limb.child == joint), LIMBS[0].color) for joint in Joint
)

#: Joints that locate the face (used for face boxes).
FACE_JOINTS: tuple[Joint, ...] = (
    Joint.NOSE,
    Joint.RIGHT_EYE,
    Joint.LEFT_EYE,
    Joint.RIGHT_EAR,
    Joint.LEFT_EAR,
)
#: Joints whose image height gives a person's foot position (global pose normalization).
FOOT_JOINTS: tuple[Joint, ...] = (Joint.RIGHT_ANKLE, Joint.LEFT_ANKLE)
#: Joints whose image height gives the top of a person for their height (global pose normalization).
HEAD_JOINTS: tuple[Joint, ...] = (Joint.NOSE, Joint.RIGHT_EYE, Joint.LEFT_EYE)


def limb_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limb endpoints and colors as arrays.

    Returns:
        ``(parents, children, colors)``: ``parents`` and ``children`` int64 ``(NUM_LIMBS,)`` joint indices,
        ``colors`` float32 ``(NUM_LIMBS, 3)`` RGB in [0, 1].
    """
    parents = np.array([limb.parent for limb in LIMBS], dtype=np.int64)
    children = np.array([limb.child for limb in LIMBS], dtype=np.int64)
    colors = np.array([limb.color for limb in LIMBS], dtype=np.float32) / 255.0
    return parents, children, colors


def joint_colors() -> np.ndarray:
    """Joint disc colors as float32 ``(NUM_JOINTS, 3)`` RGB in [0, 1]."""
    return np.array(JOINT_COLORS, dtype=np.float32) / 255.0


def as_pose_arrays(
    joints_px: np.ndarray, confidence: np.ndarray, *, sequence: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert poses at a public boundary.

    Args:
        joints_px: ``(..., NUM_JOINTS, 2)`` (``(N, NUM_JOINTS, 2)`` when ``sequence``) pixels.
        confidence: ``(..., NUM_JOINTS)`` matching ``joints_px``.
        sequence: require exactly one leading (frame) axis.

    Returns:
        both as float32 arrays.

    Raises:
        ValueError: if the shapes do not match the skeleton or each other.
    """
    joints_px = np.asarray(joints_px, dtype=np.float32)
    confidence = np.asarray(confidence, dtype=np.float32)
    if (
        joints_px.shape[-2:] != (NUM_JOINTS, 2)
        or confidence.shape != joints_px.shape[:-1]
        or (sequence and joints_px.ndim != 3)
    ):
        lead = "N" if sequence else "..."
        raise ValueError(
            f"expected joints ({lead}, {NUM_JOINTS}, 2) and confidence ({lead}, {NUM_JOINTS}), "
            f"got {joints_px.shape} and {confidence.shape}"
        )
    return joints_px, confidence


def from_mediapipe(landmarks_px: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map MediaPipe's 33 landmarks onto the project's skeleton.

    Args:
        landmarks_px: float ``(..., 33, 2)`` landmark x, y in pixels.
        visibility: float ``(..., 33)`` MediaPipe's visibility in [0, 1].

    Returns:
        ``(joints_px, confidence)``: float32 ``(..., NUM_JOINTS, 2)`` in pixels and float32
        ``(..., NUM_JOINTS)`` in [0, 1]. A joint built from two landmarks (neck, mid-hip) sits at their
        midpoint with the smaller of their two visibilities.

    Raises:
        ValueError: if the shapes are not ``(..., 33, 2)`` and ``(..., 33)``.
    """
    landmarks_px = np.asarray(landmarks_px, dtype=np.float32)
    visibility = np.asarray(visibility, dtype=np.float32)
    if landmarks_px.shape[-2:] != (NUM_MEDIAPIPE_LANDMARKS, 2) or visibility.shape != landmarks_px.shape[:-1]:
        raise ValueError(
            f"expected landmarks (..., {NUM_MEDIAPIPE_LANDMARKS}, 2) and visibility (..., "
            f"{NUM_MEDIAPIPE_LANDMARKS}), got {landmarks_px.shape} and {visibility.shape}"
        )
    batch = landmarks_px.shape[:-2]
    joints = np.zeros((*batch, NUM_JOINTS, 2), dtype=np.float32)
    confidence = np.zeros((*batch, NUM_JOINTS), dtype=np.float32)
    for joint, sources in MEDIAPIPE_SOURCES.items():
        idx = [int(s) for s in sources]
        joints[..., joint, :] = landmarks_px[..., idx, :].mean(axis=-2)
        confidence[..., joint] = visibility[..., idx].min(axis=-1)
    return joints, np.clip(confidence, 0.0, 1.0)


@dataclass(frozen=True)
class BodyPart:
    """A rigid body part for part-wise warping (Balakrishnan et al., CVPR 2018; Yang et al., eq. 1).

    Attributes:
        name: the part's name.
        joints: the joints whose source -> target positions define the part's affine transform (least
            squares over those present in both poses).
        segments: joint pairs whose segments locate the part in the image: a pixel of the person mask
            belongs to the part whose segment is nearest, within the warp's radius.
    """

    name: str
    joints: tuple[Joint, ...]
    segments: tuple[tuple[Joint, Joint], ...]


_P = Joint
#: The ten body parts of Yang et al. and Siarohin et al.: head, torso, upper and lower arms and legs. The
#: lower legs include the feet (their segments to heel and big toe), the lower arms the hands (within the
#: radius of the wrist).
BODY_PARTS: tuple[BodyPart, ...] = (
    BodyPart(
        "head",
        (_P.NECK, _P.NOSE, _P.RIGHT_EYE, _P.LEFT_EYE, _P.RIGHT_EAR, _P.LEFT_EAR),
        (
            (_P.NECK, _P.NOSE),
            (_P.NOSE, _P.RIGHT_EYE),
            (_P.RIGHT_EYE, _P.RIGHT_EAR),
            (_P.NOSE, _P.LEFT_EYE),
            (_P.LEFT_EYE, _P.LEFT_EAR),
        ),
    ),
    BodyPart(
        "torso",
        (_P.RIGHT_SHOULDER, _P.LEFT_SHOULDER, _P.RIGHT_HIP, _P.LEFT_HIP),
        (
            (_P.NECK, _P.MID_HIP),
            (_P.RIGHT_SHOULDER, _P.LEFT_SHOULDER),
            (_P.RIGHT_HIP, _P.LEFT_HIP),
            (_P.RIGHT_SHOULDER, _P.RIGHT_HIP),
            (_P.LEFT_SHOULDER, _P.LEFT_HIP),
        ),
    ),
    BodyPart("right_upper_arm", (_P.RIGHT_SHOULDER, _P.RIGHT_ELBOW), ((_P.RIGHT_SHOULDER, _P.RIGHT_ELBOW),)),
    BodyPart("right_lower_arm", (_P.RIGHT_ELBOW, _P.RIGHT_WRIST), ((_P.RIGHT_ELBOW, _P.RIGHT_WRIST),)),
    BodyPart("left_upper_arm", (_P.LEFT_SHOULDER, _P.LEFT_ELBOW), ((_P.LEFT_SHOULDER, _P.LEFT_ELBOW),)),
    BodyPart("left_lower_arm", (_P.LEFT_ELBOW, _P.LEFT_WRIST), ((_P.LEFT_ELBOW, _P.LEFT_WRIST),)),
    BodyPart("right_upper_leg", (_P.RIGHT_HIP, _P.RIGHT_KNEE), ((_P.RIGHT_HIP, _P.RIGHT_KNEE),)),
    BodyPart(
        "right_lower_leg",
        (_P.RIGHT_KNEE, _P.RIGHT_ANKLE),
        (
            (_P.RIGHT_KNEE, _P.RIGHT_ANKLE),
            (_P.RIGHT_ANKLE, _P.RIGHT_HEEL),
            (_P.RIGHT_ANKLE, _P.RIGHT_BIG_TOE),
        ),
    ),
    BodyPart("left_upper_leg", (_P.LEFT_HIP, _P.LEFT_KNEE), ((_P.LEFT_HIP, _P.LEFT_KNEE),)),
    BodyPart(
        "left_lower_leg",
        (_P.LEFT_KNEE, _P.LEFT_ANKLE),
        ((_P.LEFT_KNEE, _P.LEFT_ANKLE), (_P.LEFT_ANKLE, _P.LEFT_HEEL), (_P.LEFT_ANKLE, _P.LEFT_BIG_TOE)),
    ),
)
del _P

NUM_BODY_PARTS = len(BODY_PARTS)
BODY_PART_INDEX: dict[str, int] = {part.name: i for i, part in enumerate(BODY_PARTS)}


def body_part_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The body-part table as padded index arrays (the part warper's input).

    Returns:
        ``(part_joints, part_segments)``: int64 ``(NUM_BODY_PARTS, K)`` joint indices of each part's
        transform, and int64 ``(NUM_BODY_PARTS, S, 2)`` joint index pairs of each part's segments, both
        padded with -1 to the longest part.
    """
    k = max(len(part.joints) for part in BODY_PARTS)
    s = max(len(part.segments) for part in BODY_PARTS)
    part_joints = np.full((NUM_BODY_PARTS, k), -1, dtype=np.int64)
    part_segments = np.full((NUM_BODY_PARTS, s, 2), -1, dtype=np.int64)
    for i, part in enumerate(BODY_PARTS):
        part_joints[i, : len(part.joints)] = [int(j) for j in part.joints]
        part_segments[i, : len(part.segments)] = [[int(a), int(b)] for a, b in part.segments]
    return part_joints, part_segments
