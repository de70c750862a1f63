"""Quality measures of generated frames against ground truth, as in Everybody Dance Now (Chan et al., ICCV
2019, Tables 1-4).

- **Image similarity** (EDN Tables 1-2): SSIM and PSNR (scikit-image) over the whole frame, over the body
  region and over the face crop (the frame's face box clipped to the canvas). The body region is the
  ground-truth person's bounding box (:func:`find_person_box`: the ground-truth mask where the data has
  one, else the present ground-truth keypoints) grown by :data:`BODY_MARGIN_FRAC` of its width on the left
  and right and of its height above and below, clipped to the canvas (:func:`body_crop_slices`). EDN's
  SSIM is over the body; the whole frame is mostly a static background that any model reproduces (an empty
  room scores SSIM 0.89-0.91 against the synthetic mannequin's ground truth), so the body figures are the
  ones that judge the person.
- **Pose fidelity** (EDN Tables 3-4): the pose estimator (by name in :data:`realtime.catalog.POSE_ESTIMATORS`,
  the target's: MediaPipe by default; :func:`realtime.pose.estimators.open_pose_estimator`) is run on each
  generated frame and its joints are compared with the driving joints: mean distance in
  pixels of the generated frame, and the rate of driving joints it fails to find.
- **Temporal stability** (not in EDN; the design's third measure): mean absolute frame-to-frame change of the
  generated frames over consecutive frames whose driving pose stayed still.
- **Limb-direction agreement** (unseen poses of a real target, where no ground truth exists; issue 18): the
  pose estimator on each *source* frame and on the frame generated from it; for each limb of
  :data:`realtime.pose.skeleton.LIMBS` found in both, the angle in degrees between its two 2-D directions
  (bone-length retargeting keeps the source's joint angles and global normalization only scales and
  translates, so the directions should agree); median and 90th percentile over all limbs of all frames,
  the median per limb, and the rate of the source's visible elbows and wrists (:data:`ARM_JOINTS`) that the
  estimator does not find on the output (:class:`LimbAgreement`, :class:`LimbAgreementEvaluator`).

Everything works frame by frame (:class:`FrameEvaluator`, constant memory for long videos) and on whole
arrays (:func:`evaluate_frames`). The inputs are the same whether the ground truth is a held-out frame of
the target video (``python -m train evaluate``) or a rendered synthetic target:

- frames: uint8 ``(H, W, 3)`` RGB (``(N, H, W, 3)`` for a sequence), generated and real of one shape;
- driving pose: joints float ``(NUM_JOINTS, 2)`` in pixels of those frames (x right, y down) and confidence
  float ``(NUM_JOINTS,)`` in [0, 1]; a joint is *present* when its confidence is at least the confidence
  threshold (default :data:`CONFIDENCE_THRESHOLD`, the stick-figure renderer's) and its coordinates are
  finite;
- face box, person box: float ``(4,)`` x0, y0, x1, y1 in pixels (NaN where the frame has no face / no
  person).

Means are NaN where nothing was measured (no face box, no still frame pair, no driving joint);
:meth:`EvaluationResult.to_json` writes them as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from realtime.catalog import DEFAULT_POSE_ESTIMATOR
from realtime.console import progress as progress_bar
from realtime.pose.estimators import PoseFrame
from realtime.pose.skeleton import LIMB_INDEX, LIMBS, NUM_JOINTS, Joint, limb_arrays
from train.catalog import STILL_THRESHOLD_PX  # see there: the evaluation's command line states it too

#: PSNR of a frame is capped at this many dB. Identical frames have an infinite PSNR; the cap keeps means
#: and JSON finite. Frames differing by one level in one channel of one pixel reach it only above about 51,000
#: pixels (226x226; 101 dB at 256x256), so below that size the cap replaces nothing but infinity.
PSNR_MAX_DB = 100.0
#: SSIM's window (scikit-image's default, 7x7 pixels): a face crop narrower or shorter than this, after
#: clipping to the canvas, is skipped.
SSIM_WINDOW_PX = 7
#: A joint counts (driving: present; estimated: found) when its confidence is at least this; the
#: stick-figure renderer's default threshold (:class:`kernels.rasterize.RenderParams`).
CONFIDENCE_THRESHOLD = 0.5
#: The body region is the person's bounding box grown by this fraction of the box's width on each side
#: (left, right) and of its height on each side (top, bottom): 10% keeps hands, hair and feet that lie past
#: the outermost keypoints, and a band of background around the silhouette.
BODY_MARGIN_FRAC = 0.10
#: A pixel of a uint8 person mask (0-255 coverage) belongs to the person at this value or above.
MASK_THRESHOLD = 128
#: The joints whose loss on the output :class:`LimbAgreement` counts: elbows and wrists, the ones a
#: generator drops first in poses it never saw (raised arms that vanish or become blobs).
ARM_JOINTS: tuple[Joint, ...] = (Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST, Joint.LEFT_ELBOW, Joint.LEFT_WRIST)
#: The limbs whose directions :class:`LimbAgreement` compares: the body's (spine, clavicles, arms, pelvis,
#: legs). The face's short limbs turn with the head and the feet's are a few pixels long; both measure the
#: estimator more than the pose (on the mannequin's ground truth they gave 50-95 degrees).
BODY_LIMBS: tuple[str, ...] = (
    "spine", "right_clavicle", "right_upper_arm", "right_forearm", "left_clavicle", "left_upper_arm",
    "left_forearm", "right_pelvis", "right_thigh", "right_shin", "left_pelvis", "left_thigh", "left_shin",
)  # fmt: skip
#: Each joint's mirror (its left/right counterpart; itself on the midline), for a pose labelled the other
#: way round.
MIRRORED_JOINTS: tuple[int, ...] = tuple(
    int(
        Joint[j.name.replace("RIGHT_", "LEFT_")]
        if j.name.startswith("RIGHT_")
        else Joint[j.name.replace("LEFT_", "RIGHT_")]
        if j.name.startswith("LEFT_")
        else j
    )
    for j in Joint
)
#: A limb shorter than this many pixels (its two joints on one spot) has no direction and is not measured.
MIN_LIMB_LENGTH_PX = 1e-3


class PoseEstimatorLike(Protocol):
    """Anything that estimates a :class:`PoseFrame` from a uint8 ``(H, W, 3)`` RGB frame."""

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame: ...


# -- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSimilarity:
    """SSIM and PSNR of generated frames (or their body or face crops) against the real ones.

    Attributes:
        num_frames: frames scored (for the body: frames with a person; for the face: frames with a usable
            face box).
        ssim: mean SSIM in [-1, 1] (1 = identical), NaN when ``num_frames`` is 0.
        psnr_db: mean PSNR in dB, each frame capped at :data:`PSNR_MAX_DB`; NaN when ``num_frames`` is 0.
        frame_indices: the index of each scored frame in the sequence.
        ssim_per_frame, psnr_db_per_frame: the values behind the means, in ``frame_indices`` order.
    """

    num_frames: int
    ssim: float
    psnr_db: float
    frame_indices: list[int]
    ssim_per_frame: list[float]
    psnr_db_per_frame: list[float]


@dataclass(frozen=True)
class PoseFidelity:
    """The pose estimator on generated frames against the driving poses (EDN Tables 3-4).

    Attributes:
        num_frames: generated frames the estimator ran on.
        num_frames_without_person: frames where it found nobody.
        num_driving_joints: present driving joints, summed over frames.
        num_missed_joints: of those, joints the estimator did not find (confidence below
            ``confidence_threshold``, or nobody found).
        missed_joint_rate: ``num_missed_joints / num_driving_joints`` in [0, 1]; NaN without driving joints.
        pose_distance_px: mean Euclidean distance in pixels of the generated frame between found joints and
            their driving positions, over all found joints of all frames; NaN when none was found.
        confidence_threshold: the threshold used for driving and estimated joints.
        pose_distance_px_per_joint: the same mean per joint name (NaN where never found).
        missed_joint_rate_per_joint: the same rate per joint name (NaN where never present).
        pose_distance_px_per_frame: mean distance per frame (NaN where no joint was found).
    """

    num_frames: int
    num_frames_without_person: int
    num_driving_joints: int
    num_missed_joints: int
    missed_joint_rate: float
    pose_distance_px: float
    confidence_threshold: float
    pose_distance_px_per_joint: dict[str, float]
    missed_joint_rate_per_joint: dict[str, float]
    pose_distance_px_per_frame: list[float]


@dataclass(frozen=True)
class TemporalStability:
    """Frame-to-frame change of the output where the input pose stood still.

    The change between two frames is the mean absolute difference over all pixels and channels, in uint8
    levels [0, 255]. A pair of consecutive frames ``(t-1, t)`` is *still* when the same driving joints are
    present in both and none of them moved ``still_threshold_px`` pixels or more.

    Attributes:
        still_threshold_px: the stillness threshold in pixels.
        num_pairs: consecutive frame pairs (frames - 1).
        num_still_pairs: of those, still pairs.
        still_change_levels: mean change of the generated frames over still pairs (0 = perfectly steady);
            NaN when there is no still pair.
        real_still_change_levels: the same for the real frames: the change the video itself has there
            (sensor noise, compression, small motions the pose misses). NaN without still pairs.
        change_levels: mean change of the generated frames over all pairs (NaN for fewer than two frames).
        still_pair_indices: ``t`` of each still pair ``(t-1, t)``.
    """

    still_threshold_px: float
    num_pairs: int
    num_still_pairs: int
    still_change_levels: float
    real_still_change_levels: float
    change_levels: float
    still_pair_indices: list[int]


@dataclass(frozen=True)
class LimbAgreement:
    """Limb directions of the pose estimator on generated frames against those on their source frames.

    For each frame pair and each body limb (:data:`BODY_LIMBS`) whose two joints are found in
    both poses (confidence at least ``confidence_threshold``, finite coordinates, the joints at least
    :data:`MIN_LIMB_LENGTH_PX` apart), the angle between the limb's 2-D direction (parent joint to child
    joint) on the source and on the output, in degrees in [0, 180]. Bone-length retargeting keeps the
    source's joint angles and global normalization only scales and translates, so the directions agree for a
    model that draws the pose it is asked for. A pose estimator may label a person's sides the other way
    round (a figure seen from behind, the featureless mannequin's head): each output pose is also compared
    with its sides swapped (:data:`MIRRORED_JOINTS`), and the labelling with the lower median angle counts;
    the frames where the swapped one did are counted. Elbows and wrists missed are counted as labelled.

    Attributes:
        num_frames: frame pairs compared.
        num_frames_without_person: of those, output frames where the estimator found nobody.
        num_measurements: limb angles measured (limbs found in both poses, summed over frames).
        median_deg, p90_deg, mean_deg: median, 90th percentile (NumPy's linear interpolation) and mean of
            those angles in degrees; NaN when none was measured.
        median_deg_per_limb: the median per limb name (NaN where never measured).
        num_measurements_per_limb: measurements per limb name.
        num_source_arm_joints: elbows and wrists (:data:`ARM_JOINTS`) found on the source frames, summed
            over frames.
        num_missed_arm_joints: of those, joints not found on the output (confidence below the threshold,
            absent, or nobody found).
        missed_arm_joint_rate: ``num_missed_arm_joints / num_source_arm_joints`` in [0, 1]; NaN without any.
        confidence_threshold: the threshold used on both sides.
        median_deg_per_frame: the median angle of each frame (NaN where nothing was measured).
        num_frames_mirrored: frames whose output pose was compared with its sides swapped.
    """

    num_frames: int
    num_frames_without_person: int
    num_measurements: int
    median_deg: float
    p90_deg: float
    mean_deg: float
    median_deg_per_limb: dict[str, float]
    num_measurements_per_limb: dict[str, int]
    num_source_arm_joints: int
    num_missed_arm_joints: int
    missed_arm_joint_rate: float
    confidence_threshold: float
    median_deg_per_frame: list[float]
    num_frames_mirrored: int = 0

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, flat: ``limb_direction_median_deg``, ``limb_direction_p90_deg``,
        ``missed_arm_joint_rate``, ``limb_measurements``, ``num_frames``. NaN where not measured."""
        return {
            "limb_direction_median_deg": self.median_deg,
            "limb_direction_p90_deg": self.p90_deg,
            "missed_arm_joint_rate": self.missed_arm_joint_rate,
            "limb_measurements": self.num_measurements,
            "num_frames": self.num_frames,
        }

    def to_json(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (non-finite numbers become ``None``)."""
        return json_safe(asdict(self))


@dataclass(frozen=True)
class EvaluationResult:
    """All measures of one generated sequence against its ground truth.

    Attributes:
        frame, body, face: image similarity over the whole frame, the body region and the face crop.
        pose, temporal: pose fidelity and temporal stability.
        body_margin_frac: the body region's margin (:data:`BODY_MARGIN_FRAC`).
    """

    frame: ImageSimilarity
    body: ImageSimilarity
    face: ImageSimilarity
    pose: PoseFidelity
    temporal: TemporalStability
    body_margin_frac: float = BODY_MARGIN_FRAC

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, flat (one table row): ``num_frames``, ``ssim``, ``psnr_db``,
        ``body_num_frames``, ``body_ssim``, ``body_psnr_db``, ``face_num_frames``, ``face_ssim``,
        ``face_psnr_db``, ``pose_distance_px``, ``missed_joint_rate``,
        ``num_frames_without_person``, ``temporal_change_levels`` (over still pairs), ``num_still_pairs``,
        ``real_temporal_change_levels``. NaN where not measured."""
        return {
            "num_frames": self.frame.num_frames,
            "ssim": self.frame.ssim,
            "psnr_db": self.frame.psnr_db,
            "body_num_frames": self.body.num_frames,
            "body_ssim": self.body.ssim,
            "body_psnr_db": self.body.psnr_db,
            "face_num_frames": self.face.num_frames,
            "face_ssim": self.face.ssim,
            "face_psnr_db": self.face.psnr_db,
            "pose_distance_px": self.pose.pose_distance_px,
            "missed_joint_rate": self.pose.missed_joint_rate,
            "num_frames_without_person": self.pose.num_frames_without_person,
            "temporal_change_levels": self.temporal.still_change_levels,
            "num_still_pairs": self.temporal.num_still_pairs,
            "real_temporal_change_levels": self.temporal.real_still_change_levels,
        }

    def to_json(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (non-finite numbers become ``None``)."""
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, infinity) replaced by ``None``, recursively through dicts,
    lists and tuples, so that ``json.dumps`` writes standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# -- per-frame measures -------------------------------------------------------------------------------------


def ssim(generated: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity of two uint8 ``(H, W, 3)`` images (scikit-image's ``structural_similarity``:
    7x7 uniform window, per channel then averaged, data range 255). In [-1, 1], 1 for identical images.

    Raises:
        ValueError: if the images differ in shape, are not uint8 ``(H, W, 3)``, or are smaller than
            :data:`SSIM_WINDOW_PX` on a side.
    """
    _check_image_pair(generated, real)
    if min(real.shape[:2]) < SSIM_WINDOW_PX:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW_PX}x{SSIM_WINDOW_PX}, got {real.shape}")
    return float(structural_similarity(real, generated, channel_axis=2, data_range=255))


def psnr_db(generated: np.ndarray, real: np.ndarray, *, max_db: float = PSNR_MAX_DB) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 ``(H, W, 3)`` images (scikit-image, data range 255),
    capped at ``max_db`` (identical images give ``max_db``; see :data:`PSNR_MAX_DB`).

    Raises:
        ValueError: if the images differ in shape or are not uint8 ``(H, W, 3)``.
    """
    _check_image_pair(generated, real)
    if mean_squared_error(real, generated) == 0:
        return float(max_db)
    return float(min(max_db, peak_signal_noise_ratio(real, generated, data_range=255)))


def face_crop_slices(
    box: np.ndarray | Iterable[float], width: int, height: int, *, min_side_px: int = SSIM_WINDOW_PX
) -> tuple[slice, slice] | None:
    """The pixels of a face box on a ``width`` x ``height`` canvas, as ``(rows, columns)`` slices.

    The box ``(x0, y0, x1, y1)`` in pixels (pixel ``i`` covers ``[i, i + 1)``) is widened to whole pixels
    (``floor(x0)`` to ``ceil(x1)``) and clipped to the canvas.

    Returns:
        the slices, or None when the box has a NaN, or its clipped part is narrower or shorter than
        ``min_side_px`` (a box off the canvas, or too small for SSIM's window).

    Raises:
        ValueError: if ``box`` does not have 4 numbers.
    """
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"a face box is 4 numbers (x0, y0, x1, y1), got shape {box.shape}")
    if not np.all(np.isfinite(box)):
        return None
    x0, y0, x1, y1 = box
    c0, c1 = max(0, math.floor(x0)), min(width, math.ceil(x1))
    r0, r1 = max(0, math.floor(y0)), min(height, math.ceil(y1))
    if c1 - c0 < min_side_px or r1 - r0 < min_side_px:
        return None
    return slice(r0, r1), slice(c0, c1)


def find_person_box(
    joints_px: np.ndarray,
    confidence: np.ndarray,
    *,
    threshold: float = CONFIDENCE_THRESHOLD,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The ground-truth person's bounding box in one frame.

    With a mask that marks anyone (pixels at :data:`MASK_THRESHOLD` or above), the box of those pixels
    (pixel ``i`` covers ``[i, i + 1)``, so a one-pixel mask gives a one-pixel box); otherwise (no mask, or an
    empty one) the box of the present keypoints (confidence at least ``threshold``, finite coordinates).

    Args:
        joints_px: float ``(NUM_JOINTS, 2)`` ground-truth joints in pixels.
        confidence: float ``(NUM_JOINTS,)`` in [0, 1].
        threshold: keypoint confidence threshold.
        mask: uint8 ``(H, W)`` person coverage 0-255, or None.

    Returns:
        float64 ``(4,)`` x0, y0, x1, y1 in pixels; all NaN when neither marks a person.

    Raises:
        ValueError: for a mask that is not 2-D uint8, or joints of the wrong shape.
    """
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError(f"a person mask is uint8 (H, W), got {mask.dtype} {mask.shape}")
        inside = mask >= MASK_THRESHOLD
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if rows.size:
            return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
    joints_px = np.asarray(joints_px, dtype=np.float64)
    if joints_px.shape != (NUM_JOINTS, 2):
        raise ValueError(f"expected joints ({NUM_JOINTS}, 2), got {joints_px.shape}")
    present = present_joints(joints_px, confidence, threshold)
    if not present.any():
        return np.full(4, math.nan)
    points = joints_px[present]
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def body_crop_slices(
    box: np.ndarray | Iterable[float],
    width: int,
    height: int,
    *,
    margin_frac: float = BODY_MARGIN_FRAC,
    min_side_px: int = SSIM_WINDOW_PX,
) -> tuple[slice, slice] | None:
    """The body region's pixels: a person box grown by ``margin_frac`` of its width on the left and on the
    right and of its height above and below, then as :func:`face_crop_slices` (whole pixels, clipped).

    Returns:
        ``(rows, columns)`` slices, or None for a NaN box or a region under ``min_side_px`` on a side.

    Raises:
        ValueError: if ``box`` does not have 4 numbers or ``margin_frac`` is negative.
    """
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"a person box is 4 numbers (x0, y0, x1, y1), got shape {box.shape}")
    if margin_frac < 0:
        raise ValueError(f"margin_frac must be at least 0, got {margin_frac}")
    grow = margin_frac * np.array([box[2] - box[0], box[3] - box[1]])
    grown = np.concatenate([box[:2] - grow, box[2:] + grow])
    return face_crop_slices(grown, width, height, min_side_px=min_side_px)


def present_joints(
    joints_px: np.ndarray, confidence: np.ndarray, threshold: float = CONFIDENCE_THRESHOLD
) -> np.ndarray:
    """bool ``(..., NUM_JOINTS)``: confidence at least ``threshold`` and finite coordinates."""
    joints_px, confidence = np.asarray(joints_px), np.asarray(confidence)
    return (confidence >= threshold) & np.all(np.isfinite(joints_px), axis=-1)


def frame_change_levels(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute difference of two uint8 ``(H, W, 3)`` frames over all pixels and channels, in levels
    [0, 255].

    Raises:
        ValueError: if the frames differ in shape or are not uint8 ``(H, W, 3)``.
    """
    _check_image_pair(previous, current)
    return float(np.abs(current.astype(np.int16) - previous.astype(np.int16)).mean())


def is_still(
    previous_joints_px: np.ndarray,
    previous_confidence: np.ndarray,
    joints_px: np.ndarray,
    confidence: np.ndarray,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    still_threshold_px: float = STILL_THRESHOLD_PX,
) -> bool:
    """Whether the driving pose stood still between two frames: the same joints are present in both and
    each moved less than ``still_threshold_px`` pixels. Two poses without any present joint (two blank stick
    figures) are still."""
    before = present_joints(previous_joints_px, previous_confidence, confidence_threshold)
    after = present_joints(joints_px, confidence, confidence_threshold)
    if not np.array_equal(before, after):
        return False
    if not after.any():
        return True
    moved = np.linalg.norm(np.asarray(joints_px)[after] - np.asarray(previous_joints_px)[after], axis=-1)
    return bool(moved.max() < still_threshold_px)


def limb_direction_errors_deg(
    source_joints_px: np.ndarray,
    source_confidence: np.ndarray,
    output_joints_px: np.ndarray,
    output_confidence: np.ndarray,
    *,
    threshold: float = CONFIDENCE_THRESHOLD,
) -> np.ndarray:
    """The angle between each limb's 2-D direction in two poses (see :class:`LimbAgreement`).

    The poses may be in different pixels (a source frame and the target canvas): directions do not change
    under scaling and translation.

    Args:
        source_joints_px, output_joints_px: float ``(..., NUM_JOINTS, 2)`` pixels (x right, y down).
        source_confidence, output_confidence: float ``(..., NUM_JOINTS)`` in [0, 1].
        threshold: a joint counts at this confidence or above (and with finite coordinates).

    Returns:
        float64 ``(..., NUM_LIMBS)``: degrees in [0, 180] in :data:`realtime.pose.skeleton.LIMBS` order; NaN
        where a limb's two joints are not both found in both poses or it is shorter than
        :data:`MIN_LIMB_LENGTH_PX` in either.

    Raises:
        ValueError: for arrays that do not fit the skeleton or each other.
    """
    shapes = []
    for joints, conf in ((source_joints_px, source_confidence), (output_joints_px, output_confidence)):
        joints, conf = np.asarray(joints, np.float64), np.asarray(conf, np.float64)
        if joints.shape[-2:] != (NUM_JOINTS, 2) or conf.shape != joints.shape[:-1]:
            raise ValueError(
                f"expected joints (..., {NUM_JOINTS}, 2) and confidence (..., {NUM_JOINTS}), got "
                f"{joints.shape} and {conf.shape}"
            )
        shapes.append(joints.shape)
    if shapes[0] != shapes[1]:
        raise ValueError(f"the two poses differ in shape: {shapes[0]} and {shapes[1]}")
    parents, children, _ = limb_arrays()

    def directions(joints_px: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joints_px = np.asarray(joints_px, np.float64)
        present = present_joints(joints_px, confidence, threshold)
        with np.errstate(invalid="ignore"):
            vector = joints_px[..., children, :] - joints_px[..., parents, :]
        length = np.hypot(vector[..., 0], vector[..., 1])
        valid = present[..., parents] & present[..., children] & (length >= MIN_LIMB_LENGTH_PX)
        return vector, valid

    (a, valid_a), (b, valid_b) = (
        directions(source_joints_px, source_confidence),
        directions(output_joints_px, output_confidence),
    )
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    dot = a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]
    with np.errstate(invalid="ignore"):
        angle = np.degrees(np.abs(np.arctan2(cross, dot)))
    return np.where(valid_a & valid_b, angle, np.nan)


# -- accumulation -------------------------------------------------------------------------------------------


_Judging = TypeVar("_Judging", bound="_JudgingEstimator")


class _JudgingEstimator:
    """The pose estimator an evaluator judges frames with: the one it was given, or its ``pose_estimator``
    opened with ``video_mode=False`` on first use (each frame judged on its own) and released by
    :meth:`close` (idempotent; also on leaving a ``with`` block)."""

    pose_estimator: str
    _estimator: PoseEstimatorLike | None
    _owns_estimator: bool

    def _pose_estimator(self) -> PoseEstimatorLike:
        if self._estimator is None:
            from realtime.pose.estimators import open_pose_estimator

            self._estimator = open_pose_estimator(self.pose_estimator, video_mode=False)
        return self._estimator

    def close(self) -> None:
        """Release the pose estimator if this evaluator created it. Idempotent."""
        if self._owns_estimator and self._estimator is not None:
            close = getattr(self._estimator, "close", None)
            if close is not None:
                close()
            self._estimator = None

    def __enter__(self: _Judging) -> _Judging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameEvaluator(_JudgingEstimator):
    """All measures, accumulated one frame at a time in sequence order (constant memory).

    Use as a context manager, or call :meth:`close`, to release a pose estimator it created.

    Args:
        confidence_threshold: joints count as present / found at this confidence (see the module doc).
        still_threshold_px: stillness threshold of :class:`TemporalStability`.
        estimator: the pose estimator for :class:`PoseFidelity`; None = ``pose_estimator`` opened with
            ``video_mode=False`` (:func:`realtime.pose.estimators.open_pose_estimator`), so that every
            generated frame is judged on its own (no tracking from the previous frame), created on first use.
        pose_estimator: the name (:data:`realtime.catalog.POSE_ESTIMATORS`) of the estimator to open when
            ``estimator`` is None: the target's (``bundle.pose_estimator``); default MediaPipe.
        psnr_max_db: the PSNR cap (:data:`PSNR_MAX_DB`).
        body_margin_frac: the body region's margin (:data:`BODY_MARGIN_FRAC`).
    """

    def __init__(
        self,
        *,
        confidence_threshold: float = CONFIDENCE_THRESHOLD,
        still_threshold_px: float = STILL_THRESHOLD_PX,
        estimator: PoseEstimatorLike | None = None,
        psnr_max_db: float = PSNR_MAX_DB,
        body_margin_frac: float = BODY_MARGIN_FRAC,
        pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
    ) -> None:
        if body_margin_frac < 0:
            raise ValueError(f"body_margin_frac must be at least 0, got {body_margin_frac}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {confidence_threshold}")
        if not still_threshold_px > 0:
            raise ValueError(f"still_threshold_px must be positive, got {still_threshold_px}")
        self.confidence_threshold = confidence_threshold
        self.still_threshold_px = still_threshold_px
        self.psnr_max_db = psnr_max_db
        self.body_margin_frac = body_margin_frac
        self._estimator = estimator
        self._owns_estimator = estimator is None
        self.pose_estimator = pose_estimator
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self._frame: dict[str, list[Any]] = {"index": [], "ssim": [], "psnr": []}
        self._body: dict[str, list[Any]] = {"index": [], "ssim": [], "psnr": []}
        self._face: dict[str, list[Any]] = {"index": [], "ssim": [], "psnr": []}
        self._without_person = 0
        self._distance_sum = np.zeros(NUM_JOINTS)
        self._found = np.zeros(NUM_JOINTS, np.int64)
        self._present = np.zeros(NUM_JOINTS, np.int64)
        self._distance_per_frame: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._changes: list[float] = []
        self._still: list[tuple[int, float, float]] = []

    def add(
        self,
        generated: np.ndarray,
        real: np.ndarray,
        driving_joints_px: np.ndarray,
        driving_confidence: np.ndarray,
        face_box: np.ndarray | None = None,
        person_box: np.ndarray | None = None,
    ) -> None:
        """Score the next frame of the sequence.

        Args:
            generated, real: uint8 ``(H, W, 3)`` RGB frames, one shape for the whole sequence.
            driving_joints_px: float ``(NUM_JOINTS, 2)`` the pose that drove ``generated``, in its pixels.
            driving_confidence: float ``(NUM_JOINTS,)`` in [0, 1].
            face_box: float ``(4,)`` x0, y0, x1, y1 pixels, NaN (or None) where there is no face.
            person_box: float ``(4,)`` x0, y0, x1, y1 pixels, the ground-truth person's box before the
                margin (:func:`find_person_box`; NaN where there is nobody); None = the box of the present
                driving joints (right when the driving pose is the ground truth's own).

        Raises:
            ValueError: for arrays of the wrong shape or dtype, or a frame size that changes.
        """
        _check_image_pair(generated, real)
        if self._shape is None:
            self._shape = generated.shape
        elif generated.shape != self._shape:
            raise ValueError(f"frame {self._count} has shape {generated.shape}, earlier ones {self._shape}")
        joints = np.asarray(driving_joints_px, dtype=np.float64)
        conf = np.asarray(driving_confidence, dtype=np.float64)
        if joints.shape != (NUM_JOINTS, 2) or conf.shape != (NUM_JOINTS,):
            raise ValueError(
                f"expected driving joints ({NUM_JOINTS}, 2) and confidence ({NUM_JOINTS},), "
                f"got {joints.shape} and {conf.shape}"
            )
        index = self._count
        height, width = generated.shape[:2]

        # Image similarity over the frame, the body region and the face crop.
        if person_box is None:
            person_box = find_person_box(joints, conf, threshold=self.confidence_threshold)
        body = body_crop_slices(person_box, width, height, margin_frac=self.body_margin_frac)
        face = None if face_box is None else face_crop_slices(face_box, width, height)
        whole = (slice(None), slice(None))
        for scores, crop in ((self._frame, whole), (self._body, body), (self._face, face)):
            if crop is not None:
                scores["index"].append(index)
                scores["ssim"].append(ssim(generated[crop], real[crop]))
                scores["psnr"].append(psnr_db(generated[crop], real[crop], max_db=self.psnr_max_db))

        # Pose fidelity.
        detected = self._pose_estimator().estimate(np.ascontiguousarray(generated), float(index))
        if detected.is_empty:
            self._without_person += 1
        present = present_joints(joints, conf, self.confidence_threshold)
        found = present & present_joints(detected.joints_px, detected.confidence, self.confidence_threshold)
        distance = np.linalg.norm(detected.joints_px.astype(np.float64) - joints, axis=-1)
        self._present += present
        self._found += found
        self._distance_sum += np.where(found, distance, 0.0)
        self._distance_per_frame.append(float(distance[found].mean()) if found.any() else math.nan)

        # Temporal stability.
        if self._previous is not None:
            prev_generated, prev_real, prev_joints, prev_conf = self._previous
            change = frame_change_levels(prev_generated, generated)
            self._changes.append(change)
            still = is_still(
                prev_joints, prev_conf, joints, conf,
                confidence_threshold=self.confidence_threshold, still_threshold_px=self.still_threshold_px,
            )  # fmt: skip
            if still:
                self._still.append((index, change, frame_change_levels(prev_real, real)))
        self._previous = (generated.copy(), real.copy(), joints, conf)
        self._count += 1

    def result(self) -> EvaluationResult:
        """The measures over the frames added so far."""
        present, found = int(self._present.sum()), int(self._found.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            per_joint_distance = self._distance_sum / self._found
            per_joint_missed = (self._present - self._found) / self._present
        pose = PoseFidelity(
            num_frames=self._count,
            num_frames_without_person=self._without_person,
            num_driving_joints=present,
            num_missed_joints=present - found,
            missed_joint_rate=(present - found) / present if present else math.nan,
            pose_distance_px=float(self._distance_sum.sum() / found) if found else math.nan,
            confidence_threshold=self.confidence_threshold,
            pose_distance_px_per_joint={j.name.lower(): float(per_joint_distance[j]) for j in Joint},
            missed_joint_rate_per_joint={j.name.lower(): float(per_joint_missed[j]) for j in Joint},
            pose_distance_px_per_frame=list(self._distance_per_frame),
        )
        temporal = TemporalStability(
            still_threshold_px=self.still_threshold_px,
            num_pairs=len(self._changes),
            num_still_pairs=len(self._still),
            still_change_levels=_mean(s[1] for s in self._still),
            real_still_change_levels=_mean(s[2] for s in self._still),
            change_levels=_mean(self._changes),
            still_pair_indices=[s[0] for s in self._still],
        )
        return EvaluationResult(
            frame=_similarity(self._frame),
            body=_similarity(self._body),
            face=_similarity(self._face),
            pose=pose,
            temporal=temporal,
            body_margin_frac=self.body_margin_frac,
        )


class LimbAgreementEvaluator(_JudgingEstimator):
    """:class:`LimbAgreement`, accumulated one frame pair at a time (constant memory).

    Use as a context manager, or call :meth:`close`, to release a pose estimator it created.

    Args:
        confidence_threshold: joints count as found at this confidence, on both sides.
        estimator: the pose estimator run on the source and the output frames of :meth:`add`; None =
            ``pose_estimator`` opened with ``video_mode=False`` on first use, so that each frame is judged
            on its own (:func:`realtime.pose.estimators.open_pose_estimator`).
        pose_estimator: the name of the estimator to open when ``estimator`` is None: the target's
            (``bundle.pose_estimator``); default MediaPipe.
    """

    def __init__(
        self,
        *,
        confidence_threshold: float = CONFIDENCE_THRESHOLD,
        estimator: PoseEstimatorLike | None = None,
        pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
    ) -> None:
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {confidence_threshold}")
        self.confidence_threshold = confidence_threshold
        self.pose_estimator = pose_estimator
        self._estimator = estimator
        self._owns_estimator = estimator is None
        self._count = 0
        self._without_person = 0
        self._angles: list[list[float]] = [[] for _ in LIMBS]
        self._per_frame: list[float] = []
        self._source_arm = 0
        self._missed_arm = 0
        self._swapped = 0

    def estimate(self, rgb: np.ndarray, timestamp_ms: float = 0.0) -> PoseFrame:
        """The judging estimator's pose of one uint8 ``(H, W, 3)`` RGB frame (for callers that compare one
        source pose with several outputs through :meth:`add_poses`)."""
        return self._pose_estimator().estimate(np.ascontiguousarray(rgb), timestamp_ms)

    def add(self, source_rgb: np.ndarray, output_rgb: np.ndarray) -> tuple[PoseFrame, PoseFrame]:
        """Estimate the pose on a source frame and on the frame generated from it (uint8 ``(h, w, 3)`` and
        ``(H, W, 3)`` RGB, any sizes) and add the pair (:meth:`add_poses`).

        Returns:
            the two estimated poses ``(source, output)``, in their frames' pixels.
        """
        index = float(self._count)
        source = self.estimate(source_rgb, index)
        output = self.estimate(output_rgb, index)
        self.add_poses(source.joints_px, source.confidence, output.joints_px, output.confidence)
        return source, output

    def add_poses(
        self,
        source_joints_px: np.ndarray,
        source_confidence: np.ndarray,
        output_joints_px: np.ndarray,
        output_confidence: np.ndarray,
    ) -> None:
        """Add one frame pair's estimated poses: joints float ``(NUM_JOINTS, 2)`` in pixels of their own
        frames, confidence float ``(NUM_JOINTS,)`` in [0, 1] (all 0 where nobody was found).

        Raises:
            ValueError: for arrays of the wrong shape.
        """
        output_confidence = np.asarray(output_confidence, np.float64)
        if np.asarray(source_joints_px).shape != (NUM_JOINTS, 2):
            raise ValueError(f"expected one pose ({NUM_JOINTS}, 2), got {np.asarray(source_joints_px).shape}")
        errors = limb_direction_errors_deg(
            source_joints_px, source_confidence, output_joints_px, output_confidence,
            threshold=self.confidence_threshold,
        )  # fmt: skip
        mirrored = list(MIRRORED_JOINTS)
        errors_mirrored = limb_direction_errors_deg(
            source_joints_px, source_confidence, np.asarray(output_joints_px)[mirrored],
            output_confidence[mirrored], threshold=self.confidence_threshold,
        )  # fmt: skip
        body = [LIMB_INDEX[name] for name in BODY_LIMBS]
        as_labelled, other_way = errors[body], errors_mirrored[body]
        if np.isfinite(other_way).any() and np.nanmedian(other_way) < np.nanmedian(as_labelled):
            errors = errors_mirrored  # the estimator labelled the output's sides the other way round
            self._swapped += 1
        for i, error in enumerate(errors):
            if math.isfinite(error) and LIMBS[i].name in BODY_LIMBS:
                self._angles[i].append(float(error))
        measured = errors[body][np.isfinite(errors[body])]
        self._per_frame.append(float(np.median(measured)) if measured.size else math.nan)
        arms = list(ARM_JOINTS)
        visible = present_joints(source_joints_px, source_confidence, self.confidence_threshold)[arms]
        found = present_joints(output_joints_px, output_confidence, self.confidence_threshold)[arms]
        self._source_arm += int(visible.sum())
        self._missed_arm += int((visible & ~found).sum())
        if not np.any(output_confidence > 0):
            self._without_person += 1
        self._count += 1

    def result(self) -> LimbAgreement:
        """The measures over the pairs added so far."""
        every = np.array([a for angles in self._angles for a in angles], np.float64)
        return LimbAgreement(
            num_frames=self._count,
            num_frames_without_person=self._without_person,
            num_measurements=int(every.size),
            median_deg=float(np.median(every)) if every.size else math.nan,
            p90_deg=float(np.percentile(every, 90)) if every.size else math.nan,
            mean_deg=float(every.mean()) if every.size else math.nan,
            median_deg_per_limb={
                limb.name: float(np.median(angles)) if angles else math.nan
                for limb, angles in zip(LIMBS, self._angles, strict=True)
            },
            num_measurements_per_limb={
                limb.name: len(angles) for limb, angles in zip(LIMBS, self._angles, strict=True)
            },
            num_source_arm_joints=self._source_arm,
            num_missed_arm_joints=self._missed_arm,
            missed_arm_joint_rate=self._missed_arm / self._source_arm if self._source_arm else math.nan,
            confidence_threshold=self.confidence_threshold,
            median_deg_per_frame=list(self._per_frame),
            num_frames_mirrored=self._swapped,
        )


def limb_agreement(
    source_joints_px: np.ndarray,
    source_confidence: np.ndarray,
    output_joints_px: np.ndarray,
    output_confidence: np.ndarray,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
) -> LimbAgreement:
    """:class:`LimbAgreement` of whole sequences of estimated poses: joints float ``(N, NUM_JOINTS, 2)`` in
    pixels of their frames, confidence float ``(N, NUM_JOINTS)`` in [0, 1].

    Raises:
        ValueError: for arrays of the wrong shape, or sequences of different lengths.
    """
    source_joints_px, output_joints_px = np.asarray(source_joints_px), np.asarray(output_joints_px)
    if source_joints_px.ndim != 3 or source_joints_px.shape != output_joints_px.shape:
        raise ValueError(
            f"expected two pose sequences (N, {NUM_JOINTS}, 2) of one length, got "
            f"{source_joints_px.shape} and {output_joints_px.shape}"
        )
    evaluator = LimbAgreementEvaluator(confidence_threshold=confidence_threshold)
    for i in range(source_joints_px.shape[0]):
        evaluator.add_poses(
            source_joints_px[i], source_confidence[i], output_joints_px[i], output_confidence[i]
        )
    return evaluator.result()


def evaluate_frames(
    generated: np.ndarray,
    real: np.ndarray,
    driving_joints_px: np.ndarray,
    driving_confidence: np.ndarray,
    face_boxes: np.ndarray | None = None,
    person_boxes: np.ndarray | None = None,
    *,
    confidence_threshold: float = CONFIDENCE_THRESHOLD,
    still_threshold_px: float = STILL_THRESHOLD_PX,
    estimator: PoseEstimatorLike | None = None,
    progress: bool = False,
    pose_estimator: str = DEFAULT_POSE_ESTIMATOR,
) -> EvaluationResult:
    """All measures of a generated sequence against its ground truth (see :class:`FrameEvaluator`).

    Args:
        generated, real: uint8 ``(N, H, W, 3)`` RGB, in sequence order (temporal stability compares
            consecutive frames).
        driving_joints_px: float ``(N, NUM_JOINTS, 2)`` the poses that drove ``generated``, in its pixels.
        driving_confidence: float ``(N, NUM_JOINTS)`` in [0, 1].
        face_boxes: float ``(N, 4)`` x0, y0, x1, y1 pixels, NaN rows where a frame has no face; None = no
            face measures.
        person_boxes: float ``(N, 4)`` the ground-truth person's boxes (:func:`find_person_box`), NaN rows
            where there is nobody; None = the boxes of the present driving joints.
        confidence_threshold, still_threshold_px, estimator, pose_estimator: as for :class:`FrameEvaluator`.
        progress: show a progress bar.

    Raises:
        ValueError: for arrays of the wrong shape or dtype, or lengths that differ.
    """
    generated, real = np.asarray(generated), np.asarray(real)
    if generated.ndim != 4 or generated.shape != real.shape:
        raise ValueError(
            f"expected generated and real frames of one shape (N, H, W, 3), got {generated.shape} and "
            f"{real.shape}"
        )
    n = generated.shape[0]
    driving_joints_px = np.asarray(driving_joints_px)
    driving_confidence = np.asarray(driving_confidence)
    if driving_joints_px.shape != (n, NUM_JOINTS, 2) or driving_confidence.shape != (n, NUM_JOINTS):
        raise ValueError(
            f"expected driving joints ({n}, {NUM_JOINTS}, 2) and confidence ({n}, {NUM_JOINTS}) for {n} "
            f"frames, got {driving_joints_px.shape} and {driving_confidence.shape}"
        )
    if face_boxes is not None:
        face_boxes = np.asarray(face_boxes)
        if face_boxes.shape != (n, 4):
            raise ValueError(f"expected face boxes ({n}, 4), got {face_boxes.shape}")
    if person_boxes is not None:
        person_boxes = np.asarray(person_boxes)
        if person_boxes.shape != (n, 4):
            raise ValueError(f"expected person boxes ({n}, 4), got {person_boxes.shape}")
    with FrameEvaluator(
        confidence_threshold=confidence_threshold, still_threshold_px=still_threshold_px, estimator=estimator,
        pose_estimator=pose_estimator,
    ) as evaluator:  # fmt: skip
        for i in progress_bar(range(n), desc="evaluate", unit="frame", disable=not progress):
            box = None if face_boxes is None else face_boxes[i]
            person = None if person_boxes is None else person_boxes[i]
            evaluator.add(generated[i], real[i], driving_joints_px[i], driving_confidence[i], box, person)
        return evaluator.result()


# -- presentation -------------------------------------------------------------------------------------------

#: Columns of :func:`markdown_table`: header and how a value is printed.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("num_frames", "frames", "{:d}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("psnr_db", "PSNR (dB)", "{:.2f}"),
    ("body_ssim", "body SSIM", "{:.4f}"),
    ("body_psnr_db", "body PSNR (dB)", "{:.2f}"),
    ("face_ssim", "face SSIM", "{:.4f}"),
    ("face_psnr_db", "face PSNR (dB)", "{:.2f}"),
    ("pose_distance_px", "pose distance (px)", "{:.2f}"),
    ("missed_joint_rate", "missed joints", "{:.1%}"),
    ("temporal_change_levels", "temporal change (levels)", "{:.2f}"),
    ("generator_ms_per_frame", "generator (ms/frame)", "{:.1f}"),
)


#: The column of :data:`TABLE_COLUMNS` after which :func:`markdown_table` puts the limb-agreement columns
#: (beside the body-region measures).
LIMB_COLUMNS_AFTER = "body_psnr_db"


def markdown_table(
    results: Mapping[str, EvaluationResult],
    generator_ms_per_frame: Mapping[str, float] | None = None,
    limb_agreement: Mapping[str, Mapping[str, LimbAgreement]] | None = None,
) -> str:
    """A markdown table with one row per labelled result (columns :data:`TABLE_COLUMNS`), followed by the
    definitions of the columns and per-row counts (face frames, still pairs, frames without a person).
    Unmeasured values print as ``n/a``.

    Args:
        results: the rows, by label.
        generator_ms_per_frame: the generator's timing of the rows that have one, by label.
        limb_agreement: by row label, then by source name: :class:`LimbAgreement` of the row's model driven
            by that source. Each source named anywhere adds two columns after the body-region measures
            (limb directions' median / p90 in degrees; elbows and wrists missed), ``n/a`` in the rows without
            it; None or empty adds none.
    """
    timings = generator_ms_per_frame or {}
    agreements = limb_agreement or {}
    sources = list(dict.fromkeys(name for by_source in agreements.values() for name in by_source))
    split = [key for key, _, _ in TABLE_COLUMNS].index(LIMB_COLUMNS_AFTER) + 1
    titles = [title for _, title, _ in TABLE_COLUMNS]
    limb_titles = [
        title
        for name in sources
        for title in (f"limb dir. median / p90 (deg), {name}", f"elbows+wrists missed, {name}")
    ]
    titles[split:split] = limb_titles
    header = "| model | " + " | ".join(titles) + " |"
    lines = [header, "|---|" + "---:|" * len(titles)]
    notes = []
    thresholds = set()
    limb_thresholds: set[float] = set()
    margins = set()
    for label, result in results.items():
        row = {**result.summary(), "generator_ms_per_frame": timings.get(label, math.nan)}
        cells = [_format(row[key], spec) for key, _, spec in TABLE_COLUMNS]
        limb_cells = []
        source_notes = []
        for name in sources:
            agreement = agreements.get(label, {}).get(name)
            if agreement is None:
                limb_cells += ["n/a", "n/a"]
                continue
            limb_cells += [
                f"{_format(agreement.median_deg, '{:.1f}')} / {_format(agreement.p90_deg, '{:.1f}')}",
                _format(agreement.missed_arm_joint_rate, "{:.1%}"),
            ]
            source_notes.append(
                f"- {label}, driven by {name}: {agreement.num_frames} frames, {agreement.num_measurements} "
                f"limb angles, {agreement.num_source_arm_joints} source elbows and wrists; nobody found in "
                f"{agreement.num_frames_without_person} generated frames; sides swapped on "
                f"{agreement.num_frames_mirrored}"
            )
            limb_thresholds.add(agreement.confidence_threshold)
        cells[split:split] = limb_cells
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        notes.append(
            f"- {label}: body scored on {result.body.num_frames}/{result.frame.num_frames} frames, face on "
            f"{result.face.num_frames}; "
            f"{result.temporal.num_still_pairs}/{result.temporal.num_pairs} still frame pairs (real video's "
            f"change there: {_format(result.temporal.real_still_change_levels, '{:.2f}')} levels); nobody "
            f"found in {result.pose.num_frames_without_person} generated frames"
        )
        notes += source_notes
        thresholds.add((result.pose.confidence_threshold, result.temporal.still_threshold_px))
        margins.add(result.body_margin_frac)
    margin = " / ".join(f"{m:.0%}" for m in sorted(margins))
    definitions = [
        "SSIM, PSNR: scikit-image, mean over frames (PSNR capped at "
        f"{PSNR_MAX_DB:g} dB per frame); face: over the face box clipped to the canvas (EDN Tables 1-2).",
        "Body SSIM, PSNR: over the ground-truth person's bounding box (its mask where the data has one, "
        f"else its keypoints) grown by {margin} of the box's width and height on each side, clipped to the "
        "canvas; frames without a person are not scored (EDN's body SSIM).",
    ]
    if sources:
        definitions.append(
            "Limb dir. (unseen poses, no ground truth): the model driven by a source video through the "
            "offline retargeting; the target's pose estimator on each source frame and on the frame "
            "generated from it; for each body limb (spine, clavicles, arms, pelvis, legs) found in both, the "
            "angle between its two 2-D directions (bone-length retargeting keeps the source's joint angles; "
            "an output labelled the other way round is compared with its sides swapped); median / 90th "
            "percentile over all limbs of all frames, in degrees. Elbows+wrists missed: share of the "
            "source's found elbows and wrists that the estimator does not find on the generated frame."
        )
    definitions += [
        "Pose distance: the target's pose estimator (MediaPipe Pose by default) on each generated frame, "
        "mean distance in pixels of the output between found joints and the driving joints; missed joints: "
        "share of present driving joints it did not find (EDN Tables 3-4).",
        "Temporal change: mean absolute frame-to-frame change of the output, in levels of 0-255, over "
        "consecutive frames whose driving joints all moved less than the stillness threshold.",
    ]
    for confidence, still in sorted(thresholds):
        definitions.append(f"Joint confidence threshold {confidence:g}; stillness threshold {still:g} px.")
    for confidence in sorted(limb_thresholds - {c for c, _ in thresholds}):
        definitions.append(f"Limb directions' joint confidence threshold {confidence:g}.")
    return "\n".join([*lines, "", *(f"- {d}" for d in definitions), *notes]) + "\n"


# -- helpers ------------------------------------------------------------------------------------------------


def _check_image_pair(a: np.ndarray, b: np.ndarray) -> None:
    for image in (a, b):
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            raise ValueError(
                f"expected uint8 (H, W, 3) RGB frames, got {getattr(image, 'dtype', type(image))} "
                f"{getattr(image, 'shape', '')}"
            )
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} and {b.shape}")


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def _similarity(scores: dict[str, list[Any]]) -> ImageSimilarity:
    return ImageSimilarity(
        num_frames=len(scores["index"]),
        ssim=_mean(scores["ssim"]),
        psnr_db=_mean(scores["psnr"]),
        frame_indices=list(scores["index"]),
        ssim_per_frame=list(scores["ssim"]),
        psnr_db_per_frame=list(scores["psnr"]),
    )


def _format(value: float | int, spec: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return spec.format(value)
